// HF / PEFT tensor names of LoRA targets (see lora_names.h).
#include "model/lora_names.h"

#include "common/error.h"

namespace smol {

std::string projection_weight_name(int64_t layer, Projection projection) {
  const bool attention = projection == Projection::Q || projection == Projection::K ||
                         projection == Projection::V || projection == Projection::O;
  return "model.layers." + std::to_string(layer) + (attention ? ".self_attn." : ".mlp.") +
         projection_name(projection) + ".weight";
}

std::string lora_tensor_name(const std::string& weight_name, const char* which) {
  static const std::string kSuffix = ".weight";
  SMOL_CHECK(
      weight_name.size() > kSuffix.size() &&
          weight_name.compare(weight_name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0,
      "weight name ", weight_name, " does not end in .weight");
  return weight_name.substr(0, weight_name.size() - kSuffix.size()) + ".lora_" + which + kSuffix;
}

}  // namespace smol
