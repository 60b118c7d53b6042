// AddedTokenMatcher: splits raw text around added tokens (specials such as "<|im_start|>")
// before any model runs, as tokenizers' AddedVocabulary does: leftmost-longest,
// non-overlapping matches on the raw text (docs/formats.md §5, step 1).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/bpe_spec.h"

namespace smol {

// A stretch of the input: either plain text (id == -1) or one added token.
struct TextSegment {
  std::string_view text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // With parse_special false, matches of special tokens are kept as plain text (tokenizers'
  // encode_special_tokens: the match still consumes its span, so an overlapping non-special
  // token is not matched there either).
  std::vector<TextSegment> split(std::string_view text, bool parse_special) const;

  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;  // sorted longest first, so the first hit is the longest
  std::array<bool, 256> first_byte_{};
};

}  // namespace smol
