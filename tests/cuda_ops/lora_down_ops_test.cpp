// cuda vs cpu: lora_down_forward / lora_down_backward, the LoRA down-projection with dropout
// masks drawn inside the kernels (kernels/cuda/lora_down.cu, docs/design.md §2.7 "LoRA dropout
// on the fly") against the cpu backend's default composition (dropout + matmul + axpy,
// kernels/lora_down.cpp). Shapes: 1–3 members, ragged T (37; 300 spans two 256-token dA
// partials), C = 64 (16-byte loads) and C = 100 (not a multiple of the 64-column tile nor of 8:
// scalar loads), r = 4 and 8, p = 0.1 and p = 0, with and without dx; ΣR = 72 takes the
// default composition on cuda too.
#include <array>

#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

struct Case {
  int n;
  int64_t T, C, r;
  float p;
};

// The host side of one group: x [T, C], Aᵢ [r, C], gtᵢ [r, T], dAᵢ, dx initial values. x, gt
// and dx are bf16-exact so both backends start from the same numbers.
struct Inputs {
  std::vector<float> x, dx;
  std::vector<std::vector<float>> a, gt, da;
  std::vector<uint64_t> seeds;
};

Inputs make_inputs(const Case& c, uint32_t salt) {
  Inputs in;
  in.x = rounded_bf16(random_vector(c.T * c.C, 100 + salt));
  in.dx = rounded_bf16(random_vector(c.T * c.C, 200 + salt));
  for (int i = 0; i < c.n; ++i) {
    in.a.push_back(random_vector(c.r * c.C, 300 + salt + i));
    in.gt.push_back(rounded_bf16(random_vector(c.r * c.T, 400 + salt + i)));
    in.da.push_back(random_vector(c.r * c.C, 500 + salt + i));
    in.seeds.push_back(0xd809u + 7919u * i + salt);
  }
  return in;
}

// One backend's run: uploads, forward, backward; returns ut, dA, dx (fp32 on the host).
struct Outputs {
  std::vector<std::vector<float>> ut, da;
  std::vector<float> dx;
};

Outputs run(Backend& b, const Case& c, const Inputs& in, bool with_dx, float s) {
  const DType act = b.activation_dtype();
  Owned x = make_tensor(b, in.x, {c.T, c.C}, act);
  Owned dx = make_tensor(b, in.dx, {c.T, c.C}, act);
  Owned scratch = make_tensor(b, std::vector<float>(c.T * c.C, 0.0f), {c.T, c.C}, act);
  std::vector<Owned> a, ut, gt, da;
  std::vector<Tensor> as, uts, gts, das;
  for (int i = 0; i < c.n; ++i) {
    a.push_back(make_tensor(b, in.a[i], {c.r, c.C}, DType::F32));
    ut.push_back(make_tensor(b, std::vector<float>(c.r * c.T, 0.0f), {c.r, c.T}, act));
    gt.push_back(make_tensor(b, in.gt[i], {c.r, c.T}, act));
    da.push_back(make_tensor(b, in.da[i], {c.r, c.C}, DType::F32));
    as.push_back(a.back().tensor);
    uts.push_back(ut.back().tensor);
    gts.push_back(gt.back().tensor);
    das.push_back(da.back().tensor);
  }
  b.lora_down_forward(uts, x.tensor, as, c.p, in.seeds, scratch.tensor);
  b.lora_down_backward(das, with_dx ? dx.tensor : Tensor{}, gts, x.tensor, as, c.p, in.seeds, s,
                       scratch.tensor);
  Outputs out;
  for (int i = 0; i < c.n; ++i) {
    out.ut.push_back(read(b, ut[i].tensor));
    out.da.push_back(read(b, da[i].tensor));
  }
  out.dx = read(b, dx.tensor);
  return out;
}

