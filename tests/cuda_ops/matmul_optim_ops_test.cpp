// cuda vs cpu: matmul through cuBLASLt for every transpose combination (bf16 inputs, bf16 or
// fp32 output, alpha/beta, one-row and odd shapes, mixed F32/BF16 inputs), the deterministic
// sum of squares and the multi-tensor AdamW step.
#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

struct MatmulCase {
  int64_t m, n, k;
  bool ta, tb;
  DType out;
  float alpha, beta;
};

class MatmulTest : public CudaOpsTest, public ::testing::WithParamInterface<MatmulCase> {};

TEST_P(MatmulTest, MatchesCpu) {
  const MatmulCase p = GetParam();
  const Shape sa = p.ta ? Shape{p.k, p.m} : Shape{p.m, p.k};
  const Shape sb = p.tb ? Shape{p.n, p.k} : Shape{p.k, p.n};
  const auto a = rounded_bf16(random_vector(p.m * p.k, 40));
  const auto b = rounded_bf16(random_vector(p.k * p.n, 41));
  const auto c0 = rounded_bf16(random_vector(p.m * p.n, 42));
  const auto ta = p.ta ? Transpose::Yes : Transpose::No;
  const auto tb = p.tb ? Transpose::Yes : Transpose::No;
  Owned ad = make_tensor(*dev_, a, sa, DType::BF16);
  Owned bd = make_tensor(*dev_, b, sb, DType::BF16);
  Owned cd = make_tensor(*dev_, c0, {p.m, p.n}, p.out);
  dev_->matmul(cd.tensor, ad.tensor, bd.tensor, ta, tb, p.alpha, p.beta);
  Owned ac = make_tensor(*cpu_, a, sa, DType::F32);
  Owned bc = make_tensor(*cpu_, b, sb, DType::F32);
  Owned cc = make_tensor(*cpu_, c0, {p.m, p.n}, DType::F32);
  cpu_->matmul(cc.tensor, ac.tensor, bc.tensor, ta, tb, p.alpha, p.beta);
  // Same (bf16-exact) inputs; both accumulate in fp32 in different orders: |error| ≤
  // K·2^-24·Σ|a·b| ≤ K²·2^-24 for |a|,|b| ≤ 1 (plus |beta·c| ≤ 1 rounded once). A bf16 output
  // adds one rounding. The cases cover every transpose, so a wrong ld or op fails by O(1).
  const double abs = static_cast<double>(p.k) * (p.k + 1) * 0x1p-24;
  const std::string name = "matmul " + std::to_string(p.m) + "x" + std::to_string(p.n) + "x" +
                           std::to_string(p.k) + (p.ta ? " T" : " N") + (p.tb ? "T" : "N") +
                           " -> " + dtype_name(p.out);
  expect_close(read(*dev_, cd.tensor), read(*cpu_, cc.tensor),
               p.out == DType::BF16 ? kBf16Rounding : 0, abs, name);
  // A second call hits the cached plan and must give the same bits.
  Owned cd2 = make_tensor(*dev_, c0, {p.m, p.n}, p.out);
  dev_->matmul(cd2.tensor, ad.tensor, bd.tensor, ta, tb, p.alpha, p.beta);
  EXPECT_EQ(read(*dev_, cd2.tensor), read(*dev_, cd.tensor)) << name << ": cached plan differs";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MatmulTest,
    ::testing::Values(MatmulCase{37, 19, 53, false, true, DType::BF16, 1.0f, 0.0f},   // Linear
                      MatmulCase{37, 53, 19, false, false, DType::BF16, 1.0f, 0.0f},  // dx
                      MatmulCase{19, 53, 37, true, false, DType::F32, 1.0f, 1.0f},    // dW +=
                      MatmulCase{13, 11, 29, true, true, DType::F32, 0.5f, -2.0f},
                      MatmulCase{1, 576, 64, false, true, DType::BF16, 1.0f, 0.0f},  // one row
                      MatmulCase{1, 1, 1, false, false, DType::F32, 2.0f, 0.5f}));

