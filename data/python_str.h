// The few Python str operations the seed's answer metrics use, over UTF-8 text
// (docs/seed-behaviour.md §3).
//
// Python works on code points, we on UTF-8 bytes. Where a rule only looks for ASCII (a
// substring like "####", a digit, a letter of "answer") the two agree byte for byte, because
// UTF-8 never uses an ASCII byte inside a multi-byte sequence. The rules that do see
// non-ASCII text are emulated here:
//   - str.isspace() / str.strip() / the `\s` of a str regex: the 29 code points of
//     Py_UNICODE_ISSPACE (ASCII \t\n\v\f\r, \x1c–\x1f, space, U+0085, U+00A0, U+1680,
//     U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000);
//   - str.lower(): every single-code-point mapping of Python 3.11's Unicode 14 tables
//     (unicode_lowercase_table.h, generated), plus U+0130 → "i̇" (two code points).
//     Not emulated: the final-sigma context rule (Python lowers a word-final capital Σ to ς;
//     we always give σ). It can only matter for an answer text that holds no number and ends a
//     Greek word in a capital sigma.
// Bytes that are not valid UTF-8 are treated as single non-space, non-letter characters.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace smol {

// Byte length of the Python whitespace character starting at text[pos], or 0 when the
// character there is not whitespace (or pos is at the end).
size_t python_space_length_at(std::string_view text, size_t pos);

// str.strip() with no argument: removes leading and trailing Python whitespace.
std::string_view python_strip(std::string_view text);

// str.lower() (see the header comment for the one rule not emulated).
std::string python_lower(std::string_view text);

// A–Z → a–z only; every other byte unchanged. Equal to python_lower for matching ASCII
// phrases: no non-ASCII code point lowercases to an ASCII letter other than 'k' (U+212A KELVIN
// SIGN) and 'i' followed by U+0307 (from U+0130), neither of which can complete a phrase of
// the seed's ("the answer is", "final answer", "answer").
std::string ascii_lower(std::string_view text);

}  // namespace smol
