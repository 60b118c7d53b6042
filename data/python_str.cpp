// Python str operations over UTF-8 (see python_str.h for what is and is not emulated).
#include "data/python_str.h"

#include "data/unicode_lowercase_table.h"

namespace smol {
namespace {

struct CodePoint {
  uint32_t value;  // kInvalid for a byte that does not start a valid UTF-8 sequence
  size_t length;   // bytes consumed, ≥ 1
};
constexpr uint32_t kInvalid = 0xFFFFFFFF;

// Decodes the code point at text[pos] (pos < size). Overlong forms, surrogates and values
// above U+10FFFF are invalid, as in a strict UTF-8 decoder.
CodePoint decode_at(std::string_view text, size_t pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return {lead, 1};
  size_t length = 0;
  uint32_t value = 0, minimum = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, value = lead & 0x1F, minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, value = lead & 0x0F, minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, value = lead & 0x07, minimum = 0x10000;
  } else {
    return {kInvalid, 1};
  }
  if (pos + length > text.size()) return {kInvalid, 1};
  for (size_t i = 1; i < length; ++i) {
    if ((byte(pos + i) & 0xC0) != 0x80) return {kInvalid, 1};
    value = (value << 6) | (byte(pos + i) & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value < 0xE000))
    return {kInvalid, 1};
  return {value, length};
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Py_UNICODE_ISSPACE.
bool is_python_space(uint32_t cp) {
  if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
  switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

uint32_t simple_lowercase(uint32_t cp) {
  for (const unicode_lowercase::Run& run : unicode_lowercase::kRuns) {
    if (cp < run.first) break;  // runs are sorted by first
    if (cp <= run.last && (cp - run.first) % run.stride == 0)
      return static_cast<uint32_t>(static_cast<int64_t>(cp) + run.delta);
  }
  return cp;
}

}  // namespace

size_t python_space_length_at(std::string_view text, size_t pos) {
  if (pos >= text.size()) return 0;
  const CodePoint c = decode_at(text, pos);
  return c.value != kInvalid && is_python_space(c.value) ? c.length : 0;
}

std::string_view python_strip(std::string_view text) {
  size_t begin = 0;
  while (const size_t n = python_space_length_at(text, begin)) begin += n;
  // Scan forward for the end of the last non-space character: UTF-8 cannot be read backwards
  // safely when invalid bytes may be present.
  size_t end = begin;
  for (size_t pos = begin; pos < text.size();) {
    const size_t space = python_space_length_at(text, pos);
    if (space != 0) {
      pos += space;
    } else {
      pos += decode_at(text, pos).length;
      end = pos;
    }
  }
  return text.substr(begin, end - begin);
}

std::string python_lower(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const CodePoint c = decode_at(text, pos);
    if (c.value == kInvalid) {
      out += text[pos];
    } else if (c.value == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE → i + U+0307
      out += 'i';
      append_utf8(out, 0x307);
    } else {
      append_utf8(out, simple_lowercase(c.value));
    }
    pos += c.length;
  }
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace smol
