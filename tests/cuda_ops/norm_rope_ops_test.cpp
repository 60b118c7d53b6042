// cuda vs cpu: RMSNorm forward (plain and fused with the residual add) and backward, RoPE
// forward and backward. Widths 576 (SmolLM2's, the 16-byte vector path) and 77 (scalar tail);
// one row, and a row count that is not a multiple of the 8 rows a block handles.
#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

struct NormCase {
  int64_t rows, channels;
};

class RmsNormTest : public CudaOpsTest, public ::testing::WithParamInterface<NormCase> {};

TEST_P(RmsNormTest, ForwardFusedForwardAndBackwardMatchCpu) {
  const auto [rows, channels] = GetParam();
  const std::string shape = " [" + std::to_string(rows) + "," + std::to_string(channels) + "]";
  const float eps = 1e-5f;
  const auto a = rounded_bf16(random_vector(rows * channels, 20, -2.0f, 2.0f));
  const auto b = rounded_bf16(random_vector(rows * channels, 21));
  const auto w = random_vector(channels, 22, 0.5f, 1.5f);
  const auto dout = rounded_bf16(random_vector(rows * channels, 23));
  const auto dx0 = rounded_bf16(random_vector(rows * channels, 24));
  const auto dw0 = random_vector(channels, 25);
  const Shape s{rows, channels};
  const std::vector<float> zeros(rows * channels, 0.0f);

  // Plain forward on a.
  Owned x = make_tensor(*dev_, a, s, DType::BF16);
  Owned wd = make_tensor(*dev_, w, {channels}, DType::F32);
  Owned out = make_tensor(*dev_, zeros, s, DType::BF16);
  Owned rstd = make_tensor(*dev_, std::vector<float>(rows, 0.0f), {rows}, DType::F32);
  dev_->rmsnorm_forward(out.tensor, rstd.tensor, x.tensor, wd.tensor, eps);
  Owned xc = make_tensor(*cpu_, a, s, DType::F32);
  Owned wc = make_tensor(*cpu_, w, {channels}, DType::F32);
  Owned outc = make_tensor(*cpu_, zeros, s, DType::F32);
  Owned rstdc = make_tensor(*cpu_, std::vector<float>(rows, 0.0f), {rows}, DType::F32);
  cpu_->rmsnorm_forward(outc.tensor, rstdc.tensor, xc.tensor, wc.tensor, eps);
  // rstd: fp32 Σx² over C ≤ 576 terms (device: per-lane sums + butterfly) against the cpu's
  // double sum: relative error ≤ ~C/32·2^-24 + 2^-24 ≈ 2^-19; allow 2^-16.
  expect_close(read(*dev_, rstd.tensor), read(*cpu_, rstdc.tensor), 0x1p-16, 0,
               "rmsnorm_forward rstd" + shape);
  // out = w·x·rstd rounded once to bf16; the rstd difference above is negligible next to it.
  expect_close(read(*dev_, out.tensor), read(*cpu_, outc.tensor), kBf16Rounding, 1e-6,
               "rmsnorm_forward out" + shape);

  // Fused: sum = a + b (in place on a), out = rmsnorm(sum).
  Owned bd = make_tensor(*dev_, b, s, DType::BF16);
  dev_->add_rmsnorm_forward(x.tensor, out.tensor, rstd.tensor, x.tensor, bd.tensor, wd.tensor, eps);
  Owned bc = make_tensor(*cpu_, b, s, DType::F32);
  Owned sumc = make_tensor(*cpu_, zeros, s, DType::F32);
  cpu_->add_rmsnorm_forward(sumc.tensor, outc.tensor, rstdc.tensor, xc.tensor, bc.tensor, wc.tensor,
                            eps);
  // sum: one rounding. out: the rounded sum (2^-9 per element, and through rstd at most 2^-9
  // more) and the output rounding: three roundings' worth.
  expect_close(read(*dev_, x.tensor), read(*cpu_, sumc.tensor), kBf16Rounding, 0,
               "add_rmsnorm_forward sum" + shape);
  expect_close(read(*dev_, out.tensor), read(*cpu_, outc.tensor), 3 * kBf16Rounding, 1e-6,
               "add_rmsnorm_forward out" + shape);

  // Backward at x = a with the cpu's rstd on both sides, accumulating into dx0 and dw0.
  Owned x2 = make_tensor(*dev_, a, s, DType::BF16);
  Owned r2 = make_tensor(*dev_, read(*cpu_, rstdc.tensor), {rows}, DType::F32);
  cpu_->rmsnorm_forward(outc.tensor, rstdc.tensor, xc.tensor, wc.tensor, eps);  // rstd of a
  dev_->upload(r2.tensor, read(*cpu_, rstdc.tensor).data());
  Owned dy = make_tensor(*dev_, dout, s, DType::BF16);
  Owned dx = make_tensor(*dev_, dx0, s, DType::BF16);
  Owned dw = make_tensor(*dev_, dw0, {channels}, DType::F32);
  dev_->rmsnorm_backward(dx.tensor, dw.tensor, dy.tensor, x2.tensor, wd.tensor, r2.tensor);
  Owned dyc = make_tensor(*cpu_, dout, s, DType::F32);
  Owned dxc = make_tensor(*cpu_, dx0, s, DType::F32);
  Owned dwc = make_tensor(*cpu_, dw0, {channels}, DType::F32);
  cpu_->rmsnorm_backward(dxc.tensor, dwc.tensor, dyc.tensor, xc.tensor, wc.tensor, rstdc.tensor);
  // dx: one bf16 rounding of dx0 + r·g·w − x·coeff. The fp32 sum Σ g·w·x inside coeff (C
  // terms, |term| ≤ 2·1.5·1) may cancel; its error ≤ C·2^-24·Σ|term| feeds x·r³/C·(…): bound
  // the absolute term by 2^-14 for these magnitudes (r ≤ ~1.7, |x| ≤ 2).
  expect_close(read(*dev_, dx.tensor), read(*cpu_, dxc.tensor), kBf16Rounding, 0x1p-14,
               "rmsnorm_backward dx" + shape);
  // dweight: fp32 sums over `rows` terms of |dout·x·r| ≤ ~3.4, in a different order than the
  // cpu's double sum: ≤ rows·2^-24·Σ|term| + the final fp32 rounding.
  const double dw_abs = static_cast<double>(rows) * rows * 3.4 * 0x1p-24 + 1e-7;
  expect_close(read(*dev_, dw.tensor), read(*cpu_, dwc.tensor), 0x1p-23, dw_abs,
               "rmsnorm_backward dweight" + shape);
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormTest,
                         ::testing::Values(NormCase{1, 576}, NormCase{37, 576}, NormCase{1, 77},
                                           NormCase{19, 77}));

