// Microbenchmarks of the cuda backend's kernels at SmolLM2-135M shapes (C = 576, F = 1536,
// 9 query / 3 kv heads of 64, V = 49152) over T = 4096 tokens (8 rows of 512; attention also
// at 8 × 1024 and 16 × 512, and decode; the fused LM head + cross-entropy at 8 × 1024 and
// 16 × 512; LoRA's fused down-projection with dropout at 8 × 1024), random data.
// Each reports bytes/s (memory-bound ops: bytes read + written) or FLOP/s (matmuls), and beside
// them the share of the device's peak (device_peak.h): counters "%peak_FLOP" (achieved FLOP/s
// over the dense bf16 tensor-core peak) and "%peak_BW" (bytes/s over the HBM bandwidth), 0 where
// the peak is unknown; the device and its peaks are printed once on stderr. Timing is wall
// clock around the op plus a synchronize, averaged by Google Benchmark's iterations.
// Device: SMOL_BENCH_DEVICE (default "cuda"; "cuda-emu" works but is not a product path).
// SMOL_BENCH_TINY=1 runs the LM-head cases at 1/16 of their tokens and vocabulary, so a cuda-emu
// smoke run finishes in seconds (its numbers mean nothing).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/cuda/device_peak.h"
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

// The peaks of the device under test, queried once; none for cuda-emu (its "device" is the CPU).
const bench::DevicePeak& device_peak() {
  static const bench::DevicePeak peak = [] {
    bench::DevicePeak p;
    Backend* b = device();
    if (b == nullptr || b->name() == "cuda-emu") {
      p.name = b ? "cuda-emu (CPU emulation)" : "no device";
      p.source = "none";
    } else {
      p = bench::query_device_peak(b->device_ordinal());
    }
    std::fprintf(stderr, "device peak: %s\n", bench::describe(p).c_str());
    return p;
  }();
  return peak;
}

