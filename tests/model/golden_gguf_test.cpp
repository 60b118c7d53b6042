// The real SmolLM2-135M-Instruct Q4_1 GGUF against transformers' own GGUF loading in fp32
// (tests/golden/model/gguf_golden.json): the argmax at every position of three prompts, the
// top-8 logits there, the full logits of one position, and 16 greedy tokens per prompt.
// Skips loudly when the model file is absent (scripts/fetch-model.sh fetches it).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "model/generation.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

class GoldenGguf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::ifstream(real_model_path()).good()) return;
    backend_ = make_cpu_backend().release();
    const LoadedModel loaded = load_model(real_model_path());
    model_ = new LlamaModel(*backend_, loaded.config, TrainMode::Frozen);
    model_->load_weights(loaded.weights);
    std::ifstream in(golden_dir() + "/gguf_golden.json");
    golden_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete backend_;
    delete golden_;
  }
  void SetUp() override {
    if (!model_)
      GTEST_SKIP() << "\n*** SKIPPED: " << real_model_path()
                   << " is absent; run scripts/fetch-model.sh to test the real model ***\n";
  }
  static Backend* backend_;
  static LlamaModel* model_;
  static nlohmann::json* golden_;
};
Backend* GoldenGguf::backend_ = nullptr;
LlamaModel* GoldenGguf::model_ = nullptr;
nlohmann::json* GoldenGguf::golden_ = nullptr;

TEST_F(GoldenGguf, ArgmaxAtEveryPositionAndTopLogits) {
  const int64_t V = model_->config().vocab_size;
  double worst = 0;
  size_t positions = 0;
  for (const auto& p : golden_->at("prompts")) {
    const std::vector<int32_t> ids = p.at("ids").get<std::vector<int32_t>>();
    std::vector<float> logits;
    model_->forward_logits({TokenRow{ids, {}}}, &logits);
    const auto argmax = p.at("argmax").get<std::vector<int32_t>>();
    const auto top_ids = p.at("top_ids").get<std::vector<std::vector<int32_t>>>();
    const auto top_logits = p.at("top_logits").get<std::vector<std::vector<float>>>();
    for (size_t t = 0; t < ids.size(); ++t, ++positions) {
      const float* row = logits.data() + t * V;
      EXPECT_EQ(argmax_token(row, V), argmax[t]) << p.at("text") << " position " << t;
      for (size_t k = 0; k < top_ids[t].size(); ++k)
        worst = std::max(worst, std::fabs(double(row[top_ids[t][k]]) - top_logits[t][k]));
    }
    if (p.contains("greedy") && &p == &golden_->at("prompts")[0]) {
      const SafetensorsFile last =
          SafetensorsFile::open(golden_dir() + "/gguf_last_logits.safetensors");
      const std::vector<float> mine(logits.end() - V, logits.end());
      const double err = max_abs_diff(mine, last.read_f32("last_logits").data);
      // Logits of magnitude ~20 after 30 fp32 layers with different summation orders
      // (OpenBLAS vs MKL/ATen): ~1e-4 relative is rounding; 5e-3 absolute leaves margin.
      EXPECT_LE(err, 5e-3);
      std::printf("[golden gguf] full last-position logits max |err| = %.3g\n", err);
    }
  }
  EXPECT_LE(worst, 5e-3);
  std::printf("[golden gguf] %zu positions: argmax equal; top-8 logits max |err| = %.3g\n",
              positions, worst);
}

TEST_F(GoldenGguf, GreedyContinuationsEqualTransformers) {
  std::vector<std::vector<int32_t>> prompts, expected;
  for (const auto& p : golden_->at("prompts")) {
    prompts.push_back(p.at("ids").get<std::vector<int32_t>>());
    expected.push_back(p.at("greedy").get<std::vector<int32_t>>());
  }
  GenerationOptions options;
  options.max_new_tokens = 16;  // no stop tokens: the golden ran 16 steps unconditionally
  const std::vector<GenerationResult> got = generate(*model_, prompts, options, nullptr);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(got[i].tokens, expected[i]) << golden_->at("prompts")[i].at("text");
}

}  // namespace
}  // namespace smol::test
