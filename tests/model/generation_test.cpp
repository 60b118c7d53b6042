// Batched generation (continuous batching over cache slots), stop tokens, stop strings and
// seeded sampling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "kernels/backend.h"
#include "kernels/token_sampling.h"
#include "model/generation.h"
#include "model/sampling.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

// A toy tokenizer for stop strings: id i decodes to the letter 'a' + i % 26.
class LetterTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view, bool) const override { return {}; }
  int32_t vocab_size() const override { return 300; }
  std::string id_to_token(int32_t id) const override { return std::string(1, 'a' + id % 26); }
  int32_t token_to_id(std::string_view) const override { return -1; }
  int32_t bos_id() const override { return -1; }
  int32_t eos_id() const override { return -1; }
  int32_t pad_id() const override { return -1; }
  bool is_special(int32_t) const override { return false; }
  std::string token_bytes(int32_t id, bool, bool) const override { return id_to_token(id); }
};

const std::vector<std::vector<int32_t>> kPrompts{
    {5, 17, 42, 99, 3}, {250, 7}, {1, 2, 3, 4, 5, 6, 7, 8}};

// Greedy continuation by full recomputation (no cache), the reference for generate().
std::vector<int32_t> greedy_by_recompute(LlamaModel& model, std::vector<int32_t> ids, int n) {
  const int64_t V = model.config().vocab_size;
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    std::vector<float> logits;
    model.forward_logits({TokenRow{ids, {}}}, &logits);
    const int32_t next = argmax_token(logits.data() + logits.size() - V, V);
    out.push_back(next);
    ids.push_back(next);
  }
  return out;
}

TEST(Generation, BatchedEqualsOneAtATimeEqualsRecompute) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  GenerationOptions options;
  options.max_new_tokens = 10;
  options.max_batch = 2;  // 3 prompts over 2 slots: the third joins when a slot frees up
  const std::vector<GenerationResult> batched = generate(*model, kPrompts, options, nullptr);
  ASSERT_EQ(batched.size(), kPrompts.size());
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    const std::vector<GenerationResult> alone = generate(*model, {kPrompts[i]}, options, nullptr);
    EXPECT_EQ(batched[i].tokens, alone[0].tokens) << "prompt " << i;
    EXPECT_EQ(batched[i].tokens, greedy_by_recompute(*model, kPrompts[i], 10)) << "prompt " << i;
    EXPECT_EQ(batched[i].reason, StopReason::Length);
  }
}

TEST(Generation, StopsAtStopTokenWithoutEmittingIt) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  const std::vector<int32_t> free_run = greedy_by_recompute(*model, kPrompts[0], 8);
  GenerationOptions options;
  options.max_new_tokens = 8;
  options.stop_tokens = {free_run[3]};
  const size_t first = std::find(free_run.begin(), free_run.end(), free_run[3]) - free_run.begin();
  const GenerationResult r = generate(*model, {kPrompts[0]}, options, nullptr)[0];
  EXPECT_EQ(r.reason, StopReason::StopToken);
  EXPECT_EQ(r.tokens, std::vector<int32_t>(free_run.begin(), free_run.begin() + first));
}

TEST(Generation, StopsAtStopStringAndCutsTheText) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  LetterTokenizer letters;
  GenerationOptions options;
  options.max_new_tokens = 12;
  const GenerationResult free_run = generate(*model, {kPrompts[1]}, options, &letters)[0];
  ASSERT_EQ(free_run.text.size(), 12u);
  // Stop on the two letters produced at steps 5 and 6 (first occurrence wins).
  const std::string stop = free_run.text.substr(5, 2);
  const size_t at = free_run.text.find(stop);
  options.stop_strings = {"zzzzzzzzzzzzzzzzzz", stop};
  const GenerationResult r = generate(*model, {kPrompts[1]}, options, &letters)[0];
  EXPECT_EQ(r.reason, StopReason::StopString);
  EXPECT_EQ(r.text, free_run.text.substr(0, at));
  EXPECT_EQ(r.tokens.size(), at + 2);  // tokens keep the one that completed the stop string
}

TEST(Generation, SeededSamplingIsReproducibleAndBatchIndependent) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.sampling = {1.0f, 0.95f, 1234};
  const auto a = generate(*model, kPrompts, options, nullptr);
  const auto b = generate(*model, kPrompts, options, nullptr);
  for (size_t i = 0; i < kPrompts.size(); ++i) EXPECT_EQ(a[i].tokens, b[i].tokens);
  options.max_batch = 1;
  const auto serial = generate(*model, kPrompts, options, nullptr);
  for (size_t i = 0; i < kPrompts.size(); ++i) EXPECT_EQ(a[i].tokens, serial[i].tokens);
  options.max_batch = 32;
  options.sampling.seed = 99;
  const auto other = generate(*model, kPrompts, options, nullptr);
  bool differs = false;
  for (size_t i = 0; i < kPrompts.size(); ++i) differs |= other[i].tokens != a[i].tokens;
  EXPECT_TRUE(differs) << "a different seed should change some sampled token";
  // Random tiny weights give a near-uniform next-token distribution: sampling must not be greedy.
  options.sampling.temperature = 0;
  const auto greedy = generate(*model, kPrompts, options, nullptr);
  bool not_greedy = false;
  for (size_t i = 0; i < kPrompts.size(); ++i) not_greedy |= greedy[i].tokens != a[i].tokens;
  EXPECT_TRUE(not_greedy);
}

