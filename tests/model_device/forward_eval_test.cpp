// LlamaModel::forward_eval against forward_logits on the tiny golden Llama, on the cpu backend
// and on the device under test: the per-position argmax must be the argmax of the host logits,
// the loss the same sum, and the per-row split must add up. The batch is longer than one
// LM-head chunk (256 rows) on cpu, so chunking is exercised, and mixes supervised, partly
// supervised and label-less rows.
#include <gtest/gtest.h>

#include <cmath>

#include "device_test_util.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

std::vector<TokenRow> eval_rows(int64_t vocab, int extra_rows) {
  std::vector<TokenRow> rows = golden_train_rows();
  auto make_row = [&](int n, int salt, int supervised_from) {
    TokenRow r;
    for (int t = 0; t < n; ++t) {
      r.input_ids.push_back(static_cast<int32_t>((t * 37 + salt * 11 + 5) % vocab));
      if (supervised_from >= 0)
        r.labels.push_back(t >= supervised_from ? r.input_ids.back() : -100);
    }
    return r;
  };
  for (int i = 0; i < extra_rows; ++i) {
    const int kind = i % 3;  // supervised after a prompt, no labels, fully supervised
    rows.push_back(make_row(30, i, kind == 0 ? 12 : kind == 1 ? -1 : 0));
  }
  return rows;
}

// −log softmax(logits)[target] in double from the host logits of one position.
double host_cross_entropy(const float* logits, int64_t V, int32_t target) {
  double max = logits[0];
  for (int64_t i = 1; i < V; ++i) max = std::max(max, static_cast<double>(logits[i]));
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) sum += std::exp(logits[i] - max);
  return std::log(sum) + max - logits[target];
}

// extra_rows = 9 spans two LM-head chunks (294 tokens); cuda-emu's attention is slow enough
// (seconds per 100 tokens) that the device runs 3 (114 tokens, one chunk).
void check_forward_eval(Backend& backend, int extra_rows) {
  auto model = load_tiny(backend, TrainMode::Frozen);
  const int64_t V = model->config().vocab_size;
  const std::vector<TokenRow> rows = eval_rows(V, extra_rows);
  std::vector<float> logits;
  const ForwardResult reference = model->forward_logits(rows, &logits);
  const EvalForward eval = model->forward_eval(rows);

  const int64_t T = static_cast<int64_t>(logits.size()) / V;
  if (extra_rows >= 9) ASSERT_GT(T, 256) << "the batch must span more than one LM-head chunk";
  ASSERT_EQ(static_cast<int64_t>(eval.argmax.size()), T);
  for (int64_t t = 0; t < T; ++t) {
    const float* row = logits.data() + t * V;
    const int32_t want = static_cast<int32_t>(std::max_element(row, row + V) - row);
    ASSERT_EQ(eval.argmax[t], want) << "position " << t;
  }
  // The same per-token losses from the same kernels, summed in the same (token) order.
  EXPECT_EQ(eval.supervised, reference.supervised);
  EXPECT_EQ(eval.loss_sum, reference.loss_sum);

  ASSERT_EQ(eval.row_loss_sum.size(), rows.size());
  ASSERT_EQ(eval.row_supervised.size(), rows.size());
  int64_t at = 0, supervised = 0;
  double row_sum = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const TokenRow& row = rows[r];
    const int64_t n = static_cast<int64_t>(row.input_ids.size());
    int64_t count = 0;
    double want = 0;
    for (int64_t t = 0; t + 1 < n && !row.labels.empty(); ++t) {
      if (row.labels[t + 1] == -100) continue;
      ++count;
      want += host_cross_entropy(logits.data() + (at + t) * V, V, row.labels[t + 1]);
    }
    EXPECT_EQ(eval.row_supervised[r], count) << "row " << r;
    // fp32 log-sum-exp over V = 300 logits of magnitude ≲ 10 against a double recompute from
    // the same logits: ~1e-6 relative per token; 1e-5 relative (+1e-6 absolute) of the sum.
    EXPECT_NEAR(eval.row_loss_sum[r], want, 1e-5 * std::fabs(want) + 1e-6) << "row " << r;
    at += n;
    supervised += count;
    row_sum += eval.row_loss_sum[r];
  }
  EXPECT_EQ(supervised, eval.supervised);
  // Same terms, grouped by row: double rounding only.
  EXPECT_NEAR(row_sum, eval.loss_sum, 1e-12 * std::fabs(eval.loss_sum));
  EXPECT_EQ(eval.row_supervised[rows.size() - 2], 0) << "a label-less row";
  EXPECT_EQ(eval.row_loss_sum[rows.size() - 2], 0.0);
}

TEST(ForwardEval, MatchesForwardLogitsOnCpu) {
  auto cpu = make_cpu_backend();
  check_forward_eval(*cpu, 9);
}

TEST(ForwardEval, MatchesForwardLogitsOnDevice) {
  auto device = device_backend();
  if (!device) GTEST_SKIP() << "device " << device_under_test() << " is not available here";
  check_forward_eval(*device, 3);
}

TEST(ForwardEval, EmptyBatchAndBadIds) {
  auto cpu = make_cpu_backend();
  auto model = load_tiny(*cpu, TrainMode::Frozen);
  const EvalForward empty = model->forward_eval({});
  EXPECT_TRUE(empty.argmax.empty());
  EXPECT_EQ(empty.supervised, 0);
  EXPECT_THROW(model->forward_eval({TokenRow{{1, 100000}, {}}}), Error);
}

}  // namespace
}  // namespace smol::test
