// HF / PEFT names of the tensors LoRA touches (docs/formats.md §4): the base weight of a
// targeted projection and its lora_A / lora_B tensors.
#pragma once

#include <cstdint>
#include <string>

#include "model/llama_model.h"

namespace smol {

// HF name of the base weight of a targeted projection: "model.layers.3.mlp.up_proj.weight".
std::string projection_weight_name(int64_t layer, Projection projection);
// ".../q_proj.weight" -> ".../q_proj.lora_A.weight" (which = "A" or "B").
std::string lora_tensor_name(const std::string& weight_name, const char* which);

}  // namespace smol
