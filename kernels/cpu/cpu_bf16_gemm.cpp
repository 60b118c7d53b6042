// bf16 GEMM of the cpu backend (see cpu_bf16_gemm.h; docs/cpu-speed.md "bf16 on cpu").
//
// The AVX512-BF16 path, BLIS-style:
//  1. a is rounded to bf16 once, into A2 [m_pad, kp] of 32-bit k-pairs: A2[i][p] holds
//     (a[i][2p] low, a[i][2p+1] high), a zero high half when k is odd, zero rows past m.
//  2. For each block of kNcPanels·kNr columns and ≤ kMaxKcp k-pairs, b is packed into panels
//     Bp[p][j] (kNr 32-bit pairs per k-pair: (b[2p][j], b[2p+1][j])), by the thread that uses
//     them, sized to stay in its core's L2 (≤ 576 KiB).
//  3. The micro-kernel holds kMr × kNv zmm accumulators (kMr rows × kNr = 16·kNv columns of c)
//     and per k-pair does kNv loads of Bp, kMr broadcasts of A2 (folded into vdpbf16ps as
//     {1to16}) and kMr·kNv vdpbf16ps — 24 accumulators hide the instruction's latency; the A2
//     rows (kMr · kcp · 4 bytes ≤ 12 KiB) stay in L1 across the block's panels.
// Threads split c statically (column panels, or row micro-panels when there are fewer panels
// than threads) and meet once, after step 1; the first k block applies beta (not reading c
// when beta = 0), later ones add.
#include "kernels/cpu/cpu_bf16_gemm.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/error.h"

namespace smol::cpu {
namespace {

#define SMOL_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int kMr = 8;            // rows of c per micro-kernel
constexpr int kNv = 3;            // zmm columns per micro-kernel
constexpr int kNr = 16 * kNv;     // columns of c per micro-kernel (48: divides 192, 576, 49152)
constexpr int64_t kMaxKcp = 384;  // k-pairs per block: 8 rows of A2 = 12 KiB in L1
constexpr int64_t kNcPanels = 8;  // panels per column block: 384·48·4 B · 8 = 576 KiB of L2

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Row i of op(a) rounded to bf16 and paired: dst[p] = bf16(a[i][2p]) | bf16(a[i][2p+1]) << 16.
void round_row_pairs(const Bf16GemmArgs& g, int64_t i, uint32_t* dst) {
  const int64_t kp = ceil_div(g.k, 2);
  if (!g.a_t) {
    const float* row = g.a + i * g.lda;
    const int64_t full = g.k / 2;
    for (int64_t p = 0; p < full; ++p)
      dst[p] = round_to_bf16(row[2 * p]) | static_cast<uint32_t>(round_to_bf16(row[2 * p + 1]))
                                               << 16;
    if (full < kp) dst[full] = round_to_bf16(row[g.k - 1]);
    return;
  }
  // a is [k, m]: column i of a, strided.
  for (int64_t p = 0; p < kp; ++p) {
    const uint32_t lo = round_to_bf16(g.a[(2 * p) * g.lda + i]);
    const uint32_t hi = 2 * p + 1 < g.k ? round_to_bf16(g.a[(2 * p + 1) * g.lda + i]) : 0u;
    dst[p] = lo | hi << 16;
  }
}

// round_to_bf16 on 16 lanes of fp32 bits (the result in each lane's low 16 bits).
SMOL_AVX512BF16 inline __m512i round16_to_bf16(__m512i bits) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), one);
  const __m512i rounded = _mm512_srli_epi32(
      _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(bits, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_mov_epi32(
      rounded, nan, _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40)));
}

