// Flash attention (FA2, Dao 2023) for bf16 q/k/v on tensor cores (kernels/cuda/mma.h): causal
// GQA over packed variable-length sequences with bottom-right causal alignment
// (kernels/backend.h AttentionLayout), head dim D ≤ 128 and a multiple of 16, fp32 softmax and
// accumulation, no T×T matrix in memory. The design, its tile sizes and its roofline are in
// docs/design.md §2.5. Notation: sequence s has q_len queries and k_len keys, offset =
// k_len − q_len; its query i sits at position offset + i and sees keys 0..offset + i. Query head
// h reads kv head h / group, group = Hq / Hkv. Scores live in log2 units: x = s·scale·log2(e), so
// exp(s·scale − m) = exp2(x − m₂) and lse = (m₂ + log2 ℓ)·ln 2.
//
// Forward (flash_forward_kernel): one block of 4 warps per (query tile of 64 rows, query head);
// warp w owns rows 16w..16w+15. Q's A fragments stay in registers; for each 64-key tile of
// keys 0..(last row's position): K and V tiles to shared memory, S = Q·Kᵀ (mma), mask, online
// softmax (running max m and sum ℓ per row, the accumulator rescaled by exp2(m_old − m_new)),
// O += P·V with P rounded to bf16 straight from the score registers. out = O / ℓ, lse F32.
//
// Decode (flash_decode_kernel + flash_decode_combine_kernel): when a sequence's q_len × group
// query rows fit one 16-row mma tile (generation: 1 new token × 3 heads), one warp per
// (sequence, kv head, split of kDecodeSplitKeys keys) runs the same online softmax over its
// keys and writes an unnormalised partial (m, ℓ, O) in fp32; the combine walks the splits in
// their fixed order: M = max m_s, L = Σ ℓ_s·exp2(m_s − M), out = Σ O_s·exp2(m_s − M) / L.
//
// Backward, with P = exp(s·scale − lse), dP = dO·Vᵀ, Δ_i = dO_i·out_i (flash_delta_kernel),
// dS = P ∘ (dP − Δ): two passes, both deterministic without atomics —
//   flash_dkdv_kernel: one block per (key tile, kv head); warp w owns 16 keys; for each query
//     head of the group in order, for each query tile that sees the keys in order:
//     Sᵀ = K·Qᵀ, Pᵀ, dV += Pᵀ·dO, dPᵀ = V·dOᵀ, dSᵀ, dK += dSᵀ·Q; dK ·= scale.
//   flash_dq_kernel: one block per (query tile, query head), like the forward:
//     S = Q·Kᵀ, P, dP = dO·Vᵀ, dS, dQ += dS·K; dQ ·= scale.
// The dq pass recomputes S and dP (7 tile products per (query, key) tile pair instead of FA2's
// 5), the price of a dq with no float atomics and a fixed summation order.
//
// Fused RoPE backward (Backend::attention_rope_backward, docs/design.md §2.7 "Fused RoPE"): when
// q and k were rotated by RoPE, the gradients wanted are those of the un-rotated q and k, i.e.
// dq and dk rotated by the negative angle. A lane's accumulator holds columns c and c + D/2 of
// its rows in the same register slot of fragments n and n + D/16, so both kernels rotate their
// fp32 accumulators in registers (rope_math.h, the code rope.cu runs) right before their one
// store: no rope launch, no second read and write of dq and dk, one rounding to bf16.
//
// Every kernel streams its tiles through shared memory with cp.async (async_copy.h), double-
// buffered: the loads of the next tile are in flight while the tensor cores work on the current
// one; two barriers per tile (data landed / buffer released) order the block.
//
// Longest supported length (docs/design.md §2.5). No resource of these kernels grows with the
// sequence: shared memory, registers and the work lists are per 64-row tile or 128-key split;
// only a block's loop does (a query tile walks ≤ L/64 key tiles, a dK/dV block its query tiles,
// the combine ⌈L/128⌉ splits), and every running sum (m, ℓ, the accumulators) is fp32. What
// bounds L: the layout's int32 rows (AttentionLayout, attention_layout.h: a pack of q or k rows
// holds < 2^31 tokens; element offsets are formed in int64), the grid (x: tiles or splits
// < 2^31; y: heads ≤ 65535, checked below), and memory for q, k, v. The engine bounds every
// sequence by the model's context (max_position_embeddings: 8192 for SmolLM2), the length
// tests/cuda_ops runs the forward at on cuda-emu.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "kernels/cuda/async_copy.h"
#include "kernels/cuda/attention_layout.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/flash_attention.h"
#include "kernels/cuda/mma.h"
#include "kernels/cuda/rope_math.h"

