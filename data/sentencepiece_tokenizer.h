// SentencePieceTokenizer: a sentencepiece `.model` (Llama-1/2-style tokenizers) behind the
// Tokenizer interface, using the sentencepiece library itself for encode/decode so results
// are the library's. parse_special splits control pieces written in the text ("<s>") out
// first, leftmost-longest, as HF does for added tokens.
#pragma once

#include <memory>
#include <string>

#include "data/added_tokens.h"
#include "data/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace smol {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Throws smol::Error naming `path` when it cannot be loaded.
  explicit SentencePieceTokenizer(const std::string& path);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, bool parse_special = true) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const override;
  int32_t vocab_size() const override;
  std::string id_to_token(int32_t id) const override;
  int32_t token_to_id(std::string_view token) const override;
  int32_t bos_id() const override;
  int32_t eos_id() const override;
  int32_t pad_id() const override;
  bool is_special(int32_t id) const override;
  std::string token_bytes(int32_t id, bool skip_special, bool first_in_sequence) const override;

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  AddedTokenMatcher specials_;  // control pieces
};

}  // namespace smol
