// The cpu backend's quantised matmul, y [T, N] = x [T, K] · Wᵀ with W a QuantMatrix [N, K]
// (kernels/backend.h matmul_quantized; docs/cpu-speed.md "Quantised inference").
//
// Method (ggml's): each 32-value block of every row of x is quantised to int8 with its own
// scale d = max|x|/127 (an "activation block", Q8_1-like: it also keeps Σq and d·Σq), and each
// output is Σ over weight blocks of (weight scale · d) · (int8 · int4/int8 dot product), the
// integer dot products exact. Q4_1's min and Q4_K's sub-block mins become one multiply per block
// with the activation block's d·Σq.
//
// Three interchangeable kernels (QuantIsa), chosen once per backend: AVX512-VNNI (vpdpbusd on
// 256-bit vectors), AVX2 (vpmaddubsw + vpmaddwd) and a portable scalar reference. All three
// compute each output with the same operations in the same order — 8 int32 lanes of 4 products
// per block, an fp32 fma per lane and block, one fixed horizontal sum — so they agree bit for
// bit (tests/kernels_cpu/test_quant_matmul.cpp), and so do T = 1 and T > 1.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/quant_matrix.h"
#include "kernels/tensor.h"

namespace smol::cpu {

enum class QuantIsa : uint8_t { Generic, Avx2, Avx512Vnni };
const char* quant_isa_name(QuantIsa isa);

// The best kernel this CPU runs, unless the environment variable SMOL_CPU_ISA asks for less:
// "generic" (the scalar reference), "avx2", or "native"/unset (the best). Read once, by the
// backend's constructor. Asking for an ISA the CPU lacks throws.
QuantIsa detect_quant_isa();

// One quantised 32-value block of an activation row.
struct ActBlock {
  int8_t qs[32];
  float d;       // scale: x ≈ d · qs
  float s;       // d · Σ qs (the Q4_1 / Q4_K min term's factor)
  int32_t isum;  // Σ qs
  int32_t pad;
};

// x rows → activation blocks, [T][K / 32], into `out` (resized). Scalar code shared by every
// kernel, so all of them see the same int8 values: q = round(x · (1/d)), ties to even.
void quantize_activations(const float* x, int64_t T, int64_t K, std::vector<ActBlock>& out);

// Rows [n0, n1) of y (leading dimension ldy) for all T rows of the quantised x: the kernels.
using QuantRowsKernel = void (*)(const QuantMatrix& w, const ActBlock* x, int64_t T, int64_t n0,
                                 int64_t n1, float* y, int64_t ldy);
QuantRowsKernel quant_rows_kernel(QuantIsa isa);

// From this many rows of x on, the op dequantises tiles of W to fp32 and runs sgemm instead
// (docs/cpu-speed.md "Quantised inference": the int8 kernel is memory-bound at small T, sgemm
// compute-bound at large T).
constexpr int64_t kQuantSgemmMinRows = 128;

// The two methods (the op picks by T; bench/model/decode_bench --kernels times both):
// int8 activations and the kernel above, OpenMP over chunks of output rows …
// Several matrices sharing x: x quantised once, one parallel loop over all their row chunks.
void matmul_quantized_int8(std::span<float* const> ys, const float* x, int64_t T,
                           std::span<const QuantMatrix> ws, QuantIsa isa,
                           std::vector<ActBlock>& scratch);
// … or tiles of W dequantised to fp32 (≈ 1 MB each) multiplied by sgemm.
void matmul_quantized_via_sgemm(float* y, const float* x, int64_t T, const QuantMatrix& w);

// The op: ys[i] = x · ws[i]ᵀ. scratch holds the activation blocks between calls (no per-token
// allocation).
void matmul_quantized(std::span<const Tensor> ys, const Tensor& x, std::span<const QuantMatrix> ws,
                      QuantIsa isa, std::vector<ActBlock>& scratch);

}  // namespace smol::cpu
