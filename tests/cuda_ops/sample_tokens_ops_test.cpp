// sample_tokens on the device against the cpu backend's host rule (kernels/token_sampling.h).
// Both compute the same integer weights from the same fp32 logits and sum them exactly, so the
// tokens must be EQUAL, not close: any difference is a bug in one of the two searches.
#include <cmath>
#include <limits>

#include "cuda_ops_test_util.h"
#include "kernels/token_sampling.h"

namespace smol::test {
namespace {

struct SampleCase {
  float temperature, top_p;
};

// Draws every row of `logits` [rows, vocab] with each uniform in `uniforms` on both backends.
void expect_same_tokens(Backend& dev, Backend& cpu, const std::vector<float>& logits, int64_t rows,
                        int64_t vocab, const SampleCase& c, const std::vector<float>& uniforms,
                        const std::string& what) {
  Owned xd = make_tensor(dev, logits, {rows, vocab}, DType::F32);
  Owned xc = make_tensor(cpu, logits, {rows, vocab}, DType::F32);
  for (float u : uniforms) {
    const std::vector<float> us(static_cast<size_t>(rows), u);
    Owned ud = make_tensor(dev, us, {rows}, DType::F32),
          uc = make_tensor(cpu, us, {rows}, DType::F32);
    Owned od = make_tensor(dev, std::vector<float>(rows, -7.0f), {rows}, DType::I32);
    Owned oc = make_tensor(cpu, std::vector<float>(rows, -7.0f), {rows}, DType::I32);
    dev.sample_tokens(od.tensor, xd.tensor, ud.tensor, c.temperature, c.top_p);
    cpu.sample_tokens(oc.tensor, xc.tensor, uc.tensor, c.temperature, c.top_p);
    const std::vector<float> got = read(dev, od.tensor), want = read(cpu, oc.tensor);
    EXPECT_EQ(got, want) << what << ": temperature " << c.temperature << ", top_p " << c.top_p
                         << ", u " << u;
    for (float t : want) EXPECT_TRUE(t >= 0 && t < vocab) << what << ": token " << t;
  }
}

// Uniforms at both ends of [0, 1) and between (multiples of 2⁻²⁴, as dropout_uniform draws).
const std::vector<float> kUniforms{0.0f, 0x1p-24f, 0.1234567f, 0.5f, 0.9f, 1.0f - 0x1p-24f};

TEST_F(CudaOpsTest, SampleTokensMatchesTheHostRuleExactly) {
  const int64_t rows = 3, vocab = 1531;  // not a multiple of the 512-thread block
  std::vector<float> logits = random_vector(rows * vocab, 321, -8.0f, 8.0f);
  // Row 1: peaked (one token holds most of the mass); row 2: a flat plateau of equal logits, so
  // the draw lands inside a class of equal weights and the id order decides.
  logits[vocab + 77] = 30.0f;
  for (int64_t i = 0; i < vocab; ++i)
    if (i % 3 == 0) logits[2 * vocab + i] = 9.5f;
  for (const SampleCase c : {SampleCase{1.0f, 1.0f}, SampleCase{0.7f, 0.9f}, SampleCase{1.3f, 0.5f},
                             SampleCase{0.05f, 0.999f}, SampleCase{5.0f, 1e-6f}})
    expect_same_tokens(*dev_, *cpu_, logits, rows, vocab, c, kUniforms, "random rows");
}

TEST_F(CudaOpsTest, SampleTokensAtSmolLM2VocabularyMatchesTheHostRule) {
  const int64_t rows = 2, vocab = 49152;
  const std::vector<float> logits = random_vector(rows * vocab, 322, -12.0f, 12.0f);
  expect_same_tokens(*dev_, *cpu_, logits, rows, vocab, SampleCase{0.8f, 0.9f},
                     {0.0f, 0.3f, 1.0f - 0x1p-24f}, "vocab 49152");
}

TEST_F(CudaOpsTest, SampleTokensReportsTheFirstNonFiniteLogit) {
  const int64_t rows = 3, vocab = 600;
  std::vector<float> logits = random_vector(rows * vocab, 323);
  logits[0 * vocab + 599] = std::numeric_limits<float>::quiet_NaN();
  logits[1 * vocab + 515] = std::numeric_limits<float>::infinity();
  logits[1 * vocab + 516] = std::numeric_limits<float>::quiet_NaN();
  Owned xd = make_tensor(*dev_, logits, {rows, vocab}, DType::F32);
  Owned ud = make_tensor(*dev_, std::vector<float>(rows, 0.5f), {rows}, DType::F32);
  Owned od = make_tensor(*dev_, std::vector<float>(rows, 0.0f), {rows}, DType::I32);
  dev_->sample_tokens(od.tensor, xd.tensor, ud.tensor, 1.0f, 0.9f);
  const std::vector<float> got = read(*dev_, od.tensor);
  EXPECT_EQ(got[0], -600.0f);  // −(599 + 1)
  EXPECT_EQ(got[1], -516.0f);  // the first of the two
  EXPECT_GE(got[2], 0.0f);
}

TEST_F(CudaOpsTest, SampleTokensRefusesBadArguments) {
  Owned x = make_tensor(*dev_, std::vector<float>(8, 0.0f), {2, 4}, DType::F32);
  Owned u = make_tensor(*dev_, std::vector<float>(2, 0.5f), {2}, DType::F32);
  Owned o = make_tensor(*dev_, std::vector<float>(2, 0.0f), {2}, DType::I32);
  EXPECT_THROW(dev_->sample_tokens(o.tensor, x.tensor, u.tensor, 0.0f, 1.0f), Error);
  EXPECT_THROW(dev_->sample_tokens(o.tensor, x.tensor, u.tensor, 1.0f, 0.0f), Error);
  Owned short_u = make_tensor(*dev_, std::vector<float>(1, 0.5f), {1}, DType::F32);
  EXPECT_THROW(dev_->sample_tokens(o.tensor, x.tensor, short_u.tensor, 1.0f, 1.0f), Error);
}

}  // namespace
}  // namespace smol::test
