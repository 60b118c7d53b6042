// Next-token choice from one row of logits (docs/design.md §3, generation):
//   temperature 0      greedy argmax (first maximum wins, as torch.argmax)
//   temperature T > 0  softmax(logits / T), restricted to the top-p nucleus (HF TopPLogitsWarper:
//                      the most probable tokens whose cumulative probability first reaches p,
//                      at least one), renormalised, then one draw — by the exact integer rule of
//                      kernels/token_sampling.h, which the device (Backend::sample_tokens)
//                      computes too, so a sampled token does not depend on the backend.
// Draws come from the counter-based dropout_uniform(seed, ·) stream, so a (seed, sequence,
// step) triple always gives the same token: sampling is reproducible and does not depend on
// how sequences were batched.
#pragma once

#include <cstdint>
#include <vector>

namespace smol {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f;        // (0, 1]
  uint64_t seed = 0;
  void validate() const;  // throws smol::Error for a negative temperature or p outside (0, 1]
};

int32_t argmax_token(const float* logits, int64_t vocab);

// `stream` identifies the sequence (e.g. its index among the prompts); `step` the position
// of the token in the continuation.
// The uniform in [0, 1) that sequence `stream` draws its token `step` with.
float sampling_uniform(const SamplingParams& params, uint64_t stream, uint64_t step);

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& params,
                     uint64_t stream, uint64_t step);

}  // namespace smol
