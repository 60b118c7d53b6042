// attention_forward / attention_backward against a double-precision reference of the varlen,
// bottom-right-aligned causal GQA semantics of kernels/backend.h, over several layouts:
// packed training batches (sequences of lengths 5, 1, 11), T = 1 and T = 3, GQA 9/3 and 4/2,
// and KV-cache decoding (q_len < k_len).
#include <algorithm>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "tests/kernels_cpu/test_util.h"

namespace smol::test {
namespace {

struct Case {
  std::string name;
  int64_t q_tokens, k_tokens, q_heads, kv_heads, head_dim;
  AttentionLayout layout;
  // Per-element finite differences cost two reference passes per input element; larger cases
  // check the gradient along random directions instead (BackwardMatchesDirectionalDerivatives).
  bool per_element_gradients = true;
};

AttentionLayout training_layout(std::initializer_list<int32_t> lengths) {
  AttentionLayout layout;
  int32_t begin = 0;
  for (int32_t len : lengths) {
    layout.seqs.push_back({begin, len, begin, len});
    begin += len;
    layout.max_q_len = std::max(layout.max_q_len, len);
    layout.max_k_len = std::max(layout.max_k_len, len);
  }
  return layout;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"packed_5_1_11_gqa9x3", 17, 17, 9, 3, 8, training_layout({5, 1, 11})});
  out.push_back({"single_T3_gqa4x2", 3, 3, 4, 2, 10, training_layout({3})});
  // Lengths past one 32-column tile and one 64-query backward block, head_dim 64: every tile
  // shape of the micro-kernels (whole, ragged, one- and two-vector) on the AVX-512 path.
  out.push_back({"packed_70_45_d64_gqa9x3", 115, 115, 9, 3, 64, training_layout({70, 45}), false});
  out.push_back({"single_T1_gqa4x2", 1, 1, 4, 2, 6, training_layout({1})});
  AttentionLayout decode;  // two cached sequences: 1 new token after 6, 3 new after 6
  decode.seqs = {{0, 1, 0, 7}, {1, 3, 7, 9}};
  decode.max_q_len = 3;
  decode.max_k_len = 9;
  out.push_back({"decode_qlen_lt_klen_gqa9x3", 4, 16, 9, 3, 8, decode});
  // A decode step (every q_len 1) takes the split-K path: caches of 300 and 600 keys cut into
  // 256-key splits merged afterwards, one key, and an empty slot; head_dim 64 (the unrolled
  // variant) and 8 (the run-time one).
  AttentionLayout steps;
  steps.seqs = {{0, 1, 0, 300}, {1, 1, 300, 1}, {2, 0, 301, 0}, {2, 1, 301, 600}};
  steps.max_q_len = 1;
  steps.max_k_len = 600;
  out.push_back({"decode_split_k_d64_gqa9x3", 3, 901, 9, 3, 64, steps, false});
  out.push_back({"decode_split_k_d8_gqa4x2", 3, 901, 4, 2, 8, steps, false});
  return out;
}

