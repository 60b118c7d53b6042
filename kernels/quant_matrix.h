// QuantMatrix: a matrix held in one of ggml's block-quantised formats (kernels/quant_blocks.h),
// as the quantised matmul op reads it (Backend::matmul_quantized, docs/cpu-speed.md
// "Quantised inference"). Math only — kernels/ knows nothing of files: the loader fills it.
#pragma once

#include <cstdint>

#include "kernels/quant_blocks.h"

namespace smol {

enum class QuantFormat : uint8_t { Q8_0, Q4_0, Q4_1, Q4_K };

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

// One row of n values (n a multiple of the block size) decoded to fp32, exactly as ggml's
// dequantize_row_* (kernels/quant_blocks.h).
inline void dequantize_quant_row(QuantFormat format, const uint8_t* src, float* dst, int64_t n) {
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
    }
  }
}

}  // namespace smol
