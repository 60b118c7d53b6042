// cuda vs cpu: casts, axpy, scale, dropout, swiglu forward/backward, embedding forward/backward.
// Sizes are odd (not multiples of 8 elements or of a 256-thread block) and include views that
// start off 16-byte alignment, so both the vectorised path and the scalar tail run.
#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

TEST_F(CudaOpsTest, CastRoundTripRoundsOnceToBf16) {
  for (int64_t n : {1, 7, 2053}) {
    const auto x = random_vector(n, 1, -100.0f, 100.0f);
    Owned f = make_tensor(*dev_, x, {n}, DType::F32);
    Owned h = make_tensor(*dev_, std::vector<float>(n, 0.0f), {n}, DType::BF16);
    dev_->copy(h.tensor, f.tensor);
    // One rounding to bf16 (≤ 2^-9 relative); the widening back to F32 is exact. The host's
    // round-to-nearest-even must agree bit for bit.
    const auto got = read(*dev_, h.tensor);
    expect_close(got, rounded_bf16(x), 0, 0, "cast F32->BF16 n=" + std::to_string(n));
  }
}

TEST_F(CudaOpsTest, AxpyAndScaleMatchCpu) {
  const int64_t n = 1031;
  const auto y0 = rounded_bf16(random_vector(n, 2));
  const auto x = rounded_bf16(random_vector(n, 3));
  for (DType ydt : {DType::BF16, DType::F32}) {
    Owned y = make_tensor(*dev_, y0, {n}, ydt);
    Owned xd = make_tensor(*dev_, x, {n}, DType::BF16);
    dev_->axpy(y.tensor, xd.tensor, -0.37f);
    dev_->scale(y.tensor, 1.5f);
    Owned yc = make_tensor(*cpu_, y0, {n}, DType::F32);
    Owned xc = make_tensor(*cpu_, x, {n}, DType::F32);
    cpu_->axpy(yc.tensor, xc.tensor, -0.37f);
    cpu_->scale(yc.tensor, 1.5f);
    // bf16 y: two roundings (after axpy, after scale). F32 y: the same fp32 operations, up to
    // nvcc contracting y + alpha·x into one FMA (1 ulp), then the scale (1 more): 2^-22.
    const double rel = ydt == DType::BF16 ? 2 * kBf16Rounding : 0x1p-22;
    expect_close(read(*dev_, y.tensor), read(*cpu_, yc.tensor), rel, 0,
                 std::string("axpy+scale y ") + dtype_name(ydt));
  }
}

TEST_F(CudaOpsTest, UnalignedViewsTakeTheScalarPath) {
  const int64_t rows = 5, cols = 3;  // row 1 starts 12 bytes in: not 16-byte aligned
  const auto y0 = random_vector(rows * cols, 4);
  const auto x = random_vector(rows * cols, 5);
  Owned y = make_tensor(*dev_, y0, {rows, cols}, DType::F32);
  Owned xd = make_tensor(*dev_, x, {rows, cols}, DType::F32);
  dev_->axpy(y.tensor.rows(1, 3), xd.tensor.rows(2, 3), 2.0f);
  std::vector<float> want = y0;
  for (int64_t i = 0; i < 3 * cols; ++i) want[cols + i] += 2.0f * x[2 * cols + i];
  // fp32 on both sides, a single fused-or-not multiply-add: ≤ 1 ulp apart.
  expect_close(read(*dev_, y.tensor), want, 0x1p-23, 0, "axpy on unaligned row views");
}

TEST_F(CudaOpsTest, DropoutDrawsTheSameMaskAsCpu) {
  const int64_t n = 3001;
  const float p = 0.3f;
  const uint64_t seed = 0x5eed;
  const auto x = rounded_bf16(random_vector(n, 6, 0.5f, 1.5f));  // never zero
  for (DType dt : {DType::F32, DType::BF16}) {
    Owned in = make_tensor(*dev_, x, {n}, dt);
    Owned out = make_tensor(*dev_, std::vector<float>(n, 0.0f), {n}, dt);
    dev_->dropout(out.tensor, in.tensor, p, seed);
    Owned inc = make_tensor(*cpu_, x, {n}, DType::F32);
    cpu_->dropout(inc.tensor, inc.tensor, p, seed);  // in place: out may alias in
    const auto got = read(*dev_, out.tensor), want = read(*cpu_, inc.tensor);
    int64_t mismatched_mask = 0;
    for (int64_t i = 0; i < n; ++i) mismatched_mask += (got[i] == 0.0f) != (want[i] == 0.0f);
    EXPECT_EQ(mismatched_mask, 0) << "the dropout masks differ";
    // Kept values: x/(1−p) in fp32 (identical), then one rounding when the output is bf16.
    expect_close(got, want, dt == DType::BF16 ? kBf16Rounding : 0, 0,
                 std::string("dropout ") + dtype_name(dt));
  }
}

