// Shared helpers for model_tests: fixture paths, the tiny golden Llama, and error norms.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "io/model_loader.h"
#include "io/safetensors_io.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/llama_model.h"

namespace smol::test {

inline std::string golden_dir() {
  return std::string(SMOL_SOURCE_DIR) + "/tests/golden/model";
}
inline std::string real_model_path() {
  return std::string(SMOL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// The tiny random Llama of make_fixtures.py, loaded through load_model (HF dir).
inline std::unique_ptr<LlamaModel> load_tiny(Backend& backend, TrainMode mode,
                                             std::optional<LoraSettings> lora = std::nullopt) {
  const LoadedModel loaded = load_model(golden_dir() + "/tiny");
  auto model = std::make_unique<LlamaModel>(backend, loaded.config, mode, lora);
  model->load_weights(loaded.weights);
  return model;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// ‖a − b‖₂ / ‖b‖₂ over the whole tensor (the norm used by every gradient check here).
inline double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// The 2-row training batch of make_fixtures.py (unpadded rows; -100 on prompt tokens).
std::vector<TokenRow> golden_train_rows();

// The golden rows as two micro-batches of one row each (a step with gradient accumulation).
inline std::vector<std::vector<TokenRow>> golden_micro_batches() {
  const std::vector<TokenRow> rows = golden_train_rows();
  return {{rows[0]}, {rows[1]}};
}

// load_tiny leaves LoRA A and B at zero (no initialiser runs), so every gradient would be zero:
// give the trainable tensors fixed small random values (the same on every backend).
inline void randomise_trainable(Backend& backend, LlamaModel& model) {
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> dist(-0.1f, 0.1f);
  for (const TrainableParam& p : model.trainable_params()) {
    std::vector<float> values(static_cast<size_t>(p.value.numel()));
    for (float& x : values) x = dist(rng);
    backend.upload(p.value, values.data());
  }
}

// LoRA A and B set to the same nonzero N(0, 0.05²) values on both models (B = 0 would zero every
// A gradient), drawn in tensor-name order from `seed`.
inline void randomise_lora(LlamaModel& a, LlamaModel& b, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  for (const std::string& name : a.tensor_names()) {
    if (name.find("lora_") == std::string::npos) continue;
    HostTensor t = a.read_tensor(name);
    for (float& x : t.data) x = dist(rng);
    a.write_tensor(name, t);
    b.write_tensor(name, t);
  }
}

// Counts the ops a backend runs at depth 0 (the ones the model calls; a composite's primitives
// on the cpu backend are depth 1): the op-count tests' instrument.
class OpCounter final : public OpHook {
 public:
  std::map<std::string, int64_t> ops;
  void before_op(Backend&, const char* op, int depth) override {
    if (depth == 0) ++ops[op];
  }
  void after_op(Backend&, const char*, int) override {}
  int64_t total() const {
    int64_t n = 0;
    for (const auto& [op, count] : ops) n += count;
    return n;
  }
};

}  // namespace smol::test
