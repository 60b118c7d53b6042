// embedding and RMSNorm (plain and fused with the residual add): forward against double
// references, backward against finite differences, accumulate semantics checked explicitly.
#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

std::vector<double> rmsnorm_ref(const std::vector<double>& x, const std::vector<double>& w,
                                int64_t rows, int64_t cols, double eps) {
  std::vector<double> out(x.size());
  for (int64_t t = 0; t < rows; ++t) {
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += x[t * cols + c] * x[t * cols + c];
    const double r = 1.0 / std::sqrt(ss / cols + eps);
    for (int64_t c = 0; c < cols; ++c) out[t * cols + c] = w[c] * x[t * cols + c] * r;
  }
  return out;
}

TEST(CpuEmbedding, ForwardGathersRowsAndBackwardAccumulates) {
  Device dev;
  const int64_t vocab = 11, width = 70;  // 70: not a multiple of the 64-column block
  const auto table = random_floats(vocab * width, 1);
  const std::vector<int32_t> ids{3, 0, 10, 3, 3, 7};
  Tensor t_table = dev.f32({vocab, width}, table);
  Tensor t_ids = dev.i32({6}, ids);
  Tensor out = dev.zeros({6, width});
  dev->embedding_forward(out, t_ids, t_table);
  const auto o = dev.get(out);
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t c = 0; c < width; ++c)
      ASSERT_EQ(o[t * width + c], table[ids[t] * width + c]) << t << "," << c;

  const auto dout = random_floats(6 * width, 2);
  const auto initial = random_floats(vocab * width, 3);
  Tensor dtable = dev.f32({vocab, width}, initial);
  dev->embedding_backward(dtable, dev.f32({6, width}, dout), t_ids);
  std::vector<double> want = to_double(initial);
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t c = 0; c < width; ++c) want[ids[t] * width + c] += dout[t * width + c];
  // ≤ 4 fp32 additions of O(1) values: error ≤ 4 ulp(4) ≈ 2e-6.
  expect_near_all(dev.get(dtable), want, 2e-6, 0, "embedding_backward (accumulates)");
}

TEST(CpuEmbedding, RejectsOutOfRangeIds) {
  Device dev;
  Tensor table = dev.zeros({5, 4}), out = dev.zeros({2, 4});
  EXPECT_THROW(dev->embedding_forward(out, dev.i32({2}, {1, 5}), table), Error);
  EXPECT_THROW(dev->embedding_forward(out, dev.i32({2}, {-1, 0}), table), Error);
  EXPECT_THROW(dev->embedding_backward(table, out, dev.i32({2}, {0, 9})), Error);
  EXPECT_THROW(dev->embedding_forward(out, dev.f32({2}, {0, 1}), table), Error);  // ids F32
}

TEST(CpuRmsnorm, ForwardMatchesReference) {
  for (int64_t rows : {1, 3, 17}) {
    Device dev;
    const int64_t cols = 37;  // not a multiple of 8
    const float eps = 1e-5f;
    const auto x = random_floats(rows * cols, 4, -3, 3), w = random_floats(cols, 5);
    Tensor out = dev.zeros({rows, cols}), rstd = dev.zeros({rows});
    dev->rmsnorm_forward(out, rstd, dev.f32({rows, cols}, x), dev.f32({cols}, w), eps);
    // Each output is 2 fp32 products after an fp32 rstd: ≤ 3 ulp relative ≈ 2e-7; 1e-6 bounds.
    expect_near_all(dev.get(out), rmsnorm_ref(to_double(x), to_double(w), rows, cols, eps), 1e-6,
                    1e-6, "rmsnorm out T=" + std::to_string(rows));
    const auto r = dev.get(rstd);
    for (int64_t t = 0; t < rows; ++t) {
      double ss = 0;
      for (int64_t c = 0; c < cols; ++c) ss += double(x[t * cols + c]) * x[t * cols + c];
      EXPECT_NEAR(r[t], 1.0 / std::sqrt(ss / cols + eps), 1e-6 * r[t]);
    }
  }
}

