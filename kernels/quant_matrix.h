// QuantMatrix: a matrix held in one of ggml's block-quantised formats (kernels/quant_blocks.h),
// as the quantised matmul op reads it (Backend::matmul_quantized, docs/cpu-speed.md
// "Quantised inference"). Math only — kernels/ knows nothing of files: the loader fills it.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/quant_blocks.h"

namespace smol {

// Q4_1_R2 is not a file format: Q4_1 rows repacked for the cpu kernels at load (see
// repack_q4_1_pairs below; docs/cpu-speed.md "Quantised inference").
enum class QuantFormat : uint8_t { Q8_0, Q4_0, Q4_1, Q4_K, Q4_1_R2 };

struct QuantFormatTraits {
  const char* name;
  int64_t block_elems;  // values per block
  int64_t block_bytes;  // bytes per block
};

constexpr QuantFormatTraits quant_format_traits(QuantFormat format) {
  switch (format) {
    case QuantFormat::Q8_0:
      return {"Q8_0", 32, 34};
    case QuantFormat::Q4_0:
      return {"Q4_0", 32, 18};
    case QuantFormat::Q4_1:
      return {"Q4_1", 32, 20};
    case QuantFormat::Q4_K:
      return {"Q4_K", 256, 144};
    case QuantFormat::Q4_1_R2:  // Q4_1's values in another layout: named as the file's format
      return {"Q4_1", 32, 20};  // per block: 16 bytes of nibbles + fp16 d + fp16 m, as Q4_1
  }
  return {"?", 1, 0};
}

// W [rows, cols] row-major: row r is cols / block_elems consecutive blocks starting at
// blocks + r · row_bytes(). cols must be a multiple of the block size (checked by the op).
struct QuantMatrix {
  QuantFormat format = QuantFormat::Q8_0;
  int64_t rows = 0, cols = 0;
  const void* blocks = nullptr;

  int64_t row_bytes() const {
    const QuantFormatTraits t = quant_format_traits(format);
    return cols / t.block_elems * t.block_bytes;
  }
  int64_t bytes() const { return rows * row_bytes(); }
  const uint8_t* row(int64_t r) const {
    return static_cast<const uint8_t*>(blocks) + r * row_bytes();
  }
  bool empty() const { return blocks == nullptr; }
};

// Q4_1_R2, one row of nb = cols/32 blocks (nb even): the same values, scales and mins as the
// row's Q4_1 blocks, laid out so that one 32-byte load yields two blocks' 4-bit values and the
// scales of eight blocks are one 16-byte load each:
//   [nb/2 pairs × 32 bytes: byte j = q_{2p}[j] | q_{2p+1}[j] << 4, j = 0..31 in element order]
//   [nb × fp16 d] [nb × fp16 m]
// 20·nb bytes, as Q4_1. (Q4_1 stores element j and j+16 of one block in one byte, which costs a
// 16-byte load, two masks, a shift and an insert per block to unpack; docs/cpu-speed.md.)
inline bool can_pair_q4_1(int64_t cols) {
  return cols % 64 == 0;
}
inline void repack_q4_1_pairs(const uint8_t* src, int64_t rows, int64_t cols, uint8_t* dst) {
  const int64_t nb = cols / 32, row_bytes = nb * 20;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* in = src + r * row_bytes;
    uint8_t* qs = dst + r * row_bytes;
    uint8_t* scales = qs + 16 * nb;  // d then m, each nb little-endian fp16
    for (int64_t i = 0; i < nb; ++i) {
      BlockQ4_1 b;
      std::memcpy(&b, in + i * 20, sizeof b);
      std::memcpy(scales + 2 * i, &b.d, 2);
      std::memcpy(scales + 2 * (nb + i), &b.m, 2);
      uint8_t* pair = qs + (i / 2) * 32;
      const int shift = (i % 2) * 4;
      for (int j = 0; j < 32; ++j) {
        const uint8_t q = j < 16 ? (b.qs[j] & 0x0F) : (b.qs[j - 16] >> 4);
        pair[j] = static_cast<uint8_t>((i % 2 == 0 ? 0 : pair[j]) | (q << shift));
      }
    }
  }
}

// One row of n values (n a multiple of the block size) decoded to fp32, exactly as ggml's
// dequantize_row_* (kernels/quant_blocks.h).
inline void dequantize_quant_row(QuantFormat format, const uint8_t* src, float* dst, int64_t n) {
  if (format == QuantFormat::Q4_1_R2) {  // back to Q4_1 blocks, decoded by the same code
    const int64_t nb = n / 32;
    for (int64_t i = 0; i < nb; ++i) {
      BlockQ4_1 b;
      std::memcpy(&b.d, src + 16 * nb + 2 * i, 2);
      std::memcpy(&b.m, src + 16 * nb + 2 * (nb + i), 2);
      const uint8_t* pair = src + (i / 2) * 32;
      const int shift = (i % 2) * 4;
      for (int j = 0; j < 16; ++j)
        b.qs[j] = static_cast<uint8_t>(((pair[j] >> shift) & 0x0F) |
                                       (((pair[j + 16] >> shift) & 0x0F) << 4));
      dequantize_block_at<BlockQ4_1>(reinterpret_cast<const uint8_t*>(&b), dst + 32 * i);
    }
    return;
  }
  const QuantFormatTraits t = quant_format_traits(format);
  for (int64_t b = 0; b < n / t.block_elems; ++b) {
    const uint8_t* block = src + b * t.block_bytes;
    float* out = dst + b * t.block_elems;
    switch (format) {
      case QuantFormat::Q8_0:
        dequantize_block_at<BlockQ8_0>(block, out);
        break;
      case QuantFormat::Q4_0:
        dequantize_block_at<BlockQ4_0>(block, out);
        break;
      case QuantFormat::Q4_1:
        dequantize_block_at<BlockQ4_1>(block, out);
        break;
      case QuantFormat::Q4_K:
        dequantize_block_at<BlockQ4_K>(block, out);
        break;
      case QuantFormat::Q4_1_R2:  // handled above (row-wise)
        break;
    }
  }
}

}  // namespace smol