// Returns out [Tq, Hq, D] followed by lse [Tq, Hq], in double.
std::vector<double> attention_ref(const Case& c, const std::vector<double>& q,
                                  const std::vector<double>& k, const std::vector<double>& v,
                                  double scale, bool with_lse = true) {
  const int64_t D = c.head_dim, group = c.q_heads / c.kv_heads;
  std::vector<double> out(c.q_tokens * c.q_heads * D, 0.0), lse(c.q_tokens * c.q_heads, 0.0);
  for (const SeqSpan& s : c.layout.seqs)
    for (int64_t h = 0; h < c.q_heads; ++h)
      for (int64_t i = 0; i < s.q_len; ++i) {
        const int64_t row = s.q_begin + i, visible = s.k_len - s.q_len + i + 1;
        const int64_t kvh = h / group;
        std::vector<double> sc(visible);
        double mx = -1e300;
        for (int64_t j = 0; j < visible; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot +=
                q[(row * c.q_heads + h) * D + d] * k[((s.k_begin + j) * c.kv_heads + kvh) * D + d];
          sc[j] = scale * dot;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (double& x : sc) sum += (x = std::exp(x - mx));
        for (int64_t j = 0; j < visible; ++j)
          for (int64_t d = 0; d < D; ++d)
            out[(row * c.q_heads + h) * D + d] +=
                sc[j] / sum * v[((s.k_begin + j) * c.kv_heads + kvh) * D + d];
        lse[row * c.q_heads + h] = mx + std::log(sum);
      }
  if (with_lse) out.insert(out.end(), lse.begin(), lse.end());
  return out;
}

// Random q, k, v for a case (seeds seed, seed + 1, seed + 2) on the host and on the device.
// Values of q and k in [-2, 2] give scores up to ~|D·4·scale|, so the softmax is far from
// uniform.
struct ForwardInputs {
  std::vector<float> q, k, v;
  Tensor tq, tk, tv;
  ForwardInputs(Device& dev, const Case& c, uint32_t seed)
      : q(random_floats(c.q_tokens * c.q_heads * c.head_dim, seed, -2, 2)),
        k(random_floats(c.k_tokens * c.kv_heads * c.head_dim, seed + 1, -2, 2)),
        v(random_floats(c.k_tokens * c.kv_heads * c.head_dim, seed + 2)),
        tq(dev.f32({c.q_tokens, c.q_heads, c.head_dim}, q)),
        tk(dev.f32({c.k_tokens, c.kv_heads, c.head_dim}, k)),
        tv(dev.f32({c.k_tokens, c.kv_heads, c.head_dim}, v)) {}
};

TEST(CpuAttention, ForwardMatchesDoubleReference) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    Device dev;
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    const ForwardInputs in(dev, c, 11);
    Tensor out = dev.zeros(in.tq.shape), lse = dev.zeros({c.q_tokens, c.q_heads});
    dev->attention_forward(out, lse, in.tq, in.tk, in.tv, c.layout, scale);
    auto ref = attention_ref(c, to_double(in.q), to_double(in.k), to_double(in.v), scale);
    const std::vector<double> ref_lse(ref.begin() + out.numel(), ref.end());
    ref.resize(out.numel());
    // fp32 scores/exp/weighted sums of ≤ 11 terms: relative error a few ulp (≈1e-6); 1e-5
    // absolute on O(1) outputs leaves a ×10 margin.
    expect_near_all(dev.get(out), ref, 1e-5, 1e-5, c.name + " out");
    expect_near_all(dev.get(lse), ref_lse, 1e-5, 1e-5, c.name + " lse");
  }
}

// The decode path's splits have a fixed length, so a thread count changes who computes a split,
// never what is summed: one thread and two give the same bits.
TEST(CpuAttention, DecodeIsIndependentOfTheThreadCount) {
#if defined(_OPENMP)
  const Case c = cases()[cases().size() - 2];  // decode_split_k_d64_gqa9x3
  Device dev;
  const ForwardInputs in(dev, c, 21);
  std::vector<std::vector<float>> results;
  const int threads_before = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    Tensor out = dev.zeros(in.tq.shape), lse = dev.zeros({c.q_tokens, c.q_heads});
    dev->attention_forward(out, lse, in.tq, in.tk, in.tv, c.layout, 0.125f);
    std::vector<float> both = dev.get(out), l = dev.get(lse);
    both.insert(both.end(), l.begin(), l.end());
    results.push_back(std::move(both));
  }
  omp_set_num_threads(threads_before);
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
#else
  GTEST_SKIP() << "built without OpenMP: one thread only";
#endif
}

