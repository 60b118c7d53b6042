// An arbitrary-precision unsigned integer, just large enough for exact metric arithmetic.
//
// Two metric rules need integers wider than 64 bits:
//   - Python's str(int(x)) of a float x prints the exact integer value of the double, up to
//     309 digits (int(1e300) has 301), which normalize_answer emulates (docs/seed-behaviour.md
//     §3, "the int repr");
//   - the generative GSM8K scorer compares numbers as exact rationals, a/b == c/d ⇔ a·d == c·b
//     (docs/design.md §6), and a generated number may have any number of digits.
// Limbs are base 10⁹ so that printing in decimal is exact and cheap; multiplication is
// schoolbook (the numbers here have tens of digits, rarely hundreds).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace smol {

class BigUnsigned {
 public:
  BigUnsigned() = default;  // zero
  explicit BigUnsigned(uint64_t value);

  // From a string of ASCII digits (leading zeros allowed; "" is zero). Throws smol::Error on any
  // other character.
  static BigUnsigned from_decimal(std::string_view digits);
  // |trunc(x)| for a finite double x: the exact integer part, however large. Throws
  // smol::Error for inf or nan.
  static BigUnsigned from_double_integer_part(double x);

  bool is_zero() const { return limbs_.empty(); }
  std::string to_decimal() const;  // "0" for zero, otherwise no leading zeros

  BigUnsigned& multiply_small(uint32_t factor);
  friend BigUnsigned operator*(const BigUnsigned& a, const BigUnsigned& b);
  friend bool operator==(const BigUnsigned& a, const BigUnsigned& b) = default;

 private:
  static constexpr uint32_t kBase = 1000000000;  // 10⁹ per limb
  void trim();
  std::vector<uint32_t> limbs_;  // little-endian, no high zero limbs; empty means zero
};

}  // namespace smol
