// cuda vs cpu: the two matmul forms of docs/design.md §2.9.
//  - matmul with an addend, c = alpha·op(a)·op(b) + beta·addend (cuBLASLt's C ≠ D): against cpu,
//    against the unfused pair (matmul, then add) on the same device, the addend left untouched,
//    and the contract's refusals;
//  - matmul_batched: gate and up from one input (shared a, evenly spaced weights and outputs,
//    one strided-batched GEMM on cuda), the full fine-tuning weight gradients (shared b), an F32
//    strided operand cast over its span, and a list that is not evenly spaced (one GEMM each).
#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

TEST_F(CudaOpsTest, MatmulWithAnAddendMatchesCpuAndTheUnfusedPair) {
  const int64_t T = 37, N = 24, K = 53;  // resid [T, N] + x [T, K]·W[N, K]ᵀ: o_proj's shape
  const auto x = rounded_bf16(random_vector(T * K, 50));
  const auto w = rounded_bf16(random_vector(N * K, 51, -0.2f, 0.2f));
  const auto h = rounded_bf16(random_vector(T * N, 52, -4.0f, 4.0f));  // the residual stream
  Owned xd = make_tensor(*dev_, x, {T, K}, DType::BF16);
  Owned wd = make_tensor(*dev_, w, {N, K}, DType::BF16);
  Owned hd = make_tensor(*dev_, h, {T, N}, DType::BF16);
  Owned fused = make_tensor(*dev_, std::vector<float>(T * N, 0.0f), {T, N}, DType::BF16);
  dev_->matmul(fused.tensor, xd.tensor, wd.tensor, Transpose::No, Transpose::Yes, 1.0f, 1.0f,
               hd.tensor);
  // The unfused pair: the projection rounded to bf16 on its own, then the add.
  Owned unfused = make_tensor(*dev_, std::vector<float>(T * N, 0.0f), {T, N}, DType::BF16);
  dev_->matmul(unfused.tensor, xd.tensor, wd.tensor, Transpose::No, Transpose::Yes);
  dev_->axpy(unfused.tensor, hd.tensor, 1.0f);
  Owned xc = make_tensor(*cpu_, x, {T, K}, DType::F32);
  Owned wc = make_tensor(*cpu_, w, {N, K}, DType::F32);
  Owned hc = make_tensor(*cpu_, h, {T, N}, DType::F32);
  Owned yc = make_tensor(*cpu_, std::vector<float>(T * N, 0.0f), {T, N}, DType::F32);
  cpu_->matmul(yc.tensor, xc.tensor, wc.tensor, Transpose::No, Transpose::Yes, 1.0f, 1.0f,
               hc.tensor);
  // Fused: one rounding of h + P to bf16 (2^-9 relative, allowed 2^-8) after fp32 sums that
  // differ from cpu's by ≤ K·2^-24·Σ|x·w| ≤ K²·0.2·2^-24. The unfused pair rounds P first
  // and then the sum: two roundings, |P| ≤ 0.2·K ≈ 11 next to |h| ≤ 4, so its distance from the
  // fused result is ≤ 2^-9·|P| + 2^-9·|sum|: allow 2^-8·(|sum| + 11).
  const double fp32 = static_cast<double>(K) * K * 0.2 * 0x1p-24;
  const std::vector<float> got = read(*dev_, fused.tensor), want = read(*cpu_, yc.tensor);
  expect_close(got, want, kBf16Rounding, fp32, "matmul + addend (bf16) vs cpu");
  expect_close(read(*dev_, unfused.tensor), got, kBf16Rounding, kBf16Rounding * 11.0,
               "unfused matmul, add vs fused");
  EXPECT_EQ(read(*dev_, hd.tensor), h) << "the addend must be left untouched";

  // F32 output with alpha and beta: beta scales the addend, not c's old contents.
  Owned hf = make_tensor(*dev_, h, {T, N}, DType::F32);
  Owned cf = make_tensor(*dev_, std::vector<float>(T * N, 1e6f), {T, N}, DType::F32);
  dev_->matmul(cf.tensor, xd.tensor, wd.tensor, Transpose::No, Transpose::Yes, 0.5f, -2.0f,
               hf.tensor);
  Owned cc = make_tensor(*cpu_, std::vector<float>(T * N, 1e6f), {T, N}, DType::F32);
  cpu_->matmul(cc.tensor, xc.tensor, wc.tensor, Transpose::No, Transpose::Yes, 0.5f, -2.0f,
               hc.tensor);
  expect_close(read(*dev_, cf.tensor), read(*cpu_, cc.tensor), 0, fp32 + 8 * 0x1p-24,
               "matmul 0.5·P − 2·addend (F32)");
}