TEST_F(CudaOpsTest, SwigluForwardAndBackwardMatchCpu) {
  for (int64_t t : {1, 13}) {
    const int64_t f = 1539;  // 1539 = 8·192 + 3: vector groups plus a scalar tail
    const auto gate = rounded_bf16(random_vector(t * f, 7, -6.0f, 6.0f));
    const auto up = rounded_bf16(random_vector(t * f, 8));
    const auto dout = rounded_bf16(random_vector(t * f, 9));
    Owned g = make_tensor(*dev_, gate, {t, f}, DType::BF16);
    Owned u = make_tensor(*dev_, up, {t, f}, DType::BF16);
    Owned d = make_tensor(*dev_, dout, {t, f}, DType::BF16);
    Owned o = make_tensor(*dev_, std::vector<float>(t * f, 0.0f), {t, f}, DType::BF16);
    Owned dg = make_tensor(*dev_, std::vector<float>(t * f, 0.0f), {t, f}, DType::BF16);
    Owned du = make_tensor(*dev_, std::vector<float>(t * f, 0.0f), {t, f}, DType::BF16);
    dev_->swiglu_forward(o.tensor, g.tensor, u.tensor);
    dev_->swiglu_backward(dg.tensor, du.tensor, d.tensor, g.tensor, u.tensor);
    Owned gc = make_tensor(*cpu_, gate, {t, f}, DType::F32);
    Owned uc = make_tensor(*cpu_, up, {t, f}, DType::F32);
    Owned dc = make_tensor(*cpu_, dout, {t, f}, DType::F32);
    Owned oc = make_tensor(*cpu_, std::vector<float>(t * f, 0.0f), {t, f}, DType::F32);
    Owned dgc = make_tensor(*cpu_, std::vector<float>(t * f, 0.0f), {t, f}, DType::F32);
    Owned duc = make_tensor(*cpu_, std::vector<float>(t * f, 0.0f), {t, f}, DType::F32);
    cpu_->swiglu_forward(oc.tensor, gc.tensor, uc.tensor);
    cpu_->swiglu_backward(dgc.tensor, duc.tensor, dc.tensor, gc.tensor, uc.tensor);
    // One bf16 rounding per output; expf on the device and std::exp differ by a few fp32 ulps,
    // far below the absolute term 1e-6 (outputs are O(1)).
    const std::string shape = " [" + std::to_string(t) + "," + std::to_string(f) + "]";
    expect_close(read(*dev_, o.tensor), read(*cpu_, oc.tensor), kBf16Rounding, 1e-6,
                 "swiglu_forward" + shape);
    expect_close(read(*dev_, dg.tensor), read(*cpu_, dgc.tensor), kBf16Rounding, 1e-6,
                 "swiglu_backward dgate" + shape);
    expect_close(read(*dev_, du.tensor), read(*cpu_, duc.tensor), kBf16Rounding, 1e-6,
                 "swiglu_backward dup" + shape);
  }
}

// The concatenated backward (docs/design.md §2.9) writes row t of dgate_up [T, 2F] as
// (dgate[t], dup[t]): the same bits as the split op on the same device (same kernel math), and
// cpu within one rounding. F = 1536 takes the 16-byte path, F = 1539 the scalar one (a thread's
// 8 elements then straddle rows). A dgate_up overlapping an input is refused.
TEST_F(CudaOpsTest, SwigluBackwardConcatenatedEqualsTheSplitOp) {
  for (int64_t f : {1536, 1539}) {
    const int64_t t = 5;
    const auto gate = rounded_bf16(random_vector(t * f, 17, -6.0f, 6.0f));
    const auto up = rounded_bf16(random_vector(t * f, 18));
    const auto dout = rounded_bf16(random_vector(t * f, 19));
    Owned g = make_tensor(*dev_, gate, {t, f}, DType::BF16);
    Owned u = make_tensor(*dev_, up, {t, f}, DType::BF16);
    Owned d = make_tensor(*dev_, dout, {t, f}, DType::BF16);
    Owned dg = make_tensor(*dev_, std::vector<float>(t * f, 0.0f), {t, f}, DType::BF16);
    Owned du = make_tensor(*dev_, std::vector<float>(t * f, 0.0f), {t, f}, DType::BF16);
    Owned dgu = make_tensor(*dev_, std::vector<float>(2 * t * f, 0.0f), {t, 2 * f}, DType::BF16);
    dev_->swiglu_backward(dg.tensor, du.tensor, d.tensor, g.tensor, u.tensor);
    dev_->swiglu_backward(dgu.tensor, d.tensor, g.tensor, u.tensor);
    const std::vector<float> split_g = read(*dev_, dg.tensor), split_u = read(*dev_, du.tensor);
    const std::vector<float> concat = read(*dev_, dgu.tensor);
    std::vector<float> expect(concat.size());
    for (int64_t r = 0; r < t; ++r)
      for (int64_t c = 0; c < f; ++c) {
        expect[r * 2 * f + c] = split_g[r * f + c];
        expect[r * 2 * f + f + c] = split_u[r * f + c];
      }
    EXPECT_EQ(concat, expect) << "F = " << f;
    Owned gc = make_tensor(*cpu_, gate, {t, f}, DType::F32);
    Owned uc = make_tensor(*cpu_, up, {t, f}, DType::F32);
    Owned dc = make_tensor(*cpu_, dout, {t, f}, DType::F32);
    Owned dguc = make_tensor(*cpu_, std::vector<float>(2 * t * f, 0.0f), {t, 2 * f}, DType::F32);
    cpu_->swiglu_backward(dguc.tensor, dc.tensor, gc.tensor, uc.tensor);
    expect_close(concat, read(*cpu_, dguc.tensor), kBf16Rounding, 1e-6,
                 "swiglu_backward [dgate | dup] F = " + std::to_string(f));
    EXPECT_THROW(dev_->swiglu_backward(
                     Tensor{g.tensor.data, DType::BF16, Shape{t, 2 * f}}.rows(0, t / 2),
                     d.tensor.rows(0, t / 2), g.tensor.rows(0, t / 2), u.tensor.rows(0, t / 2)),
                 Error);
  }
}

