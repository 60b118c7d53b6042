// build_model and pad_rows (see model_setup.h).
#include "engine/model_setup.h"

#include <algorithm>

#include "common/error.h"
#include "engine/training_data.h"
#include "io/model_loader.h"

namespace smol {

std::vector<TokenRow> pad_rows(const std::vector<TokenRow>& rows, int64_t multiple,
                               int32_t pad_id) {
  SMOL_CHECK(multiple > 0, "pad_to_multiple_of must be positive");
  size_t longest = 0;
  for (const TokenRow& row : rows) longest = std::max(longest, row.input_ids.size());
  const size_t length = (longest + multiple - 1) / multiple * multiple;
  std::vector<TokenRow> padded = rows;
  for (TokenRow& row : padded) {
    if (row.labels.empty()) row.labels.assign(row.input_ids.size(), -100);
    row.input_ids.resize(length, pad_id);
    row.labels.resize(length, -100);
  }
  return padded;
}

bool supports_all_quantized(const Backend& backend, const QuantizedTensorMap& quantized) {
  for (const auto& [name, q] : quantized)
    if (!backend.supports_quantized(q.format)) return false;
  return true;
}

BuiltModel build_model(Backend& backend, const RunConfig& config,
                       const std::vector<std::vector<TokenRow>>* gradient_batches) {
  BuiltModel built;
  LlamaConfig architecture;
  HostTensorMap weights;
  QuantizedTensorMap quantized;  // model.weights_in_memory: quantized (docs/cpu-speed.md)
  const bool keep_quantized = config.model.weights_in_memory == "quantized";
  SMOL_CHECK(!keep_quantized || !config.model.random_init, config.path,
             ": model.weights_in_memory: quantized keeps a GGUF file's quantised weights; "
             "model.init: random has none");
  if (config.model.random_init) {
    architecture = config.model.architecture;
    built.weights_source = "random";
  } else {
    LoadedModel loaded = load_model(config.model.name_or_path, LoadOptions{keep_quantized});
    if (!supports_all_quantized(backend, loaded.quantized)) dequantize_held(loaded);
    architecture = loaded.config;
    weights = std::move(loaded.weights);
    quantized = std::move(loaded.quantized);
    built.weights_source = loaded.source;
  }
  // No tokenizer is loaded here: the model's own ids decide (engine/training_data.h).
  built.pad_id = resolve_special_ids(config, /*tokenizer=*/nullptr, &architecture).pad_id;
  const bool full = config.peft.full_finetune();
  // training.cpu_precision: bf16 keeps the frozen matrices in bf16 (docs/cpu-speed.md "bf16 on
  // cpu"); on cuda they are bf16 either way (its activation dtype).
  const FrozenWeights frozen = config.training.cpu_precision == "bf16"
                                   ? FrozenWeights::BF16
                                   : FrozenWeights::ActivationDtype;
  SMOL_CHECK(!full || quantized.empty(), config.path,
             ": peft.method full trains the base weights; they cannot be held quantised "
             "(model.weights_in_memory: fp32)");
  built.model = std::make_unique<LlamaModel>(
      backend, architecture, full ? TrainMode::Full : TrainMode::Lora,
      full ? std::nullopt : std::optional<LoraSettings>(config.peft.lora), frozen, &quantized);
  if (config.model.random_init)
    built.model->init_random(config.model.seed.value_or(config.training.seed),
                             static_cast<float>(config.model.init_std));
  else
    built.model->load_weights(weights);

  if (!full) {
    const LoraInitSpec& spec = config.peft.init;
    std::optional<WeightGradients> gradients;
    if (lora_init_needs_gradient(spec.kind)) {
      // Without explicit batches, the config's own train split feeds the gradient pass
      // (docs/seed-behaviour.md §4: the first loraga.num_samples examples, no shuffle).
      std::vector<std::vector<TokenRow>> from_dataset;
      if (gradient_batches == nullptr) {
        from_dataset = gradient_pass_batches(config, architecture.vocab_size,
                                             architecture.max_position_embeddings);
        gradient_batches = &from_dataset;
      }
      SMOL_CHECK(!gradient_batches->empty(), config.path, ": peft.init_lora_weights ",
                 lora_init_name(spec), " needs training samples for its gradient pass");
      gradients = estimate_weight_gradients(*built.model, *gradient_batches);
    }
    built.lora_init = initialize_lora(*built.model, spec, gradients ? &*gradients : nullptr);
  }
  built.model->zero_grads();
  return built;
}

}  // namespace smol
