// The tensor-core emulation of kernels/cuda/mma.h against the PTX ISA's fragment tables, written
// out independently here: every lane's registers after ldmatrix (x4 and x2, plain and .trans)
// and the helpers built on them must hold exactly the elements the tables assign to that lane,
// and mma m16n8k16 (bf16 in, fp32 accumulate) must equal a scalar matrix product with the C/D
// fragments placed as the table says. With g = lane / 4 and t = lane % 4:
//   A 16×16 row:  a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 2t+8..)  a3 (g+8, 2t+8..)
//   B 16×8 col:   b0 (k 2t..2t+1, n g)  b1 (k 2t+8..2t+9, n g)
//   C/D 16×8:     c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/cuda_compat.h"
#include "kernels/cuda/mma.h"

namespace smol::gpu_emu {
namespace {

constexpr int kStride = 24;  // padded shared row (elements), as the flash kernels pad theirs

// Matrices whose elements are small distinct integers (exact in bf16), so a register's bits
// name the element it holds.
float a_value(int r, int c) {
  return static_cast<float>(r * 16 + c);
}
float b_value(int k, int n) {  // the 16×8 B, and the 16×16 B2 for the x4 helpers (n < 16)
  return static_cast<float>(256 - (k * 16 + n)) * 0.5f;
}
uint32_t pack(float lo, float hi) {
  const bf16 l = __float2bfloat16(lo), h = __float2bfloat16(hi);
  uint16_t lb, hb;
  std::memcpy(&lb, &l, 2);
  std::memcpy(&hb, &h, 2);
  return lb | (uint32_t{hb} << 16);
}

struct LaneOut {
  uint32_t a[4];           // load_a of A (ldmatrix x4)
  uint32_t b_x2[2];        // ldmatrix x2 of Bᵀ stored n-major (rows n, cols k)
  uint32_t b_x2_trans[2];  // ldmatrix x2 .trans of B stored k-major (rows k, cols n)
  uint32_t b2_trans[4];    // load_b_x2n of B2 [16 k][16 n] (x4 .trans): two n-blocks
  uint32_t b2_plain[4];    // load_b_transposed_x2n of B2ᵀ [16 n][16 k] (x4): two n-blocks
  float d[4];              // D = A·B + C
};

// One warp: stage the matrices in shared memory, load fragments, multiply.
__global__ void fragment_kernel(LaneOut* out /* [32] */, const float* c /* [16][8] */) {
  __shared__ __align__(16) bf16 a_s[16 * kStride];    // A row-major
  __shared__ __align__(16) bf16 bt_s[8 * kStride];    // Bᵀ: row n holds B[0..15][n]
  __shared__ __align__(16) bf16 b_s[16 * kStride];    // B: row k holds B[k][0..7]
  __shared__ __align__(16) bf16 b2_s[16 * kStride];   // B2: row k holds B2[k][0..15]
  __shared__ __align__(16) bf16 b2t_s[16 * kStride];  // B2ᵀ: row n holds B2[0..15][n]
  const int lane = threadIdx.x;
  for (int e = lane; e < 256; e += 32) {
    const int r = e / 16, col = e % 16;
    a_s[r * kStride + col] = __float2bfloat16(a_value(r, col));
    b2_s[r * kStride + col] = __float2bfloat16(b_value(r, col));
    b2t_s[col * kStride + r] = __float2bfloat16(b_value(r, col));
    if (col < 8) {
      b_s[r * kStride + col] = __float2bfloat16(b_value(r, col));
      bt_s[col * kStride + r] = __float2bfloat16(b_value(r, col));
    }
  }
  __syncwarp();
  LaneOut& o = out[lane];
  const mma::FragA a = mma::load_a(a_s, kStride, 0, 0, lane);
  for (int i = 0; i < 4; ++i) o.a[i] = a.x[i];
  // x2: lanes 0..7 address matrix 0 (k 0..7), lanes 8..15 matrix 1 (k 8..15); lanes 16..31
  // repeat valid addresses (ignored by the instruction).
  const int r = lane % 8, m = (lane / 8) % 2;
  mma::ldmatrix_x2(o.b_x2, bt_s + r * kStride + 8 * m);
  mma::ldmatrix_x2_trans(o.b_x2_trans, b_s + (8 * m + r) * kStride);
  mma::FragB b2[2];
  mma::load_b_x2n(b2, b2_s, kStride, 0, 0, lane);
  o.b2_trans[0] = b2[0].x[0], o.b2_trans[1] = b2[0].x[1];
  o.b2_trans[2] = b2[1].x[0], o.b2_trans[3] = b2[1].x[1];
  mma::load_b_transposed_x2n(b2, b2t_s, kStride, 0, 0, lane);
  o.b2_plain[0] = b2[0].x[0], o.b2_plain[1] = b2[0].x[1];
  o.b2_plain[2] = b2[1].x[0], o.b2_plain[3] = b2[1].x[1];
  const int g = lane / 4, t = lane % 4;
  mma::FragC acc;
  acc.x[0] = c[g * 8 + 2 * t];
  acc.x[1] = c[g * 8 + 2 * t + 1];
  acc.x[2] = c[(g + 8) * 8 + 2 * t];
  acc.x[3] = c[(g + 8) * 8 + 2 * t + 1];
  mma::FragB b;
  b.x[0] = o.b_x2[0], b.x[1] = o.b_x2[1];
  mma::mma_bf16_16816(acc, a, b, acc);
  for (int i = 0; i < 4; ++i) o.d[i] = acc.x[i];
}

TEST(EmuMma, FragmentsAndProductFollowThePtxLayouts) {
  LaneOut* out = nullptr;
  float* c = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&out), 32 * sizeof(LaneOut)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&c), 128 * sizeof(float)), cudaSuccess);
  std::vector<float> c_host(128);
  for (int i = 0; i < 128; ++i) c_host[i] = 0.25f * static_cast<float>(i % 13) - 1.0f;
  ASSERT_EQ(cudaMemcpy(c, c_host.data(), 128 * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  launch(fragment_kernel, 1, 32, 0, nullptr, out, static_cast<const float*>(c));
  std::vector<LaneOut> got(32);
  ASSERT_EQ(cudaMemcpy(got.data(), out, 32 * sizeof(LaneOut), cudaMemcpyDeviceToHost), cudaSuccess);
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    const LaneOut& o = got[lane];
    // A (row): a0..a3.
    EXPECT_EQ(o.a[0], pack(a_value(g, 2 * t), a_value(g, 2 * t + 1))) << "lane " << lane;
    EXPECT_EQ(o.a[1], pack(a_value(g + 8, 2 * t), a_value(g + 8, 2 * t + 1))) << "lane " << lane;
    EXPECT_EQ(o.a[2], pack(a_value(g, 2 * t + 8), a_value(g, 2 * t + 9))) << "lane " << lane;
    EXPECT_EQ(o.a[3], pack(a_value(g + 8, 2 * t + 8), a_value(g + 8, 2 * t + 9)))
        << "lane " << lane;
    // B (col) from both storage orders: b0, b1.
    const uint32_t b0 = pack(b_value(2 * t, g), b_value(2 * t + 1, g));
    const uint32_t b1 = pack(b_value(2 * t + 8, g), b_value(2 * t + 9, g));
    EXPECT_EQ(o.b_x2[0], b0) << "lane " << lane;
    EXPECT_EQ(o.b_x2[1], b1) << "lane " << lane;
    EXPECT_EQ(o.b_x2_trans[0], b0) << "lane " << lane;
    EXPECT_EQ(o.b_x2_trans[1], b1) << "lane " << lane;
    // The x4 helpers: n-block 0 (columns 0..7) and n-block 1 (columns 8..15) of B2.
    for (int blk = 0; blk < 2; ++blk) {
      const int n = 8 * blk + g;
      const uint32_t want0 = pack(b_value(2 * t, n), b_value(2 * t + 1, n));
      const uint32_t want1 = pack(b_value(2 * t + 8, n), b_value(2 * t + 9, n));
      EXPECT_EQ(o.b2_trans[2 * blk], want0) << "lane " << lane << " block " << blk;
      EXPECT_EQ(o.b2_trans[2 * blk + 1], want1) << "lane " << lane << " block " << blk;
      EXPECT_EQ(o.b2_plain[2 * blk], want0) << "lane " << lane << " block " << blk;
      EXPECT_EQ(o.b2_plain[2 * blk + 1], want1) << "lane " << lane << " block " << blk;
    }
    // D (C/D layout) against the scalar product: the products are exact in fp32, sums of 16
    // terms below 2^17 with fp32 accumulation → within 16 ulp of the magnitude sum.
    for (int e = 0; e < 4; ++e) {
      const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e % 2);
      double want = c_host[row * 8 + col], magnitude = std::fabs(want);
      for (int k = 0; k < 16; ++k) {
        want += double(a_value(row, k)) * b_value(k, col);
        magnitude += std::fabs(double(a_value(row, k)) * b_value(k, col));
      }
      EXPECT_NEAR(o.d[e], want, 16 * 0x1p-24 * magnitude) << "lane " << lane << " d" << e;
    }
  }
  cudaFree(out);
  cudaFree(c);
}

