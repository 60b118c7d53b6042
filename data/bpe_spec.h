// BpeSpec: everything needed to build a byte-level BPE tokenizer, independent of where it
// came from (tokenizer.json, or GGUF `tokenizer.ggml.*` metadata; docs/formats.md §3, §5).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace smol {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = true;
};

struct BpeSpec {
  std::vector<std::string> tokens;  // id -> token string in GPT-2 byte-char form
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  std::vector<AddedToken> added_tokens;                     // matched before BPE, leftmost-longest
  // Pre-tokenizer flavour: "smollm" (Digits individual + ByteLevel, docs/formats.md §5) or "gpt2".
  std::string pre_tokenizer = "smollm";
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;  // -1 = none
  std::string chat_template;                                   // Jinja text, informational
};

}  // namespace smol
