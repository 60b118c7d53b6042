// Greedy, temperature and top-p sampling on the host (see sampling.h).
#include "model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "kernels/backend.h"

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

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& params,
                     uint64_t stream, uint64_t step) {
  if (params.temperature <= 0.0f) return argmax_token(logits, vocab);
  // Probabilities in double, max-subtracted: exp never overflows.
  const double inv_t = 1.0 / params.temperature;
  const float max_logit = logits[argmax_token(logits, vocab)];
  std::vector<double> prob(static_cast<size_t>(vocab));
  double total = 0;
  for (int64_t i = 0; i < vocab; ++i) total += prob[i] = std::exp((logits[i] - max_logit) * inv_t);
  // Tokens in descending probability, ties by lower id (a strict order, so the nucleus is
  // defined) — but only as far as the draw needs: sorting all 49,152 tokens of SmolLM2's
  // vocabulary took ≈ 6 ms a token, more than a quantised cpu decode step. order[0, sorted) is
  // in final order and every token after it is less probable, so the prefix grows by sorting the
  // rest partially, 64 tokens first, then four times as many each time.
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  const auto more_probable = [&](int32_t a, int32_t b) {
    return prob[a] > prob[b] || (prob[a] == prob[b] && a < b);
  };
  size_t sorted = 0, next_size = 64;
  const auto sorted_through = [&](size_t i) {  // makes order[i] final; false past the end
    if (i >= order.size()) return false;
    while (i >= sorted) {
      const size_t end = std::min(order.size(), sorted + next_size);
      std::partial_sort(order.begin() + static_cast<std::ptrdiff_t>(sorted),
                        order.begin() + static_cast<std::ptrdiff_t>(end), order.end(),
                        more_probable);
      sorted = end;
      next_size *= 4;
    }
    return true;
  };
  // The nucleus: the most probable tokens whose cumulative probability first reaches top_p. At
  // top_p = 1 that is every token, so it is not searched: the draw walks down from the most
  // probable token until it lands, which is usually within the first few hundred.
  size_t keep = order.size();
  double nucleus = total;
  if (params.top_p < 1.0f) {
    keep = 0;
    double cumulative = 0;
    while (sorted_through(keep)) {
      cumulative += prob[order[keep]] / total;
      ++keep;
      if (cumulative >= params.top_p) break;
    }
    nucleus = 0;
    for (size_t i = 0; i < keep; ++i) nucleus += prob[order[i]];
  }
  // One uniform per (seed, sequence, step): dropout's counter hash over a mixed index.
  const uint64_t counter = stream * 0x100000001B3ull + step;
  const double u = dropout_uniform(params.seed, counter) * nucleus;
  double acc = 0;
  for (size_t i = 0; i < keep && sorted_through(i); ++i) {
    acc += prob[order[i]];
    if (u < acc) return order[i];
  }
  sorted_through(keep - 1);
  return order[keep - 1];
}

}  // namespace smol
