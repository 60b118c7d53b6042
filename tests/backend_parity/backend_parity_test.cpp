// The table-driven parity harness (docs/design.md §10 item 3, after ggml's test-backend-ops):
// every op of the Backend interface, at a few shapes, on every device backend of this build
// (cuda-emu; cuda when a GPU is present) against the cpu backend, each output compared with a
// tolerance derived from bf16 rounding. A coverage test checks, through an OpHook, that the
// table exercises every public op. (tests/cuda_ops keeps the edge cases this table does not:
// unaligned views, scalar paths, error messages, determinism.)
//
// Inputs are drawn once per case, rounded to bf16 so both backends see identical values (the
// device holds activations in bf16, the cpu in fp32), and uploaded in each backend's
// activation dtype (BF16 on cuda, F32 on cpu); optimizer state and statistics are F32.
//
// Tolerances, |device − cpu| ≤ rel·|cpu| + abs, from u = 2^-9, the bf16 unit roundoff
// (8 significant bits, round to nearest): each rounding of a result y to bf16 costs ≤ u·|y|;
// kBf16Rounding = 2u allows a factor two of margin. fp32 arithmetic differences (summation
// order, exp/sin implementations, FMA contraction) are ≲ n·2^-24 relative for n-term sums and
// go into `abs`, scaled by the size of the terms. Each table row states its derivation.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <functional>
#include <limits>
#include <set>

#include "cuda_ops_test_util.h"

namespace smol::test {
namespace {

using Outputs = std::vector<std::vector<float>>;

// One backend's side of a case: makes tensors in the right dtype and keeps them alive.
class Env {
 public:
  explicit Env(Backend& b) : b_(b) {}
  Backend& b() { return b_; }
  DType act() const { return b_.activation_dtype(); }
  Tensor make(const std::vector<float>& v, Shape s, DType dt) {
    owned_.push_back(make_tensor(b_, v, s, dt));
    return owned_.back().tensor;
  }
  Tensor act(const std::vector<float>& v, Shape s) { return make(v, s, act()); }
  Tensor f32(const std::vector<float>& v, Shape s) { return make(v, s, DType::F32); }
  Tensor i32(const std::vector<float>& v, Shape s) { return make(v, s, DType::I32); }
  Tensor zeros(Shape s, DType dt) {
    return make(std::vector<float>(static_cast<size_t>(s.numel()), 0.0f), s, dt);
  }
  std::vector<float> get(const Tensor& t) { return read(b_, t); }
  // F64 device scalars (the optimizer's clip state): zero-filled, read back as doubles.
  Tensor f64_zeros(int64_t n) {
    Owned o;
    o.buffer = b_.allocate(static_cast<size_t>(n) * sizeof(double));
    o.tensor = o.buffer.view(DType::F64, Shape{n});
    owned_.push_back(std::move(o));
    return owned_.back().tensor;
  }
  std::vector<double> get_f64(const Tensor& t) {
    std::vector<double> host(static_cast<size_t>(t.numel()));
    b_.download(host.data(), t);
    return host;
  }