TEST_F(CudaOpsTest, EmbeddingForwardAndBackwardMatchCpu) {
  const int64_t vocab = 37, channels = 77, tokens = 19;  // repeated ids accumulate
  const auto table = rounded_bf16(random_vector(vocab * channels, 10));
  std::vector<float> ids(tokens);
  for (int64_t t = 0; t < tokens; ++t) ids[t] = static_cast<float>((t * 7) % 11);
  const auto dout = rounded_bf16(random_vector(tokens * channels, 11));
  const auto dtable0 = random_vector(vocab * channels, 12);

  Owned tab = make_tensor(*dev_, table, {vocab, channels}, DType::BF16);
  Owned id = make_tensor(*dev_, ids, {tokens}, DType::I32);
  Owned out = make_tensor(*dev_, std::vector<float>(tokens * channels, 0.0f), {tokens, channels},
                          DType::BF16);
  Owned dy = make_tensor(*dev_, dout, {tokens, channels}, DType::BF16);
  Owned dtab = make_tensor(*dev_, dtable0, {vocab, channels}, DType::F32);
  dev_->embedding_forward(out.tensor, id.tensor, tab.tensor);
  dev_->embedding_backward(dtab.tensor, dy.tensor, id.tensor);

  Owned tabc = make_tensor(*cpu_, table, {vocab, channels}, DType::F32);
  Owned idc = make_tensor(*cpu_, ids, {tokens}, DType::I32);
  Owned outc = make_tensor(*cpu_, std::vector<float>(tokens * channels, 0.0f), {tokens, channels},
                           DType::F32);
  Owned dyc = make_tensor(*cpu_, dout, {tokens, channels}, DType::F32);
  Owned dtabc = make_tensor(*cpu_, dtable0, {vocab, channels}, DType::F32);
  cpu_->embedding_forward(outc.tensor, idc.tensor, tabc.tensor);
  cpu_->embedding_backward(dtabc.tensor, dyc.tensor, idc.tensor);
  // Forward is a copy of bf16 values: exact. Backward adds the same fp32 values; the order
  // over tokens may differ from the cpu's, ≤ 2 contributions per row here: ≤ 2 ulps.
  expect_close(read(*dev_, out.tensor), read(*cpu_, outc.tensor), 0, 0, "embedding_forward");
  expect_close(read(*dev_, dtab.tensor), read(*cpu_, dtabc.tensor), 0x1p-22, 0,
               "embedding_backward");
}

TEST_F(CudaOpsTest, EmbeddingRejectsAnIdOutsideTheVocabulary) {
  Owned tab = make_tensor(*dev_, std::vector<float>(4 * 8, 1.0f), {4, 8}, DType::BF16);
  Owned id = make_tensor(*dev_, {0.0f, 3.0f, 9.0f}, {3}, DType::I32);
  Owned out = make_tensor(*dev_, std::vector<float>(3 * 8, 0.0f), {3, 8}, DType::BF16);
  dev_->set_device_checks(true);  // the device-side id check is a debug mode (off on a GPU)
  try {
    dev_->embedding_forward(out.tensor, id.tensor, tab.tensor);
    FAIL() << "token id 9 in a vocabulary of 4 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 9 at position 2"), std::string::npos)
        << e.what();
  }
}

TEST_F(CudaOpsTest, ShapeMismatchesAreErrors) {
  Owned a = make_tensor(*dev_, std::vector<float>(6, 0.0f), {2, 3}, DType::BF16);
  Owned b = make_tensor(*dev_, std::vector<float>(6, 0.0f), {3, 2}, DType::BF16);
  EXPECT_THROW(dev_->axpy(a.tensor, b.tensor, 1.0f), Error);
  EXPECT_THROW(dev_->swiglu_forward(a.tensor, a.tensor, b.tensor), Error);
  Owned c = make_tensor(*dev_, std::vector<float>(4, 0.0f), {2, 2}, DType::BF16);
  EXPECT_THROW(dev_->matmul(c.tensor, a.tensor, a.tensor, Transpose::No, Transpose::No), Error);
}

}  // namespace
}  // namespace smol::test
