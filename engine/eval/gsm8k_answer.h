// The generative GSM8K scorer we ship: gsm8k_accuracy, the number papers report
// (docs/design.md §6). It replaces the seed's eval_gsm8k.py rules (docs/seed-behaviour.md §3,
// "Generative eval"), which only read MetaMath's "The answer is: N" and cut "1,234,567" to 1234
// (bug B19).
//
// Numbers (one grammar for generated text and reference):
//   [sign] integer [. digits] [/ unsigned-number]
//   integer   = digits in thousands groups "1,234,567" (1–3 digits, then ",ddd" groups, the
//               last not followed by a digit) or a plain run of digits "1234567"; or empty
//               when a fraction part follows (".5"). Anything else stops the number: "1,23"
//               is 1 then 23, "1,2,3" is 1, 2, 3.
//   sign      = '-' or '+', only where the previous character is not an ASCII letter, digit or
//               '.': "-5" and "(-5)" are negative, but in "20-5" the '-' is a minus sign
//               between 20 and 5.
//   fraction  = "3/4", evaluated exactly; a zero denominator makes the answer unparseable.
//   A '.' not followed by a digit ends the number ("18." is 18); "$", "%" and units are not
//   part of it. The extracted string is the number as written with commas and '+' removed.
// Extraction from a generation (extract_generated_answer):
//   0. cut the text at the first stop marker: "Question:" or a new "###" header (a run of
//      exactly three '#'; "####" is the answer marker, not a header). Generation stops at
//      gsm8k_stop_strings() already; the cut makes scoring independent of how it stopped.
//   1. the first number after the LAST "####";
//   2. else the first number after the LAST "the answer is", matched case-insensitively with
//      or without a colon ("The answer is: 18", "the answer is 18"), so MetaMath-style
//      adapters score too;
//   3. else the last number of the text;
//   4. else no answer (scored incorrect).
//   A marker with no number after it falls through to the next rule.
// Equality (answers_equal): exact rational equality of the two numbers, a/b = c/d ⇔ a·d = c·b
// over arbitrary-precision integers, so "18.0" = "18", "3.50" = "3.5", "3/4" = "0.75",
// "-0" = "0", and no two distinct numbers are ever equal by rounding (doubles would merge
// integers above 2⁵³). Either side unparseable → not equal.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smol {

struct Gsm8kScore {
  std::optional<std::string> extracted;  // the answer read from the generation, if any
  bool correct = false;                  // extracted and numerically equal to the reference
};

// The reference: the number after the last "####" of a GSM8K answer field, commas removed
// ("…\n#### 1,000" → "1000"); nullopt when there is no "####" or no number after it.
std::optional<std::string> gsm8k_reference_answer(std::string_view answer_field);

// Rules 0–4 of the header comment.
std::optional<std::string> extract_generated_answer(std::string_view generated);

// Exact numeric equality of two number strings (the grammar above, whole string after
// stripping whitespace); false when either is not a number.
bool answers_equal(std::string_view a, std::string_view b);

// extract_generated_answer, then answers_equal with `reference` (from gsm8k_reference_answer).
Gsm8kScore score_gsm8k(std::string_view generated, std::string_view reference);

// The text before the earliest occurrence of any of `stops` (all of it when none occurs).
// An empty stop string is a smol::Error (it would cut everything).
std::string truncate_at_stop(std::string_view generated, const std::vector<std::string>& stops);

// Stop strings for generating with the GSM8K prompt template ("… ### Question:\n… ### Answer:\n"):
// "\n### " (a new header; the answer line "\n#### 18" does not contain it) and "Question:".
std::vector<std::string> gsm8k_stop_strings();

}  // namespace smol
