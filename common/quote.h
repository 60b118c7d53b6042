// Quoting untrusted text inside an error message (docs/design.md §9): a value read from a user's
// file or command line is shown quoted, with control bytes escaped, and cut to a short excerpt
// so that a 1 MB field never ends up whole on the terminal. The cut says how long the value was.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace smol {

// "\"abc\"" for short values; "\"first…\" (1048576 bytes)" for long ones. Bytes below 0x20 and
// 0x7f print as \xNN so that a stray escape sequence cannot repaint the user's terminal.
inline std::string quoted_excerpt(std::string_view value, std::size_t max_bytes = 64) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  const std::size_t shown = value.size() <= max_bytes ? value.size() : max_bytes;
  for (std::size_t i = 0; i < shown; ++i) {
    const auto byte = static_cast<unsigned char>(value[i]);
    if (byte < 0x20 || byte == 0x7f) {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else if (byte == '"' || byte == '\\') {
      out += '\\';
      out += static_cast<char>(byte);
    } else {
      out += static_cast<char>(byte);
    }
  }
  out += '"';
  if (shown < value.size()) out += "... (" + std::to_string(value.size()) + " bytes)";
  return out;
}

}  // namespace smol