TEST(CpuAttention, RowsOutsideLayoutUntouchedByForward) {
  Device dev;
  AttentionLayout layout;
  layout.seqs = {{1, 2, 1, 2}};  // row 0 and row 3 are not covered
  layout.max_q_len = layout.max_k_len = 2;
  Tensor q = dev.f32({4, 2, 4}, random_floats(32, 1)), k = dev.f32({4, 1, 4}, random_floats(16, 2));
  Tensor v = dev.f32({4, 1, 4}, random_floats(16, 3));
  Tensor out = dev.f32({4, 2, 4}, std::vector<float>(32, 7.0f));
  Tensor lse = dev.f32({4, 2}, std::vector<float>(8, 7.0f));
  dev->attention_forward(out, lse, q, k, v, layout, 0.5f);
  const auto o = dev.get(out);
  for (int i : {0, 1, 2, 3, 4, 5, 6, 7, 24, 25, 26, 27, 28, 29, 30, 31}) EXPECT_EQ(o[i], 7.0f) << i;
  EXPECT_NE(o[8], 7.0f);
  // Key row 1 is the first key of the sequence: query row 1 sees only it, so out = v[1].
  const auto vv = dev.get(v);
  for (int d = 0; d < 4; ++d) EXPECT_FLOAT_EQ(o[8 + d], vv[4 + d]);
}

// One forward and backward of a case on random q, k, v and dout (seeds seed .. seed + 3), with
// the inputs kept for the references. dq, dk, dv start as garbage: the backward overwrites them.
struct BackwardRun {
  float scale;
  std::vector<float> q, k, v, dout;
  std::vector<float> dq, dk, dv;
};

BackwardRun run_backward(const Case& c, uint64_t seed) {
  Device dev;
  BackwardRun r;
  r.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  r.q = random_floats(c.q_tokens * c.q_heads * c.head_dim, seed);
  r.k = random_floats(c.k_tokens * c.kv_heads * c.head_dim, seed + 1);
  r.v = random_floats(c.k_tokens * c.kv_heads * c.head_dim, seed + 2);
  r.dout = random_floats(c.q_tokens * c.q_heads * c.head_dim, seed + 3);
  Tensor tq = dev.f32({c.q_tokens, c.q_heads, c.head_dim}, r.q);
  Tensor tk = dev.f32({c.k_tokens, c.kv_heads, c.head_dim}, r.k);
  Tensor tv = dev.f32({c.k_tokens, c.kv_heads, c.head_dim}, r.v);
  Tensor out = dev.zeros(tq.shape), lse = dev.zeros({c.q_tokens, c.q_heads});
  dev->attention_forward(out, lse, tq, tk, tv, c.layout, r.scale);
  Tensor dq = dev.f32(tq.shape, std::vector<float>(tq.numel(), 9.0f));
  Tensor dk = dev.f32(tk.shape, std::vector<float>(tk.numel(), 9.0f));
  Tensor dv = dev.f32(tv.shape, std::vector<float>(tv.numel(), 9.0f));
  dev->attention_backward(dq, dk, dv, dev.f32(tq.shape, r.dout), tq, tk, tv, out, lse, c.layout,
                          r.scale);
  r.dq = dev.get(dq);
  r.dk = dev.get(dk);
  r.dv = dev.get(dv);
  return r;
}

TEST(CpuAttention, BackwardMatchesFiniteDifferences) {
  for (const Case& c : cases()) {
    if (!c.per_element_gradients) continue;
    SCOPED_TRACE(c.name);
    const BackwardRun r = run_backward(c, 21);
    const float scale = r.scale;
    RefFn f = [&](const std::vector<std::vector<double>>& in) {
      return attention_ref(c, in[0], in[1], in[2], scale, false);
    };
    const std::vector<std::vector<double>> inputs{to_double(r.q), to_double(r.k), to_double(r.v)};
    const auto wd = to_double(r.dout);
    // Gradients are sums of ≤ 3·11 fp32 products of O(1) terms: absolute error ≲ 1e-6; the
    // FD reference is exact to ~1e-8. 2e-5 absolute + 1e-4 relative leaves a wide margin
    // while still catching any wrong term (which would be O(0.01) or more).
    expect_near_all(r.dq, finite_difference(f, inputs, wd, 0), 2e-5, 1e-4, c.name + " dq");
    expect_near_all(r.dk, finite_difference(f, inputs, wd, 1), 2e-5, 1e-4, c.name + " dk");
    expect_near_all(r.dv, finite_difference(f, inputs, wd, 2), 2e-5, 1e-4, c.name + " dv");
  }
}

