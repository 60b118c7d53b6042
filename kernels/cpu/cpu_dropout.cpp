// Dropout with the counter-based mask of kernels/backend.h: element e of the flattened tensor
// is kept iff dropout_uniform(seed, e) ≥ p, kept values scaled by 1/(1−p). The mask depends
// only on (seed, e), so the backward is this same call on the gradient. out may alias in.
#include "kernels/cpu/cpu_ops.h"

namespace smol::cpu {

void dropout(Tensor out, const Tensor& in, float p, uint64_t seed) {
  const float* x = in.as<float>();
  float* y = out.as<float>();
  const int64_t n = in.numel();
  // p = 1 drops everything (no uniform in [0, 1) reaches 1); keep_scale is then unused.
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t e = 0; e < n; ++e)
    y[e] = dropout_uniform(seed, static_cast<uint64_t>(e)) >= p ? x[e] * keep_scale : 0.0f;
}

}  // namespace smol::cpu