namespace smol::SMOL_GPU_NS {
namespace {

using mma::FragA;
using mma::FragB;
using mma::FragC;

constexpr int kRows = kFlashTileRows;  // 64 queries or keys per tile
constexpr int kWarps = kRows / 16;     // 4 warps, 16 rows each
constexpr int kThreads = 32 * kWarps;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Integer min / max usable in device code by both compilers (std::min takes references, which
// nvcc refuses for host constexprs).
__device__ __forceinline__ int min_int(int a, int b) {
  return a < b ? a : b;
}
__device__ __forceinline__ int max_int(int a, int b) {
  return a > b ? a : b;
}

// Shared-memory row stride of a [rows][D] bf16 tile: 16 bytes of padding shift consecutive rows
// by four banks, so the 8 row addresses of an ldmatrix hit 8 distinct 16-byte bank groups.
template <int D>
constexpr int smem_stride() {
  return D + 8;
}

// Copies rows [0, kRows) of a [*, ld] bf16 matrix (row 0 at src) into a [kRows][D] shared tile,
// 16 bytes per cp.async (async_copy.h), every thread of the block taking part; rows ≥ valid are
// zero-filled (cache rows past k_len may hold anything, and 0·NaN would poison P·V). The data
// lands at the thread's wait that completes the group and is visible to the block after the
// barrier that follows. Row 0 must exist (it stands in as the source of the zero-filled rows).
template <int D, int kBlockThreads = kThreads>
__device__ __forceinline__ void load_tile_async(AsyncCopies& copies, bf16* tile, const bf16* src,
                                                int64_t ld, int valid) {
  constexpr int kChunks = D / 8;
  for (int c = threadIdx.x; c < kRows * kChunks; c += kBlockThreads) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    const bool exists = r < valid;
    copies.copy16(tile + r * smem_stride<D>() + col, src + (exists ? r * ld : 0) + col, exists);
  }
}

__device__ __forceinline__ void zero(FragC& c) {
  c.x[0] = c.x[1] = c.x[2] = c.x[3] = 0.0f;
}

// S (16 rows × 64 columns) = A-tile rows [row0, row0+16) · (B-tile rows 0..63)ᵀ, both [*, D]
// bf16 tiles in shared memory (QKᵀ, dO·Vᵀ, K·Qᵀ, V·dOᵀ).
template <int D>
__device__ __forceinline__ void scores_16x64(FragC (&s)[8], const bf16* a_tile, int row0,
                                             const bf16* b_tile, int lane) {
  constexpr int S = smem_stride<D>();
  for (int n = 0; n < 8; ++n) zero(s[n]);
  for (int kk = 0; kk < D / 16; ++kk) {
    const FragA a = mma::load_a(a_tile, S, row0, kk * 16, lane);
    for (int n = 0; n < 8; n += 2) {
      FragB b[2];
      mma::load_b_transposed_x2n(b, b_tile, S, n * 8, kk * 16, lane);
      mma::mma_bf16_16816(s[n], a, b[0], s[n]);
      mma::mma_bf16_16816(s[n + 1], a, b[1], s[n + 1]);
    }
  }
}

// The same with the A operand (16 rows × D) already in registers (the forward's Q).
template <int D>
__device__ __forceinline__ void scores_16x64_resident(FragC (&s)[8], const FragA (&a)[D / 16],
                                                      const bf16* b_tile, int lane) {
  constexpr int S = smem_stride<D>();
  for (int n = 0; n < 8; ++n) zero(s[n]);
  for (int kk = 0; kk < D / 16; ++kk)
    for (int n = 0; n < 8; n += 2) {
      FragB b[2];
      mma::load_b_transposed_x2n(b, b_tile, S, n * 8, kk * 16, lane);
      mma::mma_bf16_16816(s[n], a[kk], b[0], s[n]);
      mma::mma_bf16_16816(s[n + 1], a[kk], b[1], s[n + 1]);
    }
}

// acc (16 × D) += P (16 × 64, fp32 accumulators rounded to bf16) × tile (64 × D in shared).
template <int D>
__device__ __forceinline__ void accumulate_pv(FragC (&acc)[D / 8], const FragC (&p)[8],
                                              const bf16* tile, int lane) {
  constexpr int S = smem_stride<D>();
  for (int kk = 0; kk < 4; ++kk) {
    const FragA a = mma::a_from_accumulators(p[2 * kk], p[2 * kk + 1]);
    for (int n = 0; n < D / 8; n += 2) {
      FragB b[2];
      mma::load_b_x2n(b, tile, S, kk * 16, n * 8, lane);
      mma::mma_bf16_16816(acc[n], a, b[0], acc[n]);
      mma::mma_bf16_16816(acc[n + 1], a, b[1], acc[n + 1]);
    }
  }
}

// The online-softmax step for the lane's two rows (r = 0: row g, r = 1: row g + 8) over one
// 64-key tile of log2-unit scores x (already masked with −∞): new running max, rescale of ℓ and
// of the accumulator, x replaced by exp2(x − m). ℓ stays a per-lane partial sum (the quad's
// four lanes share one max, so their partials add up at the end).
template <int kAccFrags>
__device__ __forceinline__ void online_softmax(FragC (&x)[8], float (&m)[2], float (&l)[2],
                                               FragC (&acc)[kAccFrags]) {
  for (int r = 0; r < 2; ++r) {
    float tile_max = -INFINITY;
    for (int n = 0; n < 8; ++n) tile_max = fmaxf(tile_max, fmaxf(x[n].x[2 * r], x[n].x[2 * r + 1]));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
    const float m_new = fmaxf(m[r], tile_max);
    // A row with no visible key yet keeps m = −∞; subtracting 0 then keeps every exp2 at 0
    // instead of NaN (−∞ − −∞).
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
    const float alpha = exp2f(m[r] - m_use);
    m[r] = m_new;
    float sum = 0.0f;
    for (int n = 0; n < 8; ++n) {
      x[n].x[2 * r] = exp2f(x[n].x[2 * r] - m_use);
      x[n].x[2 * r + 1] = exp2f(x[n].x[2 * r + 1] - m_use);
      sum += x[n].x[2 * r] + x[n].x[2 * r + 1];
    }
    l[r] = l[r] * alpha + sum;
    for (int n = 0; n < kAccFrags; ++n) {
      acc[n].x[2 * r] *= alpha;
      acc[n].x[2 * r + 1] *= alpha;
    }
  }
}

// Scales scores to log2 units and masks key columns a row may not see: key > position or
// key ≥ k_len. pos[r] is the position of the lane's row r; key0 the tile's first key.
__device__ __forceinline__ void scale_and_mask(FragC (&s)[8], float scale_log2, int key0,
                                               const int (&pos)[2], int k_len, bool needs_mask,
                                               int lane) {
  const int t = lane % 4;
  for (int n = 0; n < 8; ++n)
    for (int e = 0; e < 4; ++e) {
      const int key = key0 + n * 8 + 2 * t + (e % 2);
      float x = s[n].x[e] * scale_log2;
      if (needs_mask && (key > pos[e / 2] || key >= k_len)) x = -INFINITY;
      s[n].x[e] = x;
    }
}

// Stores the lane's part of a 16 × D fp32 accumulator (times `factor[r]` per row) as bf16;
// the lane's row r goes to the D-element row dst_row[r] (nullptr: not stored).
template <int D>
__device__ __forceinline__ void store_rows(bf16* const (&dst_row)[2], const FragC (&acc)[D / 8],
                                           const float (&factor)[2], int lane) {
  const int t = lane % 4;
  for (int r = 0; r < 2; ++r) {
    if (dst_row[r] == nullptr) continue;
    for (int n = 0; n < D / 8; ++n) {
      const uint32_t packed =
          mma::pack_bf16x2(acc[n].x[2 * r] * factor[r], acc[n].x[2 * r + 1] * factor[r]);
      memcpy(dst_row[r] + n * 8 + 2 * t, &packed, 4);
    }
  }
}

// store_rows for RoPE'd inputs (header comment "Fused RoPE backward"): each row's values
// (times factor[r]) rotated by −angle at position[r] before the one rounding to bf16. Pair i < D/2
// is (fragment n, n + D/16) at the same slot: column i = n·8 + 2t + e.
// Full unrolling under nvcc (g++ for cuda-emu does not need it): the rotation indexes fragments
// n and n + D/16, and a loop left rolled would move the accumulators to local memory.
#if defined(__CUDACC__)
#define SMOL_FLASH_UNROLL _Pragma("unroll")
#else
#define SMOL_FLASH_UNROLL
#endif

template <int D>
__device__ __forceinline__ void store_rows_rope_backward(bf16* const (&dst_row)[2],
                                                         const FragC (&acc)[D / 8],
                                                         const float (&factor)[2],
                                                         const int (&position)[2],
                                                         const float* inv_freq, int lane) {
  constexpr int kHalfFrags = D / 16;  // fragments covering columns [0, D/2)
  const int t = lane % 4;
  SMOL_FLASH_UNROLL
  for (int r = 0; r < 2; ++r) {
    if (dst_row[r] == nullptr) continue;
    SMOL_FLASH_UNROLL
    for (int n = 0; n < kHalfFrags; ++n) {
      float lo[2], hi[2];
      SMOL_FLASH_UNROLL
      for (int e = 0; e < 2; ++e) {
        float sin_a, cos_a;
        rope_sin_cos(position[r], inv_freq[n * 8 + 2 * t + e], -1.0f, sin_a, cos_a);
        rope_rotate(acc[n].x[2 * r + e] * factor[r], acc[n + kHalfFrags].x[2 * r + e] * factor[r],
                    sin_a, cos_a, lo[e], hi[e]);
      }
      const uint32_t packed_lo = mma::pack_bf16x2(lo[0], lo[1]);
      const uint32_t packed_hi = mma::pack_bf16x2(hi[0], hi[1]);
      memcpy(dst_row[r] + n * 8 + 2 * t, &packed_lo, 4);
      memcpy(dst_row[r] + D / 2 + n * 8 + 2 * t, &packed_hi, 4);
    }
  }
}

// ---- forward ---------------------------------------------------------------------------------
// Shared: Q, then two K and two V tiles (double-buffered: tile j + 1 loads while j is used).
template <int D>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(bf16* out /* [Tq, Hq, D] */, float* lse /* [Tq, Hq] */,
                         const bf16* q /* [Tq, Hq, D] */, const bf16* k /* [Tk, Hkv, D] */,
                         const bf16* v /* [Tk, Hkv, D] */, const AttentionSpan* spans,
                         const AttentionTile* tiles, int hq, int hkv, float scale_log2) {
  constexpr int S = smem_stride<D>();
  bf16* q_s = dynamic_shared<bf16>();  // [64][S]
  // Buffer b of K and of V (pointer arithmetic, not a pointer array: no local memory).
  auto k_s = [&](int b) { return q_s + (1 + b) * kRows * S; };
  auto v_s = [&](int b) { return q_s + (3 + b) * kRows * S; };
  const AttentionTile tile = tiles[blockIdx.x];
  const AttentionSpan span = spans[tile.seq];
  const int h = blockIdx.y, kv = h / (hq / hkv);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4;
  const int q0 = tile.start, rows = min_int(kRows, span.q_len - q0);
  const int offset = span.k_len - span.q_len;
  const int64_t q_ld = int64_t{hq} * D, k_ld = int64_t{hkv} * D;
  const bf16* k_base = k + (int64_t{span.k_begin} * hkv + kv) * D;
  const bf16* v_base = v + (int64_t{span.k_begin} * hkv + kv) * D;
  // Keys 0 .. key_end − 1 are seen by some row of the block, in key_tiles tiles.
  const int block_first_pos = offset + q0, key_end = offset + q0 + rows;
  const int key_tiles = (key_end + kRows - 1) / kRows;
  AsyncCopies copies;
  load_tile_async<D>(copies, q_s, q + (int64_t{span.q_begin + q0} * hq + h) * D, q_ld, rows);
  load_tile_async<D>(copies, k_s(0), k_base, k_ld, min_int(kRows, span.k_len));
  load_tile_async<D>(copies, v_s(0), v_base, k_ld, min_int(kRows, span.k_len));
  copies.commit();

  const int pos[2] = {offset + q0 + warp * 16 + g, offset + q0 + warp * 16 + g + 8};
  FragA qa[D / 16];
  FragC o[D / 8];
  for (FragC& c : o) zero(c);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int j = 0; j < key_tiles; ++j) {
    const int key0 = j * kRows, buf = j % 2;
    if (j + 1 < key_tiles) {
      // Refills the buffer tile j − 1 used: every warp left it at the last loop barrier.
      const int next = key0 + kRows, valid = min_int(kRows, span.k_len - next);
      load_tile_async<D>(copies, k_s(1 - buf), k_base + next * k_ld, k_ld, valid);
      load_tile_async<D>(copies, v_s(1 - buf), v_base + next * k_ld, k_ld, valid);
      copies.commit();
      copies.wait<1>();  // everything but tile j + 1 has landed
    } else {
      copies.wait<0>();
    }
    __syncthreads();  // every thread's part of tile j (and of Q) is in shared memory
    if (j == 0)
      for (int kk = 0; kk < D / 16; ++kk) qa[kk] = mma::load_a(q_s, S, warp * 16, kk * 16, lane);
    FragC s[8];
    scores_16x64_resident<D>(s, qa, k_s(buf), lane);
    const bool needs_mask = key0 + kRows - 1 > block_first_pos || key0 + kRows > span.k_len;
    scale_and_mask(s, scale_log2, key0, pos, span.k_len, needs_mask, lane);
    online_softmax(s, m, l, o);
    accumulate_pv<D>(o, s, v_s(buf), lane);
    __syncthreads();  // every warp is done with tile j's buffers before they are refilled
  }
  float factor[2];
  bf16* dst[2];
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    factor[r] = 1.0f / l[r];
    const int i = q0 + warp * 16 + g + 8 * r;  // query index in the sequence
    const int64_t row = int64_t{span.q_begin + i} * hq + h;
    dst[r] = i < span.q_len ? out + row * D : nullptr;
    if (i < span.q_len && lane % 4 == 0) lse[row] = (m[r] + log2f(l[r])) * kLn2;
  }
  store_rows<D>(dst, o, factor, lane);
}

