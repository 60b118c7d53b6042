// RoPE, rotate-half layout (docs/formats.md §2), in place on x [T, H, D] with positions I32 [T]:
// pair (x[i], x[i + D/2]) of every head rotates by angle_i = position · inv_freq[i]:
//   out[i]       = x[i]·cos − x[i+D/2]·sin
//   out[i + D/2] = x[i+D/2]·cos + x[i]·sin
// The backward applies the transposed rotation (angle −angle_i) to the gradient.
//
// Bit-compatibility with HF: inv_freq[i] = 1 / theta^(float(2i)/D) is computed in float32
// (`theta ** (arange(0, D, 2).float() / D)`), the angle is the float32 product
// float(position) · inv_freq[i], and cos/sin are taken of that float32 angle.
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {
namespace {

// direction +1: forward rotation; −1: its transpose (backward).
void rope_apply(Tensor x, const Tensor& positions, float theta, float direction) {
  const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2];
  const int64_t half = head_dim / 2;
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / std::pow(theta, exponent);
  }
  const int32_t* pos = positions.as<int32_t>();
  float* data = x.as<float>();
#pragma omp parallel if (tokens * heads * head_dim > 32768)
  {
    std::vector<float> cos_v(static_cast<size_t>(half)), sin_v(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(pos[t]) * inv_freq[i];
        // Rounded from double: the correctly rounded float cos/sin of the float angle.
        cos_v[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
        sin_v[i] = direction * static_cast<float>(std::sin(static_cast<double>(angle)));
      }
      for (int64_t h = 0; h < heads; ++h) {
        float* lo = data + (t * heads + h) * head_dim;
        float* hi = lo + half;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * cos_v[i] - b * sin_v[i];
          hi[i] = b * cos_v[i] + a * sin_v[i];
        }
      }
    }
  }
}

}  // namespace

void rope_forward(Tensor x, const Tensor& positions, float theta) {
  rope_apply(x, positions, theta, 1.0f);
}

void rope_backward(Tensor dx, const Tensor& positions, float theta) {
  rope_apply(dx, positions, theta, -1.0f);
}

}  // namespace smol::cpu
