// ChatML rendering as SmolLM2-Instruct's chat template does it (docs/formats.md §1): a default
// system turn when the first message is not "system", then
// "<|im_start|>" role "\n" content "<|im_end|>\n" per message, and with
// add_generation_prompt a final "<|im_start|>assistant\n". No BOS.
#pragma once

#include <string>
#include <vector>

namespace smol {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

inline constexpr const char* kSmolLmDefaultSystem =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

// The rendered prompt text; encode it with parse_special = true so the markers become ids.
std::string render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                          const std::string& default_system = kSmolLmDefaultSystem);

// True when a Jinja chat template (GGUF tokenizer.chat_template, tokenizer_config.json) is
// the ChatML family this renderer reproduces (it uses <|im_start|> and <|im_end|>).
bool is_chatml_template(const std::string& jinja_template);

}  // namespace smol
