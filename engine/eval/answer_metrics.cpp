// The seed's teacher-forced metrics (rules and formulas in answer_metrics.h,
// docs/seed-behaviour.md §3). The regexes are matched by hand: each is a fixed phrase followed
// by simple greedy classes, where Python's backtracking can never change the result (noted at
// each matcher), so a scan reproduces re.search / re.findall exactly.
#include "engine/eval/answer_metrics.h"

#include <cmath>
#include <optional>

#include "common/error.h"
#include "data/example_builder.h"
#include "data/python_float.h"
#include "data/python_str.h"

namespace smol {
namespace {

bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}

struct Span {
  size_t begin, end;
};

// `-?\d+\.?\d*` anchored at pos: every quantifier is greedy and what follows each one can
// never match the character it gave back, so the first greedy try is the match.
std::optional<Span> number_at(std::string_view text, size_t pos) {
  size_t i = pos;
  if (i < text.size() && text[i] == '-') ++i;
  if (i >= text.size() || !is_ascii_digit(text[i])) return std::nullopt;
  while (i < text.size() && is_ascii_digit(text[i])) ++i;
  if (i < text.size() && text[i] == '.') ++i;
  while (i < text.size() && is_ascii_digit(text[i])) ++i;
  return Span{pos, i};
}

// re.search(r"-?\d+\.?\d*", text).
std::optional<Span> first_number(std::string_view text) {
  for (size_t pos = 0; pos < text.size(); ++pos)
    if (const auto span = number_at(text, pos)) return span;
  return std::nullopt;
}

// re.findall(r"-?\d+\.?\d*", text)[-1]: matches are non-overlapping, left to right.
std::optional<Span> last_number(std::string_view text) {
  std::optional<Span> last;
  for (size_t pos = 0; pos < text.size();) {
    if (const auto span = number_at(text, pos)) {
      last = span;
      pos = span->end;
    } else {
      ++pos;
    }
  }
  return last;
}

// re.search(phrase + r"[:\s]+(-?\d+\.?\d*)", lowered).group(1). [:\s]+ is greedy and a number
// cannot start with ':' or whitespace, so giving characters back never helps; the leftmost
// phrase occurrence that is followed by a separator run and a number wins.
std::optional<Span> number_after_phrase(std::string_view lowered, std::string_view phrase) {
  for (size_t at = lowered.find(phrase); at != std::string_view::npos;
       at = lowered.find(phrase, at + 1)) {
    size_t pos = at + phrase.size();
    const size_t separator_begin = pos;
    while (pos < lowered.size()) {
      if (lowered[pos] == ':') {
        ++pos;
      } else if (const size_t n = python_space_length_at(lowered, pos)) {
        pos += n;
      } else {
        break;
      }
    }
    if (pos == separator_begin) continue;
    if (const auto span = number_at(lowered, pos)) return span;
  }
  return std::nullopt;
}

std::string text_of(std::string_view text, Span span) {
  return std::string(text.substr(span.begin, span.end - span.begin));
}

// Where text.split(separator)[-1] begins, when the separator occurs at all. split() takes
// non-overlapping occurrences from the left, so for "#####5" the tail is "#5", not "5".
std::optional<size_t> after_last_split(std::string_view text, std::string_view separator) {
  std::optional<size_t> tail_begin;
  for (size_t at = text.find(separator); at != std::string_view::npos;
       at = text.find(separator, at + separator.size()))
    tail_begin = at + separator.size();
  return tail_begin;
}

void check_rows(const std::vector<std::vector<int32_t>>& labels,
                const std::vector<std::vector<int32_t>>& predictions, const char* metric) {
  SMOL_CHECK(labels.size() == predictions.size(), metric, ": ", labels.size(), " label rows but ",
             predictions.size(), " prediction rows");
  for (size_t r = 0; r < labels.size(); ++r)
    SMOL_CHECK(labels[r].size() == predictions[r].size(), metric, ": row ", r, " has ",
               labels[r].size(), " labels but ", predictions[r].size(), " predictions");
}

}  // namespace

