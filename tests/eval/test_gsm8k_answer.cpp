// The generative GSM8K scorer (engine/eval/gsm8k_answer.h): extraction rules, number grammar,
// exact equality, stop handling, and every reference answer of the GSM8K test split scored
// against its own answer text.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "engine/eval/gsm8k_answer.h"

namespace smol {
namespace {

struct ScoreCase {
  const char* generated;
  std::optional<std::string> extracted;
  const char* reference;
  bool correct;
};

TEST(Gsm8kScorer, ExtractionTable) {
  const std::vector<ScoreCase> cases = {
      {"She makes 9 * 2 = $18.\n#### 1,234", "1234", "1234", true},
      {"#### 1,234,567", "1234567", "1234567", true},  // B19: the seed read 1234
      {"So 3 + 15 = 18.\nThe answer is: 18.", "18", "18", true},
      {"the answer is 18 dollars", "18", "18", true},
      {"THE ANSWER IS $18.00", "18.00", "18", true},
      {"She has 3 apples and 5 pears, so 8 in all.", "8", "8", true},  // last number
      {"I do not know.", std::nullopt, "8", false},
      {"", std::nullopt, "0", false},
      {"#### -5", "-5", "-5", true},
      {"#### -5", "-5", "5", false},
      {"#### 3.50", "3.50", "3.5", true},
      {"#### 3/4", "3/4", "0.75", true},
      {"#### 1/0", "1/0", "1", false},  // unparseable: zero denominator
      {"#### +7", "7", "7", true},
      {"It costs $.50 each", ".50", "0.5", true},
      {"#### 72\n\n### Question: Tom has 5 apples", "72", "72", true},  // cut at the header
      {"Answer: 5 Question: what is 7?", "5", "5", true},               // cut at Question:
      {"#### 7\n#### 9", "9", "9", true},                               // the LAST ####
      {"#### 12 then 13", "12", "12", true},                            // first after it
      {"#### nothing\nThe answer is: 4", "4", "4", true},               // first number after
      {"The answer is: x\nI got 5 apples. ####", "5", "5", true},       // both fall through
      {"The answer is: 3. Later the answer is 4.", "4", "4", true},     // the LAST phrase
      {"The answer is: 6 #### 2", "2", "2", true},                      // #### has priority
      {"20-5 = 15", "15", "15", true},
      {"20-5", "5", "5", true},  // '-' after a digit is a minus sign, not a sign
      {"it is (-5)", "-5", "-5", true},
      {"1,23", "23", "23", true},  // not a thousands group: 1 then 23
      {"v1.2.3", "3", "3", true},
      {"#### 18.", "18", "18.0", true},
      {"##### 18", "18", "18", true},
  };
  for (const ScoreCase& c : cases) {
    const Gsm8kScore score = score_gsm8k(c.generated, c.reference);
    EXPECT_EQ(score.extracted, c.extracted) << "'" << c.generated << "'";
    EXPECT_EQ(score.correct, c.correct) << "'" << c.generated << "' vs " << c.reference;
  }
}

TEST(Gsm8kScorer, ExactEquality) {
  EXPECT_TRUE(answers_equal("18.0", "18"));
  EXPECT_TRUE(answers_equal(" 18 ", "18"));
  EXPECT_TRUE(answers_equal("-0", "0"));
  EXPECT_TRUE(answers_equal("6/4", "1.5"));
  EXPECT_TRUE(answers_equal("0.5/0.25", "2"));
  EXPECT_TRUE(answers_equal("1,000", "1000"));
  EXPECT_FALSE(answers_equal("1/3", "0.333333333333333333"));
  // Doubles would call these equal (both round to 12345678901234568); exact comparison not.
  EXPECT_FALSE(answers_equal("12345678901234567", "12345678901234568"));
  EXPECT_FALSE(answers_equal("-3", "3"));
  EXPECT_FALSE(answers_equal("abc", "abc"));
  EXPECT_FALSE(answers_equal("18 apples", "18"));
  EXPECT_FALSE(answers_equal("", ""));
  EXPECT_FALSE(answers_equal("1/0", "1/0"));
}

TEST(Gsm8kScorer, ReferenceAnswer) {
  EXPECT_EQ(gsm8k_reference_answer("Half of 2 is 1.\n#### 1,000"), "1000");
  EXPECT_EQ(gsm8k_reference_answer("#### -3"), "-3");
  EXPECT_EQ(gsm8k_reference_answer("no marker 5"), std::nullopt);
  EXPECT_EQ(gsm8k_reference_answer("5 apples\n#### "), std::nullopt);
}

TEST(Gsm8kScorer, TruncateAtStop) {
  EXPECT_EQ(truncate_at_stop("abc### d", {"###"}), "abc");
  EXPECT_EQ(truncate_at_stop("a Question: b ### c", {"###", "Question:"}), "a ");
  EXPECT_EQ(truncate_at_stop("no stop", {"###"}), "no stop");
  EXPECT_EQ(truncate_at_stop("text", {}), "text");
  EXPECT_THROW(truncate_at_stop("text", {"x", ""}), Error);
  const std::vector<std::string> stops = gsm8k_stop_strings();
  EXPECT_EQ(truncate_at_stop("9 * 2 = 18\n#### 18\n\n### Question:\nMore", stops),
            "9 * 2 = 18\n#### 18\n");
  EXPECT_EQ(truncate_at_stop("9 * 2 = 18\n#### 18", stops), "9 * 2 = 18\n#### 18");
}

// Every GSM8K test answer, scored as if the model had generated it verbatim, must be correct:
// the reference is readable (each row has "#### N") and the extraction finds the same N.
TEST(Gsm8kScorer, EveryTestAnswerScoresCorrectAgainstItself) {
  const std::filesystem::path data =
      std::filesystem::path(SMOL_SOURCE_DIR) / ".." / "shared" / "data" / "gsm8k" / "test.jsonl";
  if (!std::filesystem::exists(data)) GTEST_SKIP() << data << " not present";
  std::ifstream in(data);
  std::string line;
  size_t rows = 0;
  while (std::getline(in, line)) {
    const std::string answer = nlohmann::json::parse(line)["answer"];
    const std::optional<std::string> reference = gsm8k_reference_answer(answer);
    ASSERT_TRUE(reference.has_value()) << "row " << rows;
    EXPECT_EQ(reference->find(','), std::string::npos) << *reference;
    EXPECT_TRUE(score_gsm8k(answer, *reference).correct) << "row " << rows;
    ++rows;
  }
  EXPECT_EQ(rows, 1319u);
}

}  // namespace
}  // namespace smol
