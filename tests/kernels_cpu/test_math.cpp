// exp_approx (kernels/cpu/cpu_math.h), the vectorisable exp behind softmax, SwiGLU and
// cross-entropy: within 2 ulp (relative 2.4e-7) of the exact e^x over the range it claims.
#include "kernels/cpu/cpu_math.h"
#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

TEST(CpuMath, ExpApproxWithinTwoUlp) {
  double worst = 0;
  float worst_x = 0;
  for (int64_t i = 0; i <= 2000000; ++i) {
    const float x = -87.0f + 175.0f * static_cast<float>(i) / 2000000.0f;  // [−87, 88]
    const double exact = std::exp(static_cast<double>(x));
    const double rel = std::abs(cpu::exp_approx(x) - exact) / exact;
    if (rel > worst) worst = rel, worst_x = x;
  }
  // 2 ulp of a float in [1, 2) is 2·2⁻²³ ≈ 2.4e-7 relative.
  EXPECT_LE(worst, 2.4e-7) << "worst at x = " << worst_x;
  EXPECT_EQ(cpu::exp_approx(0.0f), 1.0f);
  EXPECT_LT(cpu::exp_approx(-1000.0f), 1e-37f);  // clamped: tiny, never NaN or negative
  EXPECT_GE(cpu::exp_approx(-1000.0f), 0.0f);
  EXPECT_TRUE(std::isfinite(cpu::exp_approx(1000.0f)));
}

}  // namespace
}  // namespace smol::test
