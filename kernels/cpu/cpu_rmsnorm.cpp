// RMSNorm (docs/formats.md §2): out = weight ⊙ (x · rstd), rstd = 1/sqrt(mean(x²) + eps), per row
// of x [T, C]; rstd F32 [T] is kept for the backward. As in HF, the statistic is an fp32
// value (we accumulate Σx² in double, then round the mean to float) and x·rstd is formed
// before the weight multiplies it.
//
// Backward, with g = dout ⊙ weight and r = rstd (derivative of x·r with r = (Σx²/C + eps)^-½):
//   dx      += r·g − x · r³/C · Σ_c(g ⊙ x)
//   dweight += Σ_t dout ⊙ x · r
// dweight sums over rows in fixed chunks of kRowsPerChunk rows, then over chunks in order, so
// its value does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {
namespace {

constexpr int64_t kRowsPerChunk = 16;

// Normalises one row: writes out[0..C) and returns rstd.
inline float normalise_row(float* out, const float* x, const float* weight, int64_t channels,
                           float eps) {
  double sum_sq = 0.0;
#pragma omp simd reduction(+ : sum_sq)
  for (int64_t c = 0; c < channels; ++c) sum_sq += static_cast<double>(x[c]) * x[c];
  const float mean_sq = static_cast<float>(sum_sq / static_cast<double>(channels));
  const float rstd = 1.0f / std::sqrt(mean_sq + eps);
#pragma omp simd
  for (int64_t c = 0; c < channels; ++c) out[c] = weight[c] * (x[c] * rstd);
  return rstd;
}

}  // namespace

void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& x, const Tensor& weight, float eps) {
  const int64_t rows = x.shape.rows(), channels = x.shape.cols();
  const float* in = x.as<float>();
  const float* w = weight.as<float>();
  float* o = out.as<float>();
  float* r = rstd.as<float>();
#pragma omp parallel for schedule(static) if (rows * channels > 32768)
  for (int64_t t = 0; t < rows; ++t)
    r[t] = normalise_row(o + t * channels, in + t * channels, w, channels, eps);
}

void add_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a, const Tensor& b,
                         const Tensor& weight, float eps) {
  const int64_t rows = a.shape.rows(), channels = a.shape.cols();
  const float* pa = a.as<float>();
  const float* pb = b.as<float>();
  const float* w = weight.as<float>();
  float* s = sum.as<float>();  // may alias a: each element is read before it is written
  float* o = out.as<float>();
  float* r = rstd.as<float>();
#pragma omp parallel for schedule(static) if (rows * channels > 32768)
  for (int64_t t = 0; t < rows; ++t) {
    float* srow = s + t * channels;
    const float* arow = pa + t * channels;
    const float* brow = pb + t * channels;
    for (int64_t c = 0; c < channels; ++c) srow[c] = arow[c] + brow[c];
    r[t] = normalise_row(o + t * channels, srow, w, channels, eps);
  }
}

void rmsnorm_backward(Tensor dx, Tensor dweight, const Tensor& dout, const Tensor& x,
                      const Tensor& weight, const Tensor& rstd) {
  const int64_t rows = x.shape.rows(), channels = x.shape.cols();
  const float* in = x.as<float>();
  const float* w = weight.as<float>();
  const float* g_out = dout.as<float>();
  const float* r = rstd.as<float>();
  float* g_in = dx.as<float>();
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  std::vector<double> dweight_partial(static_cast<size_t>(chunks * channels), 0.0);

#pragma omp parallel for schedule(static) if (rows * channels > 32768)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    double* dw = dweight_partial.data() + chunk * channels;
    const int64_t t_end = std::min(rows, (chunk + 1) * kRowsPerChunk);
    for (int64_t t = chunk * kRowsPerChunk; t < t_end; ++t) {
      const float* xr = in + t * channels;
      const float* gr = g_out + t * channels;
      float* dxr = g_in + t * channels;
      const float rs = r[t];
      double g_dot_x = 0.0;  // Σ_c dout·weight·x
#pragma omp simd reduction(+ : g_dot_x)
      for (int64_t c = 0; c < channels; ++c) g_dot_x += static_cast<double>(gr[c]) * w[c] * xr[c];
      const float coeff =
          static_cast<float>(g_dot_x * rs * rs * rs / static_cast<double>(channels));
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) {
        dxr[c] += rs * gr[c] * w[c] - xr[c] * coeff;
        dw[c] += static_cast<double>(gr[c] * xr[c] * rs);
      }
    }
  }
  std::vector<double> dweight_total(static_cast<size_t>(channels), 0.0);
  for (int64_t chunk = 0; chunk < chunks; ++chunk)  // chunk order fixed: deterministic
    for (int64_t c = 0; c < channels; ++c)
      dweight_total[c] += dweight_partial[chunk * channels + c];
  float* dw_out = dweight.as<float>();
  for (int64_t c = 0; c < channels; ++c) dw_out[c] += static_cast<float>(dweight_total[c]);
}

}  // namespace smol::cpu
