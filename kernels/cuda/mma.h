// Warp-level tensor-core primitives for the hand-written kernels (flash attention, docs/design.md
// §2.5): the bf16 m16n8k16 matrix multiply-accumulate and the ldmatrix shared-memory loads that
// feed it. Under nvcc they are one inline-PTX instruction each (mma.sync.aligned.m16n8k16
// .row.col.f32.bf16.bf16.f32, ldmatrix.sync.aligned.m8n8.{x2,x4}[.trans].shared.b16); under
// cuda-emu (SMOL_CUDA_EMU) the same functions are built lane by lane from the PTX ISA's fragment
// layouts, so that every lane holds exactly the values the hardware would give it and a kernel
// that misplaces a fragment fails on the CPU exactly as it would on a GPU.
//
// Fragment layouts (PTX ISA, "Matrix fragments for mma.m16n8k16 with floating point type"), with
// g = lane / 4 (groupID) and t = lane % 4 (threadID_in_group); a register holding two bf16 keeps
// the lower column (A, C) or lower row (B) in its low 16 bits:
//   A 16×16 row-major, 4 × b32:  a0 = A[g][2t, 2t+1]     a1 = A[g+8][2t, 2t+1]
//                                a2 = A[g][2t+8, 2t+9]   a3 = A[g+8][2t+8, 2t+9]
//   B 16×8 column-major, 2 × b32: b0 = B[2t, 2t+1][g]    b1 = B[2t+8, 2t+9][g]
//   C, D 16×8 fp32, 4 × f32:     c0 = C[g][2t]  c1 = C[g][2t+1]  c2 = C[g+8][2t]  c3 = C[g+8][2t+1]
// ldmatrix .m8n8 loads 8×8 b16 matrices whose 8 rows (16 bytes each, 16-byte aligned, in shared
// memory) are addressed by lanes 8i..8i+7 for matrix i; register i of lane l then holds
//   plain:  M_i[l/4][2(l%4), 2(l%4)+1]          .trans: M_i[2(l%4)][l/4], M_i[2(l%4)+1][l/4]
// (.x2 reads the addresses of lanes 0..15 only). So a row-major [rows][k] tile in shared memory
// gives A fragments and B fragments of its transpose with the plain form, and B fragments of
// itself (k = rows) with .trans: mma_a_row_address / mma_b_row_address below say which row each
// lane addresses.
//
// Emulation numerics: products of two bf16 are exact in fp32; the 16 products of one output
// are summed in fp32 in k order and added to C. The hardware's internal summation order and
// precision are not specified by PTX, so results may differ from a GPU by fp32 rounding (≤ a few
// ulp of the accumulated magnitude) — far below the bf16 tolerances of every caller.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/cuda/cuda_compat.h"

namespace smol::SMOL_GPU_NS::mma {

struct FragA {  // 16×16 bf16, row-major (4 b32 per lane)
  uint32_t x[4];
};
struct FragB {  // 16×8 bf16, column-major (2 b32 per lane)
  uint32_t x[2];
};
struct FragC {  // 16×8 fp32 accumulator (4 per lane)
  float x[4];
};

// Two floats rounded to bf16 (nearest even) and packed: `lo` in the low half.
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const bf16 l = __float2bfloat16(lo), h = __float2bfloat16(hi);
  uint16_t lb, hb;
  memcpy(&lb, &l, 2);
  memcpy(&hb, &h, 2);
  return static_cast<uint32_t>(lb) | (static_cast<uint32_t>(hb) << 16);
}
__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits16) {
  const uint32_t f = bits16 << 16;
  float out;
  memcpy(&out, &f, 4);
  return out;
}

#if defined(SMOL_CUDA_EMU)

