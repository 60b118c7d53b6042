// Causal GQA attention over a packed batch (kernels/backend.h AttentionLayout; docs/formats.md §2).
//   q [Tq, Hq, D], k, v [Tk, Hkv, D], out [Tq, Hq, D], lse [Tq, Hq]
// Query head h reads kv head h / (Hq/Hkv) (HF repeat_kv). Sequence s's query i sits at
// position p = k_len − q_len + i (bottom-right causal alignment) and sees its keys 0..p.
//
// Forward, per (sequence, query head, query), exact softmax in fp32:
//   s_j = scale · q·k_j,  m = max_j s_j,  l = Σ_j exp(s_j − m)
//   out = Σ_j exp(s_j − m)·v_j / l,  lse = m + log l
// Backward recomputes P_j = exp(s_j − lse) and, with Δ = Σ_d dout ⊙ out:
//   dP_j = dout·v_j,  dS_j = P_j (dP_j − Δ)
//   dq = scale Σ_j dS_j k_j,  dk_j += scale Σ dS_j q,  dv_j += Σ P_j dout
//
// How: work is cut into blocks of kQueryBlock (backward: kBackwardQueryBlock) queries of one
// (sequence, kv head); the keys (and, backward, values) a block sees are transposed once to [D,
// keys], and every product — S = Q·Kᵀ, O = P·V, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO —
// runs through one register-blocked micro-kernel (block_product: 6 rows × 16 columns of vector FMA
// accumulators), with masked probabilities set to 0 so whole blocks go through it; exp uses
// the vectorisable exp_approx (cpu_math.h). The forward parallelises over blocks. The
// backward runs one task per (sequence, kv head): the query heads sharing that kv head are
// walked in order inside the task, so dk/dv are summed in a fixed order (deterministic) and no
// two threads write the same row; when sequences share rows (unusual) it runs serially.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/cpu_ops.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SMOL_ATTENTION_AVX512 1
#define SMOL_AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#endif

