// UTF-8 decoding with the Unicode Standard's well-formedness table (§3.9, Table 3-7): the
// second byte's allowed range depends on the lead byte (E0: A0..BF, ED: 80..9F, F0: 90..BF,
// F4: 80..8F, otherwise 80..BF), which excludes overlongs, surrogates and > U+10FFFF.
#include "data/utf8.h"

#include "common/error.h"

namespace smol {
namespace {

// Expected total length of a sequence with this lead byte (0 = cannot start a sequence) and
// the allowed range of its second byte.
struct LeadInfo {
  size_t length;
  uint8_t second_lo, second_hi;
};

LeadInfo lead_info(uint8_t lead) {
  if (lead < 0x80) return {1, 0, 0};
  if (lead < 0xC2) return {0, 0, 0};  // continuation bytes and overlong C0/C1
  if (lead < 0xE0) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};
  if (lead == 0xED) return {3, 0x80, 0x9F};
  if (lead < 0xF0) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};
  if (lead < 0xF4) return {4, 0x80, 0xBF};
  if (lead == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// How many bytes from pos form a valid (possibly incomplete) prefix of a sequence.
size_t valid_prefix_length(std::string_view bytes, size_t pos, const LeadInfo& info) {
  size_t n = 1;
  while (n < info.length && pos + n < bytes.size()) {
    const auto b = static_cast<uint8_t>(bytes[pos + n]);
    const uint8_t lo = n == 1 ? info.second_lo : 0x80;
    const uint8_t hi = n == 1 ? info.second_hi : 0xBF;
    if (b < lo || b > hi) break;
    ++n;
  }
  return n;
}

}  // namespace

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t utf8_sequence_length(std::string_view bytes, size_t pos, uint32_t* code_point) {
  const auto lead = static_cast<uint8_t>(bytes[pos]);
  const LeadInfo info = lead_info(lead);
  if (info.length == 0) return 0;
  if (info.length == 1) {
    if (code_point) *code_point = lead;
    return 1;
  }
  if (valid_prefix_length(bytes, pos, info) != info.length) return 0;
  if (code_point) {
    uint32_t cp = lead & (0x7F >> info.length);
    for (size_t i = 1; i < info.length; ++i) cp = (cp << 6) | (bytes[pos + i] & 0x3F);
    *code_point = cp;
  }
  return info.length;
}

size_t utf8_maximal_subpart(std::string_view bytes, size_t pos) {
  const LeadInfo info = lead_info(static_cast<uint8_t>(bytes[pos]));
  if (info.length == 0) return 1;
  return valid_prefix_length(bytes, pos, info);
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t n = utf8_sequence_length(bytes, pos);
    if (n > 0) {
      out.append(bytes.substr(pos, n));
      pos += n;
    } else {
      out.append(kReplacementChar);
      pos += utf8_maximal_subpart(bytes, pos);
    }
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view bytes) {
  // Only the last (up to 3) bytes can be an incomplete-but-valid sequence start.
  const size_t size = bytes.size();
  for (size_t back = 1; back <= 3 && back <= size; ++back) {
    const size_t pos = size - back;
    const LeadInfo info = lead_info(static_cast<uint8_t>(bytes[pos]));
    if (info.length == 0) continue;  // continuation byte (or invalid lead): look further back
    if (info.length > back && valid_prefix_length(bytes, pos, info) == back) return pos;
    return size;  // the sequence starting here is complete or already ill-formed
  }
  return size;
}

void check_utf8(std::string_view text, const std::string& what) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t n = utf8_sequence_length(text, pos);
    SMOL_CHECK(n > 0, what, ": invalid UTF-8 at byte ", pos);
    pos += n;
  }
}

}  // namespace smol