TEST_F(CudaOpsTest, MatmulWithAnAddendRefusesOverlapsAndDtypeMismatches) {
  const int64_t T = 8, N = 16, K = 4;
  Owned x = make_tensor(*dev_, std::vector<float>(T * K, 1.0f), {T, K}, DType::BF16);
  Owned w = make_tensor(*dev_, std::vector<float>(N * K, 1.0f), {N, K}, DType::BF16);
  Owned big = make_tensor(*dev_, std::vector<float>(2 * T * N, 0.0f), {2 * T, N}, DType::BF16);
  const Tensor c = big.tensor.rows(0, T), shifted = big.tensor.rows(1, T);
  EXPECT_THROW(dev_->matmul(c, x.tensor, w.tensor, Transpose::No, Transpose::Yes, 1, 1, shifted),
               Error);
  Owned f32 = make_tensor(*dev_, std::vector<float>(T * N, 0.0f), {T, N}, DType::F32);
  EXPECT_THROW(dev_->matmul(c, x.tensor, w.tensor, Transpose::No, Transpose::Yes, 1, 1, f32.tensor),
               Error);
  Owned small = make_tensor(*dev_, std::vector<float>(T * (N - 1), 0.0f), {T, N - 1}, DType::BF16);
  EXPECT_THROW(
      dev_->matmul(c, x.tensor, w.tensor, Transpose::No, Transpose::Yes, 1, 1, small.tensor),
      Error);
  // The addend may be c itself: then it is the plain matmul with beta.
  dev_->matmul(c, x.tensor, w.tensor, Transpose::No, Transpose::Yes, 1, 1, c);
  EXPECT_EQ(read(*dev_, c), std::vector<float>(T * N, static_cast<float>(K)));
}

// Back-to-back views of one buffer: `count` tensors of `shape`, `gap` elements apart.
std::vector<Tensor> spaced_views(const Buffer& buffer, DType dtype, Shape shape, int count,
                                 int64_t gap) {
  std::vector<Tensor> views;
  for (int i = 0; i < count; ++i)
    views.push_back(buffer.view(dtype, shape, (i * (shape.numel() + gap)) * dtype_size(dtype)));
  return views;
}