namespace smol::cpu {
namespace {

constexpr int64_t kMaxVectorDim = 256;  // largest head dim (stack accumulators)
// Query heads per kv head the decode path keeps scores for on the stack (attention_decode);
// larger groups take the block path.
constexpr int64_t kMaxGroup = 8;

struct AttentionDims {
  int64_t q_tokens, k_tokens, q_heads, kv_heads, head_dim, group;
};

// The contract (shapes, dtypes, layout bounds) was checked by Backend::attention_*; what is
// left is this backend's own limit on the head dim.
AttentionDims attention_dims(const char* op, const Tensor& q, const Tensor& k) {
  AttentionDims d{q.shape[0], k.shape[0], q.shape[1], k.shape[1], q.shape[2], 0};
  d.group = d.q_heads / d.kv_heads;
  SMOL_CHECK(d.head_dim <= kMaxVectorDim, op, ": head dim ", d.head_dim, " of q ", q.shape.str(),
             " is outside the cpu backend's supported 1..", kMaxVectorDim);
  return d;
}

// True when no two sequences share a row of [begin, begin+len) ranges given by `range`.
template <typename Range>
bool ranges_disjoint(const std::vector<SeqSpan>& seqs, Range range) {
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (const SeqSpan& s : seqs) {
    auto [begin, len] = range(s);
    if (len > 0) spans.emplace_back(begin, begin + len);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) return false;
  return true;
}

constexpr int32_t kQueryBlock = 32;  // queries per forward work item
constexpr int64_t kKeyTile = 16;     // score columns per micro-kernel step (2 AVX vectors)
// Rows of c per micro-kernel step: 6 × 2 vector accumulators = 12 of the 16 AVX registers,
// which leaves room for the b loads and the broadcast while sharing each b load by 6 FMAs
// (4 rows issued 6 loads per 8 FMAs; 6 rows issue 8 per 12, ~5% faster attention backward).
constexpr int64_t kRowTile = 6;
// Queries per backward block. The dK = dSᵀ·Q and dV = Pᵀ·dO products sum over the block's
// rows, so a taller block gives their micro-kernel a longer inner loop and halves how often
// the dk, dv rows are read and written back (on the 4×512 bench it measured level with or
// slightly faster than 32; the gain sits within the shared machine's noise).
constexpr int64_t kBackwardQueryBlock = 64;

inline int64_t round_up(int64_t x, int64_t m) {
  return (x + m - 1) / m * m;
}

// keys_t[c, j] = k[j, c] for j < n_keys, zero up to the padded width ld (a multiple of
// kKeyTile), so the score micro-kernel always runs whole tiles.
void transpose_keys(float* keys_t, int64_t ld, const float* k, int64_t k_stride, int64_t n_keys,
                    int64_t head_dim) {
  for (int64_t c = 0; c < head_dim; ++c) {
    float* dst = keys_t + c * ld;
    for (int64_t j = 0; j < n_keys; ++j) dst[j] = k[j * k_stride + c];
    for (int64_t j = n_keys; j < ld; ++j) dst[j] = 0.0f;
  }
}

// c[i, l] = alpha · Σ_k a(i, k) · b[k, l] (+ c[i, l] when accumulate) for i < m, l < n, where
// a(i, k) = a[i·a_row + k·a_col] (so a may be read transposed) and b is row-major with stride
// ldb. Every product of attention (S = Q·Kᵀ with Kᵀ stored, O = P·V, dQ = dS·K, dK = dSᵀ·Q,
// dV = Pᵀ·dO) has this shape. Register blocking: kRowTile rows × kKeyTile columns of c live in
// vector accumulators across the whole k loop, and every b load is shared by the kRowTile rows,
// so the loop issues 12 FMAs per 2 vector loads + 6 broadcasts and c is touched once per tile.
SMOL_CPU_MULTIVERSION
void block_product_portable(float* c, int64_t ldc, const float* a, int64_t a_row, int64_t a_col,
                            int64_t m, const float* b, int64_t ldb, int64_t n, int64_t k,
                            float alpha, bool accumulate) {
  for (int64_t i0 = 0; i0 < m; i0 += kRowTile) {
    const int64_t nr = std::min<int64_t>(kRowTile, m - i0);
    const float* ar[kRowTile];  // rows past m repeat the last one (computed, never stored)
    for (int64_t r = 0; r < kRowTile; ++r) ar[r] = a + (i0 + std::min(r, nr - 1)) * a_row;
    for (int64_t j0 = 0; j0 < n; j0 += kKeyTile) {
      const int64_t nl = std::min<int64_t>(kKeyTile, n - j0);
      float acc[kRowTile][kKeyTile] = {};
      if (nl == kKeyTile) {
        for (int64_t kk = 0; kk < k; ++kk) {
          const float* bk = b + kk * ldb + j0;
          for (int64_t r = 0; r < kRowTile; ++r) {
            const float av = ar[r][kk * a_col];
#pragma omp simd
            for (int64_t l = 0; l < kKeyTile; ++l) acc[r][l] = std::fma(av, bk[l], acc[r][l]);
          }
        }
      } else {  // ragged last tile (n not a multiple of kKeyTile): same sums, shorter rows
        for (int64_t kk = 0; kk < k; ++kk) {
          const float* bk = b + kk * ldb + j0;
          for (int64_t r = 0; r < kRowTile; ++r) {
            const float av = ar[r][kk * a_col];
            for (int64_t l = 0; l < nl; ++l) acc[r][l] = std::fma(av, bk[l], acc[r][l]);
          }
        }
      }
      for (int64_t r = 0; r < nr; ++r) {
        float* cr = c + (i0 + r) * ldc + j0;
        if (accumulate) {
          for (int64_t l = 0; l < nl; ++l) cr[l] += alpha * acc[r][l];
        } else {
          for (int64_t l = 0; l < nl; ++l) cr[l] = alpha * acc[r][l];
        }
      }
    }
  }
}

#ifdef SMOL_ATTENTION_AVX512
// block_product for AVX-512: the same sums in the same order (one fma per k, k ascending, then
// c = alpha·acc or c += alpha·acc as an fma), over tiles of kRowTile rows × 32 columns held in
// 12 of the 32 zmm registers. The portable clone's tiles are 16 columns (2 ymm) wide, so each of
// its b loads feeds half as many FMAs; here one b row of 32 floats feeds 12. Columns past n are
// masked off (loads read nothing there, stores write nothing). A last tile of fewer rows (one row
// per sequence when decoding) runs a kernel of that many rows instead of repeating its last row.
template <int kRows, int kVectors>
SMOL_AVX512_TARGET [[gnu::always_inline]] inline void block_tile_avx512(
    float* c, int64_t ldc, const float* const* ar, int64_t a_col, const float* b, int64_t ldb,
    int64_t j0, int64_t nl, int64_t k, float alpha, bool accumulate) {
  const __mmask16 m0 = nl >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nl) - 1);
  const __mmask16 m1 = kVectors < 2 ? __mmask16(0)
                       : nl >= 32   ? __mmask16(0xFFFF)
                                    : __mmask16((1u << (nl - 16)) - 1);
  __m512 acc[kRows][kVectors];
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* bk = b + kk * ldb + j0;
    __m512 bv[kVectors];
    bv[0] = _mm512_maskz_loadu_ps(m0, bk);
    if constexpr (kVectors == 2) bv[1] = _mm512_maskz_loadu_ps(m1, bk + 16);
    for (int r = 0; r < kRows; ++r) {
      const __m512 av = _mm512_set1_ps(ar[r][kk * a_col]);
      for (int v = 0; v < kVectors; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  const __m512 alpha_v = _mm512_set1_ps(alpha);
  // Constant trip counts throughout, so the accumulators stay in registers (a loop bounded at run
  // time would index acc dynamically and spill it to the stack on every k step).
  for (int r = 0; r < kRows; ++r) {
    float* cr = c + r * ldc + j0;
    for (int v = 0; v < kVectors; ++v) {
      const __mmask16 m = v == 0 ? m0 : m1;
      const __m512 out =
          accumulate ? _mm512_fmadd_ps(alpha_v, acc[r][v], _mm512_maskz_loadu_ps(m, cr + 16 * v))
                     : _mm512_mul_ps(alpha_v, acc[r][v]);
      _mm512_mask_storeu_ps(cr + 16 * v, m, out);
    }
  }
}

// The tile of kRows rows at ar over the columns of b, 32 at a time.
template <int kRows>
SMOL_AVX512_TARGET [[gnu::always_inline]] inline void block_rows_avx512(
    float* c_rows, int64_t ldc, const float* const* ar, int64_t a_col, const float* b, int64_t ldb,
    int64_t n, int64_t k, float alpha, bool accumulate) {
  int64_t j0 = 0;
  for (; j0 + 16 < n; j0 += 32)
    block_tile_avx512<kRows, 2>(c_rows, ldc, ar, a_col, b, ldb, j0, std::min<int64_t>(32, n - j0),
                                k, alpha, accumulate);
  if (j0 < n)
    block_tile_avx512<kRows, 1>(c_rows, ldc, ar, a_col, b, ldb, j0, n - j0, k, alpha, accumulate);
}

SMOL_AVX512_TARGET void block_product_avx512(float* c, int64_t ldc, const float* a, int64_t a_row,
                                             int64_t a_col, int64_t m, const float* b, int64_t ldb,
                                             int64_t n, int64_t k, float alpha, bool accumulate) {
  for (int64_t i0 = 0; i0 < m; i0 += kRowTile) {
    const int64_t nr = std::min<int64_t>(kRowTile, m - i0);
    const float* ar[kRowTile];
    for (int64_t r = 0; r < nr; ++r) ar[r] = a + (i0 + r) * a_row;
    float* c_rows = c + i0 * ldc;
    switch (nr) {
      case 1:
        block_rows_avx512<1>(c_rows, ldc, ar, a_col, b, ldb, n, k, alpha, accumulate);
        break;
      case 2:
        block_rows_avx512<2>(c_rows, ldc, ar, a_col, b, ldb, n, k, alpha, accumulate);
        break;
      case 3:
        block_rows_avx512<3>(c_rows, ldc, ar, a_col, b, ldb, n, k, alpha, accumulate);
        break;
      case 4:
        block_rows_avx512<4>(c_rows, ldc, ar, a_col, b, ldb, n, k, alpha, accumulate);
        break;
      case 5:
        block_rows_avx512<5>(c_rows, ldc, ar, a_col, b, ldb, n, k, alpha, accumulate);
        break;
      default:
        block_rows_avx512<kRowTile>(c_rows, ldc, ar, a_col, b, ldb, n, k, alpha, accumulate);
    }
  }
}
#endif

// One of the two block products above, chosen by the backend (cpu_isa.h).
using BlockProduct = void (*)(float* c, int64_t ldc, const float* a, int64_t a_row, int64_t a_col,
                              int64_t m, const float* b, int64_t ldb, int64_t n, int64_t k,
                              float alpha, bool accumulate);
BlockProduct block_product_for(bool avx512) {
#ifdef SMOL_ATTENTION_AVX512
  if (avx512) return block_product_avx512;
#endif
  (void)avx512;
  return block_product_portable;
}

// Row softmax in place over the first `visible` of n scores: p_j = exp(s_j − m) for j <
// visible, 0 for the masked rest (so block products over all n columns add nothing for them).
// Returns Σ_j p_j; *max_score receives m.
SMOL_CPU_MULTIVERSION
float exp_shifted_row(float* scores, int64_t visible, int64_t n, float* max_score) {
  const int64_t whole = visible / 8 * 8, tail = visible - whole;
  Float8 m8 = broadcast8(-INFINITY);
  for (int64_t j = 0; j < whole; j += 8) {
    const Float8 x = load8(scores + j);
    m8 = x > m8 ? x : m8;
  }
  if (tail) {
    const Float8 x = load_partial8(scores + whole, tail, -INFINITY);
    m8 = x > m8 ? x : m8;
  }
  const float m = max_lanes(m8);
  const Float8 shift = broadcast8(m);
  Float8 sum8 = {};
  for (int64_t j = 0; j < whole; j += 8) {
    const Float8 p = exp_approx(load8(scores + j) - shift);
    store8(scores + j, p);
    sum8 += p;
  }
  if (tail) {
    const Float8 p = exp_approx(load_partial8(scores + whole, tail, -INFINITY) - shift);  // pad → 0
    store_partial8(scores + whole, p, tail);
    sum8 += p;
  }
  for (int64_t j = visible; j < n; ++j) scores[j] = 0.0f;
  *max_score = m;
  return sum_lanes(sum8);
}

// ---- decoding: one query per sequence -----------------------------------------------------
// A decode step's queries are single rows (docs/cpu-speed.md "Attention while decoding"). Each
// (sequence, kv head) attends its `group` query heads to the cached keys, cut into splits of at
// most kDecodeSplitKeys keys (split-K, as flash-decoding): one split per work item, so a batch
// of one over a long context still spreads over the threads. A split keeps the unnormalised
// partial softmax of its keys — m (max score), l = Σ exp(s_j − m), acc = Σ exp(s_j − m)·v_j —
// and the splits of a head merge in key order:
//   M = max_s m_s,  L = Σ_s l_s·exp(m_s − M),  out = Σ_s acc_s·exp(m_s − M) / L,  lse = M + log L
// A head with one split writes acc / l and m + log l directly (the merge would multiply by
// exp(0) = 1: the same value). The split length is fixed, never derived from the thread count,
// so results do not depend on OMP_NUM_THREADS. Below kDecodeParallelWork multiply-adds the
// step runs on the calling thread: a parallel region costs more than a short context's
// attention (batch 1 over a 64-token chat context is ≈ 37K multiply-adds per layer).
constexpr int64_t kDecodeSplitKeys = 256;
constexpr int64_t kDecodeParallelWork = int64_t{1} << 16;

struct DecodeSplit {
  int32_t seq, kv_head, key_begin, key_end;
  int64_t partial;  // index of its first head's partial in DecodePartials
};
// Per (split, head of the group): m, l and acc [D].
struct DecodePartials {
  int64_t head_dim;
  std::vector<float> values;  // (2 + D) floats per partial
  float* m(int64_t i) { return values.data() + i * (2 + head_dim); }
  float* l(int64_t i) { return m(i) + 1; }
  float* acc(int64_t i) { return m(i) + 2; }
};

// The partial softmax of the `group` query heads q (one row each, q_stride apart) over keys
// [0, n_keys) of k, v: scores are dot products straight from the key rows (with one query per
// head, a transposed copy of the keys would cost as much as using them), each key and value row
// is read once for all the group's heads, the softmax is the forward's exp_shifted_row.
// scores: group × n_keys floats of scratch.
// kD > 0 fixes the head dim at compile time (SmolLM2's 64): the loops over it unroll and each
// head's accumulator stays in registers while the values stream past; kD = 0 reads D at run time.
template <int64_t kD>
SMOL_CPU_MULTIVERSION void attend_keys(DecodePartials& parts, int64_t first, const float* q,
                                       int64_t q_stride, const float* k, const float* v,
                                       int64_t kv_stride, int64_t n_keys, int64_t group,
                                       int64_t runtime_d, float scale, float* scores) {
  const int64_t D = kD > 0 ? kD : runtime_d;
  for (int64_t j = 0; j < n_keys; ++j) {
    const float* kj = k + j * kv_stride;
    for (int64_t g = 0; g < group; ++g) {
      const float* qg = q + g * q_stride;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t c = 0; c < D; ++c) dot += qg[c] * kj[c];
      scores[g * n_keys + j] = scale * dot;
    }
  }
  for (int64_t g = 0; g < group; ++g) {
    const float* p = scores + g * n_keys;
    *parts.l(first + g) = exp_shifted_row(scores + g * n_keys, n_keys, n_keys, parts.m(first + g));
    float* a = parts.acc(first + g);
    if constexpr (kD > 0) {
      float acc[kD] = {};
      for (int64_t j = 0; j < n_keys; ++j) {
        const float* vj = v + j * kv_stride;
#pragma omp simd
        for (int64_t c = 0; c < kD; ++c) acc[c] += p[j] * vj[c];
      }
      std::copy_n(acc, kD, a);
    } else {
      std::fill_n(a, D, 0.0f);
      for (int64_t j = 0; j < n_keys; ++j) {
        const float* vj = v + j * kv_stride;
#pragma omp simd
        for (int64_t c = 0; c < D; ++c) a[c] += p[j] * vj[c];
      }
    }
  }
}

void attention_decode(float* out, float* lse, const float* q, const float* k, const float* v,
                      const AttentionLayout& layout, const AttentionDims& d, float scale) {
  const int64_t D = d.head_dim, q_stride = d.q_heads * D, kv_stride = d.kv_heads * D;
  std::vector<DecodeSplit> splits;
  int64_t partials = 0, work = 0;
  for (size_t s = 0; s < layout.seqs.size(); ++s) {
    const SeqSpan& sp = layout.seqs[s];
    if (sp.q_len == 0) continue;
    work += int64_t{sp.k_len} * d.q_heads * D;
    for (int32_t h = 0; h < d.kv_heads; ++h)
      for (int32_t j = 0; j < sp.k_len; j += kDecodeSplitKeys) {
        const int32_t j1 = static_cast<int32_t>(std::min<int64_t>(sp.k_len, j + kDecodeSplitKeys));
        splits.push_back({static_cast<int32_t>(s), h, j, j1, partials});
        partials += d.group;
      }
  }
  DecodePartials parts{D, std::vector<float>(static_cast<size_t>(partials * (2 + D)))};
  const int64_t n_splits = static_cast<int64_t>(splits.size());
#pragma omp parallel if (work >= kDecodeParallelWork && n_splits > 1)
  {
    float scores[kMaxGroup * kDecodeSplitKeys];
#pragma omp for schedule(dynamic)
    for (int64_t i = 0; i < n_splits; ++i) {
      const DecodeSplit& split = splits[i];
      const SeqSpan& sp = layout.seqs[split.seq];
      const int64_t key0 = int64_t{sp.k_begin} + split.key_begin;
      (D == 64 ? attend_keys<64>
               : attend_keys<0>)(parts, split.partial,
                                 q + int64_t{sp.q_begin} * q_stride + split.kv_head * d.group * D,
                                 D, k + key0 * kv_stride + split.kv_head * D,
                                 v + key0 * kv_stride + split.kv_head * D, kv_stride,
                                 split.key_end - split.key_begin, d.group, D, scale, scores);
    }
  }
  // Merge each head's splits in key order (they are consecutive in `splits`).
  for (int64_t i = 0; i < n_splits;) {
    int64_t end = i + 1;
    while (end < n_splits && splits[end].seq == splits[i].seq &&
           splits[end].kv_head == splits[i].kv_head)
      ++end;
    const SeqSpan& sp = layout.seqs[splits[i].seq];
    for (int64_t g = 0; g < d.group; ++g) {
      const int64_t h = splits[i].kv_head * d.group + g;
      float* o = out + int64_t{sp.q_begin} * q_stride + h * D;
      const int64_t first = splits[i].partial + g;
      if (end == i + 1) {
        const float sum = *parts.l(first), inv_sum = 1.0f / sum;
        lse[int64_t{sp.q_begin} * d.q_heads + h] = *parts.m(first) + std::log(sum);
        for (int64_t c = 0; c < D; ++c) o[c] = parts.acc(first)[c] * inv_sum;
        continue;
      }
      float m = -INFINITY;
      for (int64_t s = i; s < end; ++s) m = std::max(m, *parts.m(splits[s].partial + g));
      float sum = 0.0f;
      for (int64_t c = 0; c < D; ++c) o[c] = 0.0f;
      for (int64_t s = i; s < end; ++s) {
        const int64_t part = splits[s].partial + g;
        const float w = std::exp(*parts.m(part) - m);
        sum += *parts.l(part) * w;
        for (int64_t c = 0; c < D; ++c) o[c] += parts.acc(part)[c] * w;
      }
      const float inv_sum = 1.0f / sum;
      for (int64_t c = 0; c < D; ++c) o[c] *= inv_sum;
      lse[int64_t{sp.q_begin} * d.q_heads + h] = m + std::log(sum);
    }
    i = end;
  }
}

// ---- backward ------------------------------------------------------------------------------
struct BackwardTensors {
  const float *q, *k, *v, *out, *dout, *lse;
  float *dq, *dk, *dv;
  BlockProduct block_product;
};
// Per-thread buffers: transposed K and V [D, key_capacity]; S/P, dP/dS [kBackwardQueryBlock,
// keys].
struct BackwardScratch {
  std::vector<float> keys_t, values_t, probs, dscores;
  BackwardScratch(int64_t head_dim, int64_t key_capacity)
      : keys_t(head_dim * key_capacity),
        values_t(head_dim * key_capacity),
        probs(kBackwardQueryBlock * key_capacity),
        dscores(kBackwardQueryBlock * key_capacity) {}
};

// One block of query rows [i0, i1) of query head h: recomputes P from lse, forms dS, writes dq
// for these rows and adds this block's share of dk, dv (blocks and heads are walked in a fixed
// order by the caller, so the sums are deterministic).
SMOL_CPU_MULTIVERSION
void attention_backward_block(const BackwardTensors& t, const SeqSpan& sp, int64_t kv_head,
                              int64_t h, int64_t i0, int64_t i1, const AttentionDims& d,
                              float scale, BackwardScratch& s, int64_t ld) {
  const int64_t D = d.head_dim, q_stride = d.q_heads * D, kv_stride = d.kv_heads * D;
  const int64_t offset = int64_t{sp.k_len} - sp.q_len;
  const int64_t n_keys = offset + i1, n_cols = round_up(n_keys, kKeyTile), rows = i1 - i0;
  const int64_t first_row = int64_t{sp.q_begin} + i0;
  const float* q_block = t.q + first_row * q_stride + h * D;
  const float* do_block = t.dout + first_row * q_stride + h * D;
  const float* k_base = t.k + int64_t{sp.k_begin} * kv_stride + kv_head * D;
  float* dk_base = t.dk + int64_t{sp.k_begin} * kv_stride + kv_head * D;
  float* dv_base = t.dv + int64_t{sp.k_begin} * kv_stride + kv_head * D;
  float* P = s.probs.data();
  float* dS = s.dscores.data();
  // S = scale·Q·Kᵀ and dP = dO·Vᵀ over the keys the block's last row sees.
  t.block_product(P, ld, q_block, q_stride, 1, rows, s.keys_t.data(), ld, n_cols, D, scale, false);
  t.block_product(dS, ld, do_block, q_stride, 1, rows, s.values_t.data(), ld, n_cols, D, 1.0f,
                  false);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t row = first_row + r, visible = offset + i0 + r + 1;
    const float* oi = t.out + row * q_stride + h * D;
    const float* doi = do_block + r * q_stride;
    float delta = 0.0f;  // Δ = Σ_d dout ⊙ out
#pragma omp simd reduction(+ : delta)
    for (int64_t c = 0; c < D; ++c) delta += doi[c] * oi[c];
    const float lse_i = t.lse[row * d.q_heads + h];
    float* p_row = P + r * ld;
    float* ds_row = dS + r * ld;
    const Float8 lse8 = broadcast8(lse_i), delta8 = broadcast8(delta);
    const int64_t whole = visible / 8 * 8, tail = visible - whole;
    for (int64_t j = 0; j < whole; j += 8) {
      const Float8 p = exp_approx(load8(p_row + j) - lse8);
      store8(p_row + j, p);
      store8(ds_row + j, p * (load8(ds_row + j) - delta8));
    }
    if (tail) {
      const Float8 p = exp_approx(load_partial8(p_row + whole, tail, 0.0f) - lse8);
      store_partial8(p_row + whole, p, tail);
      store_partial8(ds_row + whole, p * (load_partial8(ds_row + whole, tail, 0.0f) - delta8),
                     tail);
    }
    for (int64_t j = visible; j < n_keys; ++j) p_row[j] = ds_row[j] = 0.0f;  // masked
  }
  // dq += scale·dS·K (+=: sequences may share query rows in the serial case); dk += scale·dSᵀ·Q; dv
  // += Pᵀ·dO.
  float* dq_block = t.dq + first_row * q_stride + h * D;
  t.block_product(dq_block, q_stride, dS, ld, 1, rows, k_base, kv_stride, D, n_keys, scale, true);
  t.block_product(dk_base, kv_stride, dS, 1, ld, n_keys, q_block, q_stride, D, rows, scale, true);
  t.block_product(dv_base, kv_stride, P, 1, ld, n_keys, do_block, q_stride, D, rows, 1.0f, true);
}

