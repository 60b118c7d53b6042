// The rotation of one RoPE pair (rotate-half layout, docs/formats.md §2), shared by every kernel
// that rotates: rope.cu (rope, rope_qk, rope_append_kv) and the flash attention backward, which
// rotates dq and dk in registers before its one store (docs/design.md §2.7 "Fused RoPE"). One
// definition, so every kernel computes the identical angle, sin/cos and products for a pair:
// angle = float(position) · inv_freq[i] (inv_freq from GpuContext::rope_inv_freq, computed on the
// host as the cpu backend computes it), sin/cos in fp32 by sincosf, and
//   forward (direction +1):   y0 = x0·cos − x1·sin,  y1 = x1·cos + x0·sin
//   backward (direction −1):  the transpose, the same with sin negated.
#pragma once

#include "kernels/cuda/cuda_compat.h"

namespace smol::SMOL_GPU_NS {

// sin and cos of pair i's angle at `position`, sin times `direction` (+1 forward, −1 backward).
__device__ __forceinline__ void rope_sin_cos(int position, float inv_freq, float direction,
                                             float& sin_out, float& cos_out) {
  const float angle = static_cast<float>(position) * inv_freq;
  sincosf(angle, &sin_out, &cos_out);
  sin_out *= direction;
}

// Rotates the pair (x0, x1) = (x[i], x[i + D/2]) by the angle whose (direction-signed) sin and
// cos rope_sin_cos gave, in fp32.
__device__ __forceinline__ void rope_rotate(float x0, float x1, float sin_a, float cos_a, float& y0,
                                            float& y1) {
  y0 = x0 * cos_a - x1 * sin_a;
  y1 = x1 * cos_a + x0 * sin_a;
}

}  // namespace smol::SMOL_GPU_NS