 private:
  Backend& b_;
  std::vector<Owned> owned_;
};

std::vector<float> values(int64_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  return rounded_bf16(random_vector(static_cast<size_t>(n), seed, lo, hi));
}

struct Tolerance {
  double rel = 0, abs = 0;
};

struct OpCase {
  std::string name;                // unique, gtest-safe
  std::vector<Tolerance> outputs;  // one per output of run, in order
  std::function<Outputs(Env&)> run;
  // Optional extra comparison for outputs that need one (e.g. argmax over rounded logits).
  std::function<void(const Outputs& device, const Outputs& cpu)> extra;
};

constexpr double u = 0x1p-9;  // bf16 unit roundoff

std::vector<OpCase> memory_cases() {
  std::vector<OpCase> cases;
  // upload → download is a byte copy; fill_zero writes zeros; copy casts bf16-exact values
  // F32 → act → F32 without any rounding (they are representable): all exact.
  cases.push_back({"upload_download_fill_copy", {{0, 0}, {0, 0}, {0, 0}, {0, 0}}, [](Env& e) {
                     const auto v = values(77, 1);
                     Tensor f = e.f32(v, {7, 11});
                     Tensor ids = e.i32({3, 0, 299, 7}, {4});
                     Tensor a = e.zeros({7, 11}, e.act());
                     e.b().copy(a, f);
                     Tensor back = e.zeros({77}, DType::F32);
                     e.b().copy(back, a);
                     Tensor z = e.f32(v, {77});
                     e.b().fill_zero(z);
                     return Outputs{e.get(f), e.get(ids), e.get(back), e.get(z)};
                   }});
  // scatter_rows (two pairs: a KV-cache append) then gather_rows move rows as bytes: exact.
  cases.push_back({"scatter_gather_rows", {{0, 0}, {0, 0}, {0, 0}}, [](Env& e) {
                     Tensor k = e.act(values(9 * 24, 20), {9, 24});
                     Tensor v = e.act(values(9 * 24, 21), {9, 24});
                     Tensor rows = e.i32({8, 2, 5, 0}, {4});
                     const std::array<Backend::RowScatter, 2> pairs{
                         Backend::RowScatter{k, e.act(values(4 * 24, 22), {4, 24})},
                         Backend::RowScatter{v, e.act(values(4 * 24, 23), {4, 24})}};
                     e.b().scatter_rows(pairs, rows);
                     Tensor last = e.zeros({4, 24}, e.act());
                     e.b().gather_rows(last, k, e.i32({1, 8, 8, 3}, {4}));
                     return Outputs{e.get(k), e.get(v), e.get(last)};
                   }});
  // axpy then scale in the activation dtype: two roundings of the result, 2·kBf16Rounding;
  // fp32 math on identical inputs is exact to 2^-24.
  cases.push_back({"axpy_scale", {{2 * kBf16Rounding, 1e-6}}, [](Env& e) {
                     Tensor y = e.act(values(300, 2), {300});
                     e.b().axpy(y, e.act(values(300, 3), {300}), 0.75f);
                     e.b().scale(y, -1.25f);
                     return Outputs{e.get(y)};
                   }});
  return cases;
}

std::vector<OpCase> matmul_cases() {
  std::vector<OpCase> cases;
  struct Dims {
    int64_t m, n, k;
  };
  for (Dims d : {Dims{7, 5, 33}, Dims{16, 24, 64}})
    for (Transpose ta : {Transpose::No, Transpose::Yes})
      for (Transpose tb : {Transpose::No, Transpose::Yes}) {
        const std::string name = "matmul_" + std::to_string(d.m) + "x" + std::to_string(d.n) + "x" +
                                 std::to_string(d.k) + (ta == Transpose::Yes ? "_T" : "_N") +
                                 (tb == Transpose::Yes ? "T" : "N");
        // c = 0.5·op(a)·op(b) + c: fp32 accumulation of k ≤ 64 products of |x| ≤ 1 differs by
        // ≤ k·2^-24·k ≈ 2^-12 absolute; the result is rounded once to bf16 (kBf16Rounding).
        cases.push_back({name, {{kBf16Rounding, 0x1p-12}}, [d, ta, tb](Env& e) {
                           const Shape sa = ta == Transpose::No ? Shape{d.m, d.k} : Shape{d.k, d.m};
                           const Shape sb = tb == Transpose::No ? Shape{d.k, d.n} : Shape{d.n, d.k};
                           Tensor a = e.act(values(d.m * d.k, 10), sa);
                           Tensor b = e.act(values(d.k * d.n, 11), sb);
                           Tensor c = e.act(values(d.m * d.n, 12), {d.m, d.n});
                           e.b().matmul(c, a, b, ta, tb, 0.5f, 1.0f);
                           return Outputs{e.get(c)};
                         }});
      }
  // Operands that are row slices of a larger tensor, starting off the 256-byte alignment every
  // allocation has (a LoRA group member's rows of the stacked uᵀ, docs/design.md §2.7): the
  // cuda matmul must choose its plan for the actual alignment (2 bytes here with bf16: rows of
  // 33 elements). Same bound as above.
  cases.push_back({"matmul_unaligned_row_slices", {{kBf16Rounding, 0x1p-12}}, [](Env& e) {
                     const int64_t m = 5, n = 7, k = 33;
                     Tensor a = e.act(values((m + 1) * k, 13), {m + 1, k});
                     Tensor b = e.act(values((n + 1) * k, 14), {n + 1, k});
                     Tensor c = e.act(values((m + 1) * n, 15), {m + 1, n});
                     e.b().matmul(c.rows(1, m), a.rows(1, m), b.rows(1, n), Transpose::No,
                                  Transpose::Yes, 0.5f, 1.0f);
                     return Outputs{e.get(c)};
                   }});
  // The residual add inside the GEMM (docs/design.md §2.9): c = h + 0.5·a·bᵀ with h a separate
  // addend (cuBLASLt's C ≠ D). One rounding of the sum; same bound as above.
  cases.push_back({"matmul_addend", {{kBf16Rounding, 0x1p-12}, {0, 0}}, [](Env& e) {
                     const int64_t m = 16, n = 24, k = 64;
                     Tensor a = e.act(values(m * k, 16), {m, k});
                     Tensor b = e.act(values(n * k, 17), {n, k});
                     Tensor h = e.act(values(m * n, 18), {m, n});
                     Tensor c = e.zeros({m, n}, e.act());
                     e.b().matmul(c, a, b, Transpose::No, Transpose::Yes, 0.5f, 1.0f, h);
                     return Outputs{e.get(c), e.get(h)};  // h untouched (exact)
                   }});
  // gate and up from one input (a shared, b two row blocks of one tensor, outputs back to back:
  // one strided-batched GEMM on cuda), then their weight gradients (b shared, F32 outputs
  // accumulated). Same bound as the single matmuls; F32 outputs are not rounded.
  cases.push_back({"matmul_batched", {{kBf16Rounding, 0x1p-12}, {0, 0x1p-12}}, [](Env& e) {
                     const int64_t T = 16, F = 24, C = 32;
                     Tensor x = e.act(values(T * C, 19), {T, C});
                     Tensor w = e.act(values(2 * F * C, 20), {2 * F, C});
                     Tensor y = e.zeros({2 * T, F}, e.act());
                     const Tensor xs[1] = {x};
                     const Tensor ws[2] = {w.rows(0, F), w.rows(F, F)};
                     const Tensor ys[2] = {y.rows(0, T), y.rows(T, T)};
                     e.b().matmul_batched(ys, xs, ws, Transpose::No, Transpose::Yes);
                     Tensor dy = e.act(values(2 * T * F, 21), {2 * T, F});
                     Tensor dw = e.f32(values(2 * F * C, 22), {2 * F, C});
                     const Tensor dys[2] = {dy.rows(0, T), dy.rows(T, T)};
                     const Tensor dws[2] = {dw.rows(0, F), dw.rows(F, F)};
                     e.b().matmul_batched(dws, dys, xs, Transpose::Yes, Transpose::No, 0.5f, 1.0f);
                     return Outputs{e.get(y), e.get(dw)};
                   }});
  return cases;
}

std::vector<OpCase> model_op_cases() {
  std::vector<OpCase> cases;
  // Embedding: a gather of bf16-exact rows (exact); the backward sums dout rows per id in token
  // order into F32 on both backends (exact up to fp32 order: ≤ 4 terms, 2^-22 relative).
  cases.push_back({"embedding_forward_backward", {{0, 0}, {0x1p-22, 1e-7}}, [](Env& e) {
                     const int64_t V = 9, C = 24, T = 6;
                     Tensor table = e.act(values(V * C, 20), {V, C});
                     Tensor ids = e.i32({3, 0, 8, 3, 5, 3}, {T});
                     Tensor out = e.zeros({T, C}, e.act());
                     e.b().embedding_forward(out, ids, table);
                     Tensor dtable = e.f32(values(V * C, 21), {V, C});
                     e.b().embedding_backward(dtable, e.act(values(T * C, 22), {T, C}), ids);
                     return Outputs{e.get(out), e.get(dtable)};
                   }});
  for (int64_t C : {64, 40}) {
    // rstd: fp32 Σx² over C terms vs the cpu's double: ≤ C·2^-24 relative (2^-16 allowed).
    // out: one bf16 rounding. Fused add: sum rounded once, then out from the rounded sum (≤ u
    // through x and ≤ u through rstd) and rounded: 3·kBf16Rounding. Backward: dx accumulates
    // into a bf16 dx (one rounding of the result) from fp32 terms of size |w·dout·rstd| ≲ 2,
    // through rstd (2^-16 relative, above) and C-term means (C·2^-24·2): 2^-13 absolute;
    // dweight: F32 sums over rows of dout·x̂ (2^-16 relative + the same absolute term).
    cases.push_back(
        {"rmsnorm_C" + std::to_string(C),
         {{0x1p-16, 0},
          {kBf16Rounding, 1e-6},
          {kBf16Rounding, 0},
          {3 * kBf16Rounding, 1e-6},
          {kBf16Rounding, 0x1p-13},
          {0x1p-16, 0x1p-13}},
         [C](Env& e) {
           const int64_t T = 5;
           Tensor x = e.act(values(T * C, 30, -2.0f, 2.0f), {T, C});
           Tensor w = e.f32(random_vector(C, 31, 0.5f, 1.5f), {C});
           Tensor out = e.zeros({T, C}, e.act());
           Tensor rstd = e.zeros({T}, DType::F32);
           e.b().rmsnorm_forward(out, rstd, x, w, 1e-5f);
           Outputs o{e.get(rstd), e.get(out)};
           Tensor sum = e.zeros({T, C}, e.act());
           e.b().add_rmsnorm_forward(sum, out, rstd, x, e.act(values(T * C, 32), {T, C}), w, 1e-5f);
           o.push_back(e.get(sum));
           o.push_back(e.get(out));
           // The backward at x (identical on both backends; the rounded sum is not).
           e.b().rmsnorm_forward(out, rstd, x, w, 1e-5f);
           Tensor dx = e.act(values(T * C, 33), {T, C});
           Tensor dw = e.f32(values(C, 34), {C});
           e.b().rmsnorm_backward(dx, dw, e.act(values(T * C, 35), {T, C}), x, w, rstd);
           o.push_back(e.get(dx));
           o.push_back(e.get(dw));
           return o;
         }});
  }
  // RoPE: angles pos·θ^(−2i/D) up to 61 rad, computed in fp32 (61·2^-24 ≈ 2^-18 of angle
  // rounding) and fp32 sin/cos implementations: outputs of |x| ≤ 1 pairs differ by ≤ 2^-16
  // before the one bf16 rounding. Forward, and backward on other values.
  cases.push_back(
      {"rope_forward_backward", {{kBf16Rounding, 0x1p-16}, {kBf16Rounding, 0x1p-16}}, [](Env& e) {
         const int64_t T = 6, H = 3, D = 16;
         Tensor pos = e.i32({0, 1, 2, 7, 30, 61}, {T});
         Tensor x = e.act(values(T * H * D, 40), {T, H, D});
         e.b().rope_forward(x, pos, 10000.0f);
         Tensor dx = e.act(values(T * H * D, 41), {T, H, D});
         e.b().rope_backward(dx, pos, 10000.0f);
         return Outputs{e.get(x), e.get(dx)};
       }});
  // The composite over q and k (one launch on cuda): the same rotation per pair as rope, so the
  // same bounds.
  cases.push_back({"rope_qk_forward_backward",
                   {{kBf16Rounding, 0x1p-16},
                    {kBf16Rounding, 0x1p-16},
                    {kBf16Rounding, 0x1p-16},
                    {kBf16Rounding, 0x1p-16}},
                   [](Env& e) {
                     const int64_t T = 6, Hq = 3, Hkv = 1, D = 16;
                     Tensor pos = e.i32({0, 1, 2, 7, 30, 61}, {T});
                     Tensor q = e.act(values(T * Hq * D, 42), {T, Hq, D});
                     Tensor k = e.act(values(T * Hkv * D, 43), {T, Hkv, D});
                     e.b().rope_qk_forward(q, k, pos, 10000.0f);
                     Tensor dq = e.act(values(T * Hq * D, 44), {T, Hq, D});
                     Tensor dk = e.act(values(T * Hkv * D, 45), {T, Hkv, D});
                     e.b().rope_qk_backward(dq, dk, pos, 10000.0f);
                     return Outputs{e.get(q), e.get(k), e.get(dq), e.get(dk)};
                   }});
  // Attention over a packed training layout (block-diagonal causal) and a decode layout.
  // out: softmax-weighted mean of bf16-exact v (|out| ≤ 1) rounded once, plus fp32 exp/sum
  // differences (≤ 1e-6); lse: fp32 sums of ≤ 9 exps (1e-5 absolute). Gradients go through the
  // device's bf16-rounded out (Δ = Σ dout·out differs by ≤ D·u·|dout||out|), times P·|k| or
  // P·|q| (≤ 2): 2^-4·scale absolute, plus one rounding of each gradient (tests/cuda_ops
  // attention test, same derivation). On cuda (bf16, D = 16: the flash kernels of
  // docs/design.md §2.5) P is also rounded to bf16 as the operand of P·V and Pᵀ·dO, one
  // rounding per term: out gains u·Σ_j p_j|v_j| ≤ u (|v| ≤ 1), dv_j gains u·Σ_(i,h) P_ij|dout_i|
  // ≤ u·(query rows that see key j: q_len·Hq/Hkv) (|dout| ≤ 1); the rounding of dS is inside
  // the 2^-4·scale of dq and dk. (tests/cuda_ops/flash_attention_ops_test.cpp checks the
  // per-element bounds.)
  struct Layout {
    std::string name;
    AttentionLayout layout;
    int64_t tq, tk;
  };
  std::vector<Layout> layouts;
  {
    AttentionLayout l;
    l.seqs = {{0, 4, 0, 4}, {4, 5, 4, 5}};
    l.max_q_len = l.max_k_len = 5;
    layouts.push_back({"packed", l, 10, 10});  // row 9 outside the layout
    AttentionLayout d;
    d.seqs = {{0, 3, 0, 8}};
    d.max_q_len = 3;
    d.max_k_len = 8;
    layouts.push_back({"decode", d, 3, 8});
  }
  for (const Layout& L : layouts) {
    const int64_t hq = 4, hkv = 2, D = 16;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    const double grad_abs = 0x1p-4 * scale;
    const double rows_per_key = static_cast<double>(L.layout.max_q_len * (hq / hkv));
    cases.push_back({"attention_" + L.name,
                     {{kBf16Rounding, kBf16Rounding + 1e-5},
                      {0, 1e-5},
                      {kBf16Rounding, grad_abs},
                      {kBf16Rounding, grad_abs},
                      {kBf16Rounding, kBf16Rounding * rows_per_key + 1e-5}},
                     [L, hq, hkv, D, scale](Env& e) {
                       const Shape sq{L.tq, hq, D}, sk{L.tk, hkv, D};
                       Tensor q = e.act(values(sq.numel(), 50, -2.0f, 2.0f), sq);
                       Tensor k = e.act(values(sk.numel(), 51, -2.0f, 2.0f), sk);
                       Tensor v = e.act(values(sk.numel(), 52), sk);
                       Tensor out = e.zeros(sq, e.act()), lse = e.zeros({L.tq, hq}, DType::F32);
                       const float s = static_cast<float>(scale);
                       e.b().attention_forward(out, lse, q, k, v, L.layout, s);
                       Tensor dq = e.zeros(sq, e.act()), dk = e.zeros(sk, e.act()),
                              dv = e.zeros(sk, e.act());
                       e.b().attention_backward(dq, dk, dv, e.act(values(sq.numel(), 53), sq), q, k,
                                                v, out, lse, L.layout, s);
                       return Outputs{e.get(out), e.get(lse), e.get(dq), e.get(dk), e.get(dv)};
                     }});
  }
  // The fused RoPE ops (docs/design.md §2.7 "Fused RoPE"). attention_rope_backward on the
  // packed layout: attention_backward's bounds, with dq and dk rotated by −angle: a pair's two
  // un-rotated errors mix (|cos|, |sin| ≤ 1), 2·grad_abs, plus one rounding of the rotated value
  // (the fused store rounds once) and sin/cos differences (2^-22 of the pair: in 0x1p-16).
  {
    const int64_t T = 10, hq = 4, hkv = 2, D = 16;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    const double grad_abs = 0x1p-4 * scale;
    AttentionLayout layout;
    layout.seqs = {{0, 4, 0, 4}, {4, 5, 4, 5}};
    layout.max_q_len = layout.max_k_len = 5;
    cases.push_back(
        {"attention_rope_backward",
         {{kBf16Rounding, 2 * grad_abs + 0x1p-16},
          {kBf16Rounding, 2 * grad_abs + 0x1p-16},
          {kBf16Rounding, kBf16Rounding * 5 * (hq / hkv) + 1e-5}},
         [=](Env& e) {
           const Shape sq{T, hq, D}, sk{T, hkv, D};
           Tensor q = e.act(values(sq.numel(), 54, -2.0f, 2.0f), sq);
           Tensor k = e.act(values(sk.numel(), 55, -2.0f, 2.0f), sk);
           Tensor v = e.act(values(sk.numel(), 56), sk);
           Tensor pos = e.i32({0, 1, 2, 3, 40, 41, 42, 43, 44, 0}, {T});
           Tensor out = e.zeros(sq, e.act()), lse = e.zeros({T, hq}, DType::F32);
           const float s = static_cast<float>(scale);
           e.b().attention_forward(out, lse, q, k, v, layout, s);
           Tensor dq = e.zeros(sq, e.act()), dk = e.zeros(sk, e.act()), dv = e.zeros(sk, e.act());
           e.b().attention_rope_backward(dq, dk, dv, e.act(values(sq.numel(), 57), sq), q, k, v,
                                         out, lse, layout, s, Backend::Rotary{pos, 10000.0f});
           return Outputs{e.get(dq), e.get(dk), e.get(dv)};
         }});
  }
  // rope_append_kv: rope_qk_forward's bounds on q, k and the appended k rows (the other cache
  // rows untouched: exact), v rows copied: exact.
  cases.push_back(
      {"rope_append_kv",
       {{kBf16Rounding, 0x1p-16}, {kBf16Rounding, 0x1p-16}, {kBf16Rounding, 0x1p-16}, {0, 0}},
       [](Env& e) {
         const int64_t T = 3, Hq = 3, Hkv = 1, D = 16, R = 8;
         Tensor q = e.act(values(T * Hq * D, 46), {T, Hq, D});
         Tensor k = e.act(values(T * Hkv * D, 47), {T, Hkv, D});
         Tensor v = e.act(values(T * Hkv * D, 48), {T, Hkv, D});
         Tensor k_cache = e.act(values(R * Hkv * D, 49), {R, Hkv, D});
         Tensor v_cache = e.act(values(R * Hkv * D, 59), {R, Hkv, D});
         e.b().rope_append_kv(q, k, v, k_cache, v_cache, e.i32({5, 0, 7}, {T}),
                              Backend::Rotary{e.i32({5, 0, 33}, {T}), 10000.0f});
         return Outputs{e.get(q), e.get(k), e.get(k_cache), e.get(v_cache)};
       }});
  // SwiGLU: fp32 silu (exp implementations differ by ≤ ~2^-22 relative) on identical inputs,
  // each output rounded once.
  cases.push_back({"swiglu_forward_backward",
                   {{kBf16Rounding, 1e-6}, {kBf16Rounding, 1e-6}, {kBf16Rounding, 1e-6}},
                   [](Env& e) {
                     const Shape s{9, 40};
                     Tensor gate = e.act(values(s.numel(), 60, -4.0f, 4.0f), s);
                     Tensor up = e.act(values(s.numel(), 61), s);
                     Tensor out = e.zeros(s, e.act());
                     e.b().swiglu_forward(out, gate, up);
                     Tensor dgate = e.zeros(s, e.act()), dup = e.zeros(s, e.act());
                     e.b().swiglu_backward(dgate, dup, e.act(values(s.numel(), 62), s), gate, up);
                     return Outputs{e.get(out), e.get(dgate), e.get(dup)};
                   }});
  // The concatenated backward (docs/design.md §2.9): [dgate | dup] rows, same math and bound.
  cases.push_back({"swiglu_backward_concat", {{kBf16Rounding, 1e-6}}, [](Env& e) {
                     const Shape s{9, 40};
                     Tensor gate = e.act(values(s.numel(), 63, -4.0f, 4.0f), s);
                     Tensor up = e.act(values(s.numel(), 64), s);
                     Tensor dgate_up = e.zeros({9, 80}, e.act());
                     e.b().swiglu_backward(dgate_up, e.act(values(s.numel(), 65), s), gate, up);
                     return Outputs{e.get(dgate_up)};
                   }});
  // Cross-entropy on identical logits: lse from fp32 sums of V exps vs the cpu's double sum of
  // approximate exps, |Δ| ≲ 2^-18 on |lse| ≤ 16 (2^-14 allowed); dlogits = s·(p − onehot)
  // rounded once plus the same 2^-14. Argmax of identical values is exact.
  cases.push_back({"cross_entropy_argmax",  // losses, dlogits, argmax
                   {{0, 0x1p-14}, {kBf16Rounding, 0x1p-14}, {0, 0}},
                   [](Env& e) {
                     const int64_t T = 6, V = 301;
                     Tensor logits = e.act(values(T * V, 70, -4.0f, 4.0f), {T, V});
                     Tensor targets = e.i32({0, 300, -100, 17, 17, 150}, {T});
                     Tensor am = e.zeros({T}, DType::I32);
                     e.b().argmax(am, logits);
                     Tensor losses = e.zeros({T}, DType::F32);
                     Tensor dlogits = logits;  // in place
                     e.b().cross_entropy(losses, &dlogits, logits, targets, 0.5f);
                     return Outputs{e.get(losses), e.get(dlogits), e.get(am)};
                   }});
  // Dropout: the same counter-based mask on both; kept values x/(1−p) rounded once.
  cases.push_back({"dropout", {{kBf16Rounding, 0}}, [](Env& e) {
                     Tensor x = e.act(values(1000, 80), {10, 100});
                     e.b().dropout(x, x, 0.3f, 12345);
                     return Outputs{e.get(x)};
                   }});
  // Sampling: the exact integer rule of kernels/token_sampling.h on identical fp32 logits, so the
  // tokens are equal (docs/design.md §3 "Sampling"): top_p < 1 and = 1, uniforms at both ends.
  cases.push_back({"sample_tokens", {{0, 0}, {0, 0}}, [](Env& e) {
                     const int64_t T = 5, V = 301;
                     Tensor logits = e.f32(values(T * V, 91, -6.0f, 6.0f), {T, V});
                     Tensor u = e.f32({0.0f, 0.25f, 0.5f, 0.75f, 1.0f - 0x1p-24f}, {T});
                     Tensor nucleus = e.zeros({T}, DType::I32), all = e.zeros({T}, DType::I32);
                     e.b().sample_tokens(nucleus, logits, u, 0.8f, 0.9f);
                     e.b().sample_tokens(all, logits, u, 1.3f, 1.0f);
                     return Outputs{e.get(nucleus), e.get(all)};
                   }});
  // ---- LoRA down-projection with dropout on the fly (docs/design.md §2.7) ----
  // Two adapters (r 4) reading one x [9, 24], p = 0.1, s = 2; |x|, |A|, |gt|, |dx0|, |dA0| ≤ 1,
  // kept values scaled by k = 1/(1−p). ut: an fp32 sum of C products ≤ k in another order
  // (≤ 2·C·2^-24·C·k) rounded once to bf16; dA (fp32): dA0 + s·Σ over T products ≤ k
  // (≤ 2·T·2^-24·(1 + s·T·k)); dx: dx0 + s·Σ over n·r products ≤ k in another order, rounded
  // once (≤ 2·(n·r + 1)·2^-24·(1 + s·n·r·k)). The masks are the dropout op's (the same hash).
  {
    constexpr int64_t T = 9, C = 24, r = 4, n = 2;
    constexpr double k = 1.0 / 0.9, s = 2.0;
    const Tolerance ut{kBf16Rounding, 2.0 * C * 0x1p-24 * C * k};
    const Tolerance da{0x1p-22, 2.0 * T * 0x1p-24 * (1.0 + s * T * k)};
    const Tolerance dx{kBf16Rounding, 2.0 * (n * r + 1) * 0x1p-24 * (1.0 + s * n * r * k)};
    cases.push_back(
        {"lora_down_forward_backward", {ut, ut, da, da, dx}, [](Env& e) {
           const std::vector<uint64_t> seeds = {31, 32};
           Tensor x = e.act(values(T * C, 81), {T, C});
           Tensor scratch = e.zeros({T, C}, e.act());
           std::vector<Tensor> as, uts, gts, das;
           for (int64_t i = 0; i < n; ++i) {
             as.push_back(e.f32(values(r * C, 82 + 4 * i), {r, C}));
             uts.push_back(e.zeros({r, T}, e.act()));
             gts.push_back(e.act(values(r * T, 83 + 4 * i), {r, T}));
             das.push_back(e.f32(values(r * C, 84 + 4 * i), {r, C}));
           }
           Tensor dx = e.act(values(T * C, 90), {T, C});
           e.b().lora_down_forward(uts, x, as, 0.1f, seeds, scratch);
           e.b().lora_down_backward(das, dx, gts, x, as, 0.1f, seeds, 2.0f, scratch);
           return Outputs{e.get(uts[0]), e.get(uts[1]), e.get(das[0]), e.get(das[1]), e.get(dx)};
         }});
  }
  // ---- LoRA up-projections fused (docs/design.md §2.7) ----
  // Two adapters (r 4; N 20 and 7) over T = 9 tokens, s = 2; |ut|, |B|, |y0|, |dy|, |dB0| ≤ 1.
  // y: y0 + s·Σ over r products ≤ 1 in another order (≤ 2·(r + 1)·2^-24·(1 + s·r)), rounded once
  // to bf16; gt: Σ over N ≤ 20 products (≤ 2·N·2^-24·N), rounded once; dB (fp32): dB0 + s·Σ over
  // T products (≤ 2·(T + 1)·2^-24·(1 + s·T)).
  {
    constexpr int64_t T = 9, r = 4, n = 2;
    constexpr std::array<int64_t, n> N = {20, 7};
    constexpr double s = 2.0;
    const Tolerance y{kBf16Rounding, 2.0 * (r + 1) * 0x1p-24 * (1.0 + s * r)};
    const Tolerance gt{kBf16Rounding, 2.0 * 20 * 0x1p-24 * 20};
    const Tolerance db{0x1p-22, 2.0 * (T + 1) * 0x1p-24 * (1.0 + s * T)};
    cases.push_back({"lora_up_forward_backward", {y, y, gt, gt, db, db}, [N](Env& e) {
                       std::vector<Tensor> uts, bs, ys, dys, dbs, gts;
                       for (int64_t i = 0; i < n; ++i) {
                         uts.push_back(e.act(values(r * T, 101 + 6 * i), {r, T}));
                         bs.push_back(e.f32(values(N[i] * r, 102 + 6 * i), {N[i], r}));
                         ys.push_back(e.act(values(T * N[i], 103 + 6 * i), {T, N[i]}));
                         dys.push_back(e.act(values(T * N[i], 104 + 6 * i), {T, N[i]}));
                         dbs.push_back(e.f32(values(N[i] * r, 105 + 6 * i), {N[i], r}));
                         gts.push_back(e.zeros({r, T}, e.act()));
                       }
                       e.b().lora_up_forward(ys, uts, bs, 2.0f);
                       e.b().lora_up_backward(dbs, gts, dys, uts, bs, 2.0f);
                       return Outputs{e.get(ys[0]),  e.get(ys[1]),  e.get(gts[0]),
                                      e.get(gts[1]), e.get(dbs[0]), e.get(dbs[1])};
                     }});
  }
  return cases;
}

// The composite LM head over T = 260 rows (two chunks of 256 and 4; the second wholly
// unsupervised, skipped when host targets are given), hidden and W in [−½, ½], C = 24.
// Logits are rounded to bf16 on the device: |Δlogit| ≤ e = 2u·C·¼ (twice the rounding of the
// largest possible |logit| = C·¼). Then |Δloss| ≤ 2e (lse and the target logit each move ≤ e);
// |Δp_v| ≤ 2e·p_v, so the dlogits row moves ≤ s·(2e + 2u) in total (2u: its own rounding) and
// dhidden = dlogits·W moves ≤ s·(2e + 2u)·½ plus its rounding; dweight = Σ_t dlogits_t ⊗ h_t
// moves ≤ T·s·(2e + 2u)·½ with s = 1/T. Argmax: the device's choice must be a cpu maximum up
// to 2e (rounded logits may reorder near-ties).
OpCase lm_head_case(bool host_targets) {
  const int64_t T = 260, C = 24, V = 50;
  const double e_logit = 2 * u * C * 0.25;
  const double s = 1.0 / T;
  const double drow = s * (2 * e_logit + 2 * u) * 0.5;
  OpCase c;
  c.name = std::string("lm_head_cross_entropy") + (host_targets ? "_skipping" : "");
  c.outputs = {{0, 2 * e_logit},
               {kBf16Rounding, drow},
               {0, T * drow},
               {kBf16Rounding, 0x1p-12},  // logits: the matmul rows' tolerance
               {0, 1e9}};                 // argmax: by `extra`
  c.run = [=](Env& e) {
    std::vector<float> tgt(T);
    for (int64_t t = 0; t < T; ++t) tgt[t] = t >= 256 || t % 7 == 3 ? -100.0f : (t * 13) % V;
    Tensor hidden = e.act(values(T * C, 90, -0.5f, 0.5f), {T, C});
    Tensor w = e.act(values(V * C, 91, -0.5f, 0.5f), {V, C});
    Tensor targets = e.i32(tgt, {T});
    LmHeadOutputs out;
    out.losses = e.f32(std::vector<float>(T, 7.0f), {T});  // must become 0 where ignored
    out.dhidden = e.zeros({T, C}, e.act());
    out.dweight = e.f32(std::vector<float>(V * C, 0.0f), {V, C});
    if (!host_targets) out.argmax = e.zeros({T}, DType::I32);
    std::vector<int32_t> host(tgt.begin(), tgt.end());
    Tensor scratch = e.zeros({Backend::kLmHeadChunkRows, V}, e.act());
    e.b().lm_head_cross_entropy(
        out, hidden, w, targets, scratch, static_cast<float>(s),
        host_targets ? std::span<const int32_t>(host) : std::span<const int32_t>());
    // The logits themselves, for the argmax check (which reads the cpu's fp32 ones).
    Tensor logits = e.zeros({T, V}, e.act());
    e.b().matmul(logits, hidden, w, Transpose::No, Transpose::Yes);
    return Outputs{e.get(out.losses), e.get(out.dhidden), e.get(out.dweight), e.get(logits),
                   host_targets ? std::vector<float>() : e.get(out.argmax)};
  };
  c.extra = [=](const Outputs& dev, const Outputs& cpu) {
    if (host_targets) return;
    const std::vector<float>& logits = cpu[3];
    for (int64_t t = 0; t < T; ++t) {
      const float* row = logits.data() + t * V;
      const float best = *std::max_element(row, row + V);
      const int chosen = static_cast<int>(dev[4][t]);
      ASSERT_TRUE(chosen >= 0 && chosen < V) << "row " << t;
      EXPECT_GE(row[chosen], best - 2 * e_logit) << "row " << t << " chose " << chosen;
    }
  };
  return c;
}

std::vector<OpCase> optimizer_cases() {
  std::vector<OpCase> cases;
  // Σx² over an F32 and an activation tensor: fp32 partial sums of ≤ 2050 squares (≤ 2050·2^-24
  // relative worst case) against the cpu's double: 2^-12 relative.
  // accumulate_sum: double sums on both, one fp32 rounding of acc: 2^-23 relative.
  cases.push_back({"sum_of_squares_accumulate_sum", {{0x1p-12, 0}, {0x1p-23, 0}}, [](Env& e) {
                     Tensor a = e.f32(values(2050, 100), {2050});
                     Tensor b = e.act(values(333, 101), {3, 111});
                     const Tensor both[] = {a, b};
                     const double ss = e.b().sum_of_squares(both);
                     Tensor acc = e.f32({1.5f}, {1});
                     e.b().accumulate_sum(acc, a);
                     e.b().accumulate_sum(acc, a);
                     return Outputs{{static_cast<float>(ss)}, e.get(acc)};
                   }});
  // AdamW, three steps: the same fp32 formula on both (FMA contraction, correctly rounded
  // sqrt/division): a few ulps per step, 2^-20 relative (tests/cuda_ops AdamW test).
  cases.push_back({"adamw_step", {{0x1p-20, 1e-9}, {0x1p-20, 1e-9}, {0x1p-20, 1e-9}}, [](Env& e) {
                     const int64_t n = 333;
                     Tensor p = e.f32(random_vector(n, 110), {n});
                     Tensor g = e.f32(random_vector(n, 111), {n});
                     Tensor m = e.f32(random_vector(n, 112, -0.1f, 0.1f), {n});
                     Tensor v = e.f32(random_vector(n, 113, 0.0f, 0.01f), {n});
                     std::vector<AdamWTensor> list{{p, g, m, v, 0.01f}};
                     for (int64_t step = 1; step <= 3; ++step)
                       e.b().adamw_step(list, AdamWHyper{1e-3f, 0.9f, 0.999f, 1e-8f, step, 0.7f});
                     return Outputs{e.get(p), e.get(m), e.get(v)};
                   }});
  // The device-side clip (AdamWHyper::clip_state): Σg² into an F64 scalar — the same bits as
  // sum_of_squares on the same backend (output 2: their difference, exactly 0) and the cpu's
  // double within Σx²'s 2^-12 above — then three clipped AdamW steps (clip binds: Σg² ≈ 111 for
  // 333 uniform(−1, 1) values, max norm 0.5), which are the adamw_step case's fp32 formula with
  // a factor that differs from the cpu's only through Σg²: 2^-12 relative in the factor, so
  // 2^-11 on m, v and the update's size (m/√v is scale-free; the step size lr·|m/√v| ≤ lr). Then
  // a step whose gradient holds a NaN: skipped (output 6: p's change, exactly 0) and recorded
  // (output 7: clip_state[1], the step, exactly 4).
  cases.push_back(
      {"sum_of_squares_into_adamw_device_clip",
       {{0x1p-12, 0}, {0, 0}, {0x1p-11, 1e-9}, {0x1p-11, 1e-9}, {0x1p-11, 1e-9}, {0, 0}, {0, 0}},
       [](Env& e) {
         const int64_t n = 333;
         Tensor a = e.f32(values(2050, 100), {2050});
         Tensor b = e.act(values(333, 101), {3, 111});
         const Tensor both[] = {a, b};
         Tensor norm2 = e.f64_zeros(1);
         e.b().sum_of_squares_into(norm2, both);
         const double ss = e.get_f64(norm2)[0];
         const double ss_host = e.b().sum_of_squares(both);
         Tensor p = e.f32(random_vector(n, 110), {n});
         Tensor g = e.f32(random_vector(n, 111), {n});
         Tensor m = e.f32(random_vector(n, 112, -0.1f, 0.1f), {n});
         Tensor v = e.f32(random_vector(n, 113, 0.0f, 0.01f), {n});
         Tensor clip = e.f64_zeros(3);
         std::vector<AdamWTensor> list{{p, g, m, v, 0.01f}};
         AdamWHyper hyper{1e-3f, 0.9f, 0.999f, 1e-8f, 1, 1.0f};
         hyper.clip_state = clip;
         hyper.max_grad_norm = 0.5;
         for (int64_t step = 1; step <= 3; ++step) {
           hyper.step = step;
           e.b().sum_of_squares_into(clip.elements(0, 1), std::span<const Tensor>(&g, 1));
           e.b().adamw_step(list, hyper);
         }
         const std::vector<float> p3 = e.get(p);
         std::vector<float> bad = e.get(g);
         bad[7] = std::numeric_limits<float>::quiet_NaN();
         e.b().upload(g, bad.data());
         hyper.step = 4;
         e.b().sum_of_squares_into(clip.elements(0, 1), std::span<const Tensor>(&g, 1));
         e.b().adamw_step(list, hyper);
         const std::vector<float> p4 = e.get(p);
         std::vector<float> change(p4.size());
         for (size_t i = 0; i < p4.size(); ++i) change[i] = p4[i] - p3[i];
         return Outputs{{static_cast<float>(ss)},
                        {static_cast<float>(ss - ss_host)},
                        p3,
                        e.get(m),
                        e.get(v),
                        change,
                        {static_cast<float>(e.get_f64(clip)[1])}};
       }});
  return cases;
}

const std::vector<OpCase>& all_cases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> all;
    for (auto part : {memory_cases(), matmul_cases(), model_op_cases(), optimizer_cases()})
      for (OpCase& c : part) all.push_back(std::move(c));
    all.push_back(lm_head_case(false));
    all.push_back(lm_head_case(true));
    return all;
  }();
  return cases;
}

