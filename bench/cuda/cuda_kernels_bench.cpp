// Microbenchmarks of the cuda backend's kernels at SmolLM2-135M shapes (C = 576, F = 1536,
// 9 query / 3 kv heads of 64, V = 49152) over T = 4096 tokens (8 rows of 512), random data.
// Each reports bytes/s (memory-bound ops: bytes read + written) or FLOP/s (matmuls). Timing is
// wall clock around the op plus a synchronize, averaged by Google Benchmark's iterations.
// Device: SMOL_BENCH_DEVICE (default "cuda"; "cuda-emu" works but is not a product path).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace smol {
namespace {

constexpr int64_t kTokens = 4096, kChannels = 576, kFfn = 1536, kHeads = 9, kKvHeads = 3,
                  kHeadDim = 64, kVocab = 49152;

Backend* device() {
  static std::unique_ptr<Backend> backend = [] {
    const char* env = std::getenv("SMOL_BENCH_DEVICE");
    try {
      return make_backend(env && *env ? env : "cuda");
    } catch (const Error&) {
      return std::unique_ptr<Backend>();
    }
  }();
  return backend.get();
}

struct Arena {
  std::vector<Buffer> buffers;
  Tensor make(Backend& b, Shape shape, DType dtype, float lo = -1.0f, float hi = 1.0f) {
    const size_t n = static_cast<size_t>(shape.numel());
    buffers.push_back(b.allocate(n * dtype_size(dtype)));
    const Tensor t = buffers.back().view(dtype, shape);
    std::mt19937 rng(static_cast<uint32_t>(buffers.size()));
    std::uniform_real_distribution<float> dist(lo, hi);
    if (dtype == DType::I32) {
      std::vector<int32_t> v(n);
      for (auto& x : v) x = static_cast<int32_t>(dist(rng));
      b.upload(t, v.data());
      return t;
    }
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    Buffer staging = b.allocate(n * sizeof(float));
    const Tensor f = staging.view(DType::F32, shape);
    b.upload(f, v.data());
    b.copy(t, f);
    b.synchronize();
    return t;
  }
};

// Runs op under the benchmark loop and reports `bytes` per iteration as bytes/s, `flops` as a
// FLOP/s counter.
template <typename Op>
void run(benchmark::State& state, double bytes, double flops, Op&& op) {
  Backend* b = device();
  if (b == nullptr) {
    // Every run carries the same counter set: the CSV reporter requires it.
    state.counters["FLOP/s"] = 0;
    state.SkipWithError("device cuda unavailable (no GPU or driver)");
    for (auto _ : state) {
    }
    return;
  }
  op();  // warm-up: plans, scratch
  b->synchronize();
  for (auto _ : state) {
    op();
    b->synchronize();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes * state.iterations()));
  // Always present (0 for memory-bound ops) so every CSV row has the same columns.
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_cuda_rmsnorm_forward(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  Tensor x, w, out, rstd;
  if (b) {
    x = a.make(*b, {kTokens, kChannels}, DType::BF16);
    w = a.make(*b, {kChannels}, DType::F32);
    out = a.make(*b, {kTokens, kChannels}, DType::BF16);
    rstd = a.make(*b, {kTokens}, DType::F32);
  }
  run(state, 2.0 * kTokens * kChannels * 2, 0, [&] { b->rmsnorm_forward(out, rstd, x, w, 1e-5f); });
}
BENCHMARK(BM_cuda_rmsnorm_forward)->UseRealTime();

void BM_cuda_add_rmsnorm_forward(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  Tensor x, r, w, out, rstd;
  if (b) {
    x = a.make(*b, {kTokens, kChannels}, DType::BF16);
    r = a.make(*b, {kTokens, kChannels}, DType::BF16);
    w = a.make(*b, {kChannels}, DType::F32);
    out = a.make(*b, {kTokens, kChannels}, DType::BF16);
    rstd = a.make(*b, {kTokens}, DType::F32);
  }
  run(state, 4.0 * kTokens * kChannels * 2, 0,
      [&] { b->add_rmsnorm_forward(x, out, rstd, x, r, w, 1e-5f); });
}
BENCHMARK(BM_cuda_add_rmsnorm_forward)->UseRealTime();

void BM_cuda_rmsnorm_backward(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  Tensor x, w, dout, dx, dw, rstd;
  if (b) {
    x = a.make(*b, {kTokens, kChannels}, DType::BF16);
    dout = a.make(*b, {kTokens, kChannels}, DType::BF16);
    dx = a.make(*b, {kTokens, kChannels}, DType::BF16);
    w = a.make(*b, {kChannels}, DType::F32);
    dw = a.make(*b, {kChannels}, DType::F32);
    rstd = a.make(*b, {kTokens}, DType::F32, 0.5f, 2.0f);
  }
  run(state, 4.0 * kTokens * kChannels * 2, 0,
      [&] { b->rmsnorm_backward(dx, dw, dout, x, w, rstd); });
}
BENCHMARK(BM_cuda_rmsnorm_backward)->UseRealTime();

void BM_cuda_rope_forward(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  Tensor q, pos;
  if (b) {
    q = a.make(*b, {kTokens, kHeads, kHeadDim}, DType::BF16);
    pos = a.make(*b, {kTokens}, DType::I32, 0.0f, 512.0f);
  }
  run(state, 2.0 * kTokens * kHeads * kHeadDim * 2, 0, [&] { b->rope_forward(q, pos, 1e5f); });
}
BENCHMARK(BM_cuda_rope_forward)->UseRealTime();

void BM_cuda_swiglu_forward(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  Tensor g, u, o;
  if (b) {
    g = a.make(*b, {kTokens, kFfn}, DType::BF16);
    u = a.make(*b, {kTokens, kFfn}, DType::BF16);
    o = a.make(*b, {kTokens, kFfn}, DType::BF16);
  }
  run(state, 3.0 * kTokens * kFfn * 2, 0, [&] { b->swiglu_forward(o, g, u); });
}
BENCHMARK(BM_cuda_swiglu_forward)->UseRealTime();

void BM_cuda_swiglu_backward(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  Tensor g, u, d, dg, du;
  if (b) {
    g = a.make(*b, {kTokens, kFfn}, DType::BF16);
    u = a.make(*b, {kTokens, kFfn}, DType::BF16);
    d = a.make(*b, {kTokens, kFfn}, DType::BF16);
    dg = a.make(*b, {kTokens, kFfn}, DType::BF16);
    du = a.make(*b, {kTokens, kFfn}, DType::BF16);
  }
  run(state, 5.0 * kTokens * kFfn * 2, 0, [&] { b->swiglu_backward(dg, du, d, g, u); });
}
BENCHMARK(BM_cuda_swiglu_backward)->UseRealTime();

void BM_cuda_embedding_forward(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  Tensor table, ids, out;
  if (b) {
    table = a.make(*b, {kVocab, kChannels}, DType::BF16);
    ids = a.make(*b, {kTokens}, DType::I32, 0.0f, static_cast<float>(kVocab - 1));
    out = a.make(*b, {kTokens, kChannels}, DType::BF16);
  }
  run(state, 2.0 * kTokens * kChannels * 2, 0, [&] { b->embedding_forward(out, ids, table); });
}
BENCHMARK(BM_cuda_embedding_forward)->UseRealTime();

void BM_cuda_cast_f32_to_bf16(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  Tensor src, dst;
  if (b) {
    src = a.make(*b, {kTokens, kFfn}, DType::F32);
    dst = a.make(*b, {kTokens, kFfn}, DType::BF16);
  }
  run(state, 6.0 * kTokens * kFfn, 0, [&] { b->copy(dst, src); });
}
BENCHMARK(BM_cuda_cast_f32_to_bf16)->UseRealTime();

// Linear layers y = x·Wᵀ: q/o projections (576→576), MLP up (576→1536), down (1536→576),
// and the LM head (576→49152, bf16 logits).
void BM_cuda_matmul(benchmark::State& state) {
  const int64_t in = state.range(0), out = state.range(1);
  Backend* b = device();
  Arena a;
  Tensor x, w, y;
  if (b) {
    x = a.make(*b, {kTokens, in}, DType::BF16);
    w = a.make(*b, {out, in}, DType::BF16);
    y = a.make(*b, {kTokens, out}, DType::BF16);
  }
  run(state, 2.0 * (kTokens * in + out * in + kTokens * out), 2.0 * kTokens * in * out,
      [&] { b->matmul(y, x, w, Transpose::No, Transpose::Yes); });
}
BENCHMARK(BM_cuda_matmul)
    ->Args({kChannels, kChannels})
    ->Args({kChannels, kFfn})
    ->Args({kFfn, kChannels})
    ->Args({kChannels, kVocab})
    ->UseRealTime();

// AdamW and the global norm over 4.9M fp32 parameters in 210 tensors (LoRA r=64 on all of
// SmolLM2's linears is about this size).
void BM_cuda_adamw_step(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  std::vector<AdamWTensor> list;
  const int64_t tensors = 210, each = 23296;
  if (b)
    for (int64_t i = 0; i < tensors; ++i)
      list.push_back({a.make(*b, {each}, DType::F32), a.make(*b, {each}, DType::F32),
                      a.make(*b, {each}, DType::F32), a.make(*b, {each}, DType::F32, 0, 0.01f),
                      0.01f});
  const AdamWHyper hyper{1e-4f, 0.9f, 0.999f, 1e-8f, 10, 1.0f};
  run(state, 7.0 * 4 * tensors * each, 0, [&] { b->adamw_step(list, hyper); });
}
BENCHMARK(BM_cuda_adamw_step)->UseRealTime();

void BM_cuda_sum_of_squares(benchmark::State& state) {
  Backend* b = device();
  Arena a;
  std::vector<Tensor> list;
  const int64_t tensors = 210, each = 23296;
  if (b)
    for (int64_t i = 0; i < tensors; ++i) list.push_back(a.make(*b, {each}, DType::F32));
  run(state, 4.0 * tensors * each, 0, [&] { benchmark::DoNotOptimize(b->sum_of_squares(list)); });
}
BENCHMARK(BM_cuda_sum_of_squares)->UseRealTime();

// Cross-entropy with in-place dlogits over bf16 logits of 1024 tokens × 49152.
void BM_cuda_cross_entropy(benchmark::State& state) {
  const int64_t tokens = 1024;
  Backend* b = device();
  Arena a;
  Tensor logits, targets, losses;
  if (b) {
    logits = a.make(*b, {tokens, kVocab}, DType::BF16, -4.0f, 4.0f);
    targets = a.make(*b, {tokens}, DType::I32, 0.0f, static_cast<float>(kVocab - 1));
    losses = a.make(*b, {tokens}, DType::F32);
  }
  run(state, 3.0 * tokens * kVocab * 2, 0,
      [&] { b->cross_entropy(losses, &logits, logits, targets, 1.0f / tokens); });
}
BENCHMARK(BM_cuda_cross_entropy)->UseRealTime();

// Attention forward over 8 packed sequences of 512 (the simple exact kernel of part 1);
// FLOP/s counts the causal half of QKᵀ and PV.
void BM_cuda_attention_forward(benchmark::State& state) {
  const int64_t seq = 512, seqs = 8, tokens = seq * seqs;
  Backend* b = device();
  Arena a;
  Tensor q, k, v, out, lse;
  AttentionLayout layout;
  for (int64_t s = 0; s < seqs; ++s)
    layout.seqs.push_back({static_cast<int32_t>(s * seq), static_cast<int32_t>(seq),
                           static_cast<int32_t>(s * seq), static_cast<int32_t>(seq)});
  layout.max_q_len = layout.max_k_len = static_cast<int32_t>(seq);
  if (b) {
    q = a.make(*b, {tokens, kHeads, kHeadDim}, DType::BF16);
    k = a.make(*b, {tokens, kKvHeads, kHeadDim}, DType::BF16);
    v = a.make(*b, {tokens, kKvHeads, kHeadDim}, DType::BF16);
    out = a.make(*b, {tokens, kHeads, kHeadDim}, DType::BF16);
    lse = a.make(*b, {tokens, kHeads}, DType::F32);
  }
  const double flops = 4.0 * seqs * kHeads * kHeadDim * (seq * (seq + 1) / 2.0);
  run(state, 2.0 * (2 * tokens * kHeads + 2 * tokens * kKvHeads) * kHeadDim, flops,
      [&] { b->attention_forward(out, lse, q, k, v, layout, 0.125f); });
}
BENCHMARK(BM_cuda_attention_forward)->UseRealTime();

}  // namespace
}  // namespace smol
