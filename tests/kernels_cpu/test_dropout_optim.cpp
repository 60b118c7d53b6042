// dropout (counter-based mask shared by all backends), sum_of_squares (deterministic across
// calls and thread counts) and AdamW (against a scalar double reference of the formula).
#include <omp.h>

#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

TEST(CpuDropout, MaskFollowsSeedAndFractionAndBackwardReusesIt) {
  Device dev;
  const int64_t n = 100000;
  const float p = 0.1f;
  const auto x = random_floats(n, 1, 0.5f, 1.5f);  // never zero, so zeros mark drops
  Tensor in = dev.f32({n}, x);
  Tensor a = dev.zeros({n}), b = dev.zeros({n}), c = dev.zeros({n});
  dev->dropout(a, in, p, 1234);
  dev->dropout(b, in, p, 1234);
  dev->dropout(c, in, p, 1235);
  const auto va = dev.get(a), vb = dev.get(b), vc = dev.get(c);
  EXPECT_EQ(va, vb) << "same seed, same mask";
  int64_t kept = 0, differ = 0;
  for (int64_t e = 0; e < n; ++e) {
    const bool keep = dropout_uniform(1234, e) >= p;
    ASSERT_EQ(va[e] != 0.0f, keep) << "element " << e;
    if (keep) {
      ++kept;
      ASSERT_EQ(va[e], x[e] * (1.0f / (1.0f - p))) << "kept values scale by 1/(1-p)";
    }
    differ += (va[e] != 0.0f) != (vc[e] != 0.0f);
  }
  // Binomial(n, 0.9): σ = sqrt(n·p·(1−p)) ≈ 95; 5σ bound.
  EXPECT_NEAR(double(kept), n * (1.0 - p), 5 * std::sqrt(n * p * (1 - p)));
  // Two independent masks disagree on 2p(1−p) = 18% of elements.
  EXPECT_GT(differ, n / 10);
  // Backward: the same call on the gradient, here in place (out aliases in).
  const auto dy = random_floats(n, 2, 0.5f, 1.5f);
  Tensor g = dev.f32({n}, dy);
  dev->dropout(g, g, p, 1234);
  const auto vg = dev.get(g);
  for (int64_t e = 0; e < n; ++e) ASSERT_EQ(vg[e] != 0.0f, va[e] != 0.0f) << e;
  EXPECT_THROW(dev->dropout(a, in, 1.5f, 1), Error);
}

TEST(CpuSumOfSquares, ExactAndDeterministicAcrossThreadCounts) {
  Device dev;
  const auto x1 = random_floats(100003, 1), x2 = random_floats(37, 2), x3 = random_floats(50000, 3);
  std::vector<Tensor> ts{dev.f32({100003}, x1), dev.f32({37}, x2), dev.f32({500, 100}, x3)};
  double want = 0;
  for (const auto* v : {&x1, &x2, &x3})
    for (float f : *v) want += double(f) * f;
  const int saved = omp_get_max_threads();
  std::vector<double> results;
  for (int threads : {1, 2, 3, 8}) {
    omp_set_num_threads(threads);
    results.push_back(dev->sum_of_squares(ts));
    results.push_back(dev->sum_of_squares(ts));
  }
  omp_set_num_threads(saved);
  for (double r : results) EXPECT_EQ(r, results[0]) << "bitwise equal across calls and threads";
  // Double sums of 150k exact float² products: relative error ≲ 150k·1e-16.
  EXPECT_NEAR(results[0], want, 1e-10 * want);
}

TEST(CpuAdamW, MatchesScalarDoubleReference) {
  Device dev;
  const int64_t n1 = 33, n2 = 40000;  // the second one takes the parallel path
  const float weight_decays[2] = {0.1f, 0.0f};
  const int64_t sizes[2] = {n1, n2};
  std::vector<std::vector<double>> p(2), m(2), v(2);
  std::vector<AdamWTensor> tensors;
  for (int i = 0; i < 2; ++i) {
    const auto init = random_floats(sizes[i], 10 + i);
    p[i] = to_double(init);
    m[i].assign(sizes[i], 0.0);
    v[i].assign(sizes[i], 0.0);
    tensors.push_back({dev.f32({sizes[i]}, init), dev.zeros({sizes[i]}), dev.zeros({sizes[i]}),
                       dev.zeros({sizes[i]}), weight_decays[i]});
  }
  AdamWHyper hyper;
  hyper.lr = 1e-2f;
  hyper.grad_scale = 0.5f;
  for (int64_t step = 1; step <= 4; ++step) {
    hyper.step = step;
    for (int i = 0; i < 2; ++i) {
      const auto grad = random_floats(sizes[i], 100 * step + i, -2, 2);
      dev->upload(tensors[i].grad, grad.data());
      const double b1 = hyper.beta1, b2 = hyper.beta2, lr = hyper.lr;
      for (int64_t e = 0; e < sizes[i]; ++e) {
        const double g = double(grad[e]) * hyper.grad_scale;
        m[i][e] = b1 * m[i][e] + (1 - b1) * g;
        v[i][e] = b2 * v[i][e] + (1 - b2) * g * g;
        const double m_hat = m[i][e] / (1 - std::pow(b1, step));
        const double v_hat = v[i][e] / (1 - std::pow(b2, step));
        p[i][e] =
            p[i][e] * (1 - lr * weight_decays[i]) - lr * m_hat / (std::sqrt(v_hat) + hyper.eps);
      }
    }
    dev->adamw_step(tensors, hyper);
  }
  // Each step moves p by ≤ lr = 1e-2 with fp32 relative error ~1e-6 in the update and ~6e-8
  // in p itself: after 4 steps |error| ≲ 4·(1e-8 + 6e-8); bound 1e-6.
  for (int i = 0; i < 2; ++i) {
    expect_near_all(dev.get(tensors[i].param), p[i], 1e-6, 0, "adamw param " + std::to_string(i));
    expect_near_all(dev.get(tensors[i].m), m[i], 1e-6, 1e-6, "adamw m " + std::to_string(i));
    expect_near_all(dev.get(tensors[i].v), v[i], 1e-7, 1e-6, "adamw v " + std::to_string(i));
  }
  std::vector<AdamWTensor> bad{{tensors[0].param, tensors[1].grad, tensors[0].m, tensors[0].v}};
  EXPECT_THROW(dev->adamw_step(bad, hyper), Error);
}

}  // namespace
}  // namespace smol::test