// Same as round_row_pairs for a row-major a, 16 pairs per step with AVX-512 integer ops
// (the rounding formula of round_to_bf16, lane by lane).
SMOL_AVX512BF16 void round_row_pairs_avx512(const Bf16GemmArgs& g, int64_t i, uint32_t* dst) {
  const float* row = g.a + i * g.lda;
  const int64_t full = g.k / 32 * 16;  // pairs covered by whole 32-float loads
  const __m512i one = _mm512_set1_epi32(1);
  // Even elements land in the low halves, odd ones in the high halves of the pairs.
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, one);
  for (int64_t p = 0; p < full; p += 16) {
    const __m512i lo = round16_to_bf16(_mm512_loadu_si512(row + 2 * p));
    const __m512i hi = round16_to_bf16(_mm512_loadu_si512(row + 2 * p + 16));
    const __m512i ev = _mm512_permutex2var_epi32(lo, even, hi);
    const __m512i od = _mm512_permutex2var_epi32(lo, odd, hi);
    _mm512_storeu_si512(dst + p, _mm512_or_si512(ev, _mm512_slli_epi32(od, 16)));
  }
  const int64_t kp = ceil_div(g.k, 2);
  for (int64_t p = full; p < kp; ++p) {
    const uint32_t lo = round_to_bf16(row[2 * p]);
    const uint32_t hi = 2 * p + 1 < g.k ? round_to_bf16(row[2 * p + 1]) : 0u;
    dst[p] = lo | hi << 16;
  }
}

// One panel of Bp: k-pairs [p0, p0 + kcp) of columns [n0, n0 + kNr) (zero past n and k).
void pack_b_panel(const Bf16GemmArgs& g, int64_t p0, int64_t kcp, int64_t n0, uint32_t* dst) {
  const int64_t cols = std::min<int64_t>(kNr, g.n - n0);
  for (int64_t p = 0; p < kcp; ++p) {
    const int64_t k0 = 2 * (p0 + p), k1 = k0 + 1;
    uint32_t* out = dst + p * kNr;
    if (g.b_t) {  // b is [n, k]: the pair is two neighbours of row n0 + j
      for (int64_t j = 0; j < cols; ++j) {
        const uint16_t* row = g.b + (n0 + j) * g.ldb;
        out[j] = row[k0] | (k1 < g.k ? static_cast<uint32_t>(row[k1]) << 16 : 0u);
      }
    } else {  // b is [k, n]: the pair is one element of rows k0 and k1
      const uint16_t* r0 = g.b + k0 * g.ldb + n0;
      const uint16_t* r1 = k1 < g.k ? g.b + k1 * g.ldb + n0 : nullptr;
      for (int64_t j = 0; j < cols; ++j)
        out[j] = r0[j] | (r1 ? static_cast<uint32_t>(r1[j]) << 16 : 0u);
    }
    for (int64_t j = cols; j < kNr; ++j) out[j] = 0;
  }
}

// pack_b_panel for b [k, n] (not transposed), 16 columns per step: the two rows' bf16 values
// widened to 32 bits, the second shifted into the high halves.
SMOL_AVX512BF16 void pack_b_panel_rows_avx512(const Bf16GemmArgs& g, int64_t p0, int64_t kcp,
                                              int64_t n0, uint32_t* dst) {
  const int64_t cols = std::min<int64_t>(kNr, g.n - n0);
  for (int64_t p = 0; p < kcp; ++p) {
    const int64_t k0 = 2 * (p0 + p), k1 = k0 + 1;
    const uint16_t* r0 = g.b + k0 * g.ldb + n0;
    const uint16_t* r1 = g.b + k1 * g.ldb + n0;
#pragma GCC unroll 4
    for (int v = 0; v < kNv; ++v) {
      const int left = static_cast<int>(cols) - 16 * v;
      const __mmask16 mask = left >= 16  ? 0xffff
                             : left <= 0 ? 0
                                         : static_cast<__mmask16>((1u << left) - 1u);
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, r0 + 16 * v));
      const __m512i hi = k1 < g.k
                             ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, r1 + 16 * v))
                             : _mm512_setzero_si512();
      _mm512_storeu_si512(dst + p * kNr + 16 * v, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// c[rows, cols] (≤ kMr × kNr) = alpha · Σ_p A2[·][p] ⊙ Bp[p][·] + beta · c; beta == 0 does
// not read c. a: kMr rows of A2 with row stride lda (pairs); b: one panel (kNr pairs per p).
SMOL_AVX512BF16 void micro_kernel(int64_t kcp, const uint32_t* a, int64_t lda, const uint32_t* b,
                                  float* c, int64_t ldc, int rows, int cols, float alpha,
                                  float beta) {
  __m512 acc[kMr][kNv];
#pragma GCC unroll 8
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < kNv; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kcp; ++p) {
    __m512bh bv[kNv];
#pragma GCC unroll 4
    for (int v = 0; v < kNv; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(b + p * kNr + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < kMr; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r * lda + p]));
#pragma GCC unroll 4
      for (int v = 0; v < kNv; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int r = 0; r < rows; ++r) {
    float* out = c + r * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < kNv; ++v) {
      const int left = cols - 16 * v;
      if (left <= 0) break;
      const __mmask16 mask = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1u);
      __m512 y = _mm512_mul_ps(va, acc[r][v]);
      if (beta != 0.0f) y = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, out + 16 * v), y);
      _mm512_mask_storeu_ps(out + 16 * v, mask, y);
    }
  }
}