bool tiny_shapes() {
  const char* env = std::getenv("SMOL_BENCH_TINY");
  return env && std::string(env) == "1";
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
// FLOP/s counter, and both as percentages of the device's peaks.
template <typename Op>
void run(benchmark::State& state, double bytes, double flops, Op&& op) {
  Backend* b = device();
  if (b == nullptr) {
    // Every run carries the same counter set: the CSV reporter requires it.
    state.counters["FLOP/s"] = 0;
    state.counters["%peak_FLOP"] = 0;
    state.counters["%peak_BW"] = 0;
    state.SkipWithError("device cuda unavailable (no GPU or driver)");
    for (auto _ : state) {
    }
    return;
  }
  op();  // warm-up: plans, scratch
  b->synchronize();
  // The loop's wall time (what UseRealTime reports), for the shares of the peaks below.
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    op();
    b->synchronize();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  state.SetBytesProcessed(static_cast<int64_t>(bytes * state.iterations()));
  // Always present (0 for memory-bound ops) so every CSV row has the same columns.
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * state.iterations(), benchmark::Counter::kIsRate);
  // Achieved rates over the peaks, in percent; 0 where the peak is unknown.
  const bench::DevicePeak& peak = device_peak();
  const double per_second = static_cast<double>(state.iterations()) / std::max(seconds, 1e-12);
  state.counters["%peak_FLOP"] =
      peak.tensor_flops > 0 ? 100.0 * flops * per_second / peak.tensor_flops : 0.0;
  state.counters["%peak_BW"] =
      peak.hbm_bytes_per_s > 0 ? 100.0 * bytes * per_second / peak.hbm_bytes_per_s : 0.0;
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
  AdamWHyper hyper;  // betas, eps and grad_scale at their defaults; no device clipping
  hyper.lr = 1e-4f;
  hyper.step = 10;
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

// The fused LM head + cross-entropy (Backend::lm_head_cross_entropy, kernels/
// lm_head_cross_entropy.cpp: on cuda the composite's chunks of 256 rows — logits GEMM, the
// two-pass cross-entropy with its gradient in place, dh GEMM, and with full fine-tuning the dW
// GEMM) at SmolLM2-135M's tied head (C = 576, V = 49152, bf16 weight), forward with gradient as
// a training step calls it: host targets given, no argmax. Args: sequences, length, masked
// percent (the first that share of each sequence is prompt, label −100, as the seed's SFT rows
// are; the op skips those rows), full fine-tuning (1: dW [V, C] fp32 accumulated too).
// FLOPs and bytes follow what the op runs (lm_head_work mirrors its chunking): per computed row
// 2·V·C for the logits, 2·V·C for dh, 2·V·C for dW; bytes per chunk of r rows: logits GEMM
// r·C + V·C read and r·V written (bf16), cross-entropy 2 reads + 1 write of r·V (bf16, as
// BM_cuda_cross_entropy), dh GEMM r·V + V·C read and r·C written, dW GEMM r·V + r·C read and
// V·C fp32 read and written; skipped rows cost their zeroed loss and dh. That is each launch's
// operands once, an upper bound on HBM traffic (a chunk's 25 MB of logits can stay in an H100's
// 50 MB L2). At 8 × 1024, all supervised: 928 GFLOP and 7.7 GB, of which the weight re-read per
// chunk is 3.6 GB (0.94 ms at 989 TFLOP/s, 2.3 ms at 3.35 TB/s); with dW 1.39 TFLOP and 15.7 GB,
// 7.2 GB of it the fp32 dW read and written by each of the 32 chunks.
struct LmHeadWork {
  int64_t computed_rows = 0, chunks = 0, skipped_rows = 0;
};

// The chunks lm_head_cross_entropy runs for these host targets (training: no argmax) with a
// logits scratch of `chunk_rows` rows.
LmHeadWork lm_head_work(const std::vector<int32_t>& targets, int64_t chunk_rows) {
  LmHeadWork w;
  const int64_t T = static_cast<int64_t>(targets.size());
  int64_t t0 = 0;
  while (t0 < T) {
    int64_t first = t0;
    while (first < T && targets[first] == -100) ++first;
    w.skipped_rows += first - t0;
    if (first == T) break;
    int64_t rows = std::min(chunk_rows, T - first);
    while (targets[first + rows - 1] == -100) --rows;
    w.computed_rows += rows;
    ++w.chunks;
    t0 = first + rows;
  }
  return w;
}

void BM_cuda_lm_head_cross_entropy(benchmark::State& state) {
  const int64_t shrink = tiny_shapes() ? 16 : 1;
  const int64_t seqs = state.range(0), len = state.range(1) / shrink;
  const int64_t masked = len * state.range(2) / 100;
  const bool full_ft = state.range(3) != 0;
  const int64_t T = seqs * len, C = kChannels, V = kVocab / shrink;
  std::vector<int32_t> host_targets(static_cast<size_t>(T));
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(V - 1));
  for (int64_t t = 0; t < T; ++t) host_targets[t] = t % len < masked ? -100 : token(rng);
  Backend* b = device();
  // The model's chunk: as many rows as the backend asks for (Backend::lm_head_chunk_rows).
  const int64_t chunk_rows =
      std::min(T, b ? b->lm_head_chunk_rows(full_ft) : Backend::kLmHeadChunkRows);
  const LmHeadWork work = lm_head_work(host_targets, chunk_rows);
  const double r = static_cast<double>(work.computed_rows), vc = static_cast<double>(V * C);
  const double flops = (full_ft ? 6.0 : 4.0) * r * vc;
  double bytes = 2.0 * (r * C + work.chunks * vc + r * V)    // logits GEMM
                 + 3.0 * 2.0 * r * V                         // cross-entropy
                 + 2.0 * (r * V + work.chunks * vc + r * C)  // dh GEMM
                 + (4.0 + 2.0 * C) * work.skipped_rows;      // zeroed losses and dh rows
  if (full_ft) bytes += 2.0 * (r * V + r * C) + 8.0 * work.chunks * vc;  // dW GEMM
  Arena a;
  LmHeadOutputs out;
  Tensor hidden, weight, targets, scratch;
  if (b) {
    hidden = a.make(*b, {T, C}, DType::BF16);
    weight = a.make(*b, {V, C}, DType::BF16, -0.05f, 0.05f);
    targets = a.make(*b, {T}, DType::I32);
    b->upload(targets, host_targets.data());
    scratch = a.make(*b, {chunk_rows, V}, DType::BF16);
    out.losses = a.make(*b, {T}, DType::F32);
    out.dhidden = a.make(*b, {T, C}, DType::BF16);
    if (full_ft) out.dweight = a.make(*b, {V, C}, DType::F32);
  }
  const float loss_scale = 1.0f / static_cast<float>(std::max<int64_t>(1, T - seqs * masked));
  run(state, bytes, flops, [&] {
    b->lm_head_cross_entropy(out, hidden, weight, targets, scratch, loss_scale, host_targets);
  });
  // A label, not a counter: every CSV row must carry the same counters.
  state.SetLabel(std::to_string(work.computed_rows) + " rows in " + std::to_string(work.chunks) +
                 " chunks");
}
BENCHMARK(BM_cuda_lm_head_cross_entropy)
    ->ArgNames({"seqs", "len", "masked%", "fullFT"})
    ->Args({8, 1024, 0, 0})
    ->Args({16, 512, 0, 0})
    ->Args({8, 1024, 25, 0})
    ->Args({8, 1024, 0, 1})
    ->Args({16, 512, 0, 1})
    ->UseRealTime();

