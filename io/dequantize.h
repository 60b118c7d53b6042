// Dequantisation of ggml tensor data to fp32, exactly as ggml's dequantize_row_* computes it
// (docs/formats.md §3 "Blocks"): F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K.
#pragma once

#include <cstdint>
#include <vector>

#include "io/gguf_reader.h"

namespace smol {

// IEEE half / bfloat16 bits → float (exact; subnormals, inf and NaN preserved).
float fp16_to_fp32(uint16_t bits);
float bf16_to_fp32(uint16_t bits);
// float → bfloat16 bits, round to nearest even (as torch does); NaN stays NaN.
uint16_t fp32_to_bf16(float value);
// float → IEEE half bits, round to nearest even (used by tests to build blocks).
uint16_t fp32_to_fp16(float value);

bool ggml_type_dequantizable(GgmlType type);

// One row of n elements (n a multiple of the type's block size) from `src` (n / block ·
// block_bytes bytes) into dst[n]. Throws smol::Error for a type this engine cannot dequantise.
void dequantize_row(GgmlType type, const uint8_t* src, float* dst, int64_t n);

// A whole tensor of `rows` rows of `row_elems` elements, OpenMP over rows. `src` holds
// rows · row_elems / block · block_bytes bytes (validated by the GGUF reader).
void dequantize_rows(GgmlType type, const uint8_t* src, float* dst, int64_t rows,
                     int64_t row_elems);

// The tensor described by `info` (from a GgufFile) as a dense fp32 vector in ggml order
// (ne[0] fastest, i.e. row-major over the reversed shape).
std::vector<float> dequantize_tensor(const GgufTensorInfo& info, const std::string& path);

}  // namespace smol