// ---- decode: split-K over the keys -----------------------------------------------------------
// One warp per (split, kv head). Row r of the 16-row tile is query r / group of the sequence
// under query head kv·group + r % group.
template <int D>
__global__ void __launch_bounds__(32)
    flash_decode_kernel(float* partial_o /* [splits, Hkv, 16, D] */,
                        float* partial_ml /* [splits, Hkv, 16, 2] */, const bf16* q, const bf16* k,
                        const bf16* v, const AttentionSpan* spans, const AttentionTile* splits,
                        int hq, int hkv, float scale_log2) {
  constexpr int S = smem_stride<D>();
  bf16* q_s = dynamic_shared<bf16>();  // [16][S]
  // Buffer b of K and of V, [64][S] each, double-buffered over the split's key tiles.
  auto k_s = [&](int b) { return q_s + 16 * S + b * kRows * S; };
  auto v_s = [&](int b) { return q_s + 16 * S + (2 + b) * kRows * S; };
  const AttentionTile split = splits[blockIdx.x];
  const AttentionSpan span = spans[split.seq];
  const int kv = blockIdx.y, group = hq / hkv;
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  const int rows = span.q_len * group;  // ≤ 16, checked by the host
  constexpr int kChunks = D / 8;
  for (int c = lane; c < 16 * kChunks; c += 32) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    Packed128<bf16> val;
    if (r < rows) {
      const bf16* src =
          q + (int64_t{span.q_begin + r / group} * hq + kv * group + r % group) * D + col;
      check_aligned16(src);
      val = *reinterpret_cast<const Packed128<bf16>*>(src);
    } else {
      for (int e = 0; e < 8; ++e) val.e[e] = __float2bfloat16(0.0f);
    }
    *reinterpret_cast<Packed128<bf16>*>(q_s + r * S + col) = val;
  }
  __syncwarp();
  FragA qa[D / 16];
  for (int kk = 0; kk < D / 16; ++kk) qa[kk] = mma::load_a(q_s, S, 0, kk * 16, lane);
  const int offset = span.k_len - span.q_len;
  // Padding rows (r ≥ rows) take the last query's position: finite, never stored.
  const int pos[2] = {offset + min_int(g, rows - 1) / group,
                      offset + min_int(g + 8, rows - 1) / group};
  const int64_t k_ld = int64_t{hkv} * D;
  const int key_end = min_int(span.k_len, split.start + kDecodeSplitKeys);
  FragC o[D / 8];
  for (FragC& c : o) zero(c);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const bf16* k_base = k + (int64_t{span.k_begin} * hkv + kv) * D;
  const bf16* v_base = v + (int64_t{span.k_begin} * hkv + kv) * D;
  const int key_tiles = (key_end - split.start + kRows - 1) / kRows;
  AsyncCopies copies;
  auto issue = [&](int j) {
    const int key0 = split.start + j * kRows, valid = min_int(kRows, key_end - key0);
    load_tile_async<D, 32>(copies, k_s(j % 2), k_base + key0 * k_ld, k_ld, valid);
    load_tile_async<D, 32>(copies, v_s(j % 2), v_base + key0 * k_ld, k_ld, valid);
    copies.commit();
  };
  issue(0);
  for (int j = 0; j < key_tiles; ++j) {
    const int key0 = split.start + j * kRows;
    if (j + 1 < key_tiles) {
      issue(j + 1);  // into the buffer tile j − 1 used (released by the last __syncwarp)
      copies.wait<1>();
    } else {
      copies.wait<0>();
    }
    __syncwarp();
    FragC s[8];
    scores_16x64_resident<D>(s, qa, k_s(j % 2), lane);
    scale_and_mask(s, scale_log2, key0, pos, key_end, true, lane);
    online_softmax(s, m, l, o);
    accumulate_pv<D>(o, s, v_s(j % 2), lane);
    __syncwarp();
  }
  const int64_t base = int64_t{blockIdx.x} * hkv + kv;
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    const int row = g + 8 * r;
    float* dst = partial_o + (base * 16 + row) * D;
    for (int n = 0; n < D / 8; ++n) {
      dst[n * 8 + 2 * t] = o[n].x[2 * r];
      dst[n * 8 + 2 * t + 1] = o[n].x[2 * r + 1];
    }
    if (t == 0) {
      partial_ml[(base * 16 + row) * 2] = m[r];
      partial_ml[(base * 16 + row) * 2 + 1] = l[r];
    }
  }
}

