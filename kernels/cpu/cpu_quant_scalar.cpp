// The portable scalar reference of the quantised matmul (cpu_quant_matmul.h): the exact
// operation order of the SIMD kernels (cpu_quant_simd.inc) written out lane by lane, so the
// three kernels agree bit for bit. std::fma where the SIMD kernels use a fused multiply-add.
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_quant_matmul.h"

namespace smol::cpu {
namespace {

// acc[l] = fma(scale, Σ_{i=4l}^{4l+3} w[i]·x[i], acc[l]): one 32-value block's contribution
// to the 8 lanes (vpdpbusd / vpmaddubsw+vpmaddwd group products by 4 consecutive bytes).
void block_fma(const int32_t* w, const int8_t* x, float scale, float* acc) {
  for (int l = 0; l < 8; ++l) {
    int32_t lane = 0;
    for (int i = 4 * l; i < 4 * l + 4; ++i) lane += w[i] * x[i];
    acc[l] = std::fma(scale, static_cast<float>(lane), acc[l]);
  }
}

// The SIMD kernels' final sum of the two accumulators (even and odd blocks) and horizontal
// sum: lanes l = acc0[l] + acc1[l], then (l0+l4 + l2+l6) + (l1+l5 + l3+l7).
float lanes_sum(const float (&acc)[2][8]) {
  float l[8];
  for (int i = 0; i < 8; ++i) l[i] = acc[0][i] + acc[1][i];
  const float s0 = l[0] + l[4], s1 = l[1] + l[5], s2 = l[2] + l[6], s3 = l[3] + l[7];
  return (s0 + s2) + (s1 + s3);
}

float row_dot(const QuantMatrix& w, int64_t n, const ActBlock* x) {
  float acc[2][8] = {};     // even / odd blocks (Q4_K: low / high-nibble sub-blocks)
  float summs[2] = {0, 0};  // likewise
  int32_t q[32];
  const uint8_t* row = w.row(n);
  switch (w.format) {
    case QuantFormat::Q8_0: {
      const auto* b = reinterpret_cast<const BlockQ8_0*>(row);
      for (int64_t i = 0; i < w.cols / 32; ++i) {
        BlockQ8_0 blk;
        std::memcpy(&blk, b + i, sizeof blk);
        for (int j = 0; j < 32; ++j) q[j] = blk.qs[j];
        block_fma(q, x[i].qs, half_bits_to_float(blk.d) * x[i].d, acc[i & 1]);
      }
      return lanes_sum(acc);
    }
    case QuantFormat::Q4_0: {
      const auto* b = reinterpret_cast<const BlockQ4_0*>(row);
      for (int64_t i = 0; i < w.cols / 32; ++i) {
        BlockQ4_0 blk;
        std::memcpy(&blk, b + i, sizeof blk);
        for (int j = 0; j < 16; ++j) {
          q[j] = (blk.qs[j] & 0xF) - 8;
          q[j + 16] = (blk.qs[j] >> 4) - 8;
        }
        block_fma(q, x[i].qs, half_bits_to_float(blk.d) * x[i].d, acc[i & 1]);
      }
      return lanes_sum(acc);
    }
    case QuantFormat::Q4_1: {
      const auto* b = reinterpret_cast<const BlockQ4_1*>(row);
      for (int64_t i = 0; i < w.cols / 32; ++i) {
        BlockQ4_1 blk;
        std::memcpy(&blk, b + i, sizeof blk);
        for (int j = 0; j < 16; ++j) {
          q[j] = blk.qs[j] & 0xF;
          q[j + 16] = blk.qs[j] >> 4;
        }
        block_fma(q, x[i].qs, half_bits_to_float(blk.d) * x[i].d, acc[i & 1]);
        summs[i & 1] = std::fma(half_bits_to_float(blk.m), x[i].s, summs[i & 1]);  // m·d·Σq
      }
      return lanes_sum(acc) + (summs[0] + summs[1]);
    }
    case QuantFormat::Q4_K: {
      const auto* b = reinterpret_cast<const BlockQ4_K*>(row);
      for (int64_t i = 0; i < w.cols / 256; ++i) {
        BlockQ4_K blk;
        std::memcpy(&blk, b + i, sizeof blk);
        const float d = half_bits_to_float(blk.d), dmin = half_bits_to_float(blk.dmin);
        const ActBlock* xs = x + 8 * i;
        for (int sub = 0; sub < 8; ++sub) {
          uint8_t sc, m;
          q4_k_scale_min(sub, blk.scales, &sc, &m);
          const uint8_t* qs = blk.qs + 32 * (sub / 2);
          for (int j = 0; j < 32; ++j) q[j] = sub % 2 == 0 ? (qs[j] & 0xF) : (qs[j] >> 4);
          block_fma(q, xs[sub].qs, (d * static_cast<float>(sc)) * xs[sub].d, acc[sub & 1]);
          summs[sub & 1] = std::fma(dmin * static_cast<float>(m), xs[sub].s, summs[sub & 1]);
        }
      }
      return lanes_sum(acc) - (summs[0] + summs[1]);
    }
    case QuantFormat::Q4_1_R2: {
      // As the SIMD kernel (cpu_quant_simd.inc smol_row_q4_1_pairs): the lanes as for Q4_1
      // (even blocks acc[0], odd acc[1]); the min terms in 8 lanes over whole groups of 8
      // blocks (lane k: blocks 8g + k), summed as the lanes are, then the tail's blocks in order.
      const int64_t nb = w.cols / 32, full = nb / 8 * 8;
      const uint8_t* scales = row + 16 * nb;
      auto half_at = [&](int64_t index) {
        uint16_t h;
        std::memcpy(&h, scales + 2 * index, 2);
        return half_bits_to_float(h);
      };
      int32_t qb[32];
      for (int64_t i = 0; i < nb; i += 2) {
        const uint8_t* pair = row + (i / 2) * 32;
        for (int j = 0; j < 32; ++j) {
          q[j] = pair[j] & 0x0F;
          qb[j] = pair[j] >> 4;
        }
        block_fma(q, x[i].qs, half_at(i) * x[i].d, acc[0]);
        block_fma(qb, x[i + 1].qs, half_at(i + 1) * x[i + 1].d, acc[1]);
      }
      float mins[8] = {};
      for (int64_t i = 0; i < full; ++i)
        mins[i % 8] = std::fma(half_at(nb + i), x[i].s, mins[i % 8]);
      const float m0 = mins[0] + mins[4], m1 = mins[1] + mins[5], m2 = mins[2] + mins[6],
                  m3 = mins[3] + mins[7];
      float min_sum = (m0 + m2) + (m1 + m3);
      for (int64_t i = full; i < nb; ++i) min_sum = std::fma(half_at(nb + i), x[i].s, min_sum);
      return lanes_sum(acc) + min_sum;
    }
  }
  return 0.0f;
}

}  // namespace

void quant_rows_generic(const QuantMatrix& w, const ActBlock* x, int64_t T, int64_t n0, int64_t n1,
                        float* y, int64_t ldy) {
  const int64_t row_blocks = w.cols / 32;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t t = 0; t < T; ++t) y[t * ldy + n] = row_dot(w, n, x + t * row_blocks);
}

}  // namespace smol::cpu