// Attention at SmolLM2 shapes (9 query / 3 kv heads of 64, bf16: the flash kernels of
// kernels/cuda/flash_attention.cu). Training packs: state.range(0) sequences of state.range(1)
// tokens (8 × 1024 and 16 × 512). FLOP/s counts the causal work as docs/design.md §2.5 does:
// forward 4·Σ(L²/2)·H·D (QKᵀ and PV over the visible half), backward 2.5× that (FA2's five
// products against the forward's two). Bytes: q, k, v, out read or written once (forward);
// q, k, v, out, dout read and dq, dk, dv written (backward).
struct AttentionBench {
  Arena arena;
  AttentionLayout layout;
  Tensor q, k, v, out, lse, dout, dq, dk, dv;
  int64_t tokens = 0, cached = 0;
  double causal_flops = 0;

  // `seqs` sequences of `q_len` new tokens over `k_len` keys each (k_len == q_len: training).
  AttentionBench(Backend* b, int64_t seqs, int64_t q_len, int64_t k_len) {
    tokens = seqs * q_len;
    cached = seqs * k_len;
    for (int64_t s = 0; s < seqs; ++s)
      layout.seqs.push_back({static_cast<int32_t>(s * q_len), static_cast<int32_t>(q_len),
                             static_cast<int32_t>(s * k_len), static_cast<int32_t>(k_len)});
    layout.max_q_len = static_cast<int32_t>(q_len);
    layout.max_k_len = static_cast<int32_t>(k_len);
    // Query i of a sequence sees k_len − q_len + i + 1 keys.
    double visible = 0;
    for (int64_t i = 0; i < q_len; ++i) visible += static_cast<double>(k_len - q_len + i + 1);
    causal_flops = 4.0 * seqs * visible * kHeads * kHeadDim;
    if (!b) return;
    q = arena.make(*b, {tokens, kHeads, kHeadDim}, DType::BF16);
    k = arena.make(*b, {cached, kKvHeads, kHeadDim}, DType::BF16);
    v = arena.make(*b, {cached, kKvHeads, kHeadDim}, DType::BF16);
    out = arena.make(*b, {tokens, kHeads, kHeadDim}, DType::BF16);
    lse = arena.make(*b, {tokens, kHeads}, DType::F32);
    dout = arena.make(*b, {tokens, kHeads, kHeadDim}, DType::BF16);
    dq = arena.make(*b, {tokens, kHeads, kHeadDim}, DType::BF16);
    dk = arena.make(*b, {cached, kKvHeads, kHeadDim}, DType::BF16);
    dv = arena.make(*b, {cached, kKvHeads, kHeadDim}, DType::BF16);
    b->attention_forward(out, lse, q, k, v, layout, 0.125f);  // a real out/lse for the backward
  }
  double q_bytes() const { return 2.0 * tokens * kHeads * kHeadDim; }
  double kv_bytes() const { return 2.0 * cached * kKvHeads * kHeadDim; }
};

