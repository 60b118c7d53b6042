// The seed's teacher-forced evaluation metrics, exactly (docs/seed-behaviour.md §3), plus the
// correctly shifted token accuracy (docs/design.md §6).
//
// Inputs are per row, as HF hands them to compute_metrics: `labels` are the UNSHIFTED HF
// labels of the row (−100 = not supervised, docs/seed-behaviour.md §2.6) and `predictions` the
// argmax of the logits at every position of the same row, P[t] = argmax logits[t], which is the
// model's guess for token t+1. Both have the row's (padded) length.
//
// token_accuracy (correct):  Σ_{t ≥ 1, Y[t] ≠ −100} 1[P[t−1] = Y[t]]  /  #{t ≥ 1 : Y[t] ≠ −100}
//   — the same positions the causal loss counts; a supervised Y[0] has no prediction and is
//   not counted.
// token_accuracy_legacy (the seed's, bug B1): Σ_{Y[t] ≠ −100} 1[P[t] = Y[t]] / #{Y[t] ≠ −100}
//   — compares each prediction with the token it was given as input, not the one it predicts.
// Both are micro-averages over all tokens of all rows: counts are returned so that batches can
// be summed before dividing.
//
// answer_accuracy (the seed's, bug B1 again): for each row, decode P[t] and Y[t] at the
// positions where Y[t] ≠ −100 (skipping special tokens), then extract_answer → normalize_answer
// on both and compare the strings. The "prediction" is therefore a teacher-forced transcript
// shifted by one token: it lacks the first response token and has one extra token predicted
// after EOS appended (which can glue a digit onto the answer). It is not generation; the
// generative score is gsm8k_answer.h.
//
// extract_answer (seed steps, Python `re` semantics):
//   1. ""                          → ""
//   2. "####" in text              → tail = text after the LAST "####", stripped;
//                                    first match of -?\d+\.?\d* in tail, else tail
//   3. on text.lower(): the first match of "the answer is[:\s]+(-?\d+\.?\d*)", else of
//      "final answer[:\s]+(…)", else of "answer[:\s]+(…)"  → the group
//   4. the last match of -?\d+\.?\d* in text
//   5. text.strip()
//   Commas split numbers: "#### 1,234" gives "1" (step 2), "costs 1,234" gives "234" (step 4).
//   \s is Python's Unicode whitespace (python_str.h); \d is ASCII 0–9 only, where Python's str
//   regex also matches other Unicode decimal digits ("٣"). The two agree on every text without
//   such digits: all of GSM8K; a model transcript containing one would read differently.
// normalize_answer:
//   a = a.strip(); if "/" in a and a.split("/") has 2 parts: repr(float(p0) / float(p1));
//   else x = float(a); "." in a ? repr(x).rstrip("0").rstrip(".") : str(int(x));
//   ValueError or ZeroDivisionError → a.lower().
//   Faithful oddities kept: "1.5e20" → repr 1.5e+20 → "1.5e+2" (rstrip eats the exponent's 0);
//   "6/2" → "3.0" but "3" → "3"; "1e20" → "100000000000000000000".
//   Deliberate fix: int(x) raises OverflowError for "inf" / "1e999", which the seed did not
//   catch (the whole evaluation crashed); we return a.lower() as for the other errors.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace smol {

std::string extract_answer(std::string_view text);
std::string normalize_answer(std::string_view answer);

// Micro-averaged token accuracy counts; sum over batches, then call accuracy().
struct TokenAccuracyCounts {
  int64_t correct = 0;
  int64_t total = 0;
  TokenAccuracyCounts& operator+=(const TokenAccuracyCounts& other) {
    correct += other.correct;
    total += other.total;
    return *this;
  }
  // correct / total; throws smol::Error when total is 0 (no supervised token: undefined).
  double accuracy() const;
};

// labels[r] and predictions[r] must have equal lengths for every row r, and the row counts must
// match; otherwise smol::Error naming the row.
TokenAccuracyCounts token_accuracy(const std::vector<std::vector<int32_t>>& labels,
                                   const std::vector<std::vector<int32_t>>& predictions);
TokenAccuracyCounts token_accuracy_legacy(const std::vector<std::vector<int32_t>>& labels,
                                          const std::vector<std::vector<int32_t>>& predictions);

// Decodes token ids to text, dropping special tokens (HF decode(skip_special_tokens=True)).
using DecodeSkippingSpecials = std::function<std::string(const std::vector<int32_t>&)>;

struct AnswerRowResult {
  std::string predicted;  // normalize_answer(extract_answer(decoded P[Y ≠ −100]))
  std::string reference;  // normalize_answer(extract_answer(decoded Y[Y ≠ −100]))
  bool correct = false;   // predicted == reference
};

// The seed's answer_accuracy, one result per row (accuracy = #correct / #rows). Same shape
// checks as token_accuracy.
std::vector<AnswerRowResult> answer_accuracy(const std::vector<std::vector<int32_t>>& labels,
                                             const std::vector<std::vector<int32_t>>& predictions,
                                             const DecodeSkippingSpecials& decode);

}  // namespace smol
