// cuda vs cpu: lora_up_forward / lora_up_backward, the B side of up to three LoRA adapters in one
// launch per direction (kernels/cuda/lora_up.cu, docs/design.md §2.7 "LoRA up-projections fused")
// against the cpu backend's default (one matmul per member and product, kernels/lora_up.cpp).
// Shapes: 1–3 members with different Nᵢ (64; 24; 100, not a multiple of the 64-column tile),
// ragged T (37; 300 spans five 64-token chunks, the last partial), r = 4, 8, 24, s = 2; r = 40
// takes the default matmuls on cuda too.
#include <array>

#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

struct Case {
  int n;
  int64_t T, r;
};

constexpr std::array<int64_t, 3> kCols = {64, 24, 100};  // Nᵢ of member i

// The host side of one call: utᵢ [r, T], Bᵢ [Nᵢ, r], yᵢ and dyᵢ [T, Nᵢ], dBᵢ [Nᵢ, r]. ut, y and
// dy are bf16-exact so both backends start from the same numbers; |every value| ≤ 1.
struct Inputs {
  std::vector<std::vector<float>> ut, b, y, dy, db;
};

Inputs make_inputs(const Case& c, uint32_t salt) {
  Inputs in;
  for (int i = 0; i < c.n; ++i) {
    const int64_t N = kCols[i];
    in.ut.push_back(rounded_bf16(random_vector(c.r * c.T, 100 + salt + i)));
    in.b.push_back(random_vector(N * c.r, 200 + salt + i));
    in.y.push_back(rounded_bf16(random_vector(c.T * N, 300 + salt + i)));
    in.dy.push_back(rounded_bf16(random_vector(c.T * N, 400 + salt + i)));
    in.db.push_back(random_vector(N * c.r, 500 + salt + i));
  }
  return in;
}

struct Outputs {
  std::vector<std::vector<float>> y, gt, db;
};

Outputs run(Backend& b, const Case& c, const Inputs& in, float s) {
  const DType act = b.activation_dtype();
  std::vector<Owned> owned;
  std::vector<Tensor> uts, bs, ys, dys, dbs, gts;
  const auto add = [&](std::vector<Tensor>& list, const std::vector<float>& v, Shape shape,
                       DType dtype) {
    owned.push_back(make_tensor(b, v, shape, dtype));
    list.push_back(owned.back().tensor);
  };
  for (int i = 0; i < c.n; ++i) {
    const int64_t N = kCols[i];
    add(uts, in.ut[i], {c.r, c.T}, act);
    add(bs, in.b[i], {N, c.r}, DType::F32);
    add(ys, in.y[i], {c.T, N}, act);
    add(dys, in.dy[i], {c.T, N}, act);
    add(dbs, in.db[i], {N, c.r}, DType::F32);
    add(gts, std::vector<float>(c.r * c.T, 7.0f), {c.r, c.T}, act);  // overwritten
  }
  b.lora_up_forward(ys, uts, bs, s);
  b.lora_up_backward(dbs, gts, dys, uts, bs, s);
  Outputs out;
  for (int i = 0; i < c.n; ++i) {
    out.y.push_back(read(b, ys[i]));
    out.gt.push_back(read(b, gts[i]));
    out.db.push_back(read(b, dbs[i]));
  }
  return out;
}

