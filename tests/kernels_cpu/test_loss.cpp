// cross_entropy (ignore index −100, dloss_scale, dlogits aliasing logits) and argmax
// (first maximum wins).
#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

std::vector<double> ce_ref(const std::vector<double>& x, const std::vector<int32_t>& target,
                           int64_t vocab) {
  std::vector<double> loss(target.size(), 0.0);
  for (size_t t = 0; t < target.size(); ++t) {
    if (target[t] == -100) continue;
    double mx = -1e300, sum = 0;
    for (int64_t c = 0; c < vocab; ++c) mx = std::max(mx, x[t * vocab + c]);
    for (int64_t c = 0; c < vocab; ++c) sum += std::exp(x[t * vocab + c] - mx);
    loss[t] = mx + std::log(sum) - x[t * vocab + target[t]];
  }
  return loss;
}

TEST(CpuCrossEntropy, LossAndGradientWithIgnoreIndex) {
  for (bool alias : {false, true}) {
    SCOPED_TRACE(alias ? "dlogits aliases logits" : "separate dlogits");
    Device dev;
    const int64_t rows = 17, vocab = 53;
    auto x = random_floats(rows * vocab, 1, -4, 4);
    x[2 * vocab + 5] = 60.0f;  // a large logit: the max shift must keep exp finite
    std::vector<int32_t> target(rows);
    for (int64_t t = 0; t < rows; ++t) target[t] = t % 4 == 1 ? -100 : int32_t((t * 7) % vocab);
    const float dloss_scale = 0.37f;
    Tensor logits = dev.f32({rows, vocab}, x);
    Tensor losses = dev.f32({rows}, std::vector<float>(rows, 9.0f));
    Tensor dlogits =
        alias ? logits : dev.f32({rows, vocab}, std::vector<float>(rows * vocab, 9.0f));
    dev->cross_entropy(losses, &dlogits, logits, dev.i32({rows}, target), dloss_scale);
    // log-sum-exp of 53 fp32 exps summed in double, minus one logit of |x| ≤ 60: error a
    // few ulp of 60 ≈ 2e-5 worst case; 1e-6 relative + 1e-5 absolute.
    const auto ref = ce_ref(to_double(x), target, vocab);
    expect_near_all(dev.get(losses), ref, 1e-5, 1e-6, "cross_entropy losses");
    const auto l = dev.get(losses);
    for (int64_t t = 1; t < rows; t += 4) EXPECT_EQ(l[t], 0.0f) << "ignored row " << t;
    RefFn f = [&](const std::vector<std::vector<double>>& in) {
      return ce_ref(in[0], target, vocab);
    };
    const std::vector<double> w(rows, dloss_scale);
    // Softmax probabilities are ≤ 1, each from one expf: ≲ 1e-6 absolute.
    const auto g = dev.get(dlogits);
    expect_near_all(g, finite_difference(f, {to_double(x)}, w, 0), 2e-6, 1e-5,
                    "cross_entropy dlogits");
    for (int64_t c = 0; c < vocab; ++c) EXPECT_EQ(g[1 * vocab + c], 0.0f) << "ignored row 1";
  }
}

TEST(CpuCrossEntropy, WithoutGradientAndBadTargets) {
  Device dev;
  Tensor logits = dev.f32({2, 3}, {0, 0, 0, 1, 2, 3});
  Tensor losses = dev.zeros({2});
  dev->cross_entropy(losses, nullptr, logits, dev.i32({2}, {0, 2}), 1.0f);
  const auto l = dev.get(losses);
  EXPECT_NEAR(l[0], std::log(3.0), 1e-6);
  EXPECT_NEAR(l[1], std::log(std::exp(-2.0) + std::exp(-1.0) + 1.0), 1e-6);
  EXPECT_THROW(dev->cross_entropy(losses, nullptr, logits, dev.i32({2}, {0, 3}), 1.0f), Error);
  EXPECT_THROW(dev->cross_entropy(losses, nullptr, logits, dev.i32({2}, {-1, 0}), 1.0f), Error);
  EXPECT_THROW(dev->cross_entropy(dev.zeros({3}), nullptr, logits, dev.i32({2}, {0, 0}), 1.0f),
               Error);
}

TEST(CpuArgmax, FirstMaximumWins) {
  Device dev;
  Tensor x = dev.f32({4, 5}, {1,  3,  3,  0,  2,   //
                              -1, -1, -1, -1, -1,  //
                              0,  0,  0,  0,  7,   //
                              9,  1,  9,  9,  2});
  Tensor out = dev.zeros({4}, DType::I32);
  dev->argmax(out, x);
  EXPECT_EQ(dev.get_i32(out), (std::vector<int32_t>{1, 0, 4, 0}));
  // A wide row exercising the parallel path.
  const int64_t vocab = 49152;
  auto wide = random_floats(2 * vocab, 3);
  wide[vocab - 1] = 5.0f;
  wide[vocab + 17] = 5.0f;
  wide[vocab + 40000] = 5.0f;
  Tensor out2 = dev.zeros({2}, DType::I32);
  dev->argmax(out2, dev.f32({2, vocab}, wide));
  EXPECT_EQ(dev.get_i32(out2), (std::vector<int32_t>{int32_t(vocab - 1), 17}));
}

}  // namespace
}  // namespace smol::test