// The device backends of this build (cpu is the reference).
std::vector<std::string> devices_to_test() {
  std::vector<std::string> out;
  for (const std::string& d : available_devices())
    if (d != "cpu" && d != "auto") out.push_back(d);
  return out;
}

struct Param {
  std::string device;
  size_t index;
};

class BackendParity : public ::testing::TestWithParam<Param> {};

TEST_P(BackendParity, MatchesCpu) {
  const Param& p = GetParam();
  std::unique_ptr<Backend> device;
  try {
    device = make_backend(p.device);
  } catch (const Error& e) {
    GTEST_SKIP() << "device '" << p.device << "' is not available here: " << e.what();
  }
  auto cpu = make_backend("cpu");
  const OpCase& c = all_cases()[p.index];
  Env dev_env(*device), cpu_env(*cpu);
  const Outputs got = c.run(dev_env), want = c.run(cpu_env);
  ASSERT_EQ(got.size(), c.outputs.size()) << c.name;
  ASSERT_EQ(want.size(), c.outputs.size()) << c.name;
  for (size_t i = 0; i < got.size(); ++i) {
    if (c.outputs[i].abs >= 1e9) continue;  // compared by `extra` only
    expect_close(got[i], want[i], c.outputs[i].rel, c.outputs[i].abs,
                 p.device + " " + c.name + " output " + std::to_string(i));
  }
  if (c.extra) c.extra(got, want);
}

