// Sampled `generate` on the device under test (SMOL_TEST_DEVICE, default cuda-emu): after the
// prefill every step draws its token on the device (LlamaModel::decode_sampled,
// Backend::sample_tokens) and downloads only the ids. The rule is exact (kernels/token_sampling.h),
// so the device's tokens must EQUAL what the host sampler draws from the same device's logits:
// the reference below decodes the same sequences one slot at a time with decode() (logits to the
// host) and sample_token. Same shapes, same kernels, same logits — any difference is the sampler.
#include <gtest/gtest.h>

#include "device_test_util.h"
#include "model/generation.h"
#include "model/sampling.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

const std::vector<std::vector<int32_t>> kPrompts{{5, 17, 42, 99, 3}, {250, 7}, {1, 2, 3, 4}};

std::vector<int32_t> sampled_on_host(LlamaModel& model, size_t prompt_index,
                                     const std::vector<int32_t>& prompt, int n,
                                     const SamplingParams& params) {
  const int64_t V = model.config().vocab_size;
  model.reset_cache(1, static_cast<int32_t>(prompt.size()) + n);
  std::vector<int32_t> out, feed = prompt;
  for (int step = 0; step < n; ++step) {
    const std::vector<float> logits = model.decode({0}, {feed});
    const int32_t token = sample_token(logits.data(), V, params, prompt_index, out.size());
    out.push_back(token);
    feed = {token};
  }
  return out;
}

TEST(SampledGenerateOnDevice, DrawsWhatTheHostRuleDrawsFromTheSameLogits) {
  std::unique_ptr<Backend> device = device_backend();
  if (!device) GTEST_SKIP() << "SKIPPED LOUDLY: " << device_under_test() << " is not available";
  std::unique_ptr<LlamaModel> model = load_tiny(*device, TrainMode::Frozen);
  constexpr int kNew = 12;
  for (const SamplingParams params :
       {SamplingParams{1.0f, 1.0f, 11}, SamplingParams{0.7f, 0.9f, 12},
        SamplingParams{1.5f, 0.3f, 13}}) {
    GenerationOptions options;
    options.max_new_tokens = kNew;
    options.max_batch = 1;  // one slot at a time: the reference's shapes, so the same logits
    options.sampling = params;
    const std::vector<GenerationResult> got = generate(*model, kPrompts, options, nullptr);
    bool sampled_not_greedy = false;
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      const std::vector<int32_t> want = sampled_on_host(*model, i, kPrompts[i], kNew, params);
      EXPECT_EQ(got[i].tokens, want)
          << "prompt " << i << ", temperature " << params.temperature << ", top_p " << params.top_p;
      options.sampling.temperature = 0;
      sampled_not_greedy |= generate(*model, {kPrompts[i]}, options, nullptr)[0].tokens != want;
      options.sampling = params;
    }
    // The tiny model's next-token distribution is near uniform: a sampler that fell back to
    // greedy would pass the equality above only if the reference did the same.
    EXPECT_TRUE(sampled_not_greedy) << "temperature " << params.temperature;
  }
}

}  // namespace
}  // namespace smol::test
