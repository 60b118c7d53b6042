// The seed's teacher-forced metrics (docs/seed-behaviour.md §3): extract_answer and
// normalize_answer against the Python reference (tests/golden/eval/answer_metrics.json: a
// table of edge cases, 300 random concatenations of the pieces the rules react to, and the
// first 200 GSM8K test answers, each also with its last line mangled one of 15 ways), the shifted
// vs legacy token accuracies on hand fixtures, and answer_accuracy with a toy decoder. Every check
// is exact equality: the metrics are string and integer computations with nothing to tolerate.
#include <gtest/gtest.h>

#include <map>

#include "common/error.h"
#include "data/python_str.h"
#include "engine/eval/answer_metrics.h"
#include "eval_goldens.h"

namespace smol {
namespace {

constexpr int32_t kIgnore = -100;

TEST(AnswerMetricsGolden, ExtractAndNormalizeMatchThePythonReference) {
  const nlohmann::json golden = test::read_eval_golden("answer_metrics.json");
  size_t overflow_cases = 0;
  for (const char* table : {"cases", "gsm8k"}) {
    ASSERT_GE(golden[table].size(), 100u) << table;
    for (const auto& c : golden[table]) {
      const std::string text = c["text"];
      const std::string extracted = extract_answer(text);
      EXPECT_EQ(extracted, c["extracted"].get<std::string>()) << table << ": '" << text << "'";
      EXPECT_EQ(normalize_answer(extracted), c["normalized"].get<std::string>())
          << table << ": '" << text << "'";
      overflow_cases += c.contains("seed_raises");
    }
  }
  EXPECT_GT(overflow_cases, 0u) << "the golden should exercise the OverflowError fix";
}

TEST(AnswerMetricsGolden, NormalizeMatchesThePythonReference) {
  const nlohmann::json golden = test::read_eval_golden("answer_metrics.json");
  ASSERT_GE(golden["normalize"].size(), 50u);
  for (const auto& c : golden["normalize"]) {
    const std::string answer = c["answer"];
    EXPECT_EQ(normalize_answer(answer), c["normalized"].get<std::string>()) << "'" << answer << "'";
  }
}

TEST(AnswerMetrics, SeedOdditiesAreKept) {
  EXPECT_EQ(extract_answer("#### 1,234"), "1");     // commas split numbers (step 2)
  EXPECT_EQ(extract_answer("costs 1,234"), "234");  // … and step 4
  EXPECT_EQ(normalize_answer("1.5e20"), "1.5e+2");  // rstrip("0") eats the exponent's 0
  EXPECT_EQ(normalize_answer("6/2"), "3.0");        // fraction: float repr, not stripped
  EXPECT_EQ(normalize_answer("1e20"), "100000000000000000000");
  EXPECT_EQ(normalize_answer("Infinity"), "infinity");  // the deliberate OverflowError fix
}

TEST(PythonStr, LowerMatchesPythonOnEveryCodePointItChanges) {
  const nlohmann::json golden = test::read_eval_golden("answer_metrics.json");
  const std::string text = golden["lower"]["text"];
  ASSERT_GT(text.size(), 4000u);  // ~1,430 code points of 1–4 bytes and their separators
  EXPECT_EQ(python_lower(text), golden["lower"]["lower"].get<std::string>());
}

TEST(PythonStr, StripAndLower) {
  EXPECT_EQ(python_strip("\u3000\x1c a b \u2028\n"), "a b");
  EXPECT_EQ(python_strip("\xff "), "\xff");  // invalid UTF-8 is kept, not stripped
  EXPECT_EQ(python_lower("ÀÉÎ ΑΒΓ ДЖ ＡＢ ǅ"), "àéî αβγ дж ａｂ ǆ");
  EXPECT_EQ(python_lower("İ"), "i\u0307");
  // Not emulated (python_str.h): Python lowers a word-final capital sigma to ς ("σας").
  EXPECT_EQ(python_lower("ΣΑΣ"), "σασ");
}

// Row of a perfect model: prompt [1, 2], completion [5, 6, 7, EOS 0]. P[t] is the model's
// guess for token t+1, so a perfect P is the input shifted left, with a guess (9) after EOS.
struct Rows {
  std::vector<std::vector<int32_t>> labels, predictions;
};
Rows perfect_model_rows() {
  Rows rows;
  rows.labels = {{kIgnore, kIgnore, 5, 6, 7, 0}, {kIgnore, 4, 4, 4, 0, kIgnore}};
  rows.predictions = {{2, 5, 6, 7, 0, 9}, {4, 4, 4, 0, 4, 0}};  // row 2: padded at the end
  return rows;
}

TEST(TokenAccuracy, PerfectModelIsOneShiftedButNotLegacy) {
  const Rows rows = perfect_model_rows();
  const TokenAccuracyCounts shifted = token_accuracy(rows.labels, rows.predictions);
  EXPECT_EQ(shifted.correct, 8);
  EXPECT_EQ(shifted.total, 8);
  EXPECT_EQ(shifted.accuracy(), 1.0);
  // Legacy compares P[t] with Y[t]: row 1 never matches (0 of 4); row 2 matches only where a
  // token repeats: P[1]=4=Y[1], P[2]=4=Y[2], P[3]=0≠4, P[4]=4≠0 → 2 of 4.
  const TokenAccuracyCounts legacy = token_accuracy_legacy(rows.labels, rows.predictions);
  EXPECT_EQ(legacy.correct, 2);
  EXPECT_EQ(legacy.total, 8);
  EXPECT_EQ(legacy.accuracy(), 0.25);
}

TEST(TokenAccuracy, ImperfectModelDiffersBetweenTheTwo) {
  // Y: prompt 1 token, completion [3, 8, 3, 0]. P: right at t=0 (3) and t=2 (3), wrong at t=1
  // (3 instead of 8), and at t=3 it guesses 0 (right). Shifted: P[0]=3=Y[1] ✓, P[1]=3≠8 ✗,
  // P[2]=3=Y[3] ✓, P[3]=0=Y[4] ✓ → 3/4. Legacy: P[1]=3=Y[1] ✓, P[2]=3≠8 ✗, P[3]=0≠3 ✗,
  // P[4]=5≠0 ✗ → 1/4.
  const std::vector<std::vector<int32_t>> labels = {{kIgnore, 3, 8, 3, 0}};
  const std::vector<std::vector<int32_t>> predictions = {{3, 3, 3, 0, 5}};
  const TokenAccuracyCounts shifted = token_accuracy(labels, predictions);
  const TokenAccuracyCounts legacy = token_accuracy_legacy(labels, predictions);
  EXPECT_EQ(shifted.correct, 3);
  EXPECT_EQ(shifted.total, 4);
  EXPECT_EQ(legacy.correct, 1);
  EXPECT_EQ(legacy.total, 4);
}

TEST(TokenAccuracy, SupervisedFirstTokenHasNoPredictionInTheShiftedCount) {
  const std::vector<std::vector<int32_t>> labels = {{3, 4}};
  const std::vector<std::vector<int32_t>> predictions = {{4, 1}};
  EXPECT_EQ(token_accuracy(labels, predictions).total, 1);         // only t = 1
  EXPECT_EQ(token_accuracy(labels, predictions).correct, 1);       // P[0] = 4 = Y[1]
  EXPECT_EQ(token_accuracy_legacy(labels, predictions).total, 2);  // t = 0 and 1
  EXPECT_EQ(token_accuracy_legacy(labels, predictions).correct, 0);
}

TEST(TokenAccuracy, CountsSumAcrossBatchesAsAMicroAverage) {
  TokenAccuracyCounts sum;
  sum += token_accuracy({{kIgnore, 4}}, {{4, 0}});              // 1 of 1
  sum += token_accuracy({{kIgnore, 1, 2, 3}}, {{1, 9, 9, 0}});  // 1 of 3
  EXPECT_EQ(sum.correct, 2);
  EXPECT_EQ(sum.total, 4);
  EXPECT_EQ(sum.accuracy(), 0.5);  // not the mean of the batch accuracies, (1 + 1/3) / 2
}

TEST(TokenAccuracy, BadShapesAndEmptyCountsAreErrors) {
  EXPECT_THROW(token_accuracy({{1, 2}}, {}), Error);
  EXPECT_THROW(token_accuracy_legacy({{1, 2}}, {{1}}), Error);
  EXPECT_THROW(answer_accuracy({{1}}, {{1, 2}}, [](const auto&) { return std::string(); }), Error);
  try {
    token_accuracy({{1, 2}, {1, 2, 3}}, {{1, 2}, {1, 2}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(token_accuracy({{kIgnore, kIgnore}}, {{0, 0}}).accuracy(), Error);
}

// A toy vocabulary; id 0 is the special <|endoftext|>, dropped as skip_special_tokens does.
std::string toy_decode(const std::vector<int32_t>& ids) {
  static const std::map<int32_t, std::string> vocab = {{1, "Q"},  {2, ":"}, {4, "####"},
                                                       {5, " 7"}, {6, "2"}, {7, "\n"}};
  std::string text;
  for (int32_t id : ids)
    if (id != 0) text += vocab.at(id);
  return text;
}

TEST(AnswerAccuracy, TeacherForcedTranscriptIsShiftedByOneToken) {
  // Both rows: prompt "Q:" [1, 2], completion "#### 7" + EOS [4, 5, 0]; the model is perfect
  // (P = input shifted left). The seed decodes P at the supervised positions 2..4, i.e. the
  // guesses for positions 3..5: " 7", EOS, and one token after EOS — never "####".
  const std::vector<int32_t> labels = {kIgnore, kIgnore, 4, 5, 0};
  const std::vector<AnswerRowResult> rows =
      answer_accuracy({labels, labels}, {{2, 4, 5, 0, 6}, {2, 4, 5, 0, 7}}, toy_decode);
  ASSERT_EQ(rows.size(), 2u);
  // Row 1 guesses "2" after EOS: the transcript " 72" glues it onto the answer (B1).
  EXPECT_EQ(rows[0].predicted, "72");
  EXPECT_EQ(rows[0].reference, "7");
  EXPECT_FALSE(rows[0].correct);
  // Row 2 guesses "\n" after EOS: " 7\n" → "7", a match.
  EXPECT_EQ(rows[1].predicted, "7");
  EXPECT_EQ(rows[1].reference, "7");
  EXPECT_TRUE(rows[1].correct);
}

}  // namespace
}  // namespace smol
