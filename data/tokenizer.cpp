// Tokenizer's shared decode and StreamingDecoder. Decoding follows tokenizers' ByteLevel
// decoder (docs/formats.md §5): concatenate each token's bytes, then repair UTF-8 lossily.
#include "data/tokenizer.h"

#include "common/error.h"
#include "data/utf8.h"

namespace smol {

void Tokenizer::check_id(int32_t id) const {
  SMOL_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is outside the vocabulary [0, ",
             vocab_size(), ")");
}

// An id at or past the vocabulary decodes to nothing, as in tokenizers (its decode skips ids it
// has no token for): a model's embedding may be padded past its tokenizer (vocab_size rounded
// up), so an argmax or a sampled token can land there. A negative id is still an error.
bool Tokenizer::decodes_to_nothing(int32_t id) const {
  return id >= vocab_size();
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (decodes_to_nothing(id)) continue;
    const std::string piece = token_bytes(id, skip_special, first);
    if (!piece.empty()) first = false;
    bytes += piece;
  }
  return utf8_lossy(bytes);
}

std::string StreamingDecoder::push(int32_t id) {
  if (tokenizer_.decodes_to_nothing(id)) return "";
  const std::string piece = tokenizer_.token_bytes(id, skip_special_, first_);
  if (!piece.empty()) first_ = false;
  pending_ += piece;
  const size_t ready = utf8_complete_prefix(pending_);
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamingDecoder::flush() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

void StreamingDecoder::reset() {
  pending_.clear();
  first_ = true;
}

}  // namespace smol