void gemm_avx512(const Bf16GemmArgs& g) {
  const int64_t kp = ceil_div(g.k, 2);
  const int64_t row_panels = ceil_div(g.m, kMr), m_pad = row_panels * kMr;
  const int64_t k_blocks = ceil_div(kp, kMaxKcp), kcp_max = ceil_div(kp, k_blocks);
  const int64_t col_panels = ceil_div(g.n, kNr);
  // A2 is stored block by block, [k_blocks][m_pad][kcp_max]: a micro-panel's rows are then
  // kcp_max pairs apart, not kp (a stride of k·2 bytes, a multiple of 4 KiB for k = 49152,
  // maps every row to the same L1 sets).
  std::unique_ptr<uint32_t[]> a2(new uint32_t[static_cast<size_t>(k_blocks * m_pad * kcp_max)]);
#pragma omp parallel
  {
    std::unique_ptr<uint32_t[]> row(new uint32_t[static_cast<size_t>(kp)]);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < m_pad; ++i) {
      if (i >= g.m)
        std::fill(row.get(), row.get() + kp, 0u);
      else if (g.a_t)
        round_row_pairs(g, i, row.get());
      else
        round_row_pairs_avx512(g, i, row.get());
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int64_t p0 = kb * kcp_max, kcp = std::min(kcp_max, kp - p0);
        std::copy(row.get() + p0, row.get() + p0 + kcp, a2.get() + (kb * m_pad + i) * kcp_max);
      }
    }
    // Each thread owns a rectangle of c: a range of column panels when there are at least as
    // many panels as threads (every row), else a range of row micro-panels (every panel). It
    // packs the b panels it needs into its own buffer, so the threads never wait for each
    // other inside the product: one barrier per call (after A2), not one per block — a barrier
    // costs a time slice whenever a thread is preempted on a shared machine.
    const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
    const bool split_columns = col_panels >= threads;
    const int64_t parts = split_columns ? col_panels : row_panels;
    const int64_t first = parts * me / threads, last = parts * (me + 1) / threads;
    const int64_t jp_begin = split_columns ? first : 0, jp_end = split_columns ? last : col_panels;
    const int64_t ir_begin = split_columns ? 0 : first, ir_end = split_columns ? row_panels : last;
    std::unique_ptr<uint32_t[]> bp(new uint32_t[static_cast<size_t>(kNcPanels * kcp_max * kNr)]);
    for (int64_t jc = jp_begin; jc < jp_end && ir_begin < ir_end; jc += kNcPanels) {
      const int64_t panels = std::min(kNcPanels, jp_end - jc);
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int64_t p0 = kb * kcp_max, kcp = std::min(kcp_max, kp - p0);
        for (int64_t jp = 0; jp < panels; ++jp)
          if (g.b_t)
            pack_b_panel(g, p0, kcp, (jc + jp) * kNr, bp.get() + jp * kcp * kNr);
          else
            pack_b_panel_rows_avx512(g, p0, kcp, (jc + jp) * kNr, bp.get() + jp * kcp * kNr);
        const float beta = kb == 0 ? g.beta : 1.0f;
        for (int64_t ir = ir_begin; ir < ir_end; ++ir)
          for (int64_t jp = 0; jp < panels; ++jp) {
            const int64_t i0 = ir * kMr, n0 = (jc + jp) * kNr;
            micro_kernel(kcp, a2.get() + (kb * m_pad + i0) * kcp_max, kcp_max,
                         bp.get() + jp * kcp * kNr, g.c + i0 * g.ldc + n0, g.ldc,
                         static_cast<int>(std::min<int64_t>(kMr, g.m - i0)),
                         static_cast<int>(std::min<int64_t>(kNr, g.n - n0)), g.alpha, beta);
          }
      }
    }
  }
}