std::string extract_answer(std::string_view text) {
  if (text.empty()) return "";                                   // step 1
  if (const auto tail_begin = after_last_split(text, "####")) {  // step 2
    const std::string_view tail = python_strip(text.substr(*tail_begin));
    if (const auto span = first_number(tail)) return text_of(tail, *span);
    return std::string(tail);
  }
  // Step 3. ascii_lower equals Python's lower() for these ASCII phrases (python_str.h) and
  // keeps byte offsets, so the group can be cut from the lowered text directly (digits and '-'
  // and '.' are unchanged by lowering).
  const std::string lowered = ascii_lower(text);
  for (std::string_view phrase : {"the answer is", "final answer", "answer"})
    if (const auto span = number_after_phrase(lowered, phrase)) return text_of(lowered, *span);
  if (const auto span = last_number(text)) return text_of(text, *span);  // step 4
  return std::string(python_strip(text));                                // step 5
}

std::string normalize_answer(std::string_view raw) {
  const std::string_view answer = python_strip(raw);
  const auto fallback = [&] { return python_lower(answer); };  // ValueError / ZeroDivisionError
  if (const size_t slash = answer.find('/'); slash != std::string_view::npos) {
    if (answer.find('/', slash + 1) == std::string_view::npos) {  // exactly 2 parts
      const auto numerator = python_parse_float(answer.substr(0, slash));
      const auto denominator = python_parse_float(answer.substr(slash + 1));
      if (!numerator || !denominator || *denominator == 0) return fallback();
      return python_float_repr(*numerator / *denominator);
    }
    // 3+ parts: float(answer) below raises ValueError on the '/' → lowercase.
  }
  const auto value = python_parse_float(answer);
  if (!value) return fallback();
  if (answer.find('.') != std::string_view::npos) {
    std::string repr = python_float_repr(*value);
    while (!repr.empty() && repr.back() == '0') repr.pop_back();  // .rstrip("0")
    while (!repr.empty() && repr.back() == '.') repr.pop_back();  // .rstrip(".")
    return repr;
  }
  // int(x): ValueError for nan (caught by the seed), OverflowError for ±inf (not caught by the
  // seed, which crashed; our deliberate fix is the same lowercase fallback).
  if (const auto integer = python_int_repr(*value)) return *integer;
  return fallback();
}

double TokenAccuracyCounts::accuracy() const {
  SMOL_CHECK(total > 0, "token accuracy: no supervised tokens to average over (", correct,
             " correct of 0)");
  return static_cast<double>(correct) / static_cast<double>(total);
}

TokenAccuracyCounts token_accuracy(const std::vector<std::vector<int32_t>>& labels,
                                   const std::vector<std::vector<int32_t>>& predictions) {
  check_rows(labels, predictions, "token_accuracy");
  TokenAccuracyCounts counts;
  for (size_t r = 0; r < labels.size(); ++r) {
    const std::vector<int32_t>& y = labels[r];
    const std::vector<int32_t>& p = predictions[r];
    for (size_t t = 1; t < y.size(); ++t) {
      if (y[t] == kIgnoreLabel) continue;
      ++counts.total;
      counts.correct += p[t - 1] == y[t];  // P[t−1] is the prediction of token t
    }
  }
  return counts;
}

TokenAccuracyCounts token_accuracy_legacy(const std::vector<std::vector<int32_t>>& labels,
                                          const std::vector<std::vector<int32_t>>& predictions) {
  check_rows(labels, predictions, "token_accuracy_legacy");
  TokenAccuracyCounts counts;
  for (size_t r = 0; r < labels.size(); ++r) {
    for (size_t t = 0; t < labels[r].size(); ++t) {
      if (labels[r][t] == kIgnoreLabel) continue;
      ++counts.total;
      counts.correct += predictions[r][t] == labels[r][t];  // B1: unshifted
    }
  }
  return counts;
}

std::vector<AnswerRowResult> answer_accuracy(const std::vector<std::vector<int32_t>>& labels,
                                             const std::vector<std::vector<int32_t>>& predictions,
                                             const DecodeSkippingSpecials& decode) {
  check_rows(labels, predictions, "answer_accuracy");
  std::vector<AnswerRowResult> results;
  results.reserve(labels.size());
  for (size_t r = 0; r < labels.size(); ++r) {
    std::vector<int32_t> predicted_ids, label_ids;
    for (size_t t = 0; t < labels[r].size(); ++t) {
      if (labels[r][t] == kIgnoreLabel) continue;
      predicted_ids.push_back(predictions[r][t]);  // B1: P[t], the guess for t+1
      label_ids.push_back(labels[r][t]);
    }
    AnswerRowResult row;
    row.predicted = normalize_answer(extract_answer(decode(predicted_ids)));
    row.reference = normalize_answer(extract_answer(decode(label_ids)));
    row.correct = row.predicted == row.reference;
    results.push_back(std::move(row));
  }
  return results;
}

}  // namespace smol
