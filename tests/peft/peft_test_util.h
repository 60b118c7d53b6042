// Shared helpers for peft_tests: fixture paths, scratch directories, the tiny Llama with an
// adapter applied, and error norms.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "io/model_loader.h"
#include "io/peft_adapter.h"
#include "io/safetensors_io.h"
#include "kernels/cpu/cpu_backend.h"
#include "model/llama_model.h"

namespace smol::test {

inline std::string peft_golden(const std::string& name) {
  return std::string(SMOL_SOURCE_DIR) + "/tests/golden/peft/" + name;
}
inline std::string tiny_base_dir() {
  return std::string(SMOL_SOURCE_DIR) + "/tests/golden/model/tiny";
}
inline std::string real_gguf_path() {
  return std::string(SMOL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// A fresh, empty scratch directory per test name (removed first if a previous run left it).
inline std::filesystem::path scratch_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("smol_peft_" + std::to_string(::getuid()) + "_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string read_file_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_file_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// Logits [T, vocab] of one row through a model built from `weights` (+ the adapter, if any).
inline std::vector<float> logits_with_adapter(const LoadedModel& base, const PeftAdapter* adapter,
                                              const std::vector<int32_t>& ids) {
  auto backend = make_cpu_backend();
  std::optional<LoraSettings> lora;
  if (adapter != nullptr) {
    LoraSettings s;
    s.r = adapter->config.r;
    s.alpha = adapter->config.lora_alpha;
    s.use_rslora = adapter->config.use_rslora;
    s.targets.clear();
    for (const std::string& m : adapter->config.target_modules)
      s.targets.push_back(parse_projection(m));
    lora = s;
  }
  LlamaModel model(*backend, base.config, lora ? TrainMode::Lora : TrainMode::Frozen, lora);
  model.load_weights(base.weights);
  if (adapter != nullptr)
    for (const auto& [name, t] : adapter->tensors) model.write_tensor(name, t);
  std::vector<float> logits;
  model.forward_logits({TokenRow{ids, {}}}, &logits);
  return logits;
}

}  // namespace smol::test
