// PEFT LoRA adapter directories (docs/formats.md §4): what `PeftModel.from_pretrained(base,
// dir)` loads and what HF Trainer + PEFT write into `checkpoint-N/`:
//
//   adapter_config.json        LoraConfig fields (peft_type "LORA", r, lora_alpha, ...)
//   adapter_model.safetensors  "base_model.model." + our tensor name, e.g.
//                              base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight,
//                              no adapter name inside the key, __metadata__ {"format": "pt"}
//
// A is [r, in], B is [out, r]; the adapter adds s·B·A to W, s = lora_alpha / r (lora_alpha / √r
// with use_rslora; docs/design.md §3). PEFT loads the safetensors with strict=False, so a wrong
// key would load silently as a no-op adapter (docs/formats.md §8 item 10): the writer and the
// reader therefore accept only names of the seven Llama projections, and every LoraConfig
// option that would change the function (DoRA, biases, rank/alpha patterns, layer subsets,
// modules_to_save, fan_in_fan_out) is refused rather than ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/host_tensor.h"

namespace smol {

struct PeftAdapterConfig {
  std::string base_model_name_or_path;  // any source io/model_loader accepts; "" = null
  std::string revision;                 // "" = null
  int64_t r = 8;
  double lora_alpha = 8;
  double lora_dropout = 0;
  std::vector<std::string> target_modules;  // module-name suffixes: "q_proj", "up_proj", ...
  bool use_rslora = false;
  // PEFT's init_lora_weights as text: "true", "false", "gaussian", "pissa", "pissa_niter_4",
  // "lora_ga", ... Written back as a JSON bool for "true"/"false", else as a string. An adapter
  // saved with a base-moving value (pissa*, olora, corda, lora_ga, lora_ns, loftq) only means
  // its function on top of the residual base it was trained on (see peft_weight_conversion.h).
  std::string init_lora_weights = "true";
  std::string task_type = "CAUSAL_LM";

  double scaling() const;  // lora_alpha / r, or lora_alpha / √r with use_rslora
};

struct PeftAdapter {
  PeftAdapterConfig config;
  HostTensorMap tensors;  // our names ("model.layers.L.self_attn.q_proj.lora_A.weight"), fp32
};

// The PEFT safetensors key of one of our LoRA tensor names and back ("" when `key` is not of
// that form).
std::string peft_key_from_lora_name(const std::string& name);
std::string lora_name_from_peft_key(const std::string& key);

// True when init_lora_weights names an initialiser that moved the base weight.
bool peft_init_moves_base_weight(const std::string& init_lora_weights);

// Checks that `tensors` is a well-formed LoRA for `config`: every name is
// model.layers.<L>.{self_attn.{q,k,v,o}_proj | mlp.{gate,up,down}_proj}.lora_{A,B}.weight, A and
// B come in pairs, A is [r, in] and B is [out, r] with r = config.r, the module is listed in
// config.target_modules, the pairs of one module agree in shape across layers. Throws
// smol::Error prefixed by `where`.
void check_peft_lora_tensors(const PeftAdapterConfig& config, const HostTensorMap& tensors,
                             const std::string& where);

// Writes dir/adapter_model.safetensors (fp32, PEFT keys) and dir/adapter_config.json (every
// field of PEFT's LoraConfig that matters, docs/formats.md §4), each atomically (temporary
// name, then rename); creates `dir`. Throws on a malformed adapter (check_peft_lora_tensors),
// r ≤ 0, dropout outside [0, 1), an empty target list, or an IO failure.
void write_peft_adapter(const std::string& dir, const PeftAdapterConfig& config,
                        const HostTensorMap& lora);

// The adapter_config.json text write_peft_adapter writes.
std::string peft_adapter_config_json(const PeftAdapterConfig& config);
// Parses adapter_config.json text (`where` names it in errors): peft_type must be "LORA";
// missing keys take PEFT's defaults (r 8, lora_alpha 8, dropout 0, targets q_proj/v_proj for a
// Llama); options this engine cannot reproduce are refused, naming the key.
PeftAdapterConfig parse_peft_adapter_config(const std::string& json_text, const std::string& where);

// Reads a PEFT adapter directory written by write_peft_adapter or by PEFT itself. Throws
// smol::Error naming the file for a missing/malformed file, a key that is not a LoRA tensor of
// a Llama projection, shapes inconsistent with r, or an unsupported config option.
PeftAdapter read_peft_adapter(const std::string& dir);

}  // namespace smol
