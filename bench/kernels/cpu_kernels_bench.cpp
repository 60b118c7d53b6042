// cpu backend microbenchmarks at SmolLM2-135M shapes (docs/formats.md §1): C = 576, F = 1536,
// Hq = 9, Hkv = 3, D = 64, V = 49152, a training micro-batch of T = 2048 tokens packed as
// 4 sequences of 512. Each case reports FLOP/s (matmul, attention) or bytes/s (memory-bound
// ops) through counters. Timings are not tests (docs/design.md §10).
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"

namespace smol {
namespace {

constexpr int64_t kHidden = 576, kFfn = 1536, kQHeads = 9, kKvHeads = 3, kHeadDim = 64;
constexpr int64_t kVocab = 49152, kSeqs = 4, kSeqLen = 512, kTokens = kSeqs * kSeqLen;

// The backend and its buffers for one benchmark case, filled with uniform(−1, 1) values.
class Bench {
 public:
  Bench() : backend_(make_cpu_backend()) {}
  Backend& operator*() { return *backend_; }
  Backend* operator->() { return backend_.get(); }
  Tensor random(Shape shape, uint64_t seed = 1) {
    Tensor t = zeros(shape);
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> host(static_cast<size_t>(shape.numel()));
    for (float& x : host) x = dist(rng);
    backend_->upload(t, host.data());
    return t;
  }
  Tensor zeros(Shape shape, DType dtype = DType::F32) {
    buffers_.push_back(backend_->allocate(static_cast<size_t>(shape.numel()) * dtype_size(dtype)));
    return buffers_.back().view(dtype, shape);
  }
  Tensor ids(int64_t count, int32_t modulo) {
    Tensor t = zeros({count}, DType::I32);
    std::vector<int32_t> host(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) host[i] = static_cast<int32_t>((i * 7919) % modulo);
    backend_->upload(t, host.data());
    return t;
  }

 private:
  std::unique_ptr<Backend> backend_;
  std::vector<Buffer> buffers_;
};

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["FLOP/s"] =
      benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}
void set_bytes(benchmark::State& state, double bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes_per_iteration * state.iterations()));
}

