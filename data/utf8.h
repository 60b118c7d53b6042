// UTF-8 helpers shared by the tokenizers: decoding one code point, encoding one, and the lossy
// repair HF `tokenizers` applies when it turns decoded bytes into a string (Rust's
// String::from_utf8_lossy: each maximal ill-formed subsequence becomes one U+FFFD, as the
// Unicode Standard §3.9 "U+FFFD substitution of maximal subparts" recommends).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace smol {

// The replacement character U+FFFD in UTF-8.
inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// Appends the UTF-8 encoding of `code_point` (must be a Unicode scalar value) to `out`.
void append_utf8(uint32_t code_point, std::string& out);

// Length of the well-formed UTF-8 sequence starting at bytes[pos], or 0 when the bytes there
// are ill-formed or cut short. Sets *code_point when non-null and the result is non-zero.
size_t utf8_sequence_length(std::string_view bytes, size_t pos, uint32_t* code_point = nullptr);

// Number of bytes of the maximal subpart (a prefix of a possibly valid sequence) starting at
// bytes[pos] when utf8_sequence_length is 0: always >= 1.
size_t utf8_maximal_subpart(std::string_view bytes, size_t pos);

// bytes with every maximal ill-formed subsequence replaced by U+FFFD (from_utf8_lossy).
std::string utf8_lossy(std::string_view bytes);

// Length of the longest prefix of `bytes` that does not end inside a sequence that could
// still be completed by more bytes: what a streaming decoder may emit now.
size_t utf8_complete_prefix(std::string_view bytes);

// Throws smol::Error naming `what` when `text` is not valid UTF-8.
void check_utf8(std::string_view text, const std::string& what);

}  // namespace smol