// a_from_accumulators: two C tiles (columns 0..7 and 8..15 of a 16×16 block) become the A
// fragment of that block, so the layouts agree without a shuffle.
__global__ void accumulator_to_a_kernel(uint32_t* out /* [32][4] */) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  mma::FragC left, right;
  // C element (row, col) of the 16×16 block holds the value row·16 + col.
  left.x[0] = g * 16 + 2 * t, left.x[1] = g * 16 + 2 * t + 1;
  left.x[2] = (g + 8) * 16 + 2 * t, left.x[3] = (g + 8) * 16 + 2 * t + 1;
  right.x[0] = g * 16 + 8 + 2 * t, right.x[1] = g * 16 + 9 + 2 * t;
  right.x[2] = (g + 8) * 16 + 8 + 2 * t, right.x[3] = (g + 8) * 16 + 9 + 2 * t;
  const mma::FragA a = mma::a_from_accumulators(left, right);
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = a.x[i];
}

TEST(EmuMma, AccumulatorsBecomeTheAFragmentOfTheSameBlock) {
  uint32_t* out = nullptr;
  ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&out), 128 * sizeof(uint32_t)), cudaSuccess);
  launch(accumulator_to_a_kernel, 1, 32, 0, nullptr, out);
  std::vector<uint32_t> got(128);
  ASSERT_EQ(cudaMemcpy(got.data(), out, 128 * sizeof(uint32_t), cudaMemcpyDeviceToHost),
            cudaSuccess);
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane / 4, t = lane % 4;
    EXPECT_EQ(got[lane * 4 + 0], pack(a_value(g, 2 * t), a_value(g, 2 * t + 1)));
    EXPECT_EQ(got[lane * 4 + 1], pack(a_value(g + 8, 2 * t), a_value(g + 8, 2 * t + 1)));
    EXPECT_EQ(got[lane * 4 + 2], pack(a_value(g, 2 * t + 8), a_value(g, 2 * t + 9)));
    EXPECT_EQ(got[lane * 4 + 3], pack(a_value(g + 8, 2 * t + 8), a_value(g + 8, 2 * t + 9)));
  }
  cudaFree(out);
}

// A misaligned ldmatrix row address is refused (a GPU would fault or misread).
__global__ void misaligned_ldmatrix_kernel() {
  __shared__ __align__(16) bf16 tile[16 * kStride];
  for (int e = threadIdx.x; e < 16 * kStride; e += 32) tile[e] = __float2bfloat16(0.0f);
  __syncwarp();
  uint32_t r[4];
  mma::ldmatrix_x4(r, tile + 4 + (threadIdx.x % 8) * kStride);  // 8-byte offset
}

TEST(EmuMma, MisalignedLdmatrixRowIsRefused) {
  EXPECT_THROW(launch(misaligned_ldmatrix_kernel, 1, 32, 0, nullptr), Error);
}

}  // namespace
}  // namespace smol::gpu_emu