TEST_F(CudaOpsTest, MatmulWithAnF32OperandCastsItToBf16) {
  const int64_t m = 9, n = 5, k = 21;  // bf16 activations x [m, k] against F32 LoRA A [n, k]
  const auto x = rounded_bf16(random_vector(m * k, 43));
  const auto w = random_vector(n * k, 44);  // not bf16-representable: the cast rounds it
  Owned xd = make_tensor(*dev_, x, {m, k}, DType::BF16);
  Owned wd = make_tensor(*dev_, w, {n, k}, DType::F32);
  Owned yd = make_tensor(*dev_, std::vector<float>(m * n, 0.0f), {m, n}, DType::F32);
  dev_->matmul(yd.tensor, xd.tensor, wd.tensor, Transpose::No, Transpose::Yes);
  Owned xc = make_tensor(*cpu_, x, {m, k}, DType::F32);
  Owned wc = make_tensor(*cpu_, w, {n, k}, DType::F32);
  Owned yc = make_tensor(*cpu_, std::vector<float>(m * n, 0.0f), {m, n}, DType::F32);
  cpu_->matmul(yc.tensor, xc.tensor, wc.tensor, Transpose::No, Transpose::Yes);
  // One rounding of each w: |error| ≤ 2^-9·Σ|x·w| ≤ 2^-9·K; allow 2^-8·K.
  expect_close(read(*dev_, yd.tensor), read(*cpu_, yc.tensor), 0, kBf16Rounding * k,
               "matmul bf16 x F32 -> F32");
}

TEST_F(CudaOpsTest, SumOfSquaresMatchesCpuAndIsDeterministic) {
  const std::vector<int64_t> sizes{1, 1000, 4099, 77};
  std::vector<Owned> dev_tensors, cpu_tensors;
  std::vector<Tensor> dev_views, cpu_views;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const auto v = rounded_bf16(random_vector(sizes[i], 50 + i, -3.0f, 3.0f));
    const DType dt = i % 2 ? DType::BF16 : DType::F32;  // mixed, as grads of frozen/LoRA
    dev_tensors.push_back(make_tensor(*dev_, v, {sizes[i]}, dt));
    cpu_tensors.push_back(make_tensor(*cpu_, v, {sizes[i]}, DType::F32));
    dev_views.push_back(dev_tensors.back().tensor);
    cpu_views.push_back(cpu_tensors.back().tensor);
  }
  const double got = dev_->sum_of_squares(dev_views);
  const double want = cpu_->sum_of_squares(cpu_views);
  // Per-thread fp32 partials of ≤ 4099/(32·256)+1 terms, then fp32 block trees of 256:
  // relative error ≤ ~(1 + 8)·2^-24 of the (all positive) sum; allow 2^-18.
  EXPECT_NEAR(got, want, want * 0x1p-18);
  std::printf("[ max-err  ] %-48s %.3e\n", "sum_of_squares (relative)",
              std::fabs(got - want) / want);
  EXPECT_EQ(dev_->sum_of_squares(dev_views), got) << "two calls gave different bits";
}

TEST_F(CudaOpsTest, AdamWStepsMatchCpu) {
  const std::vector<int64_t> sizes{1, 333, 2050};
  const float wd[] = {0.0f, 0.01f, 0.1f};
  std::vector<std::array<Owned, 4>> dev_state, cpu_state;
  for (size_t i = 0; i < sizes.size(); ++i) {
    std::array<std::vector<float>, 4> init{
        random_vector(sizes[i], 60 + i), random_vector(sizes[i], 70 + i),
        random_vector(sizes[i], 80 + i, -0.1f, 0.1f), random_vector(sizes[i], 90 + i, 0.0f, 0.01f)};
    std::array<Owned, 4> d, c;
    for (int j = 0; j < 4; ++j) {
      d[j] = make_tensor(*dev_, init[j], {sizes[i]}, DType::F32);
      c[j] = make_tensor(*cpu_, init[j], {sizes[i]}, DType::F32);
    }
    dev_state.push_back(std::move(d));
    cpu_state.push_back(std::move(c));
  }
  for (int64_t step = 1; step <= 3; ++step) {
    std::vector<AdamWTensor> dev_list, cpu_list;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const auto& d = dev_state[i];
      const auto& c = cpu_state[i];
      dev_list.push_back({d[0].tensor, d[1].tensor, d[2].tensor, d[3].tensor, wd[i]});
      cpu_list.push_back({c[0].tensor, c[1].tensor, c[2].tensor, c[3].tensor, wd[i]});
    }
    const AdamWHyper hyper{1e-3f, 0.9f, 0.999f, 1e-8f, step, 0.7f};
    dev_->adamw_step(dev_list, hyper);
    cpu_->adamw_step(cpu_list, hyper);
  }
  // Same fp32 formula in the same order; the device may contract a multiply-add into an FMA
  // and sqrtf/division are correctly rounded on both: a few ulps per step on O(1) values.
  const char* names[] = {"param", "grad", "m", "v"};
  for (size_t i = 0; i < sizes.size(); ++i)
    for (int j : {0, 2, 3})
      expect_close(read(*dev_, dev_state[i][j].tensor), read(*cpu_, cpu_state[i][j].tensor),
                   0x1p-20, 1e-9,
                   "adamw_step " + std::string(names[j]) + " n=" + std::to_string(sizes[i]));
}

