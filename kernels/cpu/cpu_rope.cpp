// RoPE, rotate-half layout (docs/formats.md §2), in place on x [T, H, D] with positions I32 [T]:
// pair (x[i], x[i + D/2]) of every head rotates by angle_i = position · inv_freq[i]:
//   out[i]       = x[i]·cos − x[i+D/2]·sin
//   out[i + D/2] = x[i+D/2]·cos + x[i]·sin
// The backward applies the transposed rotation (angle −angle_i) to the gradient.
//
// Bit-compatibility with HF: inv_freq[i] = 1 / theta^(float(2i)/D) is computed in float32
// (`theta ** (arange(0, D, 2).float() / D)`), the angle is the float32 product
// float(position) · inv_freq[i], and cos/sin are taken of that float32 angle.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/cpu_rope_table.h"

namespace smol::cpu {
namespace {

// Rotates the pairs of token t's heads by the angles whose cos/sin are given.
inline void rotate_token(float* token, int64_t heads, int64_t head_dim, const float* cos_v,
                         const float* sin_v, float direction) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    float* lo = token + h * head_dim;
    float* hi = lo + half;
#pragma omp simd
    for (int64_t i = 0; i < half; ++i) {
      const float a = lo[i], b = hi[i], s = direction * sin_v[i];
      lo[i] = a * cos_v[i] - b * s;
      hi[i] = b * cos_v[i] + a * s;
    }
  }
}

// direction +1: forward rotation; −1: its transpose (backward). Positions in
// [0, RopeTable::kMaxPositions) read the table; others (never in a model's context) compute
// their angles on the spot, with the same formula.
void rope_apply(Tensor x, const Tensor& positions, float theta, float direction, RopeTable& table) {
  const int64_t tokens = x.shape[0], heads = x.shape[1], head_dim = x.shape[2];
  const int64_t half = head_dim / 2;
  const int32_t* pos = positions.as<int32_t>();
  int32_t lowest = 0, highest = -1;
  if (tokens > 0) {
    const auto [lo, hi] = std::minmax_element(pos, pos + tokens);
    lowest = *lo;
    highest = *hi;
  }
  if (lowest >= 0 && highest < RopeTable::kMaxPositions) {
    table.prepare(theta, head_dim, static_cast<int64_t>(highest) + 1);
    float* data = x.as<float>();
#pragma omp parallel for schedule(static) if (tokens * heads * head_dim > 32768)
    for (int64_t t = 0; t < tokens; ++t)
      rotate_token(data + t * heads * head_dim, heads, head_dim, table.cos_row(pos[t]),
                   table.sin_row(pos[t]), direction);
    return;
  }
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq[i] = 1.0f / std::pow(theta, exponent);
  }
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
        sin_v[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
      rotate_token(data + t * heads * head_dim, heads, head_dim, cos_v.data(), sin_v.data(),
                   direction);
    }
  }
}

}  // namespace

void rope_forward(Tensor x, const Tensor& positions, float theta, RopeTable& table) {
  rope_apply(x, positions, theta, 1.0f, table);
}

void rope_backward(Tensor dx, const Tensor& positions, float theta, RopeTable& table) {
  rope_apply(dx, positions, theta, -1.0f, table);
}

}  // namespace smol::cpu
