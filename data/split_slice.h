// Hugging Face split slicing, exactly as datasets' arrow_reader.py (ReadInstruction.from_spec
// and _rel_to_abs_instr) does it, docs/formats.md §6 — not the seed's own parser (B7: "[x:0]" is
// not the whole split here, it is empty).
//
//   spec     := part ('+' part)*            (spaces allowed around '+')
//   part     := split ['[' [bound] ':' [bound] ']'] ['(' rounding ')']
//   split    := \w+(\.\w+)*
//   bound    := -?\d+ ['%']
//   rounding := closest | pct1_dropremainder (only with percent bounds)
//
// If either bound has '%', the whole slice is in percent (unit "%"), as datasets does; percent
// bounds must lie in [-100, 100]. With n rows: a missing from is 0, a missing to is n;
// closest: round(b·n/100) (Python round, halves to even); pct1_dropremainder: b·trunc(n/100)
// (refused when n < 100); a negative bound becomes max(n + b, 0); both are clamped to n; rows
// [from, to) are taken (none when from ≥ to). A spec whose parts select no row at all is an
// error ("corresponds to no data"), as in datasets. There is no single-row "split[i]" form.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace smol {

enum class SliceRounding : uint8_t { Closest, Pct1DropRemainder };

struct SplitSlice {
  std::string split;
  std::optional<int64_t> from, to;  // as written (before resolution)
  bool percent = false;
  SliceRounding rounding = SliceRounding::Closest;
};

// Throws smol::Error quoting the spec for every malformed form.
std::vector<SplitSlice> parse_split_spec(const std::string& spec);

struct RowRange {
  std::string split;
  int64_t begin = 0, end = 0;  // [begin, end), begin ≤ end after resolution
};

// Absolute row ranges of each part given the size of every split; throws for an unknown split,
// pct1_dropremainder on fewer than 100 rows, or a spec that selects no row.
std::vector<RowRange> resolve_split_spec(const std::string& spec,
                                         const std::map<std::string, int64_t>& split_sizes);

}  // namespace smol