TEST_F(CudaOpsTest, LoraDownForwardAndBackwardMatchCpu) {
  const float s = 2.0f;
  const std::array cases = {Case{1, 37, 64, 8, 0.1f},   Case{2, 37, 100, 4, 0.1f},
                            Case{3, 37, 64, 8, 0.1f},   Case{2, 37, 64, 8, 0.0f},
                            Case{2, 300, 100, 8, 0.1f}, Case{3, 37, 64, 24, 0.1f}};
  uint32_t salt = 0;
  for (const Case& c : cases) {
    for (bool with_dx : {true, false}) {
      const Inputs in = make_inputs(c, ++salt);
      const Outputs got = run(*dev_, c, in, with_dx, s), want = run(*cpu_, c, in, with_dx, s);
      const std::string name = "n=" + std::to_string(c.n) + " T=" + std::to_string(c.T) +
                               " C=" + std::to_string(c.C) + " r=" + std::to_string(c.r) +
                               " p=" + std::to_string(c.p) + (with_dx ? " dx" : " no-dx");
      // |x|, |A|, |gt| ≤ 1; kept values are scaled by 1/(1−p). An fp32 sum of K products
      // differs between two summation orders by at most 2·K·2^-24·Σ|products| (γ_K each way).
      const double keep = 1.0 / (1.0 - c.p);
      // ΣR > 64 takes the default composition on the device: A rounded to bf16 in the matmul's
      // cast and drop(x) stored in bf16 (one rounding each, 2^-9, per product), and for dx
      // per member dx_lora, its dropout and the axpy each rounded once more (2^-9 of their
      // magnitude ≤ 1 + s·n·r·keep).
      const bool fallback = c.n * c.r > 64;
      const double rounding = 0x1p-9;
      for (int i = 0; i < c.n; ++i) {
        // ut: K = C products of size ≤ keep, then one bf16 rounding of the result on the
        // device (kBf16Rounding relative).
        const double ut_abs =
            2.0 * c.C * 0x1p-24 * c.C * keep + (fallback ? 2 * rounding * c.C * keep : 0.0);
        expect_close(got.ut[i], want.ut[i], kBf16Rounding, ut_abs,
                     "lora_down_forward ut[" + std::to_string(i) + "] " + name);
        // dA (fp32 both sides): K = T products of size ≤ s·keep added to dA0 (|dA0| ≤ 1).
        const double da_abs = 2.0 * c.T * 0x1p-24 * (1.0 + s * c.T * keep) +
                              (fallback ? rounding * s * c.T * keep : 0.0);
        expect_close(got.da[i], want.da[i], 0x1p-22, da_abs,
                     "lora_down_backward dA[" + std::to_string(i) + "] " + name);
      }
      // dx: dx0 + s·Σᵢ keep·Σ_r gt·A, K = n·r products of size ≤ s·keep (plus dx0, |dx0| ≤ 1),
      // summed in another order, then one bf16 rounding on the device (the cpu sums in fp32).
      const double dx_magnitude = 1.0 + s * c.n * c.r * keep;
      const double dx_abs =
          2.0 * (c.n * c.r + 1) * 0x1p-24 * dx_magnitude +
          (fallback ? (rounding * s * c.r * keep + 3 * rounding * dx_magnitude) * c.n : 0.0);
      expect_close(got.dx, want.dx, with_dx ? kBf16Rounding : 0.0, with_dx ? dx_abs : 0.0,
                   "lora_down_backward dx " + name);
    }
  }
}

