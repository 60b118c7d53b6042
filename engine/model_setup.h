// Builds the model a run config describes (docs/design.md §3): base weights (pretrained through
// load_model, or random from model.architecture), the train mode (LoRA with its initialiser,
// or full fine-tuning), and for lora_ga / lora_ns the gradient pass over the given batches.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/config/run_config.h"
#include "model/llama_model.h"
#include "model/lora_init.h"

namespace smol {

struct BuiltModel {
  std::unique_ptr<LlamaModel> model;
  std::optional<LoraInitReport> lora_init;  // set in LoRA mode
  int32_t pad_id = 0;  // collation pad from the model's ids (resolve_special_ids, no tokenizer)
  std::string weights_source;
};

// gradient_batches: the training samples lora_ga / lora_ns estimate G on (ignored by the other
// initialisers); when null, they come from the config's dataset (gradient_pass_batches in
// engine/training_data.h, data root config.data_dir).
BuiltModel build_model(Backend& backend, const RunConfig& config,
                       const std::vector<std::vector<TokenRow>>* gradient_batches = nullptr);

// Whether the backend has a quantised kernel for every tensor's format (else the caller
// dequantises them: dequantize_held, io/model_loader.h).
bool supports_all_quantized(const Backend& backend, const QuantizedTensorMap& quantized);

// Right-pads every row to the longest row rounded up to `multiple`, with `pad_id` and label
// −100 (docs/seed-behaviour.md §2.7). Rows without labels get all −100 labels.
std::vector<TokenRow> pad_rows(const std::vector<TokenRow>& rows, int64_t multiple, int32_t pad_id);

}  // namespace smol