TEST_F(CudaOpsTest, CrossEntropyMatchesCpu) {
  for (DType dt : {DType::F32, DType::BF16}) {
    const int64_t rows = 6, vocab = 1001;
    const auto x = rounded_bf16(random_vector(rows * vocab, 96, -8.0f, 8.0f));
    const std::vector<float> targets{3, -100, 1000, 0, 517, -100};
    const float scale = 1.0f / 4.0f;  // 1 / supervised tokens
    Owned xd = make_tensor(*dev_, x, {rows, vocab}, dt);
    Owned td = make_tensor(*dev_, targets, {rows}, DType::I32);
    Owned ld = make_tensor(*dev_, std::vector<float>(rows, 1.0f), {rows}, DType::F32);
    dev_->cross_entropy(ld.tensor, &xd.tensor, xd.tensor, td.tensor, scale);  // in place
    Owned xc = make_tensor(*cpu_, x, {rows, vocab}, DType::F32);
    Owned tc = make_tensor(*cpu_, targets, {rows}, DType::I32);
    Owned lc = make_tensor(*cpu_, std::vector<float>(rows, 1.0f), {rows}, DType::F32);
    cpu_->cross_entropy(lc.tensor, &xc.tensor, xc.tensor, tc.tensor, scale);
    // Loss: lse from an fp32 sum of V exps (device) vs the cpu's double sum of approximate
    // exps: relative error of the sum ≤ ~(V/256 + 8)·2^-24 plus exp error, so |Δlse| ≲ 2^-18
    // on |lse| ≤ ~16: allow 2^-14 absolute.
    expect_close(read(*dev_, ld.tensor), read(*cpu_, lc.tensor), 0, 0x1p-14,
                 std::string("cross_entropy loss ") + dtype_name(dt));
    // Gradient: scale·(p − onehot) with |p error| ≤ |p|·2^-14-ish; a bf16 output adds one
    // rounding of each element.
    expect_close(read(*dev_, xd.tensor), read(*cpu_, xc.tensor),
                 (dt == DType::BF16 ? kBf16Rounding : 0) + 0x1p-14, 1e-9,
                 std::string("cross_entropy dlogits ") + dtype_name(dt));
  }
  Owned xd = make_tensor(*dev_, std::vector<float>(2 * 5, 0.0f), {2, 5}, DType::BF16);
  Owned td = make_tensor(*dev_, {1.0f, 5.0f}, {2}, DType::I32);
  Owned ld = make_tensor(*dev_, std::vector<float>(2, 0.0f), {2}, DType::F32);
  // A target outside the vocabulary is found on the device only in the debug mode (on a GPU it
  // is off by default: the host checks every batch).
  dev_->set_device_checks(true);
  EXPECT_THROW(dev_->cross_entropy(ld.tensor, nullptr, xd.tensor, td.tensor, 1.0f), Error);
}

