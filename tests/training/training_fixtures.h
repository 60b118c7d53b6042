// Helpers shared by the training tests: fixture paths, tensor reading and error measures.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/batch_jsonl.h"
#include "kernels/backend.h"
#include "io/host_tensor.h"
#include "model/llama_model.h"
#include "io/model_loader.h"
#include "io/safetensors_io.h"

namespace smol::test {

inline std::string golden_dir() {
  return std::string(SMOL_SOURCE_DIR) + "/tests/golden/training/";
}
inline std::string golden(const std::string& file) {
  return golden_dir() + file;
}

// The fixture model's LoRA: r 4, α 8, no dropout, all seven projections (make_fixtures.py).
inline LoraSettings fixture_lora() {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.dropout = 0;
  lora.targets = {Projection::Q,    Projection::K,  Projection::V,   Projection::O,
                  Projection::Gate, Projection::Up, Projection::Down};
  return lora;
}

// max |a − b| / max |b|: the max-norm relative error of a whole tensor. Per-element relative
// error is meaningless for entries near zero, so the error is measured against the tensor's
// scale.
inline double max_norm_relative_error(const std::vector<float>& actual,
                                      const std::vector<float>& expected) {
  if (actual.size() != expected.size()) return INFINITY;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(actual[i]) - expected[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(expected[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

inline double max_abs_error(const std::vector<float>& actual, const std::vector<float>& expected) {
  if (actual.size() != expected.size()) return INFINITY;
  double diff = 0;
  for (size_t i = 0; i < actual.size(); ++i)
    diff = std::max(diff, std::fabs(static_cast<double>(actual[i]) - expected[i]));
  return diff;
}

inline std::vector<float> download(Backend& backend, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  backend.download(host.data(), t);
  return host;
}

// The tiny fixture model's base weights (HF dir written by make_fixtures.py).
inline const LoadedModel& tiny_model() {
  static const LoadedModel loaded = load_model(golden("tiny"));
  return loaded;
}

inline std::vector<TokenRow> fixture_batch(const std::string& file) {
  return read_token_rows_jsonl(golden(file), tiny_model().config.vocab_size);
}

// Rows padded as the fixtures (and the engine's collator) pad them: to a multiple of 8 with
// pad id 0 and label −100.
inline std::vector<TokenRow> padded(std::vector<TokenRow> rows) {
  size_t longest = 0;
  for (const TokenRow& r : rows) longest = std::max(longest, r.input_ids.size());
  const size_t length = (longest + 7) / 8 * 8;
  for (TokenRow& r : rows) {
    r.input_ids.resize(length, 0);
    r.labels.resize(length, -100);
  }
  return rows;
}

}  // namespace smol::test