// One warp per (query row, query head): the splits of the row's sequence in order.
__global__ void flash_decode_combine_kernel(bf16* out, float* lse, const float* partial_o,
                                            const float* partial_ml, const int* query_seq,
                                            const AttentionSpan* spans,
                                            const SplitRange* split_ranges, int hq, int hkv,
                                            int dim) {
  const int i = blockIdx.x, h = blockIdx.y;
  const int s = query_seq[i];
  if (s < 0) return;  // outside the layout: untouched
  const AttentionSpan span = spans[s];
  const SplitRange range = split_ranges[s];
  const int group = hq / hkv, kv = h / group;
  const int row = (i - span.q_begin) * group + h % group;
  auto ml = [&](int split, int which) {
    return partial_ml[((int64_t{split} * hkv + kv) * 16 + row) * 2 + which];
  };
  float big = -INFINITY;
  for (int sp = range.first; sp < range.first + range.count; ++sp) big = fmaxf(big, ml(sp, 0));
  float total = 0.0f;
  for (int sp = range.first; sp < range.first + range.count; ++sp)
    total += ml(sp, 1) * exp2f(ml(sp, 0) - big);
  const int64_t out_row = int64_t{i} * hq + h;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int sp = range.first; sp < range.first + range.count; ++sp)
      acc += partial_o[((int64_t{sp} * hkv + kv) * 16 + row) * dim + d] * exp2f(ml(sp, 0) - big);
    out[out_row * dim + d] = __float2bfloat16(acc / total);
  }
  if (threadIdx.x == 0) lse[out_row] = (big + log2f(total)) * kLn2;
}

