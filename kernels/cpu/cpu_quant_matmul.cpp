// matmul_quantized on cpu (cpu_quant_matmul.h): activation quantisation, the choice of kernel,
// OpenMP over output rows, and for many rows of x the dequantise-a-tile-then-sgemm path.
#include "kernels/cpu/cpu_quant_matmul.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.h"

namespace smol::cpu {

void quant_rows_generic(const QuantMatrix& w, const ActBlock* x, int64_t T, int64_t n0, int64_t n1,
                        float* y, int64_t ldy);
void quant_rows_avx2(const QuantMatrix& w, const ActBlock* x, int64_t T, int64_t n0, int64_t n1,
                     float* y, int64_t ldy);
void quant_rows_vnni(const QuantMatrix& w, const ActBlock* x, int64_t T, int64_t n0, int64_t n1,
                     float* y, int64_t ldy);

const char* quant_isa_name(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::Generic:
      return "generic";
    case QuantIsa::Avx2:
      return "avx2";
    case QuantIsa::Avx512Vnni:
      return "avx512-vnni";
  }
  return "?";
}

QuantIsa detect_quant_isa() {
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  const bool vnni = avx2 && __builtin_cpu_supports("avx512f") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vnni");
  const QuantIsa best = vnni ? QuantIsa::Avx512Vnni : avx2 ? QuantIsa::Avx2 : QuantIsa::Generic;
  const char* env = std::getenv("SMOL_CPU_ISA");
  const std::string asked = env ? env : "";
  if (asked.empty() || asked == "native" || asked == "avx512" || asked == "avx512-vnni")
    return best;
  if (asked == "generic") return QuantIsa::Generic;
  if (asked == "avx2") {
    SMOL_CHECK(avx2, "SMOL_CPU_ISA=avx2: this CPU lacks AVX2/FMA/F16C");
    return QuantIsa::Avx2;
  }
  throw_error("SMOL_CPU_ISA='", asked, "' is not one of generic, avx2, avx512, native");
}

QuantRowsKernel quant_rows_kernel(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::Avx512Vnni:
      return quant_rows_vnni;
    case QuantIsa::Avx2:
      return quant_rows_avx2;
    case QuantIsa::Generic:
      break;
  }
  return quant_rows_generic;
}

namespace {

// Round to nearest, ties to even, for |v| ≤ 2^22 (here |v| ≤ 127): adding 1.5·2^23 leaves the
// integer in the low mantissa bits (ggml's nearest_int). Inline and vectorisable, where
// std::nearbyint is a libm call on baseline x86-64.
inline int32_t round_to_int(float v) {
  float shifted = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &shifted, 4);
  return (bits & 0x007FFFFF) - 0x00400000;
}

}  // namespace

void quantize_activations(const float* x, int64_t T, int64_t K, std::vector<ActBlock>& out) {
  const int64_t row_blocks = K / 32;
  if (static_cast<int64_t>(out.size()) < T * row_blocks)
    out.resize(static_cast<size_t>(T * row_blocks));
#pragma omp parallel for schedule(static) if (T * K >= (1 << 16))
  for (int64_t i = 0; i < T * row_blocks; ++i) {
    const float* v = x + i * 32;  // rows are contiguous, so block i of the flat array
    ActBlock& b = out[static_cast<size_t>(i)];
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
    const float d = amax / 127.0f;
    const float id = d > 0.0f ? 1.0f / d : 0.0f;
    int32_t sum = 0;
    for (int j = 0; j < 32; ++j) {
      const int32_t q = round_to_int(v[j] * id);
      b.qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    b.d = d;
    b.isum = sum;
    b.s = d * static_cast<float>(sum);
  }
}

// y [T, N] = x [T, K] · Wᵀ through fp32: tiles of W's rows are dequantised (OpenMP) and
// multiplied by sgemm, so the fp32 copy never exceeds one tile.
void matmul_quantized_via_sgemm(float* y, const float* x, int64_t T, const QuantMatrix& w) {
  const int64_t K = w.cols, N = w.rows;
  const int64_t tile = std::max<int64_t>(64, (int64_t{1} << 18) / K);  // ≈ 1 MB of fp32
  std::vector<float> scratch(static_cast<size_t>(std::min(tile, N) * K));
  for (int64_t n0 = 0; n0 < N; n0 += tile) {
    const int64_t rows = std::min(tile, N - n0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      dequantize_quant_row(w.format, w.row(n0 + r), scratch.data() + r * K, K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T),
                static_cast<int>(rows), static_cast<int>(K), 1.0f, x, static_cast<int>(K),
                scratch.data(), static_cast<int>(K), 0.0f, y + n0, static_cast<int>(N));
  }
}

void matmul_quantized_int8(std::span<float* const> ys, const float* x, int64_t T,
                           std::span<const QuantMatrix> ws, QuantIsa isa,
                           std::vector<ActBlock>& scratch) {
  quantize_activations(x, T, ws.front().cols, scratch);
  const ActBlock* xq = scratch.data();
  const QuantRowsKernel kernel = quant_rows_kernel(isa);
  // Chunks of output rows over all the matrices: enough to balance two to a few dozen threads,
  // big enough that a chunk streams several KB of weights between scheduling decisions.
  constexpr int64_t kChunkRows = 32;
  constexpr size_t kMax = 8;
  SMOL_CHECK(ws.size() <= kMax, "matmul_quantized: at most ", kMax, " matrices per call");
  int64_t first_chunk[kMax + 1] = {0};
  int64_t work = 0;
  for (size_t i = 0; i < ws.size(); ++i) {
    first_chunk[i + 1] = first_chunk[i] + (ws[i].rows + kChunkRows - 1) / kChunkRows;
    work += ws[i].rows * ws[i].cols * T;
  }
  const int64_t chunks = first_chunk[ws.size()];
#pragma omp parallel for schedule(static) if (work >= (1 << 15))
  for (int64_t c = 0; c < chunks; ++c) {
    size_t i = 0;
    while (c >= first_chunk[i + 1]) ++i;
    const int64_t n0 = (c - first_chunk[i]) * kChunkRows;
    kernel(ws[i], xq, T, n0, std::min(ws[i].rows, n0 + kChunkRows), ys[i], ws[i].rows);
  }
}

void matmul_quantized(std::span<const Tensor> ys, const Tensor& x, std::span<const QuantMatrix> ws,
                      QuantIsa isa, std::vector<ActBlock>& scratch) {
  const int64_t T = x.shape.rows();
  if (T == 0) return;
  if (T >= kQuantSgemmMinRows) {
    for (size_t i = 0; i < ws.size(); ++i)
      matmul_quantized_via_sgemm(ys[i].as<float>(), x.as<float>(), T, ws[i]);
    return;
  }
  float* outs[8];
  for (size_t i = 0; i < ys.size() && i < 8; ++i) outs[i] = ys[i].as<float>();
  matmul_quantized_int8(std::span<float* const>(outs, ys.size()), x.as<float>(), T, ws, isa,
                        scratch);
}

}  // namespace smol::cpu