// All query heads of kv head `kv_head` over sequence sp, block by block.
void attention_backward_task(const BackwardTensors& t, const SeqSpan& sp, int64_t kv_head,
                             const AttentionDims& d, float scale, BackwardScratch& s) {
  if (sp.q_len == 0) return;
  const int64_t D = d.head_dim, kv_stride = d.kv_heads * D;
  const int64_t ld = round_up(sp.k_len, kKeyTile);
  transpose_keys(s.keys_t.data(), ld, t.k + int64_t{sp.k_begin} * kv_stride + kv_head * D,
                 kv_stride, sp.k_len, D);
  transpose_keys(s.values_t.data(), ld, t.v + int64_t{sp.k_begin} * kv_stride + kv_head * D,
                 kv_stride, sp.k_len, D);
  for (int64_t h = kv_head * d.group; h < (kv_head + 1) * d.group; ++h)
    for (int64_t i0 = 0; i0 < sp.q_len; i0 += kBackwardQueryBlock)
      attention_backward_block(t, sp, kv_head, h, i0,
                               std::min<int64_t>(sp.q_len, i0 + kBackwardQueryBlock), d, scale, s,
                               ld);
}

}  // namespace

void attention_forward(Tensor out, Tensor lse, const Tensor& q, const Tensor& k, const Tensor& v,
                       const AttentionLayout& layout, float scale, bool avx512) {
  const BlockProduct block_product = block_product_for(avx512);
  const AttentionDims d = attention_dims("attention_forward", q, k);
  const bool decoding =
      d.group <= kMaxGroup && std::all_of(layout.seqs.begin(), layout.seqs.end(),
                                          [](const SeqSpan& sp) { return sp.q_len <= 1; });
  if (decoding) {
    attention_decode(out.as<float>(), lse.as<float>(), q.as<float>(), k.as<float>(), v.as<float>(),
                     layout, d, scale);
    return;
  }
  const int64_t D = d.head_dim;
  const int64_t q_stride = d.q_heads * D, kv_stride = d.kv_heads * D;  // floats per token row
  // Work items: (sequence, kv head, block of up to kQueryBlock queries). An item transposes
  // the keys its block sees once and reuses them for every query head of the group.
  struct Item {
    int32_t seq, kv_head, i_begin, i_end;
  };
  std::vector<Item> items;
  int64_t max_k = 0;
  for (size_t s = 0; s < layout.seqs.size(); ++s) {
    const SeqSpan& sp = layout.seqs[s];
    max_k = std::max<int64_t>(max_k, sp.k_len);
    for (int32_t g = 0; g < d.kv_heads; ++g)
      for (int32_t i = 0; i < sp.q_len; i += kQueryBlock)
        items.push_back({static_cast<int32_t>(s), g, i, std::min(sp.q_len, i + kQueryBlock)});
  }
  const int64_t key_capacity = round_up(std::max<int64_t>(max_k, 1), kKeyTile);
  const float* pq = q.as<float>();
  const float* pk = k.as<float>();
  const float* pv = v.as<float>();
  float* po = out.as<float>();
  float* pl = lse.as<float>();
  const int64_t n_items = static_cast<int64_t>(items.size());
#pragma omp parallel if (n_items > 1)
  {
    std::vector<float> keys_t(static_cast<size_t>(D * key_capacity));
    std::vector<float> scores(static_cast<size_t>(kQueryBlock * key_capacity));
    float row_sums[kQueryBlock];
#pragma omp for schedule(dynamic)
    for (int64_t it = 0; it < n_items; ++it) {
      const Item& item = items[it];
      const SeqSpan& sp = layout.seqs[item.seq];
      const int64_t offset = int64_t{sp.k_len} - sp.q_len;  // query i sits at position offset+i
      const float* k_base = pk + int64_t{sp.k_begin} * kv_stride + item.kv_head * D;
      const float* v_base = pv + int64_t{sp.k_begin} * kv_stride + item.kv_head * D;
      const int64_t block_keys = offset + item.i_end;  // keys the block's last query sees
      const int64_t rows = item.i_end - item.i_begin;
      const int64_t ld = round_up(block_keys, kKeyTile);
      transpose_keys(keys_t.data(), ld, k_base, kv_stride, block_keys, D);
      for (int64_t h = item.kv_head * d.group; h < (item.kv_head + 1) * d.group; ++h) {
        const float* q_block = pq + (int64_t{sp.q_begin} + item.i_begin) * q_stride + h * D;
        block_product(scores.data(), ld, q_block, q_stride, 1, rows, keys_t.data(), ld, ld, D,
                      scale, false);
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t row = int64_t{sp.q_begin} + item.i_begin + r;
          const int64_t visible = offset + item.i_begin + r + 1;  // keys 0..p
          float max_score;
          row_sums[r] = exp_shifted_row(scores.data() + r * ld, visible, block_keys, &max_score);
          pl[row * d.q_heads + h] = max_score + std::log(row_sums[r]);
        }
        // O = P·V over the block's keys (masked probabilities are 0), then 1/Σ per row.
        float* o_block = po + (int64_t{sp.q_begin} + item.i_begin) * q_stride + h * D;
        block_product(o_block, q_stride, scores.data(), ld, 1, rows, v_base, kv_stride, D,
                      block_keys, 1.0f, false);
        for (int64_t r = 0; r < rows; ++r) {
          const float inv_sum = 1.0f / row_sums[r];
          for (int64_t c = 0; c < D; ++c) o_block[r * q_stride + c] *= inv_sum;
        }
      }
    }
  }
}

