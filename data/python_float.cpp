// Python float repr / parse / int repr (formulas and rules in python_float.h).
#include "data/python_float.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <system_error>

#include "common/error.h"
#include "data/big_unsigned.h"
#include "data/python_str.h"

namespace smol {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool equals_ignoring_ascii_case(std::string_view text, std::string_view lower_word) {
  return ascii_lower(text) == lower_word;
}

// Reads digits with single underscores between them starting at text[pos]; appends the digits
// (underscores dropped) to `digits`. Returns false when an underscore is not between two
// digits. Reads nothing (and returns true) when text[pos] is not a digit.
bool read_digit_part(std::string_view text, size_t& pos, std::string& digits) {
  if (pos >= text.size() || !is_digit(text[pos])) return true;
  while (pos < text.size()) {
    if (is_digit(text[pos])) {
      digits += text[pos++];
    } else if (text[pos] == '_') {
      if (pos + 1 >= text.size() || !is_digit(text[pos + 1])) return false;
      ++pos;
    } else {
      break;
    }
  }
  return true;
}

// float() strips less than str.strip(): CPython maps non-ASCII whitespace to ' ' and then
// strips ASCII " \t\n\v\f\r" only, so \x1c–\x1f (str.isspace() is true for them) stay and make
// the parse fail: float("\x1c5") raises, float("\u30005") is 5.0.
size_t float_space_length_at(std::string_view text, size_t pos) {
  if (pos < text.size() && text[pos] >= 0x1C && text[pos] <= 0x1F) return 0;
  return python_space_length_at(text, pos);
}

std::string_view strip_for_float(std::string_view text) {
  size_t begin = 0;
  while (const size_t n = float_space_length_at(text, begin)) begin += n;
  size_t end = begin;  // one past the last non-space byte
  for (size_t pos = begin; pos < text.size();) {
    if (const size_t n = float_space_length_at(text, pos)) {
      pos += n;
    } else {
      end = ++pos;  // a non-space byte (continuation bytes of a code point follow one by one)
    }
  }
  return text.substr(begin, end - begin);
}

}  // namespace

std::string python_float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  const std::string sign = std::signbit(x) ? "-" : "";
  if (x == 0) return sign + "0.0";

  // Shortest round-trip digits as d.ddde±X, then re-laid out by Python's rules.
  char buffer[64];
  const std::to_chars_result written =
      std::to_chars(buffer, buffer + sizeof buffer, std::fabs(x), std::chars_format::scientific);
  SMOL_CHECK(written.ec == std::errc(), "python_float_repr: to_chars failed for ", x);
  const std::string_view scientific(buffer, static_cast<size_t>(written.ptr - buffer));
  const size_t e_at = scientific.find('e');
  std::string digits;
  for (char c : scientific.substr(0, e_at))
    if (c != '.') digits += c;
  const int exponent = std::stoi(std::string(scientific.substr(e_at + 1)));
  const int decpt = exponent + 1;  // x = 0.d₁d₂… · 10^decpt

  if (decpt <= -4 || decpt > 16) {
    std::string out = sign + digits.substr(0, 1);
    if (digits.size() > 1) {
      out += '.';
      out += digits.substr(1);
    }
    const int magnitude = exponent < 0 ? -exponent : exponent;
    out += exponent < 0 ? "e-" : "e+";
    if (magnitude < 10) out += '0';
    return out + std::to_string(magnitude);
  }
  const int n = static_cast<int>(digits.size());
  if (decpt <= 0) return sign + "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  if (decpt >= n) return sign + digits + std::string(static_cast<size_t>(decpt - n), '0') + ".0";
  return sign + digits.substr(0, static_cast<size_t>(decpt)) + "." +
         digits.substr(static_cast<size_t>(decpt));
}

std::optional<double> python_parse_float(std::string_view raw) {
  const std::string_view text = strip_for_float(raw);
  size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) negative = text[pos++] == '-';
  const double sign = negative ? -1.0 : 1.0;

  const std::string_view rest = text.substr(pos);
  if (equals_ignoring_ascii_case(rest, "inf") || equals_ignoring_ascii_case(rest, "infinity"))
    return sign * std::numeric_limits<double>::infinity();
  if (equals_ignoring_ascii_case(rest, "nan")) return std::numeric_limits<double>::quiet_NaN();

  std::string integer_digits, fraction_digits, exponent_digits;
  if (!read_digit_part(text, pos, integer_digits)) return std::nullopt;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    if (!read_digit_part(text, pos, fraction_digits)) return std::nullopt;
  }
  if (integer_digits.empty() && fraction_digits.empty()) return std::nullopt;
  bool exponent_negative = false;
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-'))
      exponent_negative = text[pos++] == '-';
    if (!read_digit_part(text, pos, exponent_digits) || exponent_digits.empty())
      return std::nullopt;
  }
  if (pos != text.size()) return std::nullopt;

  // A canonical strtod-style string for from_chars, which is correctly rounded.
  const std::string canonical = (integer_digits.empty() ? "0" : integer_digits) + "." +
                                (fraction_digits.empty() ? "0" : fraction_digits) + "e" +
                                (exponent_negative ? "-" : "") +
                                (exponent_digits.empty() ? "0" : exponent_digits);
  double value = 0;
  const std::from_chars_result parsed =
      std::from_chars(canonical.data(), canonical.data() + canonical.size(), value);
  if (parsed.ec == std::errc::result_out_of_range) {
    // Python gives ±inf on overflow and ±0.0 on underflow. Which one: the decimal exponent of
    // the leading nonzero digit, saturated (the exponent string may be arbitrarily long).
    int64_t exponent = 0;
    for (char c : exponent_digits) exponent = std::min<int64_t>(exponent * 10 + (c - '0'), 1 << 30);
    if (exponent_negative) exponent = -exponent;
    const size_t first_nonzero = integer_digits.find_first_not_of('0');
    const int64_t leading = first_nonzero != std::string::npos
                                ? static_cast<int64_t>(integer_digits.size() - first_nonzero)
                                : -static_cast<int64_t>(fraction_digits.find_first_not_of('0'));
    value = exponent + leading > 0 ? std::numeric_limits<double>::infinity() : 0.0;
  } else {
    SMOL_CHECK(parsed.ec == std::errc() && parsed.ptr == canonical.data() + canonical.size(),
               "python_parse_float: from_chars rejected canonical form '", canonical, "' of '",
               std::string(raw), "'");
  }
  return sign * value;
}

std::optional<std::string> python_int_repr(double x) {
  if (!std::isfinite(x)) return std::nullopt;
  const BigUnsigned magnitude = BigUnsigned::from_double_integer_part(x);
  std::string text = magnitude.to_decimal();
  if (x < 0 && !magnitude.is_zero()) text.insert(text.begin(), '-');
  return text;
}

}  // namespace smol
