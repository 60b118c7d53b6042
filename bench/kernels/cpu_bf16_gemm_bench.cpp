// The candidates for the bf16 matmul of training.cpu_precision: bf16 (docs/cpu-speed.md
// "bf16 on cpu"), side by side at the LoRA step's shapes, in one run:
//   impl 0  fp32 cblas_sgemm (OpenBLAS), the fp32 weight — the baseline
//   impl 1  gemm_bf16, hand-written AVX512-BF16 micro-kernel (skipped without AVX512_BF16)
//   impl 2  gemm_bf16, the portable path (round, widen, sgemm)
//   impl 3  oneDNN matmul bf16 × bf16 → f32 (only when the build found libdnnl), plus the
//           fp32 → bf16 rounding of a it needs (its CPU matmul takes no f32 × bf16 mix);
//           the primitive is created once, outside the timed loop (as a cache would).
// Each case reports FLOP/s = 2·M·N·K per call. Run (2 threads):
//   OMP_NUM_THREADS=2 build/bench/kernels_bench --benchmark_filter=Bf16Gemm
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include <cblas.h>
#include "kernels/cpu/cpu_bf16_gemm.h"
#if SMOL_HAVE_DNNL
#include <dnnl.hpp>
#endif

namespace smol {
namespace {

struct GemmCase {
  int64_t m, n, k;
  bool b_t;
};

// Operands of one case: a fp32 [m, k], the weight as fp32 and as bf16 bits (same values).
struct GemmOperands {
  std::vector<float> a, b_f32, c;
  std::vector<uint16_t> b_bf16;
  explicit GemmOperands(const GemmCase& s)
      : a(static_cast<size_t>(s.m * s.k)),
        b_f32(static_cast<size_t>(s.k * s.n)),
        c(static_cast<size_t>(s.m * s.n)),
        b_bf16(static_cast<size_t>(s.k * s.n)) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float& x : a) x = dist(rng);
    for (size_t i = 0; i < b_bf16.size(); ++i) {
      b_bf16[i] = cpu::round_to_bf16(dist(rng));
      b_f32[i] = cpu::widen_bf16(b_bf16[i]);
    }
  }
  cpu::Bf16GemmArgs args(const GemmCase& s) {
    cpu::Bf16GemmArgs g;
    g.m = s.m, g.n = s.n, g.k = s.k;
    g.a = a.data(), g.lda = s.k;
    g.b = b_bf16.data(), g.ldb = s.b_t ? s.k : s.n, g.b_t = s.b_t;
    g.c = c.data(), g.ldc = s.n;
    return g;
  }
};

#if SMOL_HAVE_DNNL
void run_onednn(benchmark::State& state, const GemmCase& s, GemmOperands& ops) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const dnnl::memory::desc a_md({s.m, s.k}, dt::bf16, tag::ab);
  const dnnl::memory::desc b_md({s.k, s.n}, dt::bf16, s.b_t ? tag::ba : tag::ab);
  const dnnl::memory::desc c_md({s.m, s.n}, dt::f32, tag::ab);
#if DNNL_VERSION_MAJOR >= 3  // 3.x dropped the op descriptors
  const dnnl::matmul::primitive_desc pd(engine, a_md, b_md, c_md);
#else
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), engine);
#endif
  const dnnl::matmul matmul(pd);
  std::vector<uint16_t> a_bf16(ops.a.size());
  dnnl::memory a_mem(a_md, engine, a_bf16.data()), b_mem(b_md, engine, ops.b_bf16.data());
  dnnl::memory c_mem(c_md, engine, ops.c.data());
  for (auto _ : state) {
    const int64_t count = static_cast<int64_t>(a_bf16.size());
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) a_bf16[i] = cpu::round_to_bf16(ops.a[i]);
    matmul.execute(stream,
                   {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    stream.wait();
  }
}
#endif

// Args: impl, M, N, K, b transposed (1: y = x·Wᵀ, W [N, K]; 0: dx = dy·W, W [K, N]).
void BM_Bf16Gemm(benchmark::State& state) {
  const int impl = static_cast<int>(state.range(0));
  const GemmCase s{state.range(1), state.range(2), state.range(3), state.range(4) != 0};
  GemmOperands ops(s);
  if (impl == 0) {
    for (auto _ : state)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, s.b_t ? CblasTrans : CblasNoTrans,
                  static_cast<int>(s.m), static_cast<int>(s.n), static_cast<int>(s.k), 1.0f,
                  ops.a.data(), static_cast<int>(s.k), ops.b_f32.data(),
                  static_cast<int>(s.b_t ? s.k : s.n), 0.0f, ops.c.data(), static_cast<int>(s.n));
  } else if (impl == 1 || impl == 2) {
    const cpu::Bf16Gemm path = impl == 1 ? cpu::Bf16Gemm::Avx512Bf16 : cpu::Bf16Gemm::Generic;
    if (path == cpu::Bf16Gemm::Avx512Bf16 && cpu::detect_bf16_gemm() != path) {
      state.SkipWithError("this CPU has no AVX512_BF16 (or SMOL_CPU_ISA forces generic)");
      return;
    }
    const cpu::Bf16GemmArgs args = ops.args(s);
    for (auto _ : state) cpu::gemm_bf16(path, args);
  } else {
#if SMOL_HAVE_DNNL
    run_onednn(state, s, ops);
#else
    state.SkipWithError("built without oneDNN (libdnnl-dev)");
    return;
#endif
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * s.m * s.n * s.k, benchmark::Counter::kIsIterationInvariantRate);
}

void bf16_gemm_cases(benchmark::internal::Benchmark* b) {
  // The LoRA step's matmuls with a frozen weight, SmolLM2-135M (C 576, KV 192, F 1536, V 49152),
  // 4 × 512 tokens; the LM head runs in chunks of 256 rows (Backend::kLmHeadChunkRows).
  const std::vector<std::vector<int64_t>> shapes{
      {2048, 576, 576, 1},    // q / o forward
      {2048, 192, 576, 1},    // k / v forward
      {2048, 1536, 576, 1},   // gate / up forward
      {2048, 576, 1536, 1},   // down forward
      {2048, 576, 1536, 0},   // gate / up input gradient dx = dy·W
      {256, 49152, 576, 1},   // LM head chunk: logits = h·Eᵀ
      {256, 576, 49152, 0}};  // LM head chunk backward: dh = dlogits·E
  for (const auto& s : shapes)
    for (int64_t impl = 0; impl < 4; ++impl) b->Args({impl, s[0], s[1], s[2], s[3]});
}
BENCHMARK(BM_Bf16Gemm)
    ->ArgNames({"impl", "M", "N", "K", "bt"})
    ->Apply(bf16_gemm_cases)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace smol
