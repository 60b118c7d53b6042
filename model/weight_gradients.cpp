// The lora_ga / lora_ns gradient pass (see weight_gradients.h).
#include "model/weight_gradients.h"

#include "common/error.h"
#include "model/lora_names.h"

namespace smol {

WeightGradients estimate_weight_gradients(LlamaModel& lora_model,
                                          const std::vector<std::vector<TokenRow>>& batches) {
  SMOL_CHECK(lora_model.lora().has_value(), "gradient estimation needs a LoRA model's targets");
  // A full fine-tuning copy of the base weights: its backward yields dL/dW for every weight.
  HostTensorMap base;
  for (const std::string& name : lora_model.tensor_names())
    if (name.find(".lora_") == std::string::npos) base[name] = lora_model.read_tensor(name);
  LlamaModel full(lora_model.backend(), lora_model.config(), TrainMode::Full);
  full.load_weights(base);
  full.zero_grads();

  int64_t used_batches = 0;
  for (const auto& batch : batches) {
    int64_t supervised = 0;
    for (const TokenRow& row : batch)
      for (size_t t = 1; t < row.labels.size(); ++t) supervised += row.labels[t] != -100;
    if (supervised > 0) ++used_batches;
  }
  SMOL_CHECK(used_batches > 0, "gradient estimation: none of the ", batches.size(),
             " batches has a supervised token");
  for (size_t i = 0; i < batches.size(); ++i) {
    int64_t supervised = 0;
    for (const TokenRow& row : batches[i])
      for (size_t t = 1; t < row.labels.size(); ++t) supervised += row.labels[t] != -100;
    if (supervised == 0) continue;
    // Σ_b mean_b / n_batches, accumulated in the fp32 grads by scaling each batch's backward.
    const double scale =
        1.0 / (static_cast<double>(supervised) * static_cast<double>(used_batches));
    full.forward_backward(batches[i], static_cast<float>(scale), /*dropout_seed=*/i, true);
  }

  WeightGradients gradients;
  const LoraSettings& lora = *lora_model.lora();
  std::map<std::string, bool> wanted;
  for (int64_t layer = 0; layer < lora_model.config().num_hidden_layers; ++layer)
    for (Projection projection : lora.targets)
      wanted[projection_weight_name(layer, projection)] = true;
  for (const TrainableParam& p : full.trainable_params()) {
    if (!wanted.count(p.name)) continue;
    HostTensor g;
    g.shape = p.grad.shape;
    g.data.resize(static_cast<size_t>(p.grad.numel()));
    full.backend().download(g.data.data(), p.grad);
    gradients[p.name] = std::move(g);
  }
  SMOL_CHECK(gradients.size() == wanted.size(), "gradient estimation: the full model exposed ",
             gradients.size(), " of the ", wanted.size(), " targeted weights");
  return gradients;
}

}  // namespace smol
