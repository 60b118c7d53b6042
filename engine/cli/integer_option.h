// Integer command-line values checked as text, before CLI11 converts them (docs/bad-inputs.md).
// CLI11 2.1 converts with strtoull / strtoll in base 0, so "-1" given to an unsigned option
// wraps to 18446744073709551615, "99999999999999999999" saturates silently to INT64_MAX, and
// "010" reads as octal 8. This validator accepts only a plain decimal integer within [min, max]
// and names the option and the range otherwise; it hands CLI11 the value re-written in canonical
// decimal ("010" becomes "10"), so base-0 parsing cannot reinterpret it.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>

namespace smol {

CLI::Validator integer_in(int64_t min, int64_t max);

// For uint64_t options (seeds): a decimal integer in [0, 2^64), no sign.
CLI::Validator unsigned_integer();

}  // namespace smol
