// Python float repr / float(str) / str(int(x)) against Python itself
// (tests/golden/eval/python_float.json: ~1,200 doubles — specials, the fixed/scientific
// thresholds, uniform random bit patterns, answer-like decimals — and ~500 strings), plus the
// BigUnsigned arithmetic behind int repr and exact comparison. All checks are exact string or
// bit equality: these are not approximations of Python but reimplementations.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>

#include "common/error.h"
#include "data/big_unsigned.h"
#include "data/python_float.h"
#include "eval_goldens.h"

namespace smol {
namespace {

TEST(PythonFloat, ReprMatchesPythonOnEveryGoldenDouble) {
  const nlohmann::json golden = test::read_eval_golden("python_float.json");
  ASSERT_GT(golden["repr"].size(), 1000u);
  for (const auto& entry : golden["repr"]) {
    const double x = test::double_from_hex_bits(entry[0]);
    EXPECT_EQ(python_float_repr(x), entry[1].get<std::string>()) << "bits " << entry[0];
  }
}

TEST(PythonFloat, IntReprMatchesPython) {
  const nlohmann::json golden = test::read_eval_golden("python_float.json");
  for (const auto& entry : golden["int_repr"]) {
    const double x = test::double_from_hex_bits(entry[0]);
    const std::optional<std::string> ours = python_int_repr(x);
    if (entry[1].is_null()) {
      EXPECT_FALSE(ours.has_value()) << "Python raises for bits " << entry[0];
    } else {
      ASSERT_TRUE(ours.has_value()) << "bits " << entry[0];
      EXPECT_EQ(*ours, entry[1].get<std::string>()) << "bits " << entry[0];
    }
  }
}

TEST(PythonFloat, ParseMatchesPythonBitForBit) {
  const nlohmann::json golden = test::read_eval_golden("python_float.json");
  ASSERT_GT(golden["parse"].size(), 400u);
  for (const auto& entry : golden["parse"]) {
    const std::string text = entry[0];
    const std::optional<double> ours = python_parse_float(text);
    if (entry[1].is_null()) {
      EXPECT_FALSE(ours.has_value()) << "Python rejects '" << text << "'";
      continue;
    }
    ASSERT_TRUE(ours.has_value()) << "Python accepts '" << text << "'";
    const double expected = test::double_from_hex_bits(entry[1]);
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(*ours)) << text;  // nan payloads and signs are not compared
    } else {
      EXPECT_EQ(std::bit_cast<uint64_t>(*ours), std::bit_cast<uint64_t>(expected))
          << "'" << text << "'";
    }
  }
}

TEST(PythonFloat, ReprLayoutExamplesFromTheBrief) {
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(0.5), "0.5");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(1e-4), "0.0001");
  EXPECT_EQ(python_float_repr(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(python_float_repr(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(python_float_repr(-std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(python_float_repr(12345678901234567.0), "1.2345678901234568e+16");
  EXPECT_EQ(python_float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(python_float_repr(9007199254740992.0), "9007199254740992.0");  // 2⁵³, exp 15
}

TEST(PythonFloat, ParseAcceptsAndRejectsLikePython) {
  EXPECT_EQ(python_parse_float(" 12 "), 12.0);
  EXPECT_EQ(python_parse_float("1_000"), 1000.0);
  EXPECT_EQ(python_parse_float("+5"), 5.0);
  EXPECT_EQ(python_parse_float(".5"), 0.5);
  EXPECT_EQ(python_parse_float("5."), 5.0);
  EXPECT_EQ(python_parse_float("1e5"), 1e5);
  EXPECT_EQ(python_parse_float("-Infinity"), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(*python_parse_float("nan")));
  EXPECT_EQ(python_parse_float("1e400"), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::signbit(*python_parse_float("-1e-400")));  // underflow keeps the sign
  for (const char* bad :
       {"", " ", "1,000", "1/2", "0x10", "1e", "_1", "1__0", "1_", "inf5", "nan(1)", "--1", "1 0"})
    EXPECT_FALSE(python_parse_float(bad).has_value()) << "'" << bad << "'";
  // The one documented difference (python_float.h): Python maps non-ASCII decimal digits to
  // ASCII and gives 3.0 for Arabic-Indic three; we reject it.
  EXPECT_FALSE(python_parse_float("\u0663").has_value());
}

TEST(PythonFloat, IntReprIsExactAndTruncates) {
  EXPECT_EQ(python_int_repr(-0.5), "0");
  EXPECT_EQ(python_int_repr(-0.0), "0");
  EXPECT_EQ(python_int_repr(-2.9), "-2");
  EXPECT_EQ(python_int_repr(1e20), "100000000000000000000");
  EXPECT_EQ(python_int_repr(1e23), "99999999999999991611392");
  EXPECT_EQ(python_int_repr(1e300)->size(), 301u);
  EXPECT_FALSE(python_int_repr(std::numeric_limits<double>::infinity()).has_value());
  EXPECT_FALSE(python_int_repr(std::numeric_limits<double>::quiet_NaN()).has_value());
}

TEST(BigUnsigned, DecimalRoundTripAndProducts) {
  EXPECT_EQ(BigUnsigned().to_decimal(), "0");
  EXPECT_EQ(BigUnsigned::from_decimal("000").to_decimal(), "0");
  EXPECT_EQ(BigUnsigned::from_decimal("0001000000000").to_decimal(), "1000000000");
  const BigUnsigned a = BigUnsigned::from_decimal("123456789012345678901234567890");
  const BigUnsigned b = BigUnsigned::from_decimal("987654321098765432109876543210");
  // Product computed independently (Python): exact, so compared as strings.
  EXPECT_EQ((a * b).to_decimal(), "121932631137021795226185032733622923332237463801111263526900");
  EXPECT_EQ(BigUnsigned(18446744073709551615ull).to_decimal(), "18446744073709551615");
  EXPECT_TRUE(a * BigUnsigned() == BigUnsigned());
  EXPECT_THROW(BigUnsigned::from_decimal("12a"), Error);
  EXPECT_THROW(BigUnsigned::from_double_integer_part(std::numeric_limits<double>::infinity()),
               Error);
}

}  // namespace
}  // namespace smol
