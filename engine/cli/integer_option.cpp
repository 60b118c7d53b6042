// integer_in / unsigned_integer (see integer_option.h).
#include "engine/cli/integer_option.h"

#include <charconv>
#include <string>

#include "common/quote.h"

namespace smol {

namespace {

bool all_digits(const std::string& text, size_t from) {
  if (from >= text.size()) return false;
  for (size_t i = from; i < text.size(); ++i)
    if (text[i] < '0' || text[i] > '9') return false;
  return true;
}

}  // namespace

CLI::Validator integer_in(int64_t min, int64_t max) {
  const std::string range = "[" + std::to_string(min) + ", " + std::to_string(max) + "]";
  return CLI::Validator(
      [min, max, range](std::string& text) -> std::string {
        const size_t digits_from = !text.empty() && text[0] == '-' ? 1 : 0;
        int64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (!all_digits(text, digits_from) || ec != std::errc() ||
            end != text.data() + text.size() || value < min || value > max)
          return "value " + quoted_excerpt(text) + " is not an integer in " + range;
        text = std::to_string(value);  // canonical: CLI11 would read "010" as octal 8
        return "";
      },
      "INT in " + range, "integer_in");
}

CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (!all_digits(text, 0) || ec != std::errc() || end != text.data() + text.size())
          return "value " + quoted_excerpt(text) + " is not an integer in [0, 2^64)";
        text = std::to_string(value);  // canonical: CLI11 would read "010" as octal 8
        return "";
      },
      "UINT", "unsigned_integer");
}

}  // namespace smol
