// Rank-2r plain-LoRA conversion (see peft_weight_conversion.h; docs/seed-behaviour.md §4).
#include "io/peft_weight_conversion.h"

#include <cmath>
#include <cstring>

#include "common/error.h"

namespace smol {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

HostTensorMap convert_to_plain_lora(const HostTensorMap& trained, const HostTensorMap& initial,
                                    PeftAdapterConfig& config) {
  check_peft_lora_tensors(config, trained, "convert_to_plain_lora: trained adapter");
  check_peft_lora_tensors(config, initial, "convert_to_plain_lora: initial adapter");
  for (const auto& [name, t] : initial)
    SMOL_CHECK(trained.count(name), "convert_to_plain_lora: initial tensor '", name,
               "' has no trained counterpart");
  HostTensorMap out;
  for (const auto& [name, t] : trained) {
    auto it = initial.find(name);
    SMOL_CHECK(it != initial.end(), "convert_to_plain_lora: trained tensor '", name,
               "' has no initial counterpart");
    const HostTensor& t0 = it->second;
    SMOL_CHECK(t.shape == t0.shape, "convert_to_plain_lora: '", name, "' is ", t.shape.str(),
               " trained but ", t0.shape.str(), " initial");
    const int64_t rows = t.shape[0], cols = t.shape[1];
    HostTensor merged;
    if (ends_with(name, ".lora_A.weight")) {  // A' = [A; A0]: the rows of A, then those of A0
      merged.shape = Shape{2 * rows, cols};
      merged.data = t.data;
      merged.data.insert(merged.data.end(), t0.data.begin(), t0.data.end());
    } else {  // B' = [B, −B0]: each row holds the r values of B, then the r of −B0
      merged.shape = Shape{rows, 2 * cols};
      merged.data.resize(static_cast<size_t>(2 * rows * cols));
      for (int64_t o = 0; o < rows; ++o) {
        float* dst = &merged.data[static_cast<size_t>(o * 2 * cols)];
        std::memcpy(dst, &t.data[static_cast<size_t>(o * cols)], cols * sizeof(float));
        for (int64_t k = 0; k < cols; ++k)
          dst[cols + k] = -t0.data[static_cast<size_t>(o * cols + k)];
      }
    }
    out.emplace(name, std::move(merged));
  }
  config.r *= 2;
  config.lora_alpha *= config.use_rslora ? std::sqrt(2.0) : 2.0;
  config.init_lora_weights = "true";
  return out;
}

}  // namespace smol