void attention_backward(Tensor dq, Tensor dk, Tensor dv, const Tensor& dout, const Tensor& q,
                        const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                        const AttentionLayout& layout, float scale, bool avx512) {
  const char* op = "attention_backward";
  const AttentionDims d = attention_dims(op, q, k);
  fill_zero(dq);  // overwrite semantics; rows outside the layout stay zero
  fill_zero(dk);
  fill_zero(dv);
  const int64_t D = d.head_dim;
  const bool parallel_safe =
      ranges_disjoint(
          layout.seqs,
          [](const SeqSpan& s) { return std::pair<int64_t, int64_t>(s.q_begin, s.q_len); }) &&
      ranges_disjoint(layout.seqs, [](const SeqSpan& s) {
        return std::pair<int64_t, int64_t>(s.k_begin, s.k_len);
      });
  int64_t max_k = 0;
  for (const SeqSpan& sp : layout.seqs) max_k = std::max<int64_t>(max_k, sp.k_len);
  const int64_t key_capacity = round_up(std::max<int64_t>(max_k, 1), kKeyTile);
  const int64_t n_tasks = static_cast<int64_t>(layout.seqs.size()) * d.kv_heads;
  const BackwardTensors t{
      q.as<float>(),   k.as<float>(),  v.as<float>(),  out.as<float>(), dout.as<float>(),
      lse.as<float>(), dq.as<float>(), dk.as<float>(), dv.as<float>(),  block_product_for(avx512)};
#pragma omp parallel if (parallel_safe && n_tasks > 1)
  {
    BackwardScratch scratch(D, key_capacity);
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < n_tasks; ++task)
      attention_backward_task(t, layout.seqs[task / d.kv_heads], task % d.kv_heads, d, scale,
                              scratch);
  }
}

}  // namespace smol::cpu