namespace detail {
// Element (row r, column c) of a 16×16 A from the 32 lanes' fragments.
inline float a_element(const uint32_t (&a)[32][6], int r, int c) {
  const int lane = (r % 8) * 4 + (c % 8) / 2, reg = (r >= 8 ? 1 : 0) + (c >= 8 ? 2 : 0);
  return bf16_bits_to_float((a[lane][reg] >> (16 * (c % 2))) & 0xffffu);
}
// Element (row k, column n) of a 16×8 B from the lanes' fragments (registers 4 and 5).
inline float b_element(const uint32_t (&a)[32][6], int k, int n) {
  const int lane = n * 4 + (k % 8) / 2, reg = 4 + (k >= 8 ? 1 : 0);
  return bf16_bits_to_float((a[lane][reg] >> (16 * (k % 2))) & 0xffffu);
}
// The 16-byte row that lane `src` addressed, as 8 b16 values.
inline uint16_t row_element(const uintptr_t (&rows)[32], int src, int col) {
  uint16_t v;
  memcpy(&v, reinterpret_cast<const unsigned char*>(rows[src]) + 2 * col, 2);
  return v;
}
inline void check_row_address(const void* p) {
  if ((reinterpret_cast<uintptr_t>(p) & 15u) != 0)
    throw_error("cuda-emu: ldmatrix row address ", p, " is not 16-byte aligned");
}
template <int kMatrices, bool kTrans>
inline void ldmatrix(uint32_t* out, const bf16* row, const char* file, int line) {
  uintptr_t mine = reinterpret_cast<uintptr_t>(row), rows[32];
  ::smol::emu::warp_all_gather(0xffffffffu, &mine, sizeof(mine), rows, file, line);
  // Only the addresses of lanes 0 .. 8·kMatrices − 1 are read (as on the GPU); those must be
  // 16-byte aligned.
  for (int src = 0; src < 8 * kMatrices; ++src)
    check_row_address(reinterpret_cast<const void*>(rows[src]));
  const int lane = ::smol::emu::lane_id(), g = lane / 4, t = lane % 4;
  for (int i = 0; i < kMatrices; ++i) {
    uint16_t lo, hi;
    if (kTrans) {
      lo = row_element(rows, 8 * i + 2 * t, g);
      hi = row_element(rows, 8 * i + 2 * t + 1, g);
    } else {
      lo = row_element(rows, 8 * i + g, 2 * t);
      hi = row_element(rows, 8 * i + g, 2 * t + 1);
    }
    out[i] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
  }
}
}  // namespace detail

#define SMOL_MMA_SITE __FILE__, __LINE__
// D = A·B + C for the warp's 16×8 tile (d may alias c).
inline void mma_bf16_16816(FragC& d, const FragA& a, const FragB& b, const FragC& c) {
  const uint32_t mine[6] = {a.x[0], a.x[1], a.x[2], a.x[3], b.x[0], b.x[1]};
  uint32_t all[32][6];
  ::smol::emu::warp_all_gather(0xffffffffu, mine, sizeof(mine), all, SMOL_MMA_SITE);
  const int lane = ::smol::emu::lane_id(), g = lane / 4, t = lane % 4;
  FragC out;
  for (int e = 0; e < 4; ++e) {
    const int r = g + (e >= 2 ? 8 : 0), n = 2 * t + (e % 2);
    float sum = 0.0f;
    for (int k = 0; k < 16; ++k) sum += detail::a_element(all, r, k) * detail::b_element(all, k, n);
    out.x[e] = c.x[e] + sum;
  }
  d = out;
}
inline void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) {
  detail::ldmatrix<4, false>(r, row, SMOL_MMA_SITE);
}
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* row) {
  detail::ldmatrix<4, true>(r, row, SMOL_MMA_SITE);
}
inline void ldmatrix_x2(uint32_t (&r)[2], const bf16* row) {
  detail::ldmatrix<2, false>(r, row, SMOL_MMA_SITE);
}
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const bf16* row) {
  detail::ldmatrix<2, true>(r, row, SMOL_MMA_SITE);
}
#undef SMOL_MMA_SITE

#else  // nvcc: one PTX instruction each

