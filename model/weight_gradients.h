// The gradient pass of the data-driven LoRA initialisers (lora_ga, lora_ns;
// docs/seed-behaviour.md §4 "Gradient pass"): G = dL/dW for every targeted base weight,
// averaged over the given batches.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/host_tensor.h"
#include "model/llama_model.h"

namespace smol {

using WeightGradients = std::map<std::string, HostTensor>;  // HF weight name -> G (fp32)

// G for every targeted weight of `lora_model`: a TrainMode::Full copy of its base weights runs
// forward+backward on each batch with that batch's token-mean loss (loss_scale 1/N_batch);
// the gradients are summed in fp32 and divided by the number of batches that had a
// supervised token (docs/seed-behaviour.md §4 "Gradient pass", with correct completion masking).
WeightGradients estimate_weight_gradients(LlamaModel& lora_model,
                                          const std::vector<std::vector<TokenRow>>& batches);

}  // namespace smol
