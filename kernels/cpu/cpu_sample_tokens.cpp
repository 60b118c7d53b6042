// The host implementation of the sampling rule (kernels/token_sampling.h) and the cpu backend's
// sample_tokens op over it. The rule's order is weight descending, id ascending; the host walks
// it by growing a sorted prefix with partial sorts, only as far as the nucleus and the draw need
// (sorting all 49,152 tokens of SmolLM2's vocabulary took ≈ 6 ms a token, more than a quantised
// cpu decode step). The device finds the same tokens by radix search instead
// (kernels/cuda/sample_tokens.cu); both sum integers, so both land on the same token.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/token_sampling.h"

namespace smol {
namespace {

// The rule's weights of a row and their sum. sampling_exp is nine fmaf a token: without the FMA
// instruction enabled at compile time (the portable build) each is a libm call, which doubled
// the cost of a sampled token (1.0 → 1.9 ms at SmolLM2's vocabulary). The same loop compiled for
// FMA, picked at run time, makes them instructions. fmaf is correctly rounded either way, so both
// give the same bits (and the device's).
// One body, inlined into both versions below (always_inline: a call would lose the target).
__attribute__((always_inline)) inline uint64_t weights_body(const float* logits, int64_t vocab,
                                                            float max_logit, float inv_t,
                                                            uint64_t* weight) {
  uint64_t total = 0;
  for (int64_t i = 0; i < vocab; ++i)
    total += weight[i] = sampling_weight(logits[i], max_logit, inv_t);
  return total;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("fma"))) uint64_t weights_fma(const float* logits, int64_t vocab,
                                                    float max_logit, float inv_t,
                                                    uint64_t* weight) {
  return weights_body(logits, vocab, max_logit, inv_t, weight);
}
#endif

uint64_t sampling_weights(const float* logits, int64_t vocab, float max_logit, float inv_t,
                          uint64_t* weight) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("fma")) return weights_fma(logits, vocab, max_logit, inv_t, weight);
#endif
  return weights_body(logits, vocab, max_logit, inv_t, weight);
}

}  // namespace

int32_t sample_from_logits(const float* logits, int64_t vocab, float temperature, float top_p,
                           float u) {
  float max_logit = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) {
    if (!std::isfinite(logits[i])) return static_cast<int32_t>(-(i + 1));
    max_logit = std::max(max_logit, logits[i]);
  }
  std::vector<uint64_t> weight(static_cast<size_t>(vocab));
  const uint64_t total =
      sampling_weights(logits, vocab, max_logit, 1.0f / temperature, weight.data());

  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  const auto before = [&](int32_t a, int32_t b) {  // the rule's strict order
    return weight[a] > weight[b] || (weight[a] == weight[b] && a < b);
  };
  // order[0, sorted) is final and every token after it comes later in the order; the prefix
  // grows by 64 tokens first, then four times as many each time.
  size_t sorted = 0, next_size = 64;
  const auto token_at = [&](size_t i) {
    while (i >= sorted) {
      const size_t end = std::min(order.size(), sorted + next_size);
      std::partial_sort(order.begin() + static_cast<std::ptrdiff_t>(sorted),
                        order.begin() + static_cast<std::ptrdiff_t>(end), order.end(), before);
      sorted = end;
      next_size *= 4;
    }
    return order[i];
  };
  // The first prefix whose weight exceeds x (x < total: it ends at a token of weight > 0).
  // Returns its last position; *mass gets the prefix's weight.
  const auto crossing = [&](uint64_t x, uint64_t* mass) {
    uint64_t cumulative = 0;
    for (size_t i = 0;; ++i) {
      cumulative += weight[static_cast<size_t>(token_at(i))];
      if (cumulative > x) {
        *mass = cumulative;
        return i;
      }
    }
  };
  uint64_t nucleus = total;  // top_p = 1: every token, nothing to search
  if (top_p < 1.0f) crossing(nucleus_target(total, top_p) - 1, &nucleus);  // reaches the target
  uint64_t unused = 0;
  return token_at(crossing(draw_target(nucleus, u), &unused));
}

namespace cpu {

void sample_tokens(Tensor out, const Tensor& logits, const Tensor& uniforms, float temperature,
                   float top_p) {
  const int64_t rows = logits.shape.rows(), vocab = logits.shape.cols();
  const float* u = uniforms.as<float>();
  int32_t* tokens = out.as<int32_t>();
  for (int64_t r = 0; r < rows; ++r)
    tokens[r] = sample_from_logits(logits.as<float>() + r * vocab, vocab, temperature, top_p, u[r]);
}

}  // namespace cpu
}  // namespace smol
