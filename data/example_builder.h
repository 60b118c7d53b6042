// Tokenised training examples (docs/seed-behaviour.md §2.4–2.6).
//
// Prompt and completion (assistant_prefix + completion_prefix + response + completion_suffix)
// are encoded separately and concatenated; no BOS/EOS is added by encoding (special-token
// text inside the strings still becomes its id, as HF tokenizers do with
// add_special_tokens=False). add_bos prepends the BOS token's text to the prompt. The EOS id
// is appended to the completion unless it is already its last token, and is supervised.
// There is no separator between the halves (B5: "…### Answer:" is followed by "Natalia…").
// With apply_chat_template, the prompt is the ChatML rendering of [system?, user: prompt] with
// the generation prompt, and the completion ids are full_ids[|prompt_ids|:] of the rendering
// with the assistant turn appended.
//
// Truncation (§2.5), when |p| + |c| > max_length with overflow o: if truncate_prompt_only,
// min(|p|, o) tokens are dropped from the START of the prompt first; any remaining overflow
// (all of it otherwise) is cut from the END of the completion, or from its start when
// truncate_from_end is false — which can drop the EOS and the answer (B6). An example whose
// completion ends up empty is dropped.
//
// labels = [-100]·|p| + c; the attention mask is all ones (implicit here; see collate.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/prompt_render.h"
#include "data/tokenizer.h"

namespace smol {

inline constexpr int32_t kIgnoreLabel = -100;

struct ExampleFormat {
  int64_t max_length = 0;  // 0 = no truncation
  bool append_eos = true;
  bool add_bos = false;
  std::string assistant_prefix, completion_prefix, completion_suffix;
  bool truncate_prompt_only = true;
  bool truncate_from_end = true;
  bool apply_chat_template = false;
  std::optional<std::string> system_prompt;  // chat template only; none = the template default
  int32_t eos_id = -1;  // the EOS appended (the engine resolves it from the tokenizer/config)
  bool operator==(const ExampleFormat&) const = default;
};

struct TokenizedExample {
  std::vector<int32_t> input_ids;  // prompt ids then completion ids
  std::vector<int32_t> labels;     // -100 on the prompt, the completion ids after
  int64_t prompt_tokens = 0;
};

// nullopt when the completion is empty (before or after truncation). Throws smol::Error when
// append_eos / add_bos need a token the tokenizer lacks.
std::optional<TokenizedExample> build_example(const Tokenizer& tokenizer,
                                              const RenderedExample& rendered,
                                              const ExampleFormat& format);

// The prompt half alone, encoded exactly as build_example encodes it (BOS text when add_bos;
// the ChatML rendering with the generation prompt when apply_chat_template) and never
// truncated: what generation starts from (docs/design.md §6, generative evaluation).
std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const RenderedExample& rendered,
                                   const ExampleFormat& format);

}  // namespace smol
