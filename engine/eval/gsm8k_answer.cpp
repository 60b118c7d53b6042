// The generative GSM8K scorer (number grammar, extraction rules and equality in
// gsm8k_answer.h, docs/design.md §6).
#include "engine/eval/gsm8k_answer.h"

#include <algorithm>
#include <utility>

#include "common/error.h"
#include "data/big_unsigned.h"
#include "data/python_str.h"

namespace smol {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_ascii_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool digit_at(std::string_view text, size_t i) {
  return i < text.size() && is_digit(text[i]);
}

size_t digit_run_end(std::string_view text, size_t i) {
  while (digit_at(text, i)) ++i;
  return i;
}

// integer [. digits] without sign, starting at i; returns the end, or i when there is none.
size_t unsigned_decimal_end(std::string_view text, size_t i) {
  size_t end = digit_run_end(text, i);
  if (end > i && end - i <= 3) {
    // Thousands groups: ",ddd" while the group is exactly three digits.
    size_t grouped = end;
    while (grouped < text.size() && text[grouped] == ',' && digit_at(text, grouped + 1) &&
           digit_at(text, grouped + 2) && digit_at(text, grouped + 3) &&
           !digit_at(text, grouped + 4))
      grouped += 4;
    end = grouped;
  }
  if (end < text.size() && text[end] == '.' && digit_at(text, end + 1))
    end = digit_run_end(text, end + 1);
  return end;
}

// unsigned-decimal [/ unsigned-decimal]; returns the end, or i when there is none.
size_t unsigned_number_end(std::string_view text, size_t i) {
  const size_t end = unsigned_decimal_end(text, i);
  if (end == i) return i;
  if (end < text.size() && text[end] == '/') {
    const size_t denominator_end = unsigned_decimal_end(text, end + 1);
    if (denominator_end > end + 1) return denominator_end;
  }
  return end;
}

struct NumberMatch {
  size_t begin = 0, end = 0;
  std::string canonical;  // as written, commas and a leading '+' removed
};

// The number starting exactly at pos, if any (grammar in gsm8k_answer.h).
std::optional<NumberMatch> number_at(std::string_view text, size_t pos) {
  const auto boundary_before = [&](size_t i) {
    return i == 0 || !(is_digit(text[i - 1]) || is_ascii_letter(text[i - 1]) || text[i - 1] == '.');
  };
  size_t start = pos;
  const bool signed_here = (text[pos] == '-' || text[pos] == '+') && boundary_before(pos);
  if (signed_here) ++start;
  if (start >= text.size()) return std::nullopt;
  // A number may start with '.' only where it cannot be the tail of "1.2.3" or "v1".
  if (text[start] == '.' && !boundary_before(start)) return std::nullopt;
  if (!is_digit(text[start]) && text[start] != '.') return std::nullopt;
  const size_t end = unsigned_number_end(text, start);
  if (end == start) return std::nullopt;
  NumberMatch match{pos, end, signed_here && text[pos] == '-' ? "-" : ""};
  for (size_t i = start; i < end; ++i)
    if (text[i] != ',') match.canonical += text[i];
  return match;
}

std::optional<NumberMatch> first_number(std::string_view text) {
  for (size_t pos = 0; pos < text.size(); ++pos)
    if (auto match = number_at(text, pos)) return match;
  return std::nullopt;
}

std::optional<NumberMatch> last_number(std::string_view text) {
  std::optional<NumberMatch> last;
  for (size_t pos = 0; pos < text.size();) {
    if (auto match = number_at(text, pos)) {
      pos = match->end;
      last = std::move(match);
    } else {
      ++pos;
    }
  }
  return last;
}

// Rule 0: the text before "Question:" or a run of exactly three '#', whichever comes first.
std::string_view cut_at_stop_marker(std::string_view text) {
  size_t cut = text.find("Question:");
  for (size_t i = 0; i < text.size() && i < cut;) {
    if (text[i] != '#') {
      ++i;
      continue;
    }
    size_t run_end = i;
    while (run_end < text.size() && text[run_end] == '#') ++run_end;
    if (run_end - i == 3) cut = i;
    i = run_end;
  }
  return text.substr(0, cut);
}

// The first number after the last occurrence of `marker` in `text` (already lowercased when
// the marker is matched case-insensitively).
std::optional<std::string> number_after_last(std::string_view text, std::string_view marker) {
  const size_t at = text.rfind(marker);
  if (at == std::string_view::npos) return std::nullopt;
  const size_t tail_begin = at + marker.size();
  if (auto match = first_number(text.substr(tail_begin))) return std::move(match->canonical);
  return std::nullopt;
}

// An exact rational: (negative ? −1 : 1) · numerator / denominator, denominator ≠ 0.
struct ExactNumber {
  bool negative = false;
  BigUnsigned numerator, denominator;
};

BigUnsigned times_power_of_ten(BigUnsigned value, size_t exponent) {
  for (; exponent >= 9; exponent -= 9) value.multiply_small(1000000000);
  for (; exponent > 0; --exponent) value.multiply_small(10);
  return value;
}

// "I.F" → (IF, len F): the digits as an integer and the power of ten dividing it.
std::pair<BigUnsigned, size_t> decimal_parts(std::string_view decimal) {
  const size_t point = decimal.find('.');
  if (point == std::string_view::npos) return {BigUnsigned::from_decimal(decimal), 0};
  std::string digits(decimal.substr(0, point));
  digits += decimal.substr(point + 1);
  return {BigUnsigned::from_decimal(digits), decimal.size() - point - 1};
}

std::optional<ExactNumber> parse_exact(std::string_view raw) {
  const std::string_view text = python_strip(raw);
  if (text.empty()) return std::nullopt;
  const auto match = number_at(text, 0);
  if (!match || match->end != text.size()) return std::nullopt;
  std::string_view body = match->canonical;
  ExactNumber number;
  if (!body.empty() && body.front() == '-') {
    number.negative = true;
    body.remove_prefix(1);
  }
  const size_t slash = body.find('/');
  // value = IFₙ/10^fₙ ÷ IF_d/10^f_d = (IFₙ · 10^f_d) / (IF_d · 10^fₙ)
  const auto [top, top_scale] = decimal_parts(body.substr(0, slash));
  if (slash == std::string_view::npos) {
    number.numerator = top;
    number.denominator = times_power_of_ten(BigUnsigned(1), top_scale);
  } else {
    const auto [bottom, bottom_scale] = decimal_parts(body.substr(slash + 1));
    if (bottom.is_zero()) return std::nullopt;
    number.numerator = times_power_of_ten(top, bottom_scale);
    number.denominator = times_power_of_ten(bottom, top_scale);
  }
  return number;
}

}  // namespace

