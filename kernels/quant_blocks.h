// ggml's block-quantised formats as structs, and the exact decoding of one block to fp32
// (docs/formats.md §3 "Blocks"; ggml src/ggml-common.h block_q8_0 …, ggml-quants.c
// dequantize_row_*). The one definition of these layouts in the engine: io/dequantize.cpp
// decodes files through it, and the cpu backend's quantised matmul reads the same structs.
// Each decoder mirrors ggml's reference loop, so every value is one product (plus one add for
// the "_1" / K types) in fp32 and the results are bit-identical to ggml's scalar code.
#pragma once

#include <cstdint>
#include <cstring>

namespace smol {

// IEEE half bits → float, exact (subnormals, inf and NaN payloads preserved).
inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exponent = (h >> 10) & 0x1F;
  const uint32_t mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);  // inf / NaN (payload kept)
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 → 127
  } else if (mantissa == 0) {
    bits = sign;  // ±0
  } else {
    // Subnormal half: mantissa · 2^-24, a normal float (the product is exact).
    float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    std::memcpy(&bits, &magnitude, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Q8_0: d (fp16), qs[32] int8; x = qs[j]·d.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
// Q4_0: d, qs[16]; low nibbles → elements 0..15, high nibbles → 16..31; x = (q − 8)·d.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
// Q4_1: d, m, qs[16] (nibbles as Q4_0); x = q·d + m.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[16];
};
// Q4_K: a 256-element super-block of 8 sub-blocks of 32: d, dmin (fp16), 6-bit scales and
// mins packed in scales[12], qs[128]; per 64 outputs, the low nibbles of 32 bytes are sub-block
// 2g and their high nibbles sub-block 2g+1; x = d·sc·q − dmin·mn.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 &&
                  sizeof(BlockQ4_K) == 144,
              "ggml block layouts are packed: no padding may appear");

// The 6-bit scale and min of sub-block j of a Q4_K super-block (ggml get_scale_min_k4).
inline void q4_k_scale_min(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4);
  }
}

inline void dequantize_block(const BlockQ8_0& b, float* y) {
  const float d = half_bits_to_float(b.d);
  for (int j = 0; j < 32; ++j) y[j] = b.qs[j] * d;
}

inline void dequantize_block(const BlockQ4_0& b, float* y) {
  const float d = half_bits_to_float(b.d);
  for (int j = 0; j < 16; ++j) {
    y[j] = ((b.qs[j] & 0x0F) - 8) * d;
    y[j + 16] = ((b.qs[j] >> 4) - 8) * d;
  }
}

inline void dequantize_block(const BlockQ4_1& b, float* y) {
  const float d = half_bits_to_float(b.d);
  const float m = half_bits_to_float(b.m);
  for (int j = 0; j < 16; ++j) {
    y[j] = (b.qs[j] & 0x0F) * d + m;
    y[j + 16] = (b.qs[j] >> 4) * d + m;
  }
}

inline void dequantize_block(const BlockQ4_K& b, float* y) {
  const float d = half_bits_to_float(b.d);
  const float min = half_bits_to_float(b.dmin);
  const uint8_t* q = b.qs;
  uint8_t sc, m;
  for (int is = 0; is < 8; is += 2) {
    q4_k_scale_min(is + 0, b.scales, &sc, &m);
    const float d1 = d * sc;
    const float m1 = min * m;
    q4_k_scale_min(is + 1, b.scales, &sc, &m);
    const float d2 = d * sc;
    const float m2 = min * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    q += 32;
  }
}

// Decodes one block stored at `src` (any alignment: blocks are packed, 2-byte fields may be odd).
template <typename Block>
void dequantize_block_at(const uint8_t* src, float* y) {
  Block b;
  std::memcpy(&b, src, sizeof(Block));
  dequantize_block(b, y);
}

}  // namespace smol