std::vector<Param> all_params() {
  std::vector<Param> params;
  for (const std::string& d : devices_to_test())
    for (size_t i = 0; i < all_cases().size(); ++i) params.push_back({d, i});
  return params;
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string name = info.param.device + "_" + all_cases()[info.param.index].name;
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(Table, BackendParity, ::testing::ValuesIn(all_params()), param_name);

// Records which public ops a backend ran (an OpHook, kernels/backend.h).
class OpRecorder final : public OpHook {
 public:
  std::set<std::string> seen;
  void before_op(Backend&, const char* op, int) override { seen.insert(op); }
  void after_op(Backend&, const char*, int) override {}
};

// Every public op of Backend, as the hook names them (kept next to kernels/backend.h's list:
// adding an op there without adding it here and to the table fails this test).
const char* const kInterfaceOps[] = {"upload",
                                     "download",
                                     "fill_zero",
                                     "copy",
                                     "scatter_rows",
                                     "gather_rows",
                                     "matmul",
                                     "matmul_batched",
                                     "axpy",
                                     "scale",
                                     "embedding_forward",
                                     "embedding_backward",
                                     "rmsnorm_forward",
                                     "add_rmsnorm_forward",
                                     "rmsnorm_backward",
                                     "rope_forward",
                                     "rope_backward",
                                     "rope_qk_forward",
                                     "rope_qk_backward",
                                     "attention_forward",
                                     "attention_backward",
                                     "attention_rope_backward",
                                     "rope_append_kv",
                                     "swiglu_forward",
                                     "swiglu_backward",
                                     "cross_entropy",
                                     "argmax",
                                     "sample_tokens",
                                     "dropout",
                                     "lm_head_cross_entropy",
                                     "sum_of_squares",
                                     "sum_of_squares_into",
                                     "accumulate_sum",
                                     "adamw_step",
                                     "lora_down_forward",
                                     "lora_down_backward",
                                     "lora_up_forward",
                                     "lora_up_backward"};

TEST(BackendParityCoverage, TheTableExercisesEveryOp) {
  auto cpu = make_backend("cpu");
  OpRecorder recorder;
  cpu->set_op_hook(&recorder);
  for (const OpCase& c : all_cases()) {
    Env env(*cpu);
    c.run(env);
  }
  cpu->set_op_hook(nullptr);
  for (const char* op : kInterfaceOps)
    EXPECT_TRUE(recorder.seen.count(op)) << "no table row exercises " << op;
  for (const std::string& op : recorder.seen)
    EXPECT_TRUE(std::find_if(std::begin(kInterfaceOps), std::end(kInterfaceOps),
                             [&](const char* k) { return op == k; }) != std::end(kInterfaceOps))
        << op << " is an op the coverage list does not know";
}

// The hook sees composites around their primitives, one level deeper.
TEST(BackendParityCoverage, HookReportsNestingDepth) {
  auto cpu = make_backend("cpu");
  struct DepthRecorder final : OpHook {
    std::vector<std::pair<std::string, int>> events;
    void before_op(Backend&, const char* op, int depth) override { events.push_back({op, depth}); }
    void after_op(Backend&, const char*, int) override {}
  } recorder;
  Env env(*cpu);
  Tensor hidden = env.f32(values(4 * 8, 1), {4, 8}), w = env.f32(values(5 * 8, 2), {5, 8});
  Tensor targets = env.i32({1, 2, -100, 4}, {4});
  LmHeadOutputs out;
  out.losses = env.zeros({4}, DType::F32);
  Tensor scratch = env.zeros({4, 5}, DType::F32);
  cpu->set_op_hook(&recorder);
  cpu->lm_head_cross_entropy(out, hidden, w, targets, scratch, 1.0f);
  cpu->set_op_hook(nullptr);
  ASSERT_GE(recorder.events.size(), 3u);
  EXPECT_EQ(recorder.events[0], (std::pair<std::string, int>{"lm_head_cross_entropy", 0}));
  EXPECT_EQ(recorder.events[1], (std::pair<std::string, int>{"matmul", 1}));
  EXPECT_EQ(recorder.events[2], (std::pair<std::string, int>{"cross_entropy", 1}));
}

// Device names with ordinals: cpu ignores them, cuda-emu has only :0, malformed ones fail.
TEST(BackendParityCoverage, DeviceOrdinals) {
  EXPECT_EQ(make_backend("cpu:3")->name(), "cpu");
  EXPECT_THROW(make_backend("cpu:x"), Error);
  EXPECT_THROW(make_backend("cuda-emu:"), Error);
  EXPECT_THROW(make_backend("tpu:0"), Error);
  const auto names = available_devices();
  if (std::find(names.begin(), names.end(), "cuda-emu") != names.end()) {
    EXPECT_EQ(make_backend("cuda-emu:0")->device_ordinal(), 0);
    EXPECT_NE(make_backend("cuda-emu:0")->stream_handle(), nullptr);
    EXPECT_THROW(make_backend("cuda-emu:1"), Error);
  }
}

}  // namespace
}  // namespace smol::test