TEST(Generation, TinyTopPDegeneratesToGreedy) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  GenerationOptions options;
  options.max_new_tokens = 10;
  const auto greedy = generate(*model, kPrompts, options, nullptr);
  options.sampling = {1.5f, 1e-6f, 7};
  const auto nucleus = generate(*model, kPrompts, options, nullptr);
  for (size_t i = 0; i < kPrompts.size(); ++i) EXPECT_EQ(greedy[i].tokens, nucleus[i].tokens);
}

TEST(Sampling, FrequenciesFollowTheTemperedSoftmax) {
  // logits ln(1), ln(2), ln(3), ln(4) at T = 1: probabilities 0.1 .. 0.4. With n = 20000 draws
  // the standard error of a frequency is ≤ sqrt(0.24/20000) = 0.0035; allow 5 sigma.
  const float logits[4] = {0.0f, std::log(2.0f), std::log(3.0f), std::log(4.0f)};
  const SamplingParams params{1.0f, 1.0f, 42};
  std::map<int32_t, int> count;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++count[sample_token(logits, 4, params, 0, i)];
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(count[k] / double(n), 0.1 * (k + 1), 0.0175) << k;
  // top_p = 0.5 keeps {3 (0.4), 2 (0.3)} — the smallest prefix reaching 0.5 — renormalised.
  const SamplingParams nucleus{1.0f, 0.5f, 42};
  std::map<int32_t, int> kept;
  for (int i = 0; i < n; ++i) ++kept[sample_token(logits, 4, nucleus, 0, i)];
  EXPECT_EQ(kept[0] + kept[1], 0);
  EXPECT_NEAR(kept[3] / double(n), 4.0 / 7.0, 0.0175);
}

// The textbook algorithm in double precision — every token sorted by probability (stable: ties
// by lower id), the nucleus the shortest prefix whose cumulative probability reaches top_p, the
// draw walking that prefix. The engine's rule (kernels/token_sampling.h) is this algorithm on
// integer weights ⌊p · 2⁴⁰⌋ from an fma-only exponential.
int32_t sample_in_double(const std::vector<float>& logits, const SamplingParams& params,
                         uint64_t stream, uint64_t step) {
  const double inv_t = 1.0 / params.temperature;
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  std::vector<double> prob(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    total += prob[i] = std::exp((logits[i] - max_logit) * inv_t);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return prob[a] > prob[b]; });
  size_t keep = 0;
  double cumulative = 0;
  while (keep < order.size()) {
    cumulative += prob[order[keep]] / total;
    ++keep;
    if (cumulative >= params.top_p) break;
  }
  double nucleus = 0;
  for (size_t i = 0; i < keep; ++i) nucleus += prob[order[i]];
  const double u = sampling_uniform(params, stream, step) * nucleus;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += prob[order[i]];
    if (u < acc) return order[i];
  }
  return order[keep - 1];
}

// The rule with a full stable sort of the integer weights: what sample_token's partial sorts
// (kernels/cpu/cpu_sample_tokens.cpp) and the device's radix search must equal exactly.
int32_t sample_by_full_sort(const std::vector<float>& logits, const SamplingParams& params,
                            uint64_t stream, uint64_t step) {
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  const float inv_t = 1.0f / params.temperature;
  std::vector<uint64_t> w(logits.size());
  uint64_t total = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    total += w[i] = sampling_weight(logits[i], max_logit, inv_t);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return w[a] > w[b]; });
  const uint64_t target = nucleus_target(total, params.top_p);
  uint64_t nucleus = 0;
  for (size_t i = 0; nucleus < target; ++i) nucleus += w[order[i]];
  const uint64_t x = draw_target(nucleus, sampling_uniform(params, stream, step));
  uint64_t cumulative = 0;
  for (int32_t token : order)
    if ((cumulative += w[token]) > x) return token;
  return -1;
}