// ---- backward --------------------------------------------------------------------------------
// Δ_i = dO_i·out_i per (query row, head), in fp32 (log2-unit lse needs no change here).
__global__ void flash_delta_kernel(float* delta /* [Tq, Hq] */, const bf16* dout, const bf16* out,
                                   int64_t rows, int dim) {
  const int64_t r = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float acc = 0.0f;
  for (int d = 0; d < dim; ++d)
    acc += __bfloat162float(dout[r * dim + d]) * __bfloat162float(out[r * dim + d]);
  delta[r] = acc;
}

// Shared: this block's K and V tiles, then two Q, two dO tiles and two (lse, Δ) rows
// (double-buffered over the (query head, query tile) iterations).
template <int D>
__global__ void __launch_bounds__(kThreads)
    flash_dkdv_kernel(bf16* dk /* [Tk, Hkv, D] */, bf16* dv /* [Tk, Hkv, D] */, const bf16* dout,
                      const bf16* q, const bf16* k, const bf16* v, const float* lse,
                      const float* delta, const AttentionSpan* spans, const AttentionTile* tiles,
                      int hq, int hkv, float scale, float scale_log2,
                      const int* positions /* [Tk] or nullptr: no RoPE */,
                      const float* inv_freq /* [D/2] */) {
  constexpr int S = smem_stride<D>();
  bf16* k_s = dynamic_shared<bf16>();  // [64][S] this block's keys
  bf16* v_s = k_s + kRows * S;         // [64][S]
  // Buffer b of Q, dO, lse (log2 units; +∞ for rows past q_len: P = 0) and Δ.
  auto q_s = [&](int b) { return k_s + (2 + b) * kRows * S; };
  auto do_s = [&](int b) { return k_s + (4 + b) * kRows * S; };
  auto lse_s = [&](int b) { return reinterpret_cast<float*>(k_s + 6 * kRows * S) + b * kRows; };
  auto delta_s = [&](int b) { return lse_s(2) + b * kRows; };
  const AttentionTile tile = tiles[blockIdx.x];
  const AttentionSpan span = spans[tile.seq];
  const int kv = blockIdx.y, group = hq / hkv;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int key0 = tile.start, keys = min_int(kRows, span.k_len - key0);
  const int offset = span.k_len - span.q_len;
  const int64_t q_ld = int64_t{hq} * D, k_ld = int64_t{hkv} * D;
  // The first query that sees key0 sits at position key0: i = key0 − offset. Iteration `it`
  // covers query head kv·group + it / q_tiles, queries first_query + (it % q_tiles)·64 ...
  const int first_query = max_int(0, key0 - offset);
  const int q_tiles = span.q_len > first_query ? (span.q_len - first_query + kRows - 1) / kRows : 0;
  const int iterations = group * q_tiles;
  // Issues the loads of iteration `it` into buffer `buf` (Q, dO by cp.async; lse, Δ by plain
  // stores, published by the same barrier).
  auto load_iteration = [&](AsyncCopies& copies, int it, int buf) {
    const int h = kv * group + it / q_tiles, i0 = first_query + (it % q_tiles) * kRows;
    const int rows = min_int(kRows, span.q_len - i0);
    const int64_t first_row = int64_t{span.q_begin + i0} * hq + h;
    load_tile_async<D>(copies, q_s(buf), q + first_row * D, q_ld, rows);
    load_tile_async<D>(copies, do_s(buf), dout + first_row * D, q_ld, rows);
    for (int r = threadIdx.x; r < kRows; r += kThreads) {
      lse_s(buf)[r] = r < rows ? lse[first_row + int64_t{r} * hq] * kLog2e : INFINITY;
      delta_s(buf)[r] = r < rows ? delta[first_row + int64_t{r} * hq] : 0.0f;
    }
  };
  AsyncCopies copies;
  const bf16* k_tile = k + (int64_t{span.k_begin + key0} * hkv + kv) * D;
  const bf16* v_tile = v + (int64_t{span.k_begin + key0} * hkv + kv) * D;
  load_tile_async<D>(copies, k_s, k_tile, k_ld, keys);
  load_tile_async<D>(copies, v_s, v_tile, k_ld, keys);
  if (iterations > 0) load_iteration(copies, 0, 0);
  copies.commit();

  const int key_row[2] = {key0 + warp * 16 + g, key0 + warp * 16 + g + 8};
  FragC dk_acc[D / 8], dv_acc[D / 8];
  for (FragC& c : dk_acc) zero(c);
  for (FragC& c : dv_acc) zero(c);
  for (int it = 0; it < iterations; ++it) {
    const int buf = it % 2;
    if (it + 1 < iterations) {
      load_iteration(copies, it + 1, 1 - buf);  // the buffer iteration it − 1 used
      copies.commit();
      copies.wait<1>();
    } else {
      copies.wait<0>();
    }
    __syncthreads();  // iteration it's tiles (and K, V) are in shared memory
    const int i0 = first_query + (it % q_tiles) * kRows;
    const float* lse_row = lse_s(buf);
    const float* delta_row = delta_s(buf);
    // Sᵀ: rows = the warp's 16 keys, columns = the tile's 64 queries.
    FragC p[8], dp[8];
    scores_16x64<D>(p, k_s, warp * 16, q_s(buf), lane);
    const bool needs_mask = key0 + kRows - 1 > offset + i0;
    for (int n = 0; n < 8; ++n)
      for (int e = 0; e < 4; ++e) {
        const int col = n * 8 + 2 * t + (e % 2);  // query i0 + col
        const bool hidden = needs_mask && key_row[e / 2] > offset + i0 + col;
        p[n].x[e] = hidden ? 0.0f : exp2f(p[n].x[e] * scale_log2 - lse_row[col]);
      }
    accumulate_pv<D>(dv_acc, p, do_s(buf), lane);          // dV += Pᵀ·dO
    scores_16x64<D>(dp, v_s, warp * 16, do_s(buf), lane);  // dPᵀ = V·dOᵀ
    for (int n = 0; n < 8; ++n)
      for (int e = 0; e < 4; ++e) {
        const int col = n * 8 + 2 * t + (e % 2);
        dp[n].x[e] = p[n].x[e] * (dp[n].x[e] - delta_row[col]);  // dSᵀ
      }
    accumulate_pv<D>(dk_acc, dp, q_s(buf), lane);  // dK += dSᵀ·Q
    __syncthreads();  // every warp is done with buffer `buf` before it is refilled
  }
  copies.wait<0>();  // no iteration: K and V were loaded but never read
  bf16* dk_dst[2];
  bf16* dv_dst[2];
  for (int r = 0; r < 2; ++r) {
    const bool valid = key_row[r] < span.k_len;
    const int64_t row = int64_t{span.k_begin + key_row[r]} * hkv + kv;
    dk_dst[r] = valid ? dk + row * D : nullptr;
    dv_dst[r] = valid ? dv + row * D : nullptr;
  }
  const float scale_rows[2] = {scale, scale}, ones[2] = {1.0f, 1.0f};
  if (positions != nullptr) {
    int key_pos[2];  // a dk row's position: its key token's
    for (int r = 0; r < 2; ++r)
      key_pos[r] = dk_dst[r] != nullptr ? positions[span.k_begin + key_row[r]] : 0;
    store_rows_rope_backward<D>(dk_dst, dk_acc, scale_rows, key_pos, inv_freq, lane);
  } else {
    store_rows<D>(dk_dst, dk_acc, scale_rows, lane);
  }
  store_rows<D>(dv_dst, dv_acc, ones, lane);
}