TEST_F(CudaOpsTest, MatmulBatchedMatchesCpuForGateUpAndTheirGradients) {
  const int64_t T = 29, F = 40, C = 24;
  const auto x = rounded_bf16(random_vector(T * C, 60));
  const auto w = rounded_bf16(random_vector(2 * F * C, 61));  // W_gate then W_up, [F, C] each
  const auto dy = rounded_bf16(random_vector(2 * T * F, 62));
  for (const bool packed : {true, false}) {
    // packed: every list evenly spaced at a positive stride (one strided-batched GEMM on cuda;
    // the outputs 16 elements apart, so their stride is not their size); else the outputs in
    // reverse memory order (no positive stride: one GEMM each).
    const int64_t out_gap = 16;
    const DType act = DType::BF16;
    Owned xd = make_tensor(*dev_, x, {T, C}, act);
    Owned wd = make_tensor(*dev_, w, {2 * F, C}, act);
    Owned wf = make_tensor(*dev_, w, {2 * F, C}, DType::F32);  // a full-FT fp32 master
    Owned dyd = make_tensor(*dev_, dy, {2 * T, F}, act);
    Buffer ys = dev_->allocate((2 * T * F + out_gap) * 2);
    Buffer ys32 = dev_->allocate((2 * T * F + out_gap) * 2);
    Buffer dws = dev_->allocate((2 * F * C + out_gap) * 4);
    const std::vector<Tensor> wv = {wd.tensor.rows(0, F), wd.tensor.rows(F, F)};
    const std::vector<Tensor> wfv = {wf.tensor.rows(0, F), wf.tensor.rows(F, F)};
    const std::vector<Tensor> dyv = {dyd.tensor.rows(0, T), dyd.tensor.rows(T, T)};
    auto yv = spaced_views(ys, act, Shape{T, F}, 2, out_gap);
    auto y32v = spaced_views(ys32, act, Shape{T, F}, 2, out_gap);
    auto dwv = spaced_views(dws, DType::F32, Shape{F, C}, 2, out_gap);
    if (!packed) {
      std::swap(yv[0], yv[1]);
      std::swap(y32v[0], y32v[1]);
      std::swap(dwv[0], dwv[1]);
    }
    for (int i = 0; i < 2; ++i) dev_->upload(dwv[i], w.data() + i * F * C);  // dW += from w
    const Tensor x_shared[1] = {xd.tensor};
    dev_->matmul_batched(yv, x_shared, wv, Transpose::No, Transpose::Yes);
    dev_->matmul_batched(y32v, x_shared, wfv, Transpose::No, Transpose::Yes);
    dev_->matmul_batched(dwv, dyv, x_shared, Transpose::Yes, Transpose::No, 1.0f, 1.0f);

    Owned xc = make_tensor(*cpu_, x, {T, C}, DType::F32);
    Owned wc = make_tensor(*cpu_, w, {2 * F, C}, DType::F32);
    Owned dyc = make_tensor(*cpu_, dy, {2 * T, F}, DType::F32);
    Owned dwc = make_tensor(*cpu_, w, {2 * F, C}, DType::F32);
    const std::string tag = packed ? " (strided batch)" : " (one GEMM each)";
    for (int i = 0; i < 2; ++i) {
      Owned yc = make_tensor(*cpu_, std::vector<float>(T * F, 0.0f), {T, F}, DType::F32);
      cpu_->matmul(yc.tensor, xc.tensor, wc.tensor.rows(i * F, F), Transpose::No, Transpose::Yes);
      cpu_->matmul(dwc.tensor.rows(i * F, F), dyc.tensor.rows(i * T, T), xc.tensor, Transpose::Yes,
                   Transpose::No, 1.0f, 1.0f);
      // bf16-exact inputs, fp32 sums of K ≤ 29 products |·| ≤ 1 in another order: ≤ K²·2^-24,
      // then one bf16 rounding of y; the F32 master's cast to bf16 is exact here (w is
      // bf16-representable), so the cast span must reproduce it exactly.
      const double abs = static_cast<double>(T) * T * 0x1p-24;
      const std::vector<float> want = read(*cpu_, yc.tensor);
      expect_close(read(*dev_, yv[i]), want, kBf16Rounding, abs,
                   "gate/up " + std::to_string(i) + tag);
      expect_close(read(*dev_, y32v[i]), want, kBf16Rounding, abs,
                   "gate/up from F32 W " + std::to_string(i) + tag);
      expect_close(read(*dev_, dwv[i]), read(*cpu_, dwc.tensor.rows(i * F, F)), 0, abs,
                   "dW += dyᵀ·x " + std::to_string(i) + tag);
    }
  }
}

TEST_F(CudaOpsTest, MatmulBatchedRefusesMismatchedAndOverlappingOutputs) {
  const int64_t T = 4, F = 8, C = 8;
  Owned x = make_tensor(*dev_, std::vector<float>(T * C, 1.0f), {T, C}, DType::BF16);
  Owned w = make_tensor(*dev_, std::vector<float>(2 * F * C, 1.0f), {2 * F, C}, DType::BF16);
  Owned y = make_tensor(*dev_, std::vector<float>(2 * T * F, 0.0f), {2 * T, F}, DType::BF16);
  const Tensor xs[1] = {x.tensor};
  const Tensor ws[2] = {w.tensor.rows(0, F), w.tensor.rows(F, F)};
  const Tensor overlapping[2] = {y.tensor.rows(0, T), y.tensor.rows(1, T)};
  EXPECT_THROW(dev_->matmul_batched(overlapping, xs, ws, Transpose::No, Transpose::Yes), Error);
  const Tensor three[3] = {y.tensor.rows(0, 2), y.tensor.rows(2, 2), y.tensor.rows(4, 2)};
  EXPECT_THROW(dev_->matmul_batched(three, xs, ws, Transpose::No, Transpose::Yes), Error);
  const Tensor mixed[2] = {w.tensor.rows(0, F), w.tensor.rows(F, F - 1)};
  const Tensor ys[2] = {y.tensor.rows(0, T), y.tensor.rows(T, T)};
  EXPECT_THROW(dev_->matmul_batched(ys, xs, mixed, Transpose::No, Transpose::Yes), Error);
}

}  // namespace
}  // namespace smol::test