TEST(CpuRmsnorm, AddRmsnormSumsThenNormalisesAndMayAliasA) {
  Device dev;
  const int64_t rows = 17, cols = 37;
  const auto a = random_floats(rows * cols, 6), b = random_floats(rows * cols, 7),
             w = random_floats(cols, 8);
  Tensor ta = dev.f32({rows, cols}, a);
  Tensor out = dev.zeros({rows, cols}), rstd = dev.zeros({rows});
  dev->add_rmsnorm_forward(ta, out, rstd, ta, dev.f32({rows, cols}, b), dev.f32({cols}, w), 1e-5f);
  std::vector<double> sum(a.size());
  for (size_t i = 0; i < a.size(); ++i) sum[i] = double(a[i]) + b[i];
  expect_near_all(dev.get(ta), sum, 1e-6, 1e-7, "add_rmsnorm sum (aliasing a)");
  expect_near_all(dev.get(out), rmsnorm_ref(sum, to_double(w), rows, cols, 1e-5), 2e-6, 2e-6,
                  "add_rmsnorm out");
}

TEST(CpuRmsnorm, BackwardMatchesFiniteDifferencesAndAccumulates) {
  for (int64_t rows : {1, 3, 17}) {
    Device dev;
    const int64_t cols = 37;
    const float eps = 1e-5f;
    const auto x = random_floats(rows * cols, 9, -2, 2), w = random_floats(cols, 10);
    const auto dout = random_floats(rows * cols, 11);
    Tensor tx = dev.f32({rows, cols}, x), tw = dev.f32({cols}, w);
    Tensor out = dev.zeros({rows, cols}), rstd = dev.zeros({rows});
    dev->rmsnorm_forward(out, rstd, tx, tw, eps);
    // Start from non-zero gradients: the op must add to them, not overwrite.
    const auto dx0 = random_floats(rows * cols, 12), dw0 = random_floats(cols, 13);
    Tensor dx = dev.f32({rows, cols}, dx0), dw = dev.f32({cols}, dw0);
    dev->rmsnorm_backward(dx, dw, dev.f32({rows, cols}, dout), tx, tw, rstd);
    RefFn f = [&](const std::vector<std::vector<double>>& in) {
      return rmsnorm_ref(in[0], in[1], rows, cols, eps);
    };
    const std::vector<std::vector<double>> inputs{to_double(x), to_double(w)};
    auto gx = finite_difference(f, inputs, to_double(dout), 0);
    auto gw = finite_difference(f, inputs, to_double(dout), 1);
    for (size_t i = 0; i < gx.size(); ++i) gx[i] += dx0[i];
    for (size_t i = 0; i < gw.size(); ++i) gw[i] += dw0[i];
    // dx: rstd·g − x·coeff, each from ~37-term fp32/double sums of O(1): error ~1e-6; dweight
    // sums ≤ 17 rows in double. 1e-5 absolute + 1e-5 relative.
    const std::string tag = " T=" + std::to_string(rows);
    expect_near_all(dev.get(dx), gx, 1e-5, 1e-5, "rmsnorm dx" + tag);
    expect_near_all(dev.get(dw), gw, 1e-5, 1e-5, "rmsnorm dweight" + tag);
  }
}

TEST(CpuRmsnorm, RejectsMismatchedWeight) {
  Device dev;
  Tensor x = dev.zeros({3, 8}), out = dev.zeros({3, 8}), rstd = dev.zeros({3});
  EXPECT_THROW(dev->rmsnorm_forward(out, rstd, x, dev.zeros({7}), 1e-5f), Error);
  EXPECT_THROW(dev->rmsnorm_forward(out, dev.zeros({2}), x, dev.zeros({8}), 1e-5f), Error);
}

}  // namespace
}  // namespace smol::test
