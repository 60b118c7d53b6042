// cuda vs cpu: causal GQA attention forward and backward over a packed batch (two training
// sequences of odd lengths, block-diagonal causal) and a KV-cache decode layout (3 new queries
// over 8 cached keys), with one row outside the layout.
#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

void run_attention_case(Backend& dev, Backend& cpu, const AttentionLayout& layout, int64_t tq,
                        int64_t tk, const std::string& name) {
  const int64_t hq = 4, hkv = 2, dim = 20;
  const float scale = 1.0f / std::sqrt(static_cast<float>(dim));
  const Shape sq{tq, hq, dim}, sk{tk, hkv, dim};
  const auto q = rounded_bf16(random_vector(tq * hq * dim, 100, -2.0f, 2.0f));
  const auto k = rounded_bf16(random_vector(tk * hkv * dim, 101, -2.0f, 2.0f));
  const auto v = rounded_bf16(random_vector(tk * hkv * dim, 102));
  const auto dout = rounded_bf16(random_vector(tq * hq * dim, 103));
  const std::vector<float> zq(tq * hq * dim, 0.0f), zk(tk * hkv * dim, 0.0f);

  auto run = [&](Backend& b, DType dt, std::vector<std::vector<float>>& results) {
    Owned qd = make_tensor(b, q, sq, dt), kd = make_tensor(b, k, sk, dt),
          vd = make_tensor(b, v, sk, dt), dy = make_tensor(b, dout, sq, dt);
    Owned out = make_tensor(b, zq, sq, dt);
    Owned lse = make_tensor(b, std::vector<float>(tq * hq, 0.0f), {tq, hq}, DType::F32);
    Owned dq = make_tensor(b, zq, sq, dt), dk = make_tensor(b, zk, sk, dt),
          dv = make_tensor(b, zk, sk, dt);
    b.attention_forward(out.tensor, lse.tensor, qd.tensor, kd.tensor, vd.tensor, layout, scale);
    b.attention_backward(dq.tensor, dk.tensor, dv.tensor, dy.tensor, qd.tensor, kd.tensor,
                         vd.tensor, out.tensor, lse.tensor, layout, scale);
    for (const Owned* t : {&out, &lse, &dq, &dk, &dv}) results.push_back(read(b, t->tensor));
  };
  std::vector<std::vector<float>> got, want;
  run(dev, DType::BF16, got);
  run(cpu, DType::F32, want);
  // out: softmax-weighted mean of bf16-exact v in fp32 (|out| ≤ 1), rounded once: 2^-8
  // relative plus fp32 exp/sum differences (≤ 1e-6 absolute). lse: fp32 sums of ≤ 9 exps.
  expect_close(got[0], want[0], kBf16Rounding, 1e-5, "attention_forward out " + name);
  expect_close(got[1], want[1], 0, 1e-5, "attention_forward lse " + name);
  // Gradients use the device's own bf16-rounded out (through Δ = dout·out, ≤ 2^-9·|dout||out|
  // per channel, ≤ 20·2^-9 summed) and are rounded once: 2^-8 relative plus an absolute term
  // for that Δ difference times P·|k| or P·|q| (≤ 2): 2^-4 · scale.
  const double abs = 0x1p-4 * scale;
  expect_close(got[2], want[2], kBf16Rounding, abs, "attention_backward dq " + name);
  expect_close(got[3], want[3], kBf16Rounding, abs, "attention_backward dk " + name);
  expect_close(got[4], want[4], kBf16Rounding, 1e-5, "attention_backward dv " + name);
}

TEST_F(CudaOpsTest, AttentionPackedTrainingLayoutMatchesCpu) {
  AttentionLayout layout;
  layout.seqs.push_back({0, 5, 0, 5});
  layout.seqs.push_back({5, 9, 5, 9});  // row 14 is outside the layout
  layout.max_q_len = layout.max_k_len = 9;
  run_attention_case(*dev_, *cpu_, layout, 15, 15, "packed 5+9");
}

TEST_F(CudaOpsTest, AttentionDecodeLayoutMatchesCpu) {
  AttentionLayout layout;
  layout.seqs.push_back({0, 3, 0, 8});  // 3 new tokens at positions 5, 6, 7 of 8 cached keys
  layout.max_q_len = 3;
  layout.max_k_len = 8;
  run_attention_case(*dev_, *cpu_, layout, 3, 8, "decode 3 of 8");
}

}  // namespace
}  // namespace smol::test