// The portable path: the same rounded operands in fp32, multiplied by cblas_sgemm over column
// blocks of kGenericCols (so the widened copy of b stays bounded: ≤ 4096·k floats).
constexpr int64_t kGenericCols = 4096;

void gemm_generic(const Bf16GemmArgs& g) {
  const int64_t a_rows = g.a_t ? g.k : g.m, a_cols = g.a_t ? g.m : g.k;
  std::unique_ptr<float[]> a(new float[static_cast<size_t>(a_rows * a_cols)]);
#pragma omp parallel for schedule(static) if (a_rows * a_cols > 65536)
  for (int64_t r = 0; r < a_rows; ++r)
    for (int64_t col = 0; col < a_cols; ++col)
      a[r * a_cols + col] = widen_bf16(round_to_bf16(g.a[r * g.lda + col]));
  const int64_t block = std::min(kGenericCols, g.n);
  std::unique_ptr<float[]> b(new float[static_cast<size_t>(block * g.k)]);
  for (int64_t n0 = 0; n0 < g.n; n0 += block) {
    const int64_t cols = std::min(block, g.n - n0);
    // The widened block of b keeps b's layout: [cols, k] when b_t, else [k, cols].
    const int64_t b_rows = g.b_t ? cols : g.k, b_cols = g.b_t ? g.k : cols;
    const uint16_t* src = g.b_t ? g.b + n0 * g.ldb : g.b + n0;
#pragma omp parallel for schedule(static) if (b_rows * b_cols > 65536)
    for (int64_t r = 0; r < b_rows; ++r)
      for (int64_t col = 0; col < b_cols; ++col)
        b[r * b_cols + col] = widen_bf16(src[r * g.ldb + col]);
    cblas_sgemm(CblasRowMajor, g.a_t ? CblasTrans : CblasNoTrans, g.b_t ? CblasTrans : CblasNoTrans,
                static_cast<int>(g.m), static_cast<int>(cols), static_cast<int>(g.k), g.alpha,
                a.get(), static_cast<int>(a_cols), b.get(), static_cast<int>(b_cols), g.beta,
                g.c + n0, static_cast<int>(g.ldc));
  }
}

}  // namespace

Bf16Gemm detect_bf16_gemm() {
  if (const char* isa = std::getenv("SMOL_CPU_ISA")) {
    const std::string value = isa;
    if (value == "generic" || value == "avx2") return Bf16Gemm::Generic;
  }
  __builtin_cpu_init();
  const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return has ? Bf16Gemm::Avx512Bf16 : Bf16Gemm::Generic;
}

const char* bf16_gemm_name(Bf16Gemm path) {
  return path == Bf16Gemm::Avx512Bf16 ? "avx512_bf16" : "generic";
}

void gemm_bf16(Bf16Gemm path, const Bf16GemmArgs& args) {
  SMOL_CHECK(args.m > 0 && args.n > 0 && args.k > 0, "gemm_bf16: empty product ", args.m, "x",
             args.n, "x", args.k);
  if (path == Bf16Gemm::Avx512Bf16)
    gemm_avx512(args);
  else
    gemm_generic(args);
}

}  // namespace smol::cpu