// Shared: Q and dO tiles, then two K and two V tiles (double-buffered over the key tiles).
template <int D>
__global__ void __launch_bounds__(kThreads)
    flash_dq_kernel(bf16* dq /* [Tq, Hq, D] */, const bf16* dout, const bf16* q, const bf16* k,
                    const bf16* v, const float* lse, const float* delta, const AttentionSpan* spans,
                    const AttentionTile* tiles, int hq, int hkv, float scale, float scale_log2,
                    const int* positions /* [Tq] or nullptr: no RoPE */,
                    const float* inv_freq /* [D/2] */) {
  constexpr int S = smem_stride<D>();
  bf16* q_s = dynamic_shared<bf16>();                           // [64][S]
  bf16* do_s = q_s + kRows * S;                                 // [64][S]
  auto k_s = [&](int b) { return q_s + (2 + b) * kRows * S; };  // buffer b of K
  auto v_s = [&](int b) { return q_s + (4 + b) * kRows * S; };  // buffer b of V
  const AttentionTile tile = tiles[blockIdx.x];
  const AttentionSpan span = spans[tile.seq];
  const int h = blockIdx.y, kv = h / (hq / hkv);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4;
  const int q0 = tile.start, rows = min_int(kRows, span.q_len - q0);
  const int offset = span.k_len - span.q_len;
  const int64_t q_ld = int64_t{hq} * D, k_ld = int64_t{hkv} * D;
  const bf16* k_base = k + (int64_t{span.k_begin} * hkv + kv) * D;
  const bf16* v_base = v + (int64_t{span.k_begin} * hkv + kv) * D;
  const int block_first_pos = offset + q0, key_end = offset + q0 + rows;
  const int key_tiles = (key_end + kRows - 1) / kRows;
  AsyncCopies copies;
  load_tile_async<D>(copies, q_s, q + (int64_t{span.q_begin + q0} * hq + h) * D, q_ld, rows);
  load_tile_async<D>(copies, do_s, dout + (int64_t{span.q_begin + q0} * hq + h) * D, q_ld, rows);
  load_tile_async<D>(copies, k_s(0), k_base, k_ld, min_int(kRows, span.k_len));
  load_tile_async<D>(copies, v_s(0), v_base, k_ld, min_int(kRows, span.k_len));
  copies.commit();
  const int pos[2] = {offset + q0 + warp * 16 + g, offset + q0 + warp * 16 + g + 8};
  float row_lse[2], row_delta[2];
  for (int r = 0; r < 2; ++r) {
    const int i = q0 + warp * 16 + g + 8 * r;
    const int64_t row = int64_t{span.q_begin + i} * hq + h;
    row_lse[r] = i < span.q_len ? lse[row] * kLog2e : INFINITY;
    row_delta[r] = i < span.q_len ? delta[row] : 0.0f;
  }
  FragC dq_acc[D / 8];
  for (FragC& c : dq_acc) zero(c);
  for (int j = 0; j < key_tiles; ++j) {
    const int key0 = j * kRows, buf = j % 2;
    if (j + 1 < key_tiles) {
      const int next = key0 + kRows, valid = min_int(kRows, span.k_len - next);
      load_tile_async<D>(copies, k_s(1 - buf), k_base + next * k_ld, k_ld, valid);
      load_tile_async<D>(copies, v_s(1 - buf), v_base + next * k_ld, k_ld, valid);
      copies.commit();
      copies.wait<1>();
    } else {
      copies.wait<0>();
    }
    __syncthreads();
    FragC p[8], ds[8];
    scores_16x64<D>(p, q_s, warp * 16, k_s(buf), lane);
    const bool needs_mask = key0 + kRows - 1 > block_first_pos || key0 + kRows > span.k_len;
    scale_and_mask(p, scale_log2, key0, pos, span.k_len, needs_mask, lane);
    for (int n = 0; n < 8; ++n)
      for (int e = 0; e < 4; ++e) p[n].x[e] = exp2f(p[n].x[e] - row_lse[e / 2]);
    scores_16x64<D>(ds, do_s, warp * 16, v_s(buf), lane);  // dP = dO·Vᵀ
    for (int n = 0; n < 8; ++n)
      for (int e = 0; e < 4; ++e) ds[n].x[e] = p[n].x[e] * (ds[n].x[e] - row_delta[e / 2]);
    accumulate_pv<D>(dq_acc, ds, k_s(buf), lane);  // dQ += dS·K
    __syncthreads();
  }
  bf16* dst[2];
  int query_pos[2];  // a dq row's position (RoPE): its query token's
  for (int r = 0; r < 2; ++r) {
    const int i = q0 + warp * 16 + g + 8 * r;
    dst[r] = i < span.q_len ? dq + (int64_t{span.q_begin + i} * hq + h) * D : nullptr;
    query_pos[r] = positions != nullptr && i < span.q_len ? positions[span.q_begin + i] : 0;
  }
  const float scale_rows[2] = {scale, scale};
  if (positions != nullptr)
    store_rows_rope_backward<D>(dst, dq_acc, scale_rows, query_pos, inv_freq, lane);
  else
    store_rows<D>(dst, dq_acc, scale_rows, lane);
}