// For every case: ⟨dq, δq⟩ + ⟨dk, δk⟩ + ⟨dv, δv⟩ must equal the central difference of
// L = Σ dout ⊙ attention(q, k, v) along a random direction δ, for three directions.
TEST(CpuAttention, BackwardMatchesDirectionalDerivatives) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const BackwardRun r = run_backward(c, 31);
    const float scale = r.scale;
    const std::vector<std::vector<float>> grads{r.dq, r.dk, r.dv};
    const std::vector<std::vector<double>> inputs{to_double(r.q), to_double(r.k), to_double(r.v)};
    const auto wd = to_double(r.dout);
    auto loss = [&](const std::vector<std::vector<double>>& in) {
      const std::vector<double> o = attention_ref(c, in[0], in[1], in[2], scale, false);
      double l = 0.0;
      for (size_t i = 0; i < o.size(); ++i) l += wd[i] * o[i];
      return l;
    };
    for (uint64_t seed = 40; seed < 43; ++seed) {
      std::vector<std::vector<double>> dir(3), plus = inputs, minus = inputs;
      double analytic = 0.0, magnitude = 0.0;
      for (size_t which = 0; which < 3; ++which) {
        dir[which] = to_double(random_floats(inputs[which].size(), seed * 3 + which));
        for (size_t i = 0; i < dir[which].size(); ++i) {
          const double h = 1e-4;
          plus[which][i] += h * dir[which][i];
          minus[which][i] -= h * dir[which][i];
          analytic += grads[which][i] * dir[which][i];
          magnitude += std::abs(grads[which][i] * dir[which][i]);
        }
      }
      const double numeric = (loss(plus) - loss(minus)) / 2e-4;
      // The analytic sum adds ≤ ~10⁵ fp32 gradient terms, each within ~1e-6 relative of its
      // exact value; the central difference is exact to ~1e-8·magnitude. 1e-4 of Σ|terms|
      // leaves margin and still catches a wrong term (O(1e-2) of the magnitude or more).
      EXPECT_NEAR(analytic, numeric, 1e-4 * magnitude + 1e-6) << "direction seed " << seed;
    }
  }
}

TEST(CpuAttention, RejectsBadLayoutsAndShapes) {
  Device dev;
  Tensor q = dev.zeros({4, 4, 8}), k = dev.zeros({4, 2, 8}), v = dev.zeros({4, 2, 8});
  Tensor out = dev.zeros({4, 4, 8}), lse = dev.zeros({4, 4});
  AttentionLayout beyond;
  beyond.seqs = {{0, 5, 0, 5}};
  EXPECT_THROW(dev->attention_forward(out, lse, q, k, v, beyond, 1.0f), Error);
  AttentionLayout q_longer;
  q_longer.seqs = {{0, 3, 0, 2}};
  EXPECT_THROW(dev->attention_forward(out, lse, q, k, v, q_longer, 1.0f), Error);
  Tensor k3 = dev.zeros({4, 3, 8}), v3 = dev.zeros({4, 3, 8});
  AttentionLayout ok;
  ok.seqs = {{0, 4, 0, 4}};
  EXPECT_THROW(dev->attention_forward(out, lse, q, k3, v3, ok, 1.0f), Error);  // 4 % 3 != 0
  Tensor flat_q = dev.zeros({4, 32});
  EXPECT_THROW(dev->attention_forward(out, lse, flat_q, k, v, ok, 1.0f), Error);
  EXPECT_NO_THROW(dev->attention_forward(out, lse, q, k, v, ok, 1.0f));
}

}  // namespace
}  // namespace smol::test
