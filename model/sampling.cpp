// Greedy, temperature and top-p sampling on the host (see sampling.h); the sampled rule itself
// is kernels/token_sampling.h, shared with the device.
#include "model/sampling.h"

#include <cmath>

#include "common/error.h"
#include "kernels/backend.h"
#include "kernels/token_sampling.h"

namespace smol {

void SamplingParams::validate() const {
  SMOL_CHECK(std::isfinite(temperature) && temperature >= 0.0f, "sampling: temperature ",
             temperature, " must be >= 0 (0 = greedy)");
  SMOL_CHECK(top_p > 0.0f && top_p <= 1.0f, "sampling: top_p ", top_p, " must be in (0, 1]");
}

int32_t argmax_token(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

float sampling_uniform(const SamplingParams& params, uint64_t stream, uint64_t step) {
  // dropout's counter hash over a mixed (sequence, step) index.
  return dropout_uniform(params.seed, stream * 0x100000001B3ull + step);
}

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& params,
                     uint64_t stream, uint64_t step) {
  if (params.temperature <= 0.0f) return argmax_token(logits, vocab);
  const int32_t token = sample_from_logits(logits, vocab, params.temperature, params.top_p,
                                           sampling_uniform(params, stream, step));
  SMOL_CHECK(token >= 0, "sampling: logit ", -token - 1, " is not finite");
  return token;
}

}  // namespace smol
