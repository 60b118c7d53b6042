// Batched generation over the KV cache (docs/design.md §3): every prompt gets a cache slot; all
// prompts are prefilled in one packed decode call, then each step feeds every live sequence
// its last token. When a sequence stops, its slot is emptied and the next waiting prompt is
// prefilled into it within the same packed call (continuous batching), so results equal
// one-at-a-time generation.
//
// A sequence stops at a stop token (not part of the output), when its decoded text contains a
// stop string (the text is cut before it; tokens keep the one that completed it), after
// max_new_tokens, or when prompt + continuation fills the model's context
// (max_position_embeddings; reason "length"). A prompt that fills the context by itself, or
// non-finite logits (NaN / Inf weights), throw smol::Error (docs/bad-inputs.md).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "model/llama_model.h"
#include "model/sampling.h"

namespace smol {

struct GenerationOptions {
  int32_t max_new_tokens = 256;
  SamplingParams sampling;
  std::vector<int32_t> stop_tokens;       // e.g. eos (2 for SmolLM2-Instruct) and 0
  std::vector<std::string> stop_strings;  // need a tokenizer
  int32_t max_batch = 32;                 // cache slots (sequences decoded together)
  // Called for every accepted token (prompt index, token id), in generation order.
  std::function<void(size_t, int32_t)> on_token;
};

enum class StopReason : uint8_t { StopToken, StopString, Length };
const char* stop_reason_name(StopReason r);

struct GenerationResult {
  std::vector<int32_t> tokens;  // the continuation (no stop token)
  std::string text;  // decoded continuation, special tokens skipped ("" without tokenizer)
  StopReason reason = StopReason::Length;
};

// tokenizer may be null when there are no stop strings and no text is wanted.
std::vector<GenerationResult> generate(LlamaModel& model,
                                       const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerationOptions& options,
                                       const Tokenizer* tokenizer);

}  // namespace smol
