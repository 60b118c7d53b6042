// generate(): continuous batching over KV-cache slots (see generation.h).
#include "model/generation.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <deque>

namespace smol {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::StopToken:
      return "stop_token";
    case StopReason::StopString:
      return "stop_string";
    case StopReason::Length:
      return "length";
  }
  return "?";
}

namespace {

struct Live {
  size_t prompt;  // index into prompts/results
  int32_t slot;
  std::vector<int32_t> feed;                  // tokens to feed at the next decode call
  std::unique_ptr<StreamingDecoder> decoder;  // when text is wanted
};

}  // namespace

std::vector<GenerationResult> generate(LlamaModel& model,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerationOptions& options,
                                       const Tokenizer* tokenizer) {
  options.sampling.validate();
  SMOL_CHECK(options.max_new_tokens >= 0, "generate: max_new_tokens must be >= 0");
  SMOL_CHECK(options.max_batch > 0, "generate: max_batch must be positive");
  SMOL_CHECK(options.stop_strings.empty() || tokenizer, "generate: stop strings need a tokenizer");
  for (const std::string& s : options.stop_strings)
    SMOL_CHECK(!s.empty(), "generate: empty stop string");
  std::vector<GenerationResult> results(prompts.size());
  if (prompts.empty() || options.max_new_tokens == 0) return results;
  // Every sequence lives within the model's context (docs/bad-inputs.md): a prompt that does
  // not leave room for one new token is refused, and the continuation stops (reason "length")
  // when prompt + continuation reaches max_position_embeddings. The KV cache is sized for what
  // can actually be used, never for an unchecked prompt + max_new_tokens.
  const int64_t context = model.config().max_position_embeddings;
  SMOL_CHECK(context > 0 && context <= INT32_MAX, "generate: the model's max_position_embeddings (",
             context, ") is not a usable context length");
  size_t longest = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SMOL_CHECK(!prompts[i].empty(), "generate: prompt ", i, " is empty");
    SMOL_CHECK(static_cast<int64_t>(prompts[i].size()) < context, "generate: prompt ", i, " has ",
               prompts[i].size(), " tokens; the model's context (max_position_embeddings) is ",
               context, " tokens, which leaves no room for a new token");
    longest = std::max(longest, prompts[i].size());
  }
  const int64_t max_len =
      std::min<int64_t>(static_cast<int64_t>(longest) + options.max_new_tokens, context);
  const int32_t slots = static_cast<int32_t>(
      std::min<size_t>(prompts.size(), static_cast<size_t>(options.max_batch)));
  model.reset_cache(slots, static_cast<int32_t>(max_len));
  const int64_t vocab = model.config().vocab_size;
  // Non-finite logits (NaN / Inf weights, an overflow) must not pass for an answer: greedy
  // argmax over NaN picks id 0, often a stop token, which would print nothing and exit 0.
  // The first call (the prefill, where weights first meet the data) downloads the logits and
  // checks them; later steps pick on the device, greedy or sampled (the sampler reports a
  // non-finite row itself, as a negative id).
  auto check_finite = [&](const std::vector<float>& logits, size_t row, size_t prompt) {
    const float* begin = logits.data() + row * static_cast<size_t>(vocab);
    const float* bad =
        std::find_if(begin, begin + vocab, [](float v) { return !std::isfinite(v); });
    SMOL_CHECK(bad == begin + vocab, "generate: the model's logits for prompt ", prompt,
               " are not finite (", *bad, " at token id ", bad - begin,
               "): the weights hold NaN or Inf, or the computation overflowed");
  };
  bool first_call = true;
  size_t longest_stop = 0;
  for (const std::string& s : options.stop_strings) longest_stop = std::max(longest_stop, s.size());

  std::deque<size_t> waiting;
  for (size_t i = 0; i < prompts.size(); ++i) waiting.push_back(i);
  std::vector<int32_t> free_slots;
  for (int32_t s = slots; s-- > 0;) free_slots.push_back(s);
  std::vector<Live> live;

  while (!waiting.empty() || !live.empty()) {
    // Fill free slots with waiting prompts (their whole prompt is this call's feed).
    while (!waiting.empty() && !free_slots.empty()) {
      Live seq{waiting.front(), free_slots.back(), prompts[waiting.front()], nullptr};
      if (tokenizer) seq.decoder = std::make_unique<StreamingDecoder>(*tokenizer, true);
      model.truncate_cache(seq.slot, 0);
      waiting.pop_front();
      free_slots.pop_back();
      live.push_back(std::move(seq));
    }
    std::vector<int32_t> call_slots;
    std::vector<std::vector<int32_t>> feeds;
    for (const Live& seq : live) {
      call_slots.push_back(seq.slot);
      feeds.push_back(seq.feed);
    }
    // After the prefill every step picks on the device: 4 bytes per sequence come back instead
    // of 4·V, and the host sampler's sort stays out of the loop (docs/design.md §3).
    const bool greedy = options.sampling.temperature <= 0.0f;
    const bool device_pick = !first_call;
    first_call = false;
    std::vector<int32_t> picked;
    if (device_pick && greedy) {
      picked = model.decode_greedy(call_slots, feeds);
    } else if (device_pick) {
      std::vector<float> uniforms;
      for (const Live& seq : live)
        uniforms.push_back(
            sampling_uniform(options.sampling, seq.prompt, results[seq.prompt].tokens.size()));
      picked = model.decode_sampled(call_slots, feeds, uniforms, options.sampling.temperature,
                                    options.sampling.top_p);
    }
    const std::vector<float> logits =
        device_pick ? std::vector<float>() : model.decode(call_slots, feeds);
    std::vector<Live> still;
    for (size_t i = 0; i < live.size(); ++i) {
      Live& seq = live[i];
      GenerationResult& out = results[seq.prompt];
      const uint64_t step = out.tokens.size();
      if (!device_pick) check_finite(logits, i, seq.prompt);
      SMOL_CHECK(!device_pick || picked[i] >= 0, "generate: the model's logits for prompt ",
                 seq.prompt, " are not finite (at token id ", -picked[i] - 1,
                 "): the weights hold NaN or Inf, or the computation overflowed");
      const int32_t token = device_pick ? picked[i]
                                        : sample_token(logits.data() + i * vocab, vocab,
                                                       options.sampling, seq.prompt, step);
      bool done = false;
      if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
          options.stop_tokens.end()) {
        out.reason = StopReason::StopToken;
        done = true;
      } else {
        out.tokens.push_back(token);
        if (options.on_token) options.on_token(seq.prompt, token);
        if (seq.decoder) {
          const size_t before = out.text.size();
          out.text += seq.decoder->push(token);
          // Only the new text (plus a stop string's length of context) can hold a new match.
          const size_t from = before > longest_stop ? before - longest_stop : 0;
          size_t cut = std::string::npos;
          for (const std::string& s : options.stop_strings)
            cut = std::min(cut, out.text.find(s, from));
          if (cut != std::string::npos) {
            out.text.resize(cut);
            out.reason = StopReason::StopString;
            done = true;
          }
        }
        const int64_t length = static_cast<int64_t>(prompts[seq.prompt].size() + out.tokens.size());
        if (!done && (static_cast<int32_t>(out.tokens.size()) >= options.max_new_tokens ||
                      length >= context)) {
          out.reason = StopReason::Length;
          done = true;
        }
      }
      if (done) {
        if (seq.decoder && out.reason != StopReason::StopString) out.text += seq.decoder->flush();
        free_slots.push_back(seq.slot);
      } else {
        seq.feed = {token};
        still.push_back(std::move(seq));
      }
    }
    live = std::move(still);
  }
  return results;
}

}  // namespace smol
