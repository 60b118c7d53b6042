// Python's float repr, float(str) and str(int(x)), as the seed's normalize_answer uses them
// (docs/seed-behaviour.md §3).
//
// repr(x) (Python ≥ 3.1, float_repr_style 'short'):
//   the shortest decimal digit string d₁d₂…dₙ that reads back as x (the nearest such when
//   several have n digits), with decimal point position decpt (x = 0.d₁…dₙ · 10^decpt), then
//     scientific  when decpt ≤ −4 or decpt > 16, i.e. exponent e = decpt − 1 < −4 or ≥ 16:
//                 d₁[.d₂…dₙ]e±XX, at least two exponent digits ("1e-05", "1e+16",
//                 "1.2345678901234568e+16", "5e-324")
//     fixed       otherwise, always with a fractional part ("1.0", "0.0001",
//                 "123456789012345.0", "1000000000000000.0")
//   and "inf", "-inf", "nan" (the sign of a nan is never shown), "-0.0".
//   The digits come from std::to_chars, which the standard defines as exactly that shortest,
//   nearest string; only the layout is Python's.
// float(s): whitespace stripped at both ends (str.isspace() except \x1c–\x1f, which float()
//   rejects although str.strip() removes them); optional sign; "inf", "infinity"
//   or "nan" in any case; else digits with an optional point and exponent, at least one digit
//   in the mantissa ("5", "5.", ".5", "1e5", "1.E-5"); single underscores allowed between
//   digits only ("1_000.000_1e1_0"). Correctly rounded; too large gives ±inf, too small ±0.0,
//   as in Python. Not accepted, as in Python: "", "1,000", "1/2", "0x10", "1e", "_1", "1__0".
//   Not emulated: Python also accepts non-ASCII decimal digits (e.g. Arabic-Indic "٣") by
//   mapping them to ASCII first; we reject them (the seed's texts reach this only through
//   ASCII-digit matches, see answer_metrics.h).
// str(int(x)): the exact integer part of x, truncated toward zero, in decimal ("-0.5" → "0",
//   1e20 → "100000000000000000000", 1e300 → all 301 digits).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace smol {

// repr(x).
std::string python_float_repr(double x);

// float(text); nullopt where Python raises ValueError.
std::optional<double> python_parse_float(std::string_view text);

// str(int(x)); nullopt where Python raises: OverflowError for ±inf, ValueError for nan.
std::optional<std::string> python_int_repr(double x);

}  // namespace smol