TEST_F(CudaOpsTest, RopeForwardAndBackwardMatchCpu) {
  for (int64_t tokens : {1, 23}) {
    const int64_t heads = 3, head_dim = 64;
    const float theta = 100000.0f;
    const Shape s{tokens, heads, head_dim};
    const auto x = rounded_bf16(random_vector(tokens * heads * head_dim, 30));
    std::vector<float> positions(tokens);
    for (int64_t t = 0; t < tokens; ++t) positions[t] = static_cast<float>((t * 37) % 2000);
    Owned xd = make_tensor(*dev_, x, s, DType::BF16);
    Owned pd = make_tensor(*dev_, positions, {tokens}, DType::I32);
    Owned xc = make_tensor(*cpu_, x, s, DType::F32);
    Owned pc = make_tensor(*cpu_, positions, {tokens}, DType::I32);
    dev_->rope_forward(xd.tensor, pd.tensor, theta);
    cpu_->rope_forward(xc.tensor, pc.tensor, theta);
    // Identical fp32 angles (inv_freq computed on the host as the cpu does); sincosf vs the
    // cpu's correctly rounded cos/sin differ by ≤ 2 ulps: ≤ 2^-22 of |x0|+|x1| ≤ 2. Then one
    // bf16 rounding of each output.
    const std::string shape = " T=" + std::to_string(tokens);
    expect_close(read(*dev_, xd.tensor), read(*cpu_, xc.tensor), kBf16Rounding, 0x1p-21,
                 "rope_forward" + shape);
    // Backward of the forward result. The device's forward rounding error (a vector of norm
    // ≤ 2^-9·|(x0', x1')| ≤ 2^-9·√2 per pair) is rotated, not scaled, so it is an absolute
    // error on each output: allow 2^-8; then one rounding of the output itself.
    dev_->rope_backward(xd.tensor, pd.tensor, theta);
    cpu_->rope_backward(xc.tensor, pc.tensor, theta);
    expect_close(read(*dev_, xd.tensor), read(*cpu_, xc.tensor), kBf16Rounding, 0x1p-8,
                 "rope_backward" + shape);
  }
}

// rope_qk (one launch over q and k, docs/design.md §2.7) rotates every pair by the same code as
// rope: its results equal rope on q then rope on k bit for bit, forward and backward.
TEST_F(CudaOpsTest, RopeQkEqualsRopeOnEachTensor) {
  const int64_t tokens = 23, q_heads = 9, k_heads = 3, head_dim = 64;
  const float theta = 100000.0f;
  const Shape qs{tokens, q_heads, head_dim}, ks{tokens, k_heads, head_dim};
  const auto q = rounded_bf16(random_vector(tokens * q_heads * head_dim, 31));
  const auto k = rounded_bf16(random_vector(tokens * k_heads * head_dim, 32));
  std::vector<float> positions(tokens);
  for (int64_t t = 0; t < tokens; ++t) positions[t] = static_cast<float>((t * 37) % 2000);
  Owned pd = make_tensor(*dev_, positions, {tokens}, DType::I32);
  Owned q_fused = make_tensor(*dev_, q, qs, DType::BF16),
        k_fused = make_tensor(*dev_, k, ks, DType::BF16);
  Owned q_each = make_tensor(*dev_, q, qs, DType::BF16),
        k_each = make_tensor(*dev_, k, ks, DType::BF16);
  for (bool backward : {false, true}) {
    if (backward) {
      dev_->rope_qk_backward(q_fused.tensor, k_fused.tensor, pd.tensor, theta);
      dev_->rope_backward(q_each.tensor, pd.tensor, theta);
      dev_->rope_backward(k_each.tensor, pd.tensor, theta);
    } else {
      dev_->rope_qk_forward(q_fused.tensor, k_fused.tensor, pd.tensor, theta);
      dev_->rope_forward(q_each.tensor, pd.tensor, theta);
      dev_->rope_forward(k_each.tensor, pd.tensor, theta);
    }
    EXPECT_EQ(read(*dev_, q_fused.tensor), read(*dev_, q_each.tensor))
        << "q, backward " << backward;
    EXPECT_EQ(read(*dev_, k_fused.tensor), read(*dev_, k_each.tensor))
        << "k, backward " << backward;
  }
}

}  // namespace
}  // namespace smol::test