__device__ __forceinline__ void mma_bf16_16816(FragC& d, const FragA& a, const FragB& b,
                                               const FragC& c) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
      : "=f"(d.x[0]), "=f"(d.x[1]), "=f"(d.x[2]), "=f"(d.x[3])
      : "r"(a.x[0]), "r"(a.x[1]), "r"(a.x[2]), "r"(a.x[3]), "r"(b.x[0]), "r"(b.x[1]), "f"(c.x[0]),
        "f"(c.x[1]), "f"(c.x[2]), "f"(c.x[3]));
}
__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const bf16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(shared_address(row))
               : "memory");
}

#endif

// ---- fragment loads from row-major bf16 tiles in shared memory -------------------------------
// `tile` points at element (0, 0) of a row-major tile with `stride` elements per row (a multiple
// of 8, so every row start is 16-byte aligned).

// A fragment of the 16×16 block at (row0, col0): matrices 0..3 = (rows +0, cols +0),
// (rows +8, cols +0), (rows +0, cols +8), (rows +8, cols +8) — a0..a3 in order.
__device__ __forceinline__ FragA load_a(const bf16* tile, int stride, int row0, int col0,
                                        int lane) {
  const int m = lane / 8, r = lane % 8;
  FragA a;
  ldmatrix_x4(a.x, tile + (row0 + r + 8 * (m % 2)) * stride + col0 + 8 * (m / 2));
  return a;
}

// B fragments of the transpose of the tile: B[k][n] = tile[n0 + n][k0 + k] for two n-blocks of 8
// (n0 and n0 + 8), k in [k0, k0 + 16). Matrices: (rows n0.., cols k0), (rows n0.., cols k0+8),
// (rows n0+8.., cols k0), (rows n0+8.., cols k0+8) → b[0] = {b0, b1} of n0, b[1] of n0 + 8.
__device__ __forceinline__ void load_b_transposed_x2n(FragB (&b)[2], const bf16* tile, int stride,
                                                      int n0, int k0, int lane) {
  const int m = lane / 8, r = lane % 8;
  uint32_t x[4];
  ldmatrix_x4(x, tile + (n0 + r + 8 * (m / 2)) * stride + k0 + 8 * (m % 2));
  b[0].x[0] = x[0], b[0].x[1] = x[1], b[1].x[0] = x[2], b[1].x[1] = x[3];
}

// B fragments of the tile itself: B[k][n] = tile[k0 + k][n0 + n] for two n-blocks of 8 (n0 and
// n0 + 8), k in [k0, k0 + 16), through .trans. Matrices: (rows k0.., cols n0), (rows k0+8..,
// cols n0), (rows k0.., cols n0+8), (rows k0+8.., cols n0+8).
__device__ __forceinline__ void load_b_x2n(FragB (&b)[2], const bf16* tile, int stride, int k0,
                                           int n0, int lane) {
  const int m = lane / 8, r = lane % 8;
  uint32_t x[4];
  ldmatrix_x4_trans(x, tile + (k0 + r + 8 * (m % 2)) * stride + n0 + 8 * (m / 2));
  b[0].x[0] = x[0], b[0].x[1] = x[1], b[1].x[0] = x[2], b[1].x[1] = x[3];
}

// The A fragment built from two fp32 accumulator tiles (columns [0, 8) and [8, 16) of a 16×16
// block), rounded to bf16: the C layout of a 16×8 tile matches the A layout's halves, so scores
// become the next product's A operand without leaving registers (FA2's P·V).
__device__ __forceinline__ FragA a_from_accumulators(const FragC& left, const FragC& right) {
  FragA a;
  a.x[0] = pack_bf16x2(left.x[0], left.x[1]);
  a.x[1] = pack_bf16x2(left.x[2], left.x[3]);
  a.x[2] = pack_bf16x2(right.x[0], right.x[1]);
  a.x[3] = pack_bf16x2(right.x[2], right.x[3]);
  return a;
}

}  // namespace smol::SMOL_GPU_NS::mma