// ---- matmul: the linear layers of one block and the LM head -------------------------------
// Args: M, N, K, transpose a, transpose b. y = x·Wᵀ is (No, Yes); dx = dy·W is (No, No);
// dW = dyᵀ·x is (Yes, No).
void BM_CpuMatmul(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool ta = state.range(3), tb = state.range(4);
  Bench b;
  Tensor a = b.random(ta ? Shape{k, m} : Shape{m, k}, 1);
  Tensor w = b.random(tb ? Shape{n, k} : Shape{k, n}, 2);
  Tensor c = b.zeros({m, n});
  for (auto _ : state)
    b->matmul(c, a, w, ta ? Transpose::Yes : Transpose::No, tb ? Transpose::Yes : Transpose::No);
  set_flops(state, 2.0 * m * n * k);
}
BENCHMARK(BM_CpuMatmul)
    ->ArgNames({"M", "N", "K", "ta", "tb"})
    ->Args({kTokens, kHidden, kHidden, 0, 1})  // q_proj / o_proj forward
    ->Args({kTokens, 192, kHidden, 0, 1})      // k_proj / v_proj forward
    ->Args({kTokens, kFfn, kHidden, 0, 1})     // gate / up forward
    ->Args({kTokens, kHidden, kFfn, 0, 1})     // down forward
    ->Args({kTokens, kHidden, kFfn, 0, 0})     // gate/up backward dx = dy·W
    ->Args({kFfn, kHidden, kTokens, 1, 0})     // gate/up backward dW = dyᵀ·x
    ->Args({kTokens, 8, kHidden, 0, 1})        // LoRA A (r = 8)
    ->Args({kSeqLen, kVocab, kHidden, 0, 1})   // LM head, one 512-token chunk
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// ---- embedding -----------------------------------------------------------------------------
void BM_CpuEmbeddingForward(benchmark::State& state) {
  Bench b;
  Tensor table = b.random({kVocab, kHidden}), out = b.zeros({kTokens, kHidden});
  Tensor ids = b.ids(kTokens, kVocab);
  for (auto _ : state) b->embedding_forward(out, ids, table);
  set_bytes(state, 2.0 * kTokens * kHidden * 4);
}
BENCHMARK(BM_CpuEmbeddingForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CpuEmbeddingBackward(benchmark::State& state) {
  Bench b;
  Tensor dtable = b.zeros({kVocab, kHidden}), dout = b.random({kTokens, kHidden});
  Tensor ids = b.ids(kTokens, kVocab);
  for (auto _ : state) b->embedding_backward(dtable, dout, ids);
  set_bytes(state, 3.0 * kTokens * kHidden * 4);
}
BENCHMARK(BM_CpuEmbeddingBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- RMSNorm -------------------------------------------------------------------------------
void BM_CpuRmsnormForward(benchmark::State& state) {
  Bench b;
  Tensor x = b.random({kTokens, kHidden}), w = b.random({kHidden});
  Tensor out = b.zeros({kTokens, kHidden}), rstd = b.zeros({kTokens});
  for (auto _ : state) b->rmsnorm_forward(out, rstd, x, w, 1e-5f);
  set_bytes(state, 2.0 * kTokens * kHidden * 4);
}
BENCHMARK(BM_CpuRmsnormForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CpuAddRmsnormForward(benchmark::State& state) {
  Bench b;
  Tensor a = b.random({kTokens, kHidden}), x = b.random({kTokens, kHidden}, 2);
  Tensor w = b.random({kHidden}), out = b.zeros({kTokens, kHidden}), rstd = b.zeros({kTokens});
  for (auto _ : state) b->add_rmsnorm_forward(a, out, rstd, a, x, w, 1e-5f);
  set_bytes(state, 4.0 * kTokens * kHidden * 4);
}
BENCHMARK(BM_CpuAddRmsnormForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CpuRmsnormBackward(benchmark::State& state) {
  Bench b;
  Tensor x = b.random({kTokens, kHidden}), w = b.random({kHidden});
  Tensor out = b.zeros({kTokens, kHidden}), rstd = b.zeros({kTokens});
  b->rmsnorm_forward(out, rstd, x, w, 1e-5f);
  Tensor dout = b.random({kTokens, kHidden}, 3), dx = b.zeros({kTokens, kHidden});
  Tensor dw = b.zeros({kHidden});
  for (auto _ : state) b->rmsnorm_backward(dx, dw, dout, x, w, rstd);
  set_bytes(state, 4.0 * kTokens * kHidden * 4);
}
BENCHMARK(BM_CpuRmsnormBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- RoPE ----------------------------------------------------------------------------------
void BM_CpuRope(benchmark::State& state) {
  const bool backward = state.range(0);
  Bench b;
  Tensor q = b.random({kTokens, kQHeads, kHeadDim}), pos = b.ids(kTokens, kSeqLen);
  for (auto _ : state) {
    if (backward)
      b->rope_backward(q, pos, 100000.0f);
    else
      b->rope_forward(q, pos, 100000.0f);
  }
  set_bytes(state, 2.0 * q.numel() * 4);
}
BENCHMARK(BM_CpuRope)
    ->ArgName("backward")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- attention: 4 sequences of 512, causal, GQA 9/3, D = 64 --------------------------------
AttentionLayout packed_layout() {
  AttentionLayout layout;
  for (int32_t s = 0; s < kSeqs; ++s) {
    const int32_t begin = static_cast<int32_t>(s * kSeqLen);
    layout.seqs.push_back(
        {begin, static_cast<int32_t>(kSeqLen), begin, static_cast<int32_t>(kSeqLen)});
  }
  layout.max_q_len = layout.max_k_len = static_cast<int32_t>(kSeqLen);
  return layout;
}
// Causal: each query sees on average (L+1)/2 keys; 2 FLOP per multiply-add, Q·Kᵀ and P·V.
double attention_forward_flops() {
  return 2.0 * 2.0 * kSeqs * kQHeads * (kSeqLen * (kSeqLen + 1) / 2.0) * kHeadDim;
}

void BM_CpuAttentionForward(benchmark::State& state) {
  Bench b;
  Tensor q = b.random({kTokens, kQHeads, kHeadDim}, 1),
         k = b.random({kTokens, kKvHeads, kHeadDim}, 2);
  Tensor v = b.random({kTokens, kKvHeads, kHeadDim}, 3);
  Tensor out = b.zeros(q.shape), lse = b.zeros({kTokens, kQHeads});
  const AttentionLayout layout = packed_layout();
  for (auto _ : state) b->attention_forward(out, lse, q, k, v, layout, 0.125f);
  set_flops(state, attention_forward_flops());
}
BENCHMARK(BM_CpuAttentionForward)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CpuAttentionBackward(benchmark::State& state) {
  Bench b;
  Tensor q = b.random({kTokens, kQHeads, kHeadDim}, 1),
         k = b.random({kTokens, kKvHeads, kHeadDim}, 2);
  Tensor v = b.random({kTokens, kKvHeads, kHeadDim}, 3);
  Tensor out = b.zeros(q.shape), lse = b.zeros({kTokens, kQHeads});
  const AttentionLayout layout = packed_layout();
  b->attention_forward(out, lse, q, k, v, layout, 0.125f);
  Tensor dout = b.random(q.shape, 4), dq = b.zeros(q.shape), dk = b.zeros(k.shape),
         dv = b.zeros(v.shape);
  for (auto _ : state) b->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, layout, 0.125f);
  // Recomputed Q·Kᵀ, dP = dO·Vᵀ, dQ, dK, dV: five matmul-shaped products.
  set_flops(state, 2.5 * attention_forward_flops());
}
BENCHMARK(BM_CpuAttentionBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

// Decoding: one new token per sequence against a cache of `cache` tokens per sequence.
// Args: sequences, cache length (batch 1 over a short chat context, as `generate`; 4 and 16
// sequences over 512, as the batched generative eval).
void BM_CpuAttentionDecode(benchmark::State& state) {
  const int64_t seqs = state.range(0), cache = state.range(1), tokens = seqs * cache;
  Bench b;
  Tensor q = b.random({seqs, kQHeads, kHeadDim}, 1), k = b.random({tokens, kKvHeads, kHeadDim}, 2);
  Tensor v = b.random({tokens, kKvHeads, kHeadDim}, 3);
  Tensor out = b.zeros(q.shape), lse = b.zeros({seqs, kQHeads});
  AttentionLayout layout;
  for (int32_t s = 0; s < seqs; ++s)
    layout.seqs.push_back({s, 1, static_cast<int32_t>(s * cache), static_cast<int32_t>(cache)});
  layout.max_q_len = 1;
  layout.max_k_len = static_cast<int32_t>(cache);
  for (auto _ : state) b->attention_forward(out, lse, q, k, v, layout, 0.125f);
  set_bytes(state, 2.0 * tokens * kKvHeads * kHeadDim * 4);  // K and V read once
}
BENCHMARK(BM_CpuAttentionDecode)
    ->ArgNames({"seqs", "cache"})
    ->Args({1, 64})
    ->Args({1, 512})
    ->Args({4, 512})
    ->Args({16, 512})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// ---- SwiGLU --------------------------------------------------------------------------------
void BM_CpuSwigluForward(benchmark::State& state) {
  Bench b;
  Tensor g = b.random({kTokens, kFfn}, 1), u = b.random({kTokens, kFfn}, 2),
         out = b.zeros({kTokens, kFfn});
  for (auto _ : state) b->swiglu_forward(out, g, u);
  set_bytes(state, 3.0 * kTokens * kFfn * 4);
}
BENCHMARK(BM_CpuSwigluForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CpuSwigluBackward(benchmark::State& state) {
  Bench b;
  Tensor g = b.random({kTokens, kFfn}, 1), u = b.random({kTokens, kFfn}, 2),
         dout = b.random({kTokens, kFfn}, 3);
  Tensor dg = b.zeros({kTokens, kFfn}), du = b.zeros({kTokens, kFfn});
  for (auto _ : state) b->swiglu_backward(dg, du, dout, g, u);
  set_bytes(state, 5.0 * kTokens * kFfn * 4);
}
BENCHMARK(BM_CpuSwigluBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- loss and decoding ---------------------------------------------------------------------
void BM_CpuCrossEntropy(benchmark::State& state) {
  const int64_t rows = kSeqLen;  // one LM-head chunk of logits [512, 49152]
  Bench b;
  Tensor logits = b.random({rows, kVocab}), losses = b.zeros({rows});
  Tensor targets = b.ids(rows, kVocab), dlogits = b.zeros({rows, kVocab});
  for (auto _ : state) b->cross_entropy(losses, &dlogits, logits, targets, 1.0f / rows);
  set_bytes(state, 2.0 * rows * kVocab * 4);
}
BENCHMARK(BM_CpuCrossEntropy)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CpuArgmax(benchmark::State& state) {
  Bench b;
  Tensor logits = b.random({kSeqs, kVocab}), out = b.zeros({kSeqs}, DType::I32);
  for (auto _ : state) b->argmax(out, logits);
  set_bytes(state, 1.0 * kSeqs * kVocab * 4);
}
BENCHMARK(BM_CpuArgmax)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_CpuDropout(benchmark::State& state) {
  Bench b;
  Tensor x = b.random({kTokens, kHidden}), out = b.zeros({kTokens, kHidden});
  for (auto _ : state) b->dropout(out, x, 0.1f, 42);
  set_bytes(state, 2.0 * kTokens * kHidden * 4);
}
BENCHMARK(BM_CpuDropout)->Unit(benchmark::kMicrosecond)->UseRealTime();

// ---- optimiser: 16M parameters (e.g. LoRA on every projection of a larger model) -----------
constexpr int64_t kOptimParams = 16 << 20;

void BM_CpuSumOfSquares(benchmark::State& state) {
  Bench b;
  std::vector<Tensor> tensors{b.random({kOptimParams})};
  for (auto _ : state) benchmark::DoNotOptimize(b->sum_of_squares(tensors));
  set_bytes(state, 1.0 * kOptimParams * 4);
}
BENCHMARK(BM_CpuSumOfSquares)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CpuAdamW(benchmark::State& state) {
  Bench b;
  std::vector<AdamWTensor> tensors{{b.random({kOptimParams}, 1), b.random({kOptimParams}, 2),
                                    b.zeros({kOptimParams}), b.zeros({kOptimParams}), 0.01f}};
  AdamWHyper hyper;
  hyper.lr = 1e-4f;
  for (auto _ : state) b->adamw_step(tensors, hyper);
  set_bytes(state, 7.0 * kOptimParams * 4);  // read p, g, m, v; write p, m, v
}
BENCHMARK(BM_CpuAdamW)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace smol