// The kernels' masks are Backend::dropout's: one-hot rows of A pick single columns of x, so
// utᵢ[k, t] is drop_i(x)[t, column k of member i] rounded once to bf16 — equal to the cpu
// dropout's value rounded to bf16, bit for bit, including every dropped (zero) element.
TEST_F(CudaOpsTest, LoraDownMasksAreTheDropoutOpsMasks) {
  const int n = 3;
  const int64_t T = 37, C = 48, r = 16;  // member i reads columns [16·i, 16·i + 16)
  const float p = 0.3f;
  const auto x = rounded_bf16(random_vector(T * C, 61, 0.5f, 1.5f));  // never zero
  Owned xd = make_tensor(*dev_, x, {T, C}, DType::BF16);
  Owned scratch = make_tensor(*dev_, std::vector<float>(T * C, 0.0f), {T, C}, DType::BF16);
  std::vector<Owned> a, ut;
  std::vector<Tensor> as, uts;
  const std::vector<uint64_t> seeds = {11, 12, 13};
  for (int i = 0; i < n; ++i) {
    std::vector<float> onehot(r * C, 0.0f);
    for (int64_t k = 0; k < r; ++k) onehot[k * C + 16 * i + k] = 1.0f;
    a.push_back(make_tensor(*dev_, onehot, {r, C}, DType::F32));
    ut.push_back(make_tensor(*dev_, std::vector<float>(r * T, 0.0f), {r, T}, DType::BF16));
    as.push_back(a.back().tensor);
    uts.push_back(ut.back().tensor);
  }
  dev_->lora_down_forward(uts, xd.tensor, as, p, seeds, scratch.tensor);
  int64_t dropped = 0;
  for (int i = 0; i < n; ++i) {
    Owned xc = make_tensor(*cpu_, x, {T, C}, DType::F32);
    cpu_->dropout(xc.tensor, xc.tensor, p, seeds[i]);
    const auto want_full = read(*cpu_, xc.tensor);
    std::vector<float> want(r * T);
    for (int64_t k = 0; k < r; ++k)
      for (int64_t t = 0; t < T; ++t) {
        want[k * T + t] = round_bf16(want_full[t * C + 16 * i + k]);
        dropped += want[k * T + t] == 0.0f;
      }
    expect_close(read(*dev_, ut[i].tensor), want, 0, 0,
                 "one-hot lora_down_forward = dropout, member " + std::to_string(i));
  }
  EXPECT_GT(dropped, 0) << "p = 0.3 over " << n * r * T << " elements dropped none";
}

TEST_F(CudaOpsTest, LoraDownRefusesBadArguments) {
  const int64_t T = 5, C = 8, r = 2;
  Owned x = make_tensor(*dev_, std::vector<float>(T * C, 1.0f), {T, C}, DType::BF16);
  Owned scratch = make_tensor(*dev_, std::vector<float>(T * C, 0.0f), {T, C}, DType::BF16);
  Owned a = make_tensor(*dev_, std::vector<float>(r * C, 1.0f), {r, C}, DType::F32);
  Owned ut = make_tensor(*dev_, std::vector<float>(r * T, 0.0f), {r, T}, DType::BF16);
  Owned wrong = make_tensor(*dev_, std::vector<float>(r * T, 0.0f), {T, r}, DType::BF16);
  const std::vector<uint64_t> seed = {1}, seeds4 = {1, 2, 3, 4};
  const std::vector<Tensor> as = {a.tensor}, uts = {ut.tensor}, wrongs = {wrong.tensor};
  const std::vector<Tensor> as4(4, a.tensor), uts4(4, ut.tensor);
  EXPECT_THROW(dev_->lora_down_forward(wrongs, x.tensor, as, 0.1f, seed, scratch.tensor), Error);
  EXPECT_THROW(dev_->lora_down_forward(uts4, x.tensor, as4, 0.1f, seeds4, scratch.tensor), Error);
  EXPECT_THROW(dev_->lora_down_forward(uts, x.tensor, as, 1.0f, seed, scratch.tensor), Error);
  EXPECT_THROW(dev_->lora_down_forward(uts, x.tensor, as, 0.1f, seeds4, scratch.tensor), Error);
  const std::vector<Tensor> das = {a.tensor};  // dA aliasing A
  EXPECT_THROW(
      dev_->lora_down_backward(das, Tensor{}, uts, x.tensor, as, 0.1f, seed, 1.0f, scratch.tensor),
      Error);
}

}  // namespace
}  // namespace smol::test