TEST_F(CudaOpsTest, CrossEntropyTakesTheArgmaxInTheSamePass) {
  // The LM head's fused path: loss, in-place gradient and argmax in one call; the argmax is the
  // one of the logits before they became the gradient, on ignored rows too, first maximum wins.
  const int64_t rows = 5, vocab = 4099;  // not a multiple of the 256-thread block
  auto x = rounded_bf16(random_vector(rows * vocab, 97, -6.0f, 6.0f));
  for (int64_t r = 0; r < rows; ++r) {  // a planted tie: the earlier index must win
    x[r * vocab + 100 + 13 * r] = 9.0f;
    x[r * vocab + 3000 + r] = 9.0f;
  }
  x[2 * vocab + 4098] = 12.0f;  // the last element is the maximum of row 2
  const std::vector<float> targets{3, -100, 4098, 0, -100};
  for (bool backward : {false, true}) {
    Owned xd = make_tensor(*dev_, x, {rows, vocab}, DType::BF16);
    Owned td = make_tensor(*dev_, targets, {rows}, DType::I32);
    Owned ld = make_tensor(*dev_, std::vector<float>(rows, 1.0f), {rows}, DType::F32);
    Owned ad = make_tensor(*dev_, std::vector<float>(rows, -1.0f), {rows}, DType::I32);
    dev_->cross_entropy(ld.tensor, backward ? &xd.tensor : nullptr, xd.tensor, td.tensor, 0.5f,
                        ad.tensor);
    Owned xc = make_tensor(*cpu_, x, {rows, vocab}, DType::F32);
    Owned tc = make_tensor(*cpu_, targets, {rows}, DType::I32);
    Owned lc = make_tensor(*cpu_, std::vector<float>(rows, 1.0f), {rows}, DType::F32);
    Owned ac = make_tensor(*cpu_, std::vector<float>(rows, -1.0f), {rows}, DType::I32);
    cpu_->argmax(ac.tensor, xc.tensor);
    cpu_->cross_entropy(lc.tensor, backward ? &xc.tensor : nullptr, xc.tensor, tc.tensor, 0.5f);
    const std::vector<float> argmax = read(*dev_, ad.tensor);
    EXPECT_EQ(argmax, read(*cpu_, ac.tensor));
    EXPECT_EQ(argmax[0], 100.0f);
    EXPECT_EQ(argmax[2], 4098.0f);
    // The bounds of CrossEntropyMatchesCpu (online softmax sums the same exps in another order).
    expect_close(read(*dev_, ld.tensor), read(*cpu_, lc.tensor), 0, 0x1p-14,
                 "cross_entropy+argmax loss");
    if (backward)
      expect_close(read(*dev_, xd.tensor), read(*cpu_, xc.tensor), kBf16Rounding + 0x1p-14, 1e-9,
                   "cross_entropy+argmax dlogits");
  }
}

TEST_F(CudaOpsTest, ArgmaxMatchesCpuAndPicksTheFirstMaximum) {
  for (int64_t rows : {1, 5}) {
    const int64_t vocab = 49157;  // not a multiple of the 256-thread block
    auto x = rounded_bf16(random_vector(rows * vocab, 95, -4.0f, 4.0f));
    for (int64_t r = 0; r < rows; ++r) {  // plant a tie: the earlier index must win
      x[r * vocab + 300 + r * 7] = 9.0f;
      x[r * vocab + 40000 - r] = 9.0f;
    }
    Owned xd = make_tensor(*dev_, x, {rows, vocab}, DType::BF16);
    Owned od = make_tensor(*dev_, std::vector<float>(rows, 0.0f), {rows}, DType::I32);
    dev_->argmax(od.tensor, xd.tensor);
    Owned xc = make_tensor(*cpu_, x, {rows, vocab}, DType::F32);
    Owned oc = make_tensor(*cpu_, std::vector<float>(rows, 0.0f), {rows}, DType::I32);
    cpu_->argmax(oc.tensor, xc.tensor);
    // Comparisons only, on identical (bf16-exact) values: the indices must be equal.
    const auto got = read(*dev_, od.tensor), want = read(*cpu_, oc.tensor);
    EXPECT_EQ(got, want);
    for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(got[r], 300 + r * 7);
    expect_close(got, want, 0, 0, "argmax rows=" + std::to_string(rows));
  }
}

}  // namespace
}  // namespace smol::test