std::optional<std::string> gsm8k_reference_answer(std::string_view answer_field) {
  return number_after_last(answer_field, "####");
}

std::optional<std::string> extract_generated_answer(std::string_view generated) {
  const std::string_view text = cut_at_stop_marker(generated);
  if (auto answer = number_after_last(text, "####")) return answer;
  // ascii_lower keeps byte offsets, and numbers are ASCII, so the lowered text serves.
  if (auto answer = number_after_last(ascii_lower(text), "the answer is")) return answer;
  if (auto match = last_number(text)) return std::move(match->canonical);
  return std::nullopt;
}

bool answers_equal(std::string_view a, std::string_view b) {
  const auto x = parse_exact(a);
  const auto y = parse_exact(b);
  if (!x || !y) return false;
  if (x->numerator.is_zero() || y->numerator.is_zero())
    return x->numerator.is_zero() && y->numerator.is_zero();  // 0 = −0
  return x->negative == y->negative &&
         x->numerator * y->denominator == y->numerator * x->denominator;
}

Gsm8kScore score_gsm8k(std::string_view generated, std::string_view reference) {
  Gsm8kScore score;
  score.extracted = extract_generated_answer(generated);
  score.correct = score.extracted && answers_equal(*score.extracted, reference);
  return score;
}

std::string truncate_at_stop(std::string_view generated, const std::vector<std::string>& stops) {
  size_t cut = generated.size();
  for (size_t i = 0; i < stops.size(); ++i) {
    SMOL_CHECK(!stops[i].empty(), "truncate_at_stop: stop string ", i,
               " is empty (it would cut the whole text)");
    cut = std::min(cut, generated.find(stops[i]));
  }
  return std::string(generated.substr(0, cut));
}

std::vector<std::string> gsm8k_stop_strings() {
  return {"\n### ", "Question:"};
}

}  // namespace smol
