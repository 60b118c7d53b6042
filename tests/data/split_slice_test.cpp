// HF split slicing (docs/formats.md §6): every example given there, closest / pct1_dropremainder
// rounding, negative bounds, '+' joins, and the refusals datasets raises on.
#include <gtest/gtest.h>

#include "common/error.h"
#include "data/split_slice.h"

namespace smol {
namespace {

const std::map<std::string, int64_t> kGsm8k = {{"train", 7473}, {"test", 1319}};

std::pair<int64_t, int64_t> one(const std::string& spec,
                                const std::map<std::string, int64_t>& sizes = kGsm8k) {
  const std::vector<RowRange> ranges = resolve_split_spec(spec, sizes);
  EXPECT_EQ(ranges.size(), 1u) << spec;
  return {ranges.at(0).begin, ranges.at(0).end};
}

using Range = std::pair<int64_t, int64_t>;

TEST(SplitSlice, FormatsExamples) {
  EXPECT_EQ(one("train"), Range(0, 7473));
  EXPECT_EQ(one("train[:10000]"), Range(0, 7473));     // clamped, no error
  EXPECT_EQ(one("train[10%:20%]"), Range(747, 1495));  // rows 747..1494
  EXPECT_EQ(one("train[-100:]"), Range(7373, 7473));   // the last 100
  EXPECT_EQ(one("train[:-5%]"), Range(0, 7099));       // round(-373.65) = -374
}

TEST(SplitSlice, AbsoluteBounds) {
  EXPECT_EQ(one("train[:10]"), Range(0, 10));
  EXPECT_EQ(one("train[10:]"), Range(10, 7473));
  EXPECT_EQ(one("train[:]"), Range(0, 7473));
  EXPECT_EQ(one("train[-5:-2]"), Range(7468, 7471));
  EXPECT_EQ(one("train[-10000:3]"), Range(0, 3));  // max(n + b, 0)
  EXPECT_EQ(one("test[1000:2000]"), Range(1000, 1319));
  // The seed's MetaMath slices on its 395K rows.
  const std::map<std::string, int64_t> metamath = {{"train", 395000}};
  EXPECT_EQ(one("train[:10000]", metamath), Range(0, 10000));
  EXPECT_EQ(one("train[10000:12000]", metamath), Range(10000, 12000));
}

TEST(SplitSlice, ZeroUpperBoundIsEmptyNotTheWholeSplit) {
  // B7: the seed read "[x:0]" as the whole split; datasets selects nothing, which is an error
  // on its own and nothing inside a join.
  EXPECT_THROW(resolve_split_spec("train[:0]", kGsm8k), Error);
  EXPECT_THROW(resolve_split_spec("train[5:0]", kGsm8k), Error);
  EXPECT_THROW(resolve_split_spec("train[10:5]", kGsm8k), Error);
  const auto ranges = resolve_split_spec("train[5:0]+test[:3]", kGsm8k);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].end - ranges[0].begin, 0);
  EXPECT_EQ(ranges[1].end, 3);
  try {
    resolve_split_spec("train[:0]", kGsm8k);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corresponds to no data"), std::string::npos);
  }
}

TEST(SplitSlice, ClosestRoundsHalvesToEven) {
  const std::map<std::string, int64_t> fifty = {{"train", 50}}, one_fifty = {{"train", 150}};
  EXPECT_EQ(one("train[:1%]", one_fifty), Range(0, 2));  // 1.5 -> 2
  EXPECT_EQ(one("train[:3%]", fifty), Range(0, 2));      // 1.5 -> 2
  EXPECT_EQ(one("train[:5%]", fifty), Range(0, 2));      // 2.5 -> 2
  EXPECT_EQ(one("train[:7%]", fifty), Range(0, 4));      // 3.5 -> 4
  EXPECT_EQ(one("train[:5%](closest)", fifty), Range(0, 2));
  EXPECT_EQ(one("train[-100%:]"), Range(0, 7473));
  EXPECT_EQ(one("train[:100%]"), Range(0, 7473));
}

TEST(SplitSlice, Pct1DropRemainder) {
  // trunc(7473 / 100) = 74 rows per percent.
  EXPECT_EQ(one("train[10%:20%](pct1_dropremainder)"), Range(740, 1480));
  EXPECT_EQ(one("train[:100%](pct1_dropremainder)"), Range(0, 7400));
  EXPECT_EQ(one("train[-1%:](pct1_dropremainder)"), Range(7399, 7473));
  EXPECT_THROW(resolve_split_spec("t[:50%](pct1_dropremainder)", {{"t", 99}}), Error);
}

TEST(SplitSlice, OnePercentBoundMakesTheWholeSliceRelative) {
  // datasets: unit = "%" if either bound has '%'.
  EXPECT_EQ(one("train[10%:20]"), Range(747, 1495));
  EXPECT_EQ(one("train[10:20%]"), Range(747, 1495));
}

TEST(SplitSlice, PlusJoins) {
  const auto ranges = resolve_split_spec("train[:10] + test[-5:]+train[10%:11%]", kGsm8k);
  ASSERT_EQ(ranges.size(), 3u);
  EXPECT_EQ(ranges[0].split, "train");
  EXPECT_EQ(Range(ranges[0].begin, ranges[0].end), Range(0, 10));
  EXPECT_EQ(ranges[1].split, "test");
  EXPECT_EQ(Range(ranges[1].begin, ranges[1].end), Range(1314, 1319));
  EXPECT_EQ(Range(ranges[2].begin, ranges[2].end), Range(747, 822));  // round(822.03)
  const auto parsed = parse_split_spec("a.b[1:2]+c");
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[0].split, "a.b");
  EXPECT_FALSE(parsed[1].from.has_value());
}

TEST(SplitSlice, MalformedSpecsAreErrors) {
  for (const char* bad :
       {"", "train[5]", "train[:10](closest)", "train[:101%]", "train[-101%:]",
        "train[:10%](nearest)", "train[:10%]()", "train+", "+train", "train[a:b]", "train[1.5:]",
        "train [0:5]", "train[0:5", "tr-ain", "train[:10]extra", "train[0:5]+"}) {
    EXPECT_THROW(resolve_split_spec(bad, kGsm8k), Error) << "'" << bad << "'";
  }
  EXPECT_THROW(resolve_split_spec("validation", kGsm8k), Error);  // unknown split
  try {
    resolve_split_spec("validation[:5]", kGsm8k);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown split 'validation'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("test, train"), std::string::npos);
  }
}

}  // namespace
}  // namespace smol
