// KV-cache decoding against full recomputation, and the cache's bookkeeping and refusals.
#include <gtest/gtest.h>

#include "model_test_util.h"

namespace smol::test {
namespace {

std::vector<float> last_row_logits(LlamaModel& model, const std::vector<int32_t>& ids) {
  std::vector<float> logits;
  model.forward_logits({TokenRow{ids, {}}}, &logits);
  const int64_t V = model.config().vocab_size;
  return std::vector<float>(logits.end() - V, logits.end());
}

// Decoding token by token (after a packed prefill of two slots of different lengths) gives the
// logits a full forward over the whole sequence gives. fp32, different summation orders over
// the same 2 layers: ~1e-6; bound 1e-4.
TEST(KvCache, DecodeEqualsFullRecompute) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  std::vector<std::vector<int32_t>> seqs{{5, 17, 42, 99, 3}, {250, 7, 7}};
  model->reset_cache(3, 32);
  std::vector<float> logits = model->decode({2, 0}, seqs);  // slots 2 and 0, packed prefill
  const int64_t V = model->config().vocab_size;
  double worst = 0;
  for (int step = 0; step < 6; ++step) {
    for (size_t i = 0; i < seqs.size(); ++i) {
      const std::vector<float> got(logits.begin() + i * V, logits.begin() + (i + 1) * V);
      const double err = max_abs_diff(got, last_row_logits(*model, seqs[i]));
      EXPECT_LE(err, 1e-4) << "sequence " << i << " step " << step;
      worst = std::max(worst, err);
    }
    for (size_t i = 0; i < seqs.size(); ++i) seqs[i].push_back((step * 31 + 11 * i) % V);
    logits = model->decode({2, 0}, {{seqs[0].back()}, {seqs[1].back()}});
  }
  EXPECT_EQ(model->cache_length(2), 11);
  EXPECT_EQ(model->cache_length(0), 9);
  EXPECT_EQ(model->cache_length(1), 0);
  std::printf("[kv cache] decode vs recompute max |err| = %.3g\n", worst);
}

TEST(KvCache, TruncateRestartsASlot) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  model->reset_cache(1, 16);
  model->decode({0}, {{1, 2, 3, 4}});
  model->truncate_cache(0, 0);
  const std::vector<float> fresh = model->decode({0}, {{9, 8}});
  EXPECT_LE(max_abs_diff(fresh, last_row_logits(*model, {9, 8})), 1e-4);
}

TEST(KvCache, RefusesBadRequests) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  EXPECT_THROW(model->decode({0}, {{1}}), Error);  // no cache yet
  model->reset_cache(2, 4);
  EXPECT_THROW(model->decode({2}, {{1}}), Error);              // slot out of range
  EXPECT_THROW(model->decode({0}, {{1, 2, 3, 4, 5}}), Error);  // exceeds max_len
  EXPECT_THROW(model->decode({0, 0}, {{1}, {2}}), Error);      // slot twice
  EXPECT_THROW(model->decode({0}, {{}}), Error);               // nothing to decode
  EXPECT_THROW(model->decode({0}, {{300}}), Error);            // id outside the vocabulary
  EXPECT_THROW(model->decode({0}, {{1}, {2}}), Error);         // lists ≠ slots
}

}  // namespace
}  // namespace smol::test