void BM_cuda_attention_forward(benchmark::State& state) {
  Backend* b = device();
  AttentionBench x(b, state.range(0), state.range(1), state.range(1));
  run(state, 2 * x.q_bytes() + 2 * x.kv_bytes(), x.causal_flops,
      [&] { b->attention_forward(x.out, x.lse, x.q, x.k, x.v, x.layout, 0.125f); });
}
BENCHMARK(BM_cuda_attention_forward)->Args({8, 1024})->Args({16, 512})->UseRealTime();

void BM_cuda_attention_backward(benchmark::State& state) {
  Backend* b = device();
  AttentionBench x(b, state.range(0), state.range(1), state.range(1));
  run(state, 5 * x.q_bytes() + 4 * x.kv_bytes(), 2.5 * x.causal_flops, [&] {
    b->attention_backward(x.dq, x.dk, x.dv, x.dout, x.q, x.k, x.v, x.out, x.lse, x.layout, 0.125f);
  });
}
BENCHMARK(BM_cuda_attention_backward)->Args({8, 1024})->Args({16, 512})->UseRealTime();

// The fused RoPE backward A/B (docs/design.md §2.7 "Fused RoPE"): state.range(2) = 0 runs a
// layer's training backward as before, attention_backward then rope_qk_backward (one more
// launch, dq and dk read and written again: 25 MB at 8 × 1024); 1 runs attention_rope_backward,
// the flash kernels rotating dq and dk before their store. Same work counted for both, so the
// FLOP/s compare directly (gpu-check's table lists both rows).
void BM_cuda_attention_rope_backward(benchmark::State& state) {
  Backend* b = device();
  AttentionBench x(b, state.range(0), state.range(1), state.range(1));
  const bool fused = state.range(2) != 0;
  Tensor positions;
  if (b) {
    positions = x.arena.make(*b, {x.tokens}, DType::I32);
    std::vector<int32_t> host(static_cast<size_t>(x.tokens));
    for (int64_t t = 0; t < x.tokens; ++t) host[t] = static_cast<int32_t>(t % state.range(1));
    b->upload(positions, host.data());
  }
  run(state, 5 * x.q_bytes() + 4 * x.kv_bytes(), 2.5 * x.causal_flops, [&] {
    if (fused) {
      b->attention_rope_backward(x.dq, x.dk, x.dv, x.dout, x.q, x.k, x.v, x.out, x.lse, x.layout,
                                 0.125f, Backend::Rotary{positions, 10000.0f});
    } else {
      b->attention_backward(x.dq, x.dk, x.dv, x.dout, x.q, x.k, x.v, x.out, x.lse, x.layout,
                            0.125f);
      b->rope_qk_backward(x.dq, x.dk, positions, 10000.0f);
    }
  });
}
BENCHMARK(BM_cuda_attention_rope_backward)
    ->Args({8, 1024, 0})
    ->Args({8, 1024, 1})
    ->Args({16, 512, 0})
    ->Args({16, 512, 1})
    ->UseRealTime();

// Decode: state.range(0) sequences, one new token each over state.range(1) cached keys (the
// split-K kernel). Memory-bound: the whole K/V cache is read once.
void BM_cuda_attention_decode(benchmark::State& state) {
  Backend* b = device();
  AttentionBench x(b, state.range(0), 1, state.range(1));
  run(state, 2 * x.q_bytes() + x.kv_bytes(), x.causal_flops,
      [&] { b->attention_forward(x.out, x.lse, x.q, x.k, x.v, x.layout, 0.125f); });
}
BENCHMARK(BM_cuda_attention_decode)->Args({16, 1024})->Args({64, 2048})->UseRealTime();