TEST(Sampling, PartialSortDrawsWhatAFullSortDraws) {
  // SmolLM2's vocabulary size; logits spread like a language model's (a few strong candidates
  // over a long tail), flat ones, and ones with many exact ties (rounded to 0.5).
  const int64_t vocab = 49152;
  std::mt19937 rng(5);
  int differ_from_double = 0, draws = 0;
  for (int shape = 0; shape < 3; ++shape) {
    std::vector<float> logits(static_cast<size_t>(vocab));
    std::normal_distribution<float> normal(0.0f, shape == 1 ? 0.3f : 3.0f);
    for (float& x : logits) x = shape == 2 ? std::round(2 * normal(rng)) / 2 : normal(rng);
    if (shape == 0)
      for (int k = 0; k < 5; ++k) logits[static_cast<size_t>(rng() % vocab)] += 12.0f - 2 * k;
    for (const SamplingParams params :
         {SamplingParams{1.0f, 0.9f, 3}, SamplingParams{0.7f, 0.5f, 4},
          SamplingParams{1.3f, 0.999f, 5}, SamplingParams{1.0f, 1.0f, 6}}) {
      int differ = 0;
      for (uint64_t step = 0; step < 12; ++step) {
        const int32_t token = sample_token(logits.data(), vocab, params, 2, step);
        differ += token != sample_by_full_sort(logits, params, 2, step);
        differ_from_double += token != sample_in_double(logits, params, 2, step);
        ++draws;
      }
      // Integer sums in the same strict order: the same token, always.
      EXPECT_EQ(differ, 0) << "shape " << shape << ", temperature " << params.temperature
                           << ", top_p " << params.top_p;
    }
  }
  // Against double precision the cumulative masses differ by the exponential's few float ulps
  // (≈ 1e-7 relative) and the 2⁻⁴⁰ truncation: a token changes only where u lands that close to
  // a boundary, ≈ 1e-7 · (tokens walked) a draw. Over 144 draws: expected far below 1.
  EXPECT_LE(differ_from_double, 1) << "of " << draws << " draws";
}

TEST(Sampling, TheRuleIsExactAtTheNucleusAndDrawBoundaries) {
  // Four equal logits: four weights of exactly 2⁴⁰. top_p = 0.5 keeps ids 0 and 1 (their mass
  // reaches half exactly); u below ½ draws id 0, u = ½ draws id 1.
  const float equal[4] = {1.5f, 1.5f, 1.5f, 1.5f};
  EXPECT_EQ(sample_from_logits(equal, 4, 1.0f, 0.5f, 0.5f - 0x1p-24f), 0);
  EXPECT_EQ(sample_from_logits(equal, 4, 1.0f, 0.5f, 0.5f), 1);
  EXPECT_EQ(sample_from_logits(equal, 4, 1.0f, 0.5f, 1.0f - 0x1p-24f), 1);
  // The smallest float above ½ needs a third token, and at u just below 1 it is drawn.
  EXPECT_EQ(sample_from_logits(equal, 4, 1.0f, std::nextafter(0.5f, 1.0f), 1.0f - 0x1p-24f), 2);
  EXPECT_EQ(sample_from_logits(equal, 4, 1.0f, 1.0f, 1.0f - 0x1p-24f), 3);
  // At least one token, however small top_p; the nucleus target is exact.
  EXPECT_EQ(sample_from_logits(equal, 4, 1.0f, 1e-30f, 0.99f), 0);
  EXPECT_EQ(nucleus_target(uint64_t{4} << 40, 0.5f), uint64_t{2} << 40);
  EXPECT_EQ(nucleus_target(uint64_t{4} << 40, 0.75f), uint64_t{3} << 40);
  EXPECT_EQ(nucleus_target(10, 0.25f), 3u);  // ⌈2.5⌉
  EXPECT_EQ(nucleus_target(12345, 1.0f), 12345u);
  EXPECT_EQ(draw_target(uint64_t{1} << 40, 0.5f), uint64_t{1} << 39);
  // The first non-finite logit is reported as −(i + 1).
  const float bad[3] = {0.0f, NAN, INFINITY};
  EXPECT_EQ(sample_from_logits(bad, 3, 1.0f, 1.0f, 0.5f), -2);
}

TEST(Sampling, TheRuleExponentialIsWithinAFewUlpsOfExp) {
  // sampling_exp replaces libm's expf so that host and device round alike; it must still be
  // the exponential: relative error ≤ 2⁻²² over the range it serves (measured: 7.3e-8).
  double worst = 0;
  for (float z = -28.0f; z <= 0.0f; z += 0.001953125f) {
    const double want = std::exp(static_cast<double>(z));
    worst = std::max(worst, std::abs(sampling_exp(z) - want) / want);
  }
  EXPECT_LE(worst, 0x1p-22) << "worst relative error " << worst;
  EXPECT_EQ(sampling_exp(0.0f), 1.0f);
  EXPECT_EQ(sampling_weight(3.0f, 3.0f, 1.0f), uint64_t{1} << 40);  // the most probable token
  EXPECT_EQ(sampling_weight(-40.0f, 0.0f, 1.0f), 0u);               // below 2⁻⁴⁰
}

TEST(Sampling, RefusesBadParameters) {
  EXPECT_THROW((SamplingParams{-1.0f, 1.0f, 0}.validate()), Error);
  EXPECT_THROW((SamplingParams{1.0f, 0.0f, 0}.validate()), Error);
  EXPECT_THROW((SamplingParams{1.0f, 1.5f, 0}.validate()), Error);
}

}  // namespace
}  // namespace smol::test
