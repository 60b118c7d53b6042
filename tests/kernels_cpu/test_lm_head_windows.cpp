// The composite LM head with host targets (kernels/lm_head_cross_entropy.cpp): chunks start at a
// supervised row and end at the last supervised row of their window, so unsupervised runs cost no
// matmul. The result must equal the plain fixed-chunk pass (no host targets), which computes every
// row, and the skipped rows must read exactly zero.
#include <cstdint>
#include <string>
#include <vector>

#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

// Counts matmul calls (the LM head issues three per chunk in the backward).
class MatmulCounter final : public OpHook {
 public:
  void before_op(Backend&, const char* op, int) override { matmuls += std::string(op) == "matmul"; }
  void after_op(Backend&, const char*, int) override {}
  int matmuls = 0;
};

struct LmHeadRun {
  std::vector<float> losses, dhidden, dweight;
  int matmuls = 0;
};

LmHeadRun run_lm_head(const std::vector<int32_t>& targets, bool with_host_targets) {
  const int64_t T = static_cast<int64_t>(targets.size()), C = 24, V = 50;
  Device dev;
  Tensor hidden = dev.f32({T, C}, random_floats(static_cast<size_t>(T * C), 7, -0.5f, 0.5f));
  Tensor weight = dev.f32({V, C}, random_floats(static_cast<size_t>(V * C), 8, -0.5f, 0.5f));
  Tensor target_tensor = dev.i32({T}, targets);
  LmHeadOutputs out;
  out.losses = dev.f32({T}, std::vector<float>(static_cast<size_t>(T), 7.0f));  // → 0 if ignored
  out.dhidden = dev.f32({T, C}, std::vector<float>(static_cast<size_t>(T * C), 3.0f));
  out.dweight = dev.zeros({V, C});
  Tensor scratch = dev.zeros({Backend::kLmHeadChunkRows, V});
  MatmulCounter counter;
  dev->set_op_hook(&counter);
  dev->lm_head_cross_entropy(
      out, hidden, weight, target_tensor, scratch, 1.0f / T,
      with_host_targets ? std::span<const int32_t>(targets) : std::span<const int32_t>());
  dev->set_op_hook(nullptr);
  return {dev.get(out.losses), dev.get(out.dhidden), dev.get(out.dweight), counter.matmuls};
}

TEST(CpuLmHeadWindows, SkipsUnsupervisedRunsAndMatchesThePlainPass) {
  // 700 rows: a masked prompt [0, 100), supervised [100, 300) with every 9th row masked,
  // masked [300, 450), supervised [450, 700).
  std::vector<int32_t> targets(700, -100);
  for (int t = 100; t < 300; ++t) targets[t] = t % 9 == 0 ? -100 : (t * 13) % 50;
  for (int t = 450; t < 700; ++t) targets[t] = (t * 7) % 50;
  const LmHeadRun plain = run_lm_head(targets, false);
  const LmHeadRun windows = run_lm_head(targets, true);
  // Plain: ⌈700/256⌉ = 3 chunks. Windows: [100, 299] and [450, 699], 2 chunks (3 matmuls each).
  EXPECT_EQ(plain.matmuls, 9);
  EXPECT_EQ(windows.matmuls, 6);
  // Each row's logits, loss and dhidden are the same dot products in the same order in both
  // passes; dweight sums the rows in other groupings: fp32 summation order, ≤ 1e-6 absolute here
  // (|dlogits| ≤ 1/T, |h| ≤ ½, 600 rows: 600·2^-24·(1/700)·½ ≈ 2.6e-8, with margin).
  expect_near_all(windows.losses, to_double(plain.losses), 0, 1e-6, "losses");
  expect_near_all(windows.dhidden, to_double(plain.dhidden), 1e-9, 1e-6, "dhidden");
  expect_near_all(windows.dweight, to_double(plain.dweight), 1e-6, 1e-5, "dweight");
  const int64_t C = 24;
  for (int t : {0, 99, 300, 449}) {
    EXPECT_EQ(windows.losses[t], 0.0f) << "row " << t;
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(windows.dhidden[t * C + c], 0.0f) << "row " << t;
  }
}

TEST(CpuLmHeadWindows, NoSupervisedRowRunsNoMatmul) {
  const LmHeadRun run = run_lm_head(std::vector<int32_t>(300, -100), true);
  EXPECT_EQ(run.matmuls, 0);
  for (float loss : run.losses) ASSERT_EQ(loss, 0.0f);
  for (float d : run.dhidden) ASSERT_EQ(d, 0.0f);
}

}  // namespace
}  // namespace smol::test