// LoRA's down-projection with dropout (docs/design.md §2.7 "LoRA dropout on the fly") at the
// shipped configs' shape: 8 × 1024 tokens, C = 576, r 8 on q and v (n = 2 adapters reading one
// x), p = 0.1. fused = 1: lora_down_forward / lora_down_backward (kernels/cuda/lora_down.cu);
// fused = 0: what the per-projection path runs for the same math (per member dropout into a
// scratch + matmul; backward dropout + dA matmul + dx_lora matmul + dropout + axpy). Bytes are
// the fused kernels' own traffic for both (x read once, ut / gt, A, dx read and written, the dA
// partials of 256-token chunks written and read), so GB/s compares the two at equal work; FLOPs
// 2·ΣR·T·C forward, 4·ΣR·T·C backward (CUDA cores, so %peak_FLOP of the tensor peak is small).
struct LoraDownBench {
  static constexpr int64_t kMembers = 2, kRank = 8;
  static constexpr float kP = 0.1f, kS = 2.0f;
  Arena arena;
  int64_t T = 0;
  Tensor x, dx, scratch;
  std::vector<Tensor> as, das, uts, gts;
  std::vector<uint64_t> seeds;
  explicit LoraDownBench(Backend* b, int64_t tokens) : T(tokens) {
    if (!b) return;
    x = arena.make(*b, {T, kChannels}, DType::BF16);
    dx = arena.make(*b, {T, kChannels}, DType::BF16);
    scratch = arena.make(*b, {T, kChannels}, DType::BF16);
    for (int64_t i = 0; i < kMembers; ++i) {
      as.push_back(arena.make(*b, {kRank, kChannels}, DType::F32, -0.05f, 0.05f));
      das.push_back(arena.make(*b, {kRank, kChannels}, DType::F32));
      uts.push_back(arena.make(*b, {kRank, T}, DType::BF16));
      gts.push_back(arena.make(*b, {kRank, T}, DType::BF16));
      seeds.push_back(static_cast<uint64_t>(17 + i));
    }
  }
  double rows() const { return static_cast<double>(kMembers * kRank); }
  double forward_bytes() const {
    return 2.0 * T * kChannels + 2.0 * rows() * T + 4.0 * rows() * kChannels;
  }
  double backward_bytes() const {
    const double chunks = static_cast<double>((T + 255) / 256);
    return 3.0 * 2.0 * T * kChannels + 2.0 * rows() * T + 4.0 * rows() * kChannels +
           2.0 * 4.0 * chunks * rows() * kChannels + 8.0 * rows() * kChannels;
  }
  void forward(Backend& b, bool fused) {
    if (fused) return b.lora_down_forward(uts, x, as, kP, seeds, scratch);
    for (size_t i = 0; i < as.size(); ++i) {
      b.dropout(scratch, x, kP, seeds[i]);
      b.matmul(uts[i], as[i], scratch, Transpose::No, Transpose::Yes);
    }
  }
  void backward(Backend& b, bool fused) {
    if (fused) return b.lora_down_backward(das, dx, gts, x, as, kP, seeds, kS, scratch);
    for (size_t i = 0; i < as.size(); ++i) {
      b.dropout(scratch, x, kP, seeds[i]);
      b.matmul(das[i], gts[i], scratch, Transpose::No, Transpose::No, kS, 1.0f);
      b.matmul(scratch, gts[i], as[i], Transpose::Yes, Transpose::No);
      b.dropout(scratch, scratch, kP, seeds[i]);
      b.axpy(dx, scratch, kS);
    }
  }
};

void BM_cuda_lora_down_forward(benchmark::State& state) {
  Backend* b = device();
  LoraDownBench x(b, state.range(0) * state.range(1) / (tiny_shapes() ? 16 : 1));
  const bool fused = state.range(2) != 0;
  run(state, x.forward_bytes(), 2.0 * x.rows() * x.T * kChannels, [&] { x.forward(*b, fused); });
}
BENCHMARK(BM_cuda_lora_down_forward)
    ->ArgNames({"seqs", "len", "fused"})
    ->Args({8, 1024, 1})
    ->Args({8, 1024, 0})
    ->UseRealTime();

void BM_cuda_lora_down_backward(benchmark::State& state) {
  Backend* b = device();
  LoraDownBench x(b, state.range(0) * state.range(1) / (tiny_shapes() ? 16 : 1));
  const bool fused = state.range(2) != 0;
  run(state, x.backward_bytes(), 4.0 * x.rows() * x.T * kChannels, [&] { x.backward(*b, fused); });
}
BENCHMARK(BM_cuda_lora_down_backward)
    ->ArgNames({"seqs", "len", "fused"})
    ->Args({8, 1024, 1})
    ->Args({8, 1024, 0})
    ->UseRealTime();