TEST_F(CudaOpsTest, LoraUpForwardAndBackwardMatchCpu) {
  const float s = 2.0f;
  const std::array cases = {Case{1, 37, 8},   Case{2, 37, 4},  Case{3, 37, 8}, Case{3, 300, 8},
                            Case{2, 300, 24}, Case{3, 37, 24}, Case{2, 37, 40}};
  uint32_t salt = 0;
  for (const Case& c : cases) {
    salt += 10;
    const Inputs in = make_inputs(c, salt);
    const Outputs got = run(*dev_, c, in, s), want = run(*cpu_, c, in, s);
    const std::string name =
        "n=" + std::to_string(c.n) + " T=" + std::to_string(c.T) + " r=" + std::to_string(c.r);
    // r > 32 takes the default matmuls on the device: B rounded to bf16 in the matmul's cast
    // (2^-9 relative, once per product).
    const bool fallback = c.r > 32;
    const double rounding = 0x1p-9;
    for (int i = 0; i < c.n; ++i) {
      const int64_t N = kCols[i];
      const std::string member = "[" + std::to_string(i) + "] " + name;
      // An fp32 sum of K terms differs between two summation orders by at most
      // 2·K·2^-24·Σ|terms| (γ_K each way).
      // y = y0 + s·Σ_k ut·B: K = r products of size ≤ s plus y0 (≤ 1); then one bf16 rounding
      // of the result on the device (kBf16Rounding relative; cpu keeps fp32).
      const double y_sum = 1.0 + s * c.r;
      const double y_abs = 2.0 * (c.r + 1) * 0x1p-24 * y_sum + (fallback ? rounding * s * c.r : 0);
      expect_close(got.y[i], want.y[i], kBf16Rounding, y_abs, "lora_up_forward y" + member);
      // gt = Σ_n B·dy: K = Nᵢ products of size ≤ 1; one bf16 rounding of the result.
      const double gt_abs = 2.0 * N * 0x1p-24 * N + (fallback ? rounding * N : 0);
      expect_close(got.gt[i], want.gt[i], kBf16Rounding, gt_abs, "lora_up_backward gt" + member);
      // dB = dB0 + s·Σ_t dy·ut (fp32 both sides): K = T products of size ≤ s plus dB0 (≤ 1).
      const double db_abs = 2.0 * (c.T + 1) * 0x1p-24 * (1.0 + s * c.T);
      expect_close(got.db[i], want.db[i], 0x1p-22, db_abs, "lora_up_backward dB" + member);
    }
  }
}

// Determinism: the same call twice gives the same bits (dB's chunk partials are summed in a
// fixed order, no atomics).
TEST_F(CudaOpsTest, LoraUpBackwardIsDeterministic) {
  const Case c{3, 300, 8};
  const Inputs in = make_inputs(c, 77);
  const Outputs a = run(*dev_, c, in, 0.5f), b = run(*dev_, c, in, 0.5f);
  for (int i = 0; i < c.n; ++i) {
    EXPECT_EQ(a.db[i], b.db[i]) << "dB[" << i << "]";
    EXPECT_EQ(a.gt[i], b.gt[i]) << "gt[" << i << "]";
  }
}

TEST_F(CudaOpsTest, LoraUpRefusesBadArguments) {
  const int64_t T = 5, N = 6, r = 2;
  Owned ut = make_tensor(*dev_, std::vector<float>(r * T, 0.0f), {r, T}, DType::BF16);
  Owned b = make_tensor(*dev_, std::vector<float>(N * r, 1.0f), {N, r}, DType::F32);
  Owned y = make_tensor(*dev_, std::vector<float>(T * N, 0.0f), {T, N}, DType::BF16);
  Owned gt = make_tensor(*dev_, std::vector<float>(r * T, 0.0f), {r, T}, DType::BF16);
  Owned db = make_tensor(*dev_, std::vector<float>(N * r, 0.0f), {N, r}, DType::F32);
  Owned wrong = make_tensor(*dev_, std::vector<float>(T * N, 0.0f), {N, T}, DType::BF16);
  Owned b16 = make_tensor(*dev_, std::vector<float>(N * r, 1.0f), {N, r}, DType::BF16);
  const std::vector<Tensor> uts = {ut.tensor}, bs = {b.tensor}, ys = {y.tensor}, gts = {gt.tensor},
                            dbs = {db.tensor};
  const std::vector<Tensor> uts4(4, ut.tensor), bs4(4, b.tensor), ys4(4, y.tensor);
  EXPECT_THROW(dev_->lora_up_forward(std::vector<Tensor>{wrong.tensor}, uts, bs, 1.0f), Error);
  EXPECT_THROW(dev_->lora_up_forward(ys4, uts4, bs4, 1.0f), Error);
  EXPECT_THROW(dev_->lora_up_forward(ys, uts, std::vector<Tensor>{b16.tensor}, 1.0f), Error);
  EXPECT_THROW(dev_->lora_up_forward(ys, std::vector<Tensor>{}, bs, 1.0f), Error);
  // dB aliasing B; gt aliasing ut.
  EXPECT_THROW(dev_->lora_up_backward(bs, gts, ys, uts, bs, 1.0f), Error);
  EXPECT_THROW(dev_->lora_up_backward(dbs, uts, ys, uts, bs, 1.0f), Error);
}

}  // namespace
}  // namespace smol::test
