// GPT-2's byte <-> char map used by byte-level BPE (docs/formats.md §5): every byte gets a
// printable char so that BPE works on strings. 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to
// themselves; the other 68 bytes, in increasing order, map to U+0100..U+0143.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace smol {

class ByteLevelMap {
 public:
  ByteLevelMap();

  // The char (code point) that stands for `byte`.
  uint32_t char_of(uint8_t byte) const { return byte_to_char_[byte]; }
  // The UTF-8 encoding of that char (1 or 2 bytes).
  const std::string& char_utf8_of(uint8_t byte) const { return byte_to_utf8_[byte]; }
  // Every byte of `bytes` replaced by its char, UTF-8 encoded.
  std::string encode(std::string_view bytes) const;
  // Inverse, as tokenizers' ByteLevel decoder does it per token: when every char of
  // `token` is in the map, its bytes; otherwise the token's own UTF-8, unchanged
  // (tokenizers' decode_chain falls back for the whole token, not per char).
  std::string decode_token(std::string_view token) const;

 private:
  std::array<uint32_t, 256> byte_to_char_{};
  std::array<std::string, 256> byte_to_utf8_{};
  std::array<int16_t, 0x144> char_to_byte_{};  // -1 = not a byte char; chars < U+0144 only
};

// The one immutable map (built once, thread-safe static init).
const ByteLevelMap& byte_level_map();

}  // namespace smol
