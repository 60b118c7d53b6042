// Leftmost-longest matching: scan left to right; at the first position where any token
// matches, take the longest one, then continue after it. Tokens are few (tens), so a
// first-byte filter plus direct comparison is as fast as an Aho-Corasick automaton here.
#include "data/added_tokens.h"

#include <algorithm>

namespace smol {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  std::stable_sort(tokens_.begin(), tokens_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() > b.content.size();
  });
  for (const AddedToken& t : tokens_) first_byte_[static_cast<uint8_t>(t.content[0])] = true;
}

std::vector<TextSegment> AddedTokenMatcher::split(std::string_view text, bool parse_special) const {
  std::vector<TextSegment> segments;
  size_t plain_begin = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const AddedToken* hit = nullptr;
    if (first_byte_[static_cast<uint8_t>(text[pos])]) {
      for (const AddedToken& t : tokens_) {
        if (text.compare(pos, t.content.size(), t.content) == 0) {
          hit = &t;
          break;
        }
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    if (hit->special && !parse_special) {  // consumed as plain text
      pos += hit->content.size();
      continue;
    }
    if (pos > plain_begin) segments.push_back({text.substr(plain_begin, pos - plain_begin), -1});
    segments.push_back({text.substr(pos, hit->content.size()), hit->id});
    pos += hit->content.size();
    plain_begin = pos;
  }
  if (plain_begin < text.size()) segments.push_back({text.substr(plain_begin), -1});
  return segments;
}

}  // namespace smol
