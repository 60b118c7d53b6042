// build_example: encoding, EOS, truncation and label masking (see example_builder.h).
#include "data/example_builder.h"

#include <algorithm>

#include "common/error.h"
#include "data/chat_template.h"

namespace smol {

namespace {

struct PromptAndCompletion {
  std::vector<int32_t> prompt, completion;
};

PromptAndCompletion encode_halves(const Tokenizer& tokenizer, const std::string& prompt,
                                  const std::string& completion, const ExampleFormat& format) {
  PromptAndCompletion ids;
  if (!format.apply_chat_template) {
    ids.prompt = tokenizer.encode(prompt, /*parse_special=*/true);
    ids.completion = tokenizer.encode(completion, /*parse_special=*/true);
    return ids;
  }
  std::vector<ChatMessage> messages;
  if (format.system_prompt) messages.push_back({"system", *format.system_prompt});
  messages.push_back({"user", prompt});
  ids.prompt = tokenizer.encode(render_chatml(messages, /*add_generation_prompt=*/true), true);
  messages.push_back({"assistant", completion});
  const std::vector<int32_t> full =
      tokenizer.encode(render_chatml(messages, /*add_generation_prompt=*/false), true);
  // The seed slices full_ids[len(prompt_ids):]; a tokenisation that merges across the boundary
  // would make that slice wrong, so it is checked rather than trusted.
  SMOL_CHECK(full.size() >= ids.prompt.size() &&
                 std::equal(ids.prompt.begin(), ids.prompt.end(), full.begin()),
             "apply_chat_template: the prompt's ids are not a prefix of the full conversation's");
  ids.completion.assign(full.begin() + static_cast<std::ptrdiff_t>(ids.prompt.size()), full.end());
  return ids;
}

}  // namespace

std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const RenderedExample& rendered,
                                   const ExampleFormat& format) {
  std::string prompt = rendered.prompt;
  if (format.add_bos) {
    SMOL_CHECK(tokenizer.bos_id() >= 0,
               "dataset.add_bos_token is set but the tokenizer has no BOS token");
    prompt = tokenizer.id_to_token(tokenizer.bos_id()) + prompt;
  }
  if (!format.apply_chat_template) return tokenizer.encode(prompt, /*parse_special=*/true);
  std::vector<ChatMessage> messages;
  if (format.system_prompt) messages.push_back({"system", *format.system_prompt});
  messages.push_back({"user", prompt});
  return tokenizer.encode(render_chatml(messages, /*add_generation_prompt=*/true), true);
}

std::optional<TokenizedExample> build_example(const Tokenizer& tokenizer,
                                              const RenderedExample& rendered,
                                              const ExampleFormat& format) {
  std::string prompt = rendered.prompt;
  if (format.add_bos) {
    SMOL_CHECK(tokenizer.bos_id() >= 0,
               "dataset.add_bos_token is set but the tokenizer has no BOS token");
    prompt = tokenizer.id_to_token(tokenizer.bos_id()) + prompt;  // the BOS text (§2.4)
  }
  const std::string completion = format.assistant_prefix + format.completion_prefix +
                                 rendered.response + format.completion_suffix;
  PromptAndCompletion ids = encode_halves(tokenizer, prompt, completion, format);
  if (format.append_eos) {
    SMOL_CHECK(format.eos_id >= 0,
               "dataset.append_eos_token is set but there is no EOS token (the tokenizer has "
               "none; set tokenizer.eos_token)");
    if (ids.completion.empty() || ids.completion.back() != format.eos_id)
      ids.completion.push_back(format.eos_id);
  }

  // §2.5 truncation.
  const int64_t p = static_cast<int64_t>(ids.prompt.size());
  const int64_t c = static_cast<int64_t>(ids.completion.size());
  if (format.max_length > 0 && p + c > format.max_length) {
    int64_t overflow = p + c - format.max_length;
    if (format.truncate_prompt_only) {
      const int64_t from_prompt = std::min(p, overflow);
      ids.prompt.erase(ids.prompt.begin(), ids.prompt.begin() + from_prompt);
      overflow -= from_prompt;
    }
    if (overflow > 0) {
      const int64_t cut = std::min(c, overflow);
      if (format.truncate_from_end)
        ids.completion.resize(static_cast<size_t>(c - cut));
      else
        ids.completion.erase(ids.completion.begin(), ids.completion.begin() + cut);
    }
  }
  if (ids.completion.empty()) return std::nullopt;  // B6: dropped

  TokenizedExample example;
  example.prompt_tokens = static_cast<int64_t>(ids.prompt.size());
  example.input_ids = ids.prompt;
  example.input_ids.insert(example.input_ids.end(), ids.completion.begin(), ids.completion.end());
  example.labels.assign(ids.prompt.size(), kIgnoreLabel);
  example.labels.insert(example.labels.end(), ids.completion.begin(), ids.completion.end());
  return example;
}

}  // namespace smol
