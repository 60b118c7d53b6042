// GPT-2 bytes_to_unicode (docs/formats.md §5), built the way tokenizers' bytes_char() builds it.
#include "data/byte_level.h"

#include "data/utf8.h"

namespace smol {

ByteLevelMap::ByteLevelMap() {
  char_to_byte_.fill(-1);
  uint32_t next_extra = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    const uint32_t ch = printable ? static_cast<uint32_t>(b) : next_extra++;
    byte_to_char_[b] = ch;
    append_utf8(ch, byte_to_utf8_[b]);
    char_to_byte_[ch] = static_cast<int16_t>(b);
  }
}

std::string ByteLevelMap::encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += byte_to_utf8_[static_cast<uint8_t>(c)];
  return out;
}

std::string ByteLevelMap::decode_token(std::string_view token) const {
  std::string out;
  out.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    uint32_t cp = 0;
    const size_t n = utf8_sequence_length(token, pos, &cp);
    if (n == 0 || cp >= char_to_byte_.size() || char_to_byte_[cp] < 0) {
      return std::string(token);  // a char outside the map: the whole token as it is
    }
    out.push_back(static_cast<char>(char_to_byte_[cp]));
    pos += n;
  }
  return out;
}

const ByteLevelMap& byte_level_map() {
  static const ByteLevelMap map;
  return map;
}

}  // namespace smol
