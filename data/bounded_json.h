// JSON parsing for untrusted files (docs/design.md §9 "Untrusted input"): nlohmann::json parses
// without recursion, but dump(), comparison and our own walks of a value recurse, so a file of
// "[[[[..." a million deep would overflow the stack later. parse_bounded_json refuses nesting
// deeper than kMaxJsonDepth while parsing; no file this engine reads nests deeper than 6.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace smol {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text`. Malformed JSON throws nlohmann::json::exception (callers add their file and
// context); nesting deeper than kMaxJsonDepth throws smol::Error naming `source`.
nlohmann::json parse_bounded_json(std::string_view text, const std::string& source);
nlohmann::ordered_json parse_bounded_ordered_json(std::string_view text, const std::string& source);

}  // namespace smol
