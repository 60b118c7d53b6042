// The real SmolLM2-135M-Instruct Q4_1 GGUF (scripts/fetch-model.sh): config equals
// docs/formats.md §1, the parameter count, stored dtypes (§3 "Quant types"), the tokenizer
// metadata, and a golden comparison with transformers' own GGUF loading
// (tests/golden/weights/make_real_gguf_fixture.py). Skips loudly when the model is absent.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "common/error.h"
#include "io/model_loader.h"
#include "io/safetensors_io.h"

namespace smol {
namespace {

const std::string kModelPath =
    std::string(SMOL_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

class RealModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kModelPath)) return;
    const auto start = std::chrono::steady_clock::now();
    model_ = new LoadedModel(load_model(kModelPath));
    load_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr)
      GTEST_SKIP() << "\n\n*** SKIPPED: real model not found at " << kModelPath
                   << "\n*** run scripts/fetch-model.sh to enable the real-model weight tests\n";
  }
  static LoadedModel* model_;
  static double load_seconds_;
};
LoadedModel* RealModel::model_ = nullptr;
double RealModel::load_seconds_ = 0;

TEST_F(RealModel, ConfigMatchesFormatsSection1) {
  const LlamaConfig& c = model_->config;
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);  // stored as f32, read back as its shortest decimal
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);  // Instruct: <|im_start|>
  EXPECT_EQ(c.eos_token_id, 2);  // <|im_end|>
  EXPECT_EQ(c.pad_token_id, 2);
  EXPECT_EQ(model_->format, "gguf");
  EXPECT_EQ(model_->num_parameters(), 134515008);
  EXPECT_EQ(c.num_parameters(), 134515008);
  std::printf("[ info     ] load_model(%s): %.3f s\n", kModelPath.c_str(), load_seconds_);
}

TEST_F(RealModel, StoredDtypes) {
  EXPECT_EQ(model_->weights.size(), 272u);
  EXPECT_EQ(model_->weights.count("lm_head.weight"), 0u);
  for (const auto& [name, t] : model_->weights) {
    if (name == "model.embed_tokens.weight")
      EXPECT_EQ(t.stored_dtype, "Q8_0");
    else if (t.shape.rank == 1)
      EXPECT_EQ(t.stored_dtype, "F32") << name;
    else
      EXPECT_EQ(t.stored_dtype, "Q4_1") << name;
  }
}

TEST_F(RealModel, TokenizerMetadata) {
  ASSERT_TRUE(model_->bpe.has_value());
  const BpeSpec& b = *model_->bpe;
  EXPECT_EQ(b.tokens.size(), 49152u);
  EXPECT_EQ(b.merges.size(), 48900u);
  EXPECT_EQ(b.pre_tokenizer, "smollm");
  ASSERT_EQ(b.added_tokens.size(), 17u);  // ids 0..16, all control
  for (int i = 0; i < 17; ++i) {
    EXPECT_EQ(b.added_tokens[i].id, i);
    EXPECT_TRUE(b.added_tokens[i].special);
  }
  EXPECT_EQ(b.tokens[0], "<|endoftext|>");
  EXPECT_EQ(b.tokens[1], "<|im_start|>");
  EXPECT_EQ(b.tokens[16], "<empty_output>");
  EXPECT_EQ(b.bos_id, 1);
  EXPECT_EQ(b.eos_id, 2);
  EXPECT_NE(model_->chat_template.find("<|im_start|>"), std::string::npos);
}

// transformers dequantises with gguf-py in fp32 and un-permutes q/k the same way; both sides
// are exact dequantisations, so rows must agree to fp32 rounding of the row sums (the sums
// are accumulated in double on both sides and stored as fp32: relative 1e-6 covers the final
// fp32 rounding, 2^-24 ≈ 6e-8, with margin) and the raw rows bit for bit.
TEST_F(RealModel, MatchesTransformersGgufLoading) {
  const std::string fixture =
      std::string(SMOL_SOURCE_DIR) + "/tests/golden/weights/real_gguf_fixture.safetensors";
  const SafetensorsFile golden = SafetensorsFile::open(fixture);
  int tensors = 0;
  double worst_sum_rel = 0, worst_row_abs = 0;
  for (const SafetensorsEntry& e : golden.entries()) {
    const std::string suffix = ".row_sums";
    if (e.name.size() <= suffix.size() ||
        e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string name = e.name.substr(0, e.name.size() - suffix.size());
    SCOPED_TRACE(name);
    ASSERT_EQ(model_->weights.count(name), 1u);
    const HostTensor& w = model_->weights.at(name);
    const int64_t cols = w.shape.cols();
    const std::vector<float> sums = golden.read_f32(e.name).data;
    for (size_t r = 0; r < sums.size(); ++r) {
      double sum = 0, abs_sum = 0;
      for (int64_t c = 0; c < cols; ++c) {
        sum += w.data[r * cols + c];
        abs_sum += std::fabs(w.data[r * cols + c]);
      }
      const double rel = std::fabs(sum - sums[r]) / std::max(abs_sum, 1e-30);
      worst_sum_rel = std::max(worst_sum_rel, rel);
      EXPECT_LE(rel, 1e-6) << "row " << r << ": " << sum << " vs transformers " << sums[r];
    }
    const std::vector<int32_t> index = golden.read_i32(name + ".row_index");
    const std::vector<float> rows = golden.read_f32(name + ".rows").data;
    ASSERT_EQ(rows.size(), index.size() * cols);
    for (size_t k = 0; k < index.size(); ++k)
      for (int64_t c = 0; c < cols; ++c) {
        const double diff = std::fabs(w.data[index[k] * cols + c] - rows[k * cols + c]);
        worst_row_abs = std::max(worst_row_abs, diff);
        ASSERT_LE(diff, 1e-6 * std::fabs(rows[k * cols + c])) << "row " << index[k] << " col " << c;
      }
    ++tensors;
  }
  EXPECT_EQ(tensors, 10);  // 2 layers × q/k/v/o, embed_tokens, norm
  std::printf(
      "[ info     ] vs transformers: worst row-sum rel error %.3g, worst element abs "
      "error %.3g\n",
      worst_sum_rel, worst_row_abs);
}

}  // namespace
}  // namespace smol