// ---- host side -------------------------------------------------------------------------------
template <typename Kernel>
void allow_shared(Kernel* kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    cuda_check(
        cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                             cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
        "flash attention shared memory");
}

// Calls f(std::integral_constant<int, D>) for the supported head dims.
template <typename F>
void dispatch_head_dim(int64_t dim, F&& f) {
  switch (dim) {
    case 16:
      return f(std::integral_constant<int, 16>{});
    case 32:
      return f(std::integral_constant<int, 32>{});
    case 48:
      return f(std::integral_constant<int, 48>{});
    case 64:
      return f(std::integral_constant<int, 64>{});
    case 80:
      return f(std::integral_constant<int, 80>{});
    case 96:
      return f(std::integral_constant<int, 96>{});
    case 112:
      return f(std::integral_constant<int, 112>{});
    case 128:
      return f(std::integral_constant<int, 128>{});
    default:
      throw_error("flash attention: unsupported head dim ", dim);
  }
}

template <int D>
size_t tile_bytes(int tiles) {
  return sizeof(bf16) * static_cast<size_t>(tiles) * kRows * smem_stride<D>();
}

}  // namespace

bool flash_attention_supported(const Tensor& q, const Tensor& k, const Tensor& v,
                               std::initializer_list<const Tensor*> others) {
  if (q.dtype != DType::BF16) return false;
  const int64_t dim = q.shape[2];
  if (dim % 16 != 0 || dim > 128 || dim < 16) return false;
  // 16-byte loads of every row: base pointers 16-byte aligned (row strides are multiples of
  // 32 bytes since D is a multiple of 16).
  for (const Tensor* t : {&q, &k, &v})
    if (!aligned16(t->data)) return false;
  for (const Tensor* t : others)
    if (t->data != nullptr && !aligned16(t->data)) return false;
  return true;
}

namespace {
// The grid's y dimension holds a head (gridDim.y ≤ 65535 on every CUDA device): the one launch
// limit a layout can reach before its int32 rows do (header comment).
void check_head_grid(const char* op, int64_t heads) {
  SMOL_CHECK(heads <= 65535, op, ": ", heads, " heads exceed the 65535 of a launch grid's y");
}
}  // namespace

bool flash_use_decode(const DeviceAttentionLayout& dl, int64_t hq, int64_t hkv) {
  return dl.max_q_len * (hq / hkv) <= kDecodeMaxRows && dl.decode_split_count > 0;
}