// LoRA's up-projections (docs/design.md §2.7 "LoRA up-projections fused") at the shipped configs'
// shape: 8 × 1024 tokens, r 8 on q (N 576) and v (N 192). fused = 1: lora_up_forward /
// lora_up_backward (kernels/cuda/lora_up.cu: one launch forward, two backward); fused = 0: what
// the model ran before (per member a cuBLASLt matmul, each casting B to bf16 first: y += s·u·Bᵀ;
// dB += s·dyᵀ·u, gᵀ = Bᵀ·dyᵀ). Bytes are the fused kernels' own traffic for both (y read and
// written / dy read once, ut, gt, B, the dB partials of 64-token chunks written and read, dB read
// and written); FLOPs 2·r·T·ΣN forward, 4·r·T·ΣN backward.
struct LoraUpBench {
  static constexpr int64_t kRank = 8;
  static constexpr float kS = 2.0f;
  static constexpr std::array<int64_t, 2> kCols = {576, 192};
  Arena arena;
  int64_t T = 0;
  std::vector<Tensor> uts, bs, ys, dys, dbs, gts;
  explicit LoraUpBench(Backend* b, int64_t tokens) : T(tokens) {
    if (!b) return;
    for (int64_t n : kCols) {
      uts.push_back(arena.make(*b, {kRank, T}, DType::BF16));
      bs.push_back(arena.make(*b, {n, kRank}, DType::F32, -0.05f, 0.05f));
      ys.push_back(arena.make(*b, {T, n}, DType::BF16));
      dys.push_back(arena.make(*b, {T, n}, DType::BF16));
      dbs.push_back(arena.make(*b, {n, kRank}, DType::F32));
      gts.push_back(arena.make(*b, {kRank, T}, DType::BF16));
    }
  }
  static double cols() { return static_cast<double>(kCols[0] + kCols[1]); }
  double rows() const { return static_cast<double>(kCols.size() * kRank); }
  double flops() const { return 2.0 * kRank * T * cols(); }
  double forward_bytes() const {
    return 2.0 * 2.0 * T * cols() + 2.0 * rows() * T + 4.0 * kRank * cols();
  }
  double backward_bytes() const {
    const double chunks = static_cast<double>((T + 63) / 64);
    return 2.0 * T * cols() + 2.0 * 2.0 * rows() * T + 4.0 * kRank * cols() +
           2.0 * 4.0 * chunks * kRank * cols() + 8.0 * kRank * cols();
  }
  void forward(Backend& b, bool fused) {
    if (fused) return b.lora_up_forward(ys, uts, bs, kS);
    for (size_t i = 0; i < bs.size(); ++i)
      b.matmul(ys[i], uts[i], bs[i], Transpose::Yes, Transpose::Yes, kS, 1.0f);
  }
  void backward(Backend& b, bool fused) {
    if (fused) return b.lora_up_backward(dbs, gts, dys, uts, bs, kS);
    for (size_t i = 0; i < bs.size(); ++i) {
      b.matmul(dbs[i], dys[i], uts[i], Transpose::Yes, Transpose::Yes, kS, 1.0f);
      b.matmul(gts[i], bs[i], dys[i], Transpose::Yes, Transpose::Yes);
    }
  }
};

void BM_cuda_lora_up_forward(benchmark::State& state) {
  Backend* b = device();
  LoraUpBench x(b, state.range(0) * state.range(1) / (tiny_shapes() ? 16 : 1));
  const bool fused = state.range(2) != 0;
  run(state, x.forward_bytes(), x.flops(), [&] { x.forward(*b, fused); });
}
BENCHMARK(BM_cuda_lora_up_forward)
    ->ArgNames({"seqs", "len", "fused"})
    ->Args({8, 1024, 1})
    ->Args({8, 1024, 0})
    ->UseRealTime();

void BM_cuda_lora_up_backward(benchmark::State& state) {
  Backend* b = device();
  LoraUpBench x(b, state.range(0) * state.range(1) / (tiny_shapes() ? 16 : 1));
  const bool fused = state.range(2) != 0;
  run(state, x.backward_bytes(), 2.0 * x.flops(), [&] { x.backward(*b, fused); });
}
BENCHMARK(BM_cuda_lora_up_backward)
    ->ArgNames({"seqs", "len", "fused"})
    ->Args({8, 1024, 1})
    ->Args({8, 1024, 0})
    ->UseRealTime();

}  // namespace
}  // namespace smol
