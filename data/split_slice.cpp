// Split-slicing parser and resolver (see split_slice.h; docs/formats.md §6).
#include "data/split_slice.h"

#include <cmath>
#include <regex>

#include "common/error.h"

namespace smol {

namespace {

// The pattern of datasets' _SUB_SPEC_RE (arrow_reader.py), ASCII \w.
const std::regex& part_pattern() {
  static const std::regex pattern(
      R"(^(\w+(?:\.\w+)*)(?:\[(?:(-?\d+)(%)?)?:(?:(-?\d+)(%)?)?\])?(?:\(([^)]*)\))?$)");
  return pattern;
}

// Splits on '\s*\+\s*' (datasets' _ADDITION_SEP_RE, through re.split: empty pieces at
// either end are kept, and then fail the part pattern).
std::vector<std::string> split_on_plus(const std::string& spec) {
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  std::vector<std::string> parts;
  std::string current;
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] != '+') {
      current += spec[i];
      continue;
    }
    while (!current.empty() && is_space(current.back())) current.pop_back();
    parts.push_back(current);
    current.clear();
    while (i + 1 < spec.size() && is_space(spec[i + 1])) ++i;
  }
  parts.push_back(current);
  return parts;
}

int64_t parse_bound(const std::string& text, const std::string& spec) {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    SMOL_CHECK(used == text.size(), "split spec '", spec, "': bad bound '", text, "'");
    return value;
  } catch (const std::out_of_range&) {
    throw_error("split spec '", spec, "': bound '", text, "' is out of range");
  }
}

// Python's round(b·n/100.0) for the float product: nearest, halves to even (nearbyint under
// the default rounding mode rounds the double exactly that way).
int64_t percent_closest(int64_t boundary, int64_t n) {
  return static_cast<int64_t>(
      std::nearbyint(static_cast<double>(boundary) * static_cast<double>(n) / 100.0));
}

int64_t percent_pct1(int64_t boundary, int64_t n, const std::string& spec) {
  SMOL_CHECK(n >= 100, "split spec '", spec,
             "': pct1_dropremainder rounding on a split with fewer than 100 rows (", n,
             ") is refused, as in datasets: it always gives an empty selection");
  return boundary * static_cast<int64_t>(std::trunc(static_cast<double>(n) / 100.0));
}

}  // namespace

std::vector<SplitSlice> parse_split_spec(const std::string& spec) {
  SMOL_CHECK(!spec.empty(), "split spec is empty");
  std::vector<SplitSlice> slices;
  for (const std::string& part : split_on_plus(spec)) {
    std::smatch m;
    SMOL_CHECK(std::regex_match(part, m, part_pattern()), "split spec '", spec,
               "': unrecognized instruction format '", part,
               "' (expected split, split[from:to] with optional % bounds, or "
               "split[from%:to%](closest|pct1_dropremainder), joined by '+')");
    SplitSlice slice;
    slice.split = m[1];
    if (m[2].matched) slice.from = parse_bound(m[2], spec);
    if (m[4].matched) slice.to = parse_bound(m[4], spec);
    slice.percent = m[3].matched || m[5].matched;
    if (m[6].matched) {
      const std::string rounding = m[6];
      SMOL_CHECK(rounding == "closest" || rounding == "pct1_dropremainder", "split spec '", spec,
                 "': rounding must be closest or pct1_dropremainder, got '", rounding, "'");
      SMOL_CHECK(slice.percent, "split spec '", spec,
                 "': a rounding is only allowed with percent slicing");
      slice.rounding =
          rounding == "closest" ? SliceRounding::Closest : SliceRounding::Pct1DropRemainder;
    }
    if (slice.percent) {
      for (const auto& bound : {slice.from, slice.to})
        SMOL_CHECK(!bound || std::llabs(*bound) <= 100, "split spec '", spec,
                   "': percent slice boundaries must be within [-100, 100], got ", *bound);
    }
    slices.push_back(slice);
  }
  return slices;
}

std::vector<RowRange> resolve_split_spec(const std::string& spec,
                                         const std::map<std::string, int64_t>& split_sizes) {
  std::vector<RowRange> ranges;
  int64_t total = 0;
  for (const SplitSlice& slice : parse_split_spec(spec)) {
    const auto found = split_sizes.find(slice.split);
    if (found == split_sizes.end()) {
      std::string known;
      for (const auto& [name, size] : split_sizes) known += (known.empty() ? "" : ", ") + name;
      throw_error("split spec '", spec, "': unknown split '", slice.split, "' (available: ", known,
                  ")");
    }
    const int64_t n = found->second;
    int64_t from = 0, to = n;
    if (slice.percent) {
      auto to_rows = [&](int64_t b) {
        return slice.rounding == SliceRounding::Closest ? percent_closest(b, n)
                                                        : percent_pct1(b, n, spec);
      };
      if (slice.from) from = to_rows(*slice.from);
      if (slice.to) to = to_rows(*slice.to);
    } else {
      if (slice.from) from = *slice.from;
      if (slice.to) to = *slice.to;
    }
    if (from < 0) from = std::max<int64_t>(n + from, 0);
    if (to < 0) to = std::max<int64_t>(n + to, 0);
    from = std::min(from, n);
    to = std::min(to, n);
    RowRange range{slice.split, from, std::max(from, to)};
    total += range.end - range.begin;
    ranges.push_back(range);
  }
  SMOL_CHECK(total > 0, "split spec '", spec, "' corresponds to no data (it selects no row)");
  return ranges;
}

}  // namespace smol
