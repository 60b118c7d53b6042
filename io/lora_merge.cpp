// W + s·B·A for every adapter pair (see lora_merge.h).
#include "io/lora_merge.h"

#include <vector>

#include "common/error.h"

namespace smol {

void merge_peft_adapter(HostTensorMap& weights, const PeftAdapter& adapter,
                        const std::string& where) {
  static const std::string kSuffixA = ".lora_A.weight";
  SMOL_CHECK(!peft_init_moves_base_weight(adapter.config.init_lora_weights), where,
             ": the adapter says init_lora_weights = \"", adapter.config.init_lora_weights,
             "\": it was trained on a residual base (W − s·B0·A0) that no file holds, so merging "
             "it into the original base would be wrong; save it converted to a plain LoRA "
             "(PEFT: save_pretrained(path_initial_model_for_weight_conversion=...))");
  check_peft_lora_tensors(adapter.config, adapter.tensors, where);
  const double s = adapter.config.scaling();
  // Plain references, not a structured binding: clang before 16 cannot capture those in the
  // OpenMP region below.
  for (const auto& entry : adapter.tensors) {
    const std::string& name_a = entry.first;
    const HostTensor& a = entry.second;
    if (name_a.size() < kSuffixA.size() ||
        name_a.compare(name_a.size() - kSuffixA.size(), kSuffixA.size(), kSuffixA) != 0)
      continue;
    const std::string stem = name_a.substr(0, name_a.size() - kSuffixA.size());
    const HostTensor& b = adapter.tensors.at(stem + ".lora_B.weight");
    const std::string weight_name = stem + ".weight";
    auto it = weights.find(weight_name);
    SMOL_CHECK(it != weights.end(), where, ": the base model has no '", weight_name,
               "' for the adapter's ", name_a);
    HostTensor& w = it->second;
    const int64_t r = a.shape[0], in = a.shape[1], out = b.shape[0];
    SMOL_CHECK(w.shape.rank == 2 && w.shape[0] == out && w.shape[1] == in, where, ": base weight '",
               weight_name, "' is ", w.shape.str(), " but the adapter maps ", in, " -> ", out,
               " (an adapter for another model?)");
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < out; ++o) {
      std::vector<double> row(static_cast<size_t>(in), 0.0);  // (B·A)[o, :]
      for (int64_t k = 0; k < r; ++k) {
        const double b_ok = b.data[static_cast<size_t>(o * r + k)];
        const float* a_row = &a.data[static_cast<size_t>(k * in)];
        for (int64_t i = 0; i < in; ++i) row[static_cast<size_t>(i)] += b_ok * a_row[i];
      }
      float* w_row = &w.data[static_cast<size_t>(o * in)];
      for (int64_t i = 0; i < in; ++i)
        w_row[i] = static_cast<float>(w_row[i] + s * row[static_cast<size_t>(i)]);
    }
  }
}

}  // namespace smol