void flash_attention_forward(GpuContext& ctx, Tensor out, Tensor lse, const Tensor& q,
                             const Tensor& k, const Tensor& v, const DeviceAttentionLayout& dl,
                             float scale) {
  const int hq = static_cast<int>(q.shape[1]), hkv = static_cast<int>(k.shape[1]);
  const float scale_log2 = scale * kLog2e;
  check_head_grid("attention_forward", q.shape[1]);
  if (dl.query_tile_count == 0) return;  // no sequence has queries
  dispatch_head_dim(q.shape[2], [&](auto head_dim) {
    constexpr int D = decltype(head_dim)::value;
    if (flash_use_decode(dl, hq, hkv)) {
      const size_t partial_o = sizeof(float) * size_t(dl.decode_split_count) * hkv * 16 * D;
      const size_t partial_ml = sizeof(float) * size_t(dl.decode_split_count) * hkv * 16 * 2;
      float* scratch = static_cast<float*>(ctx.scratch(partial_o + partial_ml));
      float* ml = scratch + partial_o / sizeof(float);
      const size_t shared = sizeof(bf16) * size_t(16 + 4 * kRows) * smem_stride<D>();
      allow_shared(flash_decode_kernel<D>, shared);
      launch(flash_decode_kernel<D>,
             dim3(static_cast<unsigned>(dl.decode_split_count), static_cast<unsigned>(hkv)), 32,
             shared, ctx.stream(), scratch, ml, static_cast<const bf16*>(q.as<bf16>()),
             static_cast<const bf16*>(k.as<bf16>()), static_cast<const bf16*>(v.as<bf16>()),
             dl.spans, dl.decode_splits, hq, hkv, scale_log2);
      launch(flash_decode_combine_kernel,
             dim3(static_cast<unsigned>(q.shape[0]), static_cast<unsigned>(hq)), 32, 0,
             ctx.stream(), out.as<bf16>(), lse.as<float>(), static_cast<const float*>(scratch),
             static_cast<const float*>(ml), dl.query_seq, dl.spans, dl.split_ranges, hq, hkv, D);
      return;
    }
    const size_t shared = tile_bytes<D>(5);
    allow_shared(flash_forward_kernel<D>, shared);
    launch(flash_forward_kernel<D>,
           dim3(static_cast<unsigned>(dl.query_tile_count), static_cast<unsigned>(hq)), kThreads,
           shared, ctx.stream(), out.as<bf16>(), lse.as<float>(),
           static_cast<const bf16*>(q.as<bf16>()), static_cast<const bf16*>(k.as<bf16>()),
           static_cast<const bf16*>(v.as<bf16>()), dl.spans, dl.query_tiles, hq, hkv, scale_log2);
  });
}

void flash_attention_backward(GpuContext& ctx, Tensor dq, Tensor dk, Tensor dv, const Tensor& dout,
                              const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const DeviceAttentionLayout& dl, float scale,
                              const Backend::Rotary* rotary) {
  const int64_t tq = q.shape[0], tk = k.shape[0];
  const int hq = static_cast<int>(q.shape[1]), hkv = static_cast<int>(k.shape[1]);
  const int dim = static_cast<int>(q.shape[2]);
  check_head_grid("attention_backward", q.shape[1]);
  // RoPE'd q and k: the table rope.cu uses (uploaded once per (theta, D); fetched before this
  // op's memsets and kernels, so a capture that must allocate it records none of them), the
  // token positions.
  const int* positions = rotary ? static_cast<const int*>(rotary->positions.as<int>()) : nullptr;
  const float* inv_freq = rotary ? ctx.rope_inv_freq(rotary->theta, dim) : nullptr;
  // Rows outside the layout are zeroed; the kernels overwrite every covered row.
  if (!dl.covers_all_queries && tq > 0)
    cuda_check(cudaMemsetAsync(dq.data, 0, dq.bytes(), ctx.stream()), "zero dq");
  if (!dl.covers_all_keys && tk > 0) {
    cuda_check(cudaMemsetAsync(dk.data, 0, dk.bytes(), ctx.stream()), "zero dk");
    cuda_check(cudaMemsetAsync(dv.data, 0, dv.bytes(), ctx.stream()), "zero dv");
  }
  if (dl.query_tile_count == 0) return;
  float* delta = static_cast<float*>(ctx.scratch(sizeof(float) * std::max<int64_t>(1, tq * hq)));
  const float scale_log2 = scale * kLog2e;
  launch(flash_delta_kernel, ceil_div(tq * hq, 256), 256, 0, ctx.stream(), delta,
         static_cast<const bf16*>(dout.as<bf16>()), static_cast<const bf16*>(out.as<bf16>()),
         tq * hq, dim);
  dispatch_head_dim(dim, [&](auto head_dim) {
    constexpr int D = decltype(head_dim)::value;
    const bf16* dout_p = dout.as<bf16>();
    const bf16* q_p = q.as<bf16>();
    const bf16* k_p = k.as<bf16>();
    const bf16* v_p = v.as<bf16>();
    const size_t dkdv_shared = tile_bytes<D>(6) + sizeof(float) * 4 * kRows;
    allow_shared(flash_dkdv_kernel<D>, dkdv_shared);
    launch(flash_dkdv_kernel<D>,
           dim3(static_cast<unsigned>(dl.key_tile_count), static_cast<unsigned>(hkv)), kThreads,
           dkdv_shared, ctx.stream(), dk.as<bf16>(), dv.as<bf16>(), dout_p, q_p, k_p, v_p,
           static_cast<const float*>(lse.as<float>()), static_cast<const float*>(delta), dl.spans,
           dl.key_tiles, hq, hkv, scale, scale_log2, positions, inv_freq);
    const size_t dq_shared = tile_bytes<D>(6);
    allow_shared(flash_dq_kernel<D>, dq_shared);
    launch(flash_dq_kernel<D>,
           dim3(static_cast<unsigned>(dl.query_tile_count), static_cast<unsigned>(hq)), kThreads,
           dq_shared, ctx.stream(), dq.as<bf16>(), dout_p, q_p, k_p, v_p,
           static_cast<const float*>(lse.as<float>()), static_cast<const float*>(delta), dl.spans,
           dl.query_tiles, hq, hkv, scale, scale_log2, positions, inv_freq);
  });
}

}  // namespace smol::SMOL_GPU_NS
