// BigUnsigned: base-10⁹ limbs, schoolbook arithmetic (see the header for why it exists).
#include "data/big_unsigned.h"

#include <cmath>

#include "common/error.h"

namespace smol {

BigUnsigned::BigUnsigned(uint64_t value) {
  while (value != 0) {
    limbs_.push_back(static_cast<uint32_t>(value % kBase));
    value /= kBase;
  }
}

BigUnsigned BigUnsigned::from_decimal(std::string_view digits) {
  BigUnsigned result;
  // Most significant chunk first; each chunk holds up to 9 digits.
  for (size_t end = digits.size(); end > 0;) {
    const size_t begin = end >= 9 ? end - 9 : 0;
    uint32_t limb = 0;
    for (size_t i = begin; i < end; ++i) {
      const char c = digits[i];
      SMOL_CHECK(c >= '0' && c <= '9', "BigUnsigned::from_decimal: '", std::string(digits),
                 "' has a non-digit at offset ", i);
      limb = limb * 10 + static_cast<uint32_t>(c - '0');
    }
    result.limbs_.push_back(limb);
    end = begin;
  }
  result.trim();
  return result;
}

BigUnsigned BigUnsigned::from_double_integer_part(double x) {
  SMOL_CHECK(std::isfinite(x), "BigUnsigned::from_double_integer_part: ", x, " is not finite");
  const double magnitude = std::trunc(std::fabs(x));
  if (magnitude < 18446744073709551616.0)  // 2⁶⁴: the integer fits a uint64_t exactly
    return BigUnsigned(static_cast<uint64_t>(magnitude));
  // magnitude = mantissa · 2^shift with a 53-bit integer mantissa and shift ≥ 11.
  int exponent = 0;
  const double fraction = std::frexp(magnitude, &exponent);  // magnitude = fraction · 2^exponent
  BigUnsigned result(static_cast<uint64_t>(std::ldexp(fraction, 53)));
  for (int shift = exponent - 53; shift > 0;) {
    const int step = shift >= 29 ? 29 : shift;  // 2²⁹ · (10⁹ − 1) + carry fits in 64 bits
    result.multiply_small(uint32_t{1} << step);
    shift -= step;
  }
  return result;
}

std::string BigUnsigned::to_decimal() const {
  if (limbs_.empty()) return "0";
  std::string text = std::to_string(limbs_.back());
  for (size_t i = limbs_.size() - 1; i-- > 0;) {
    const std::string limb = std::to_string(limbs_[i]);
    text.append(9 - limb.size(), '0');
    text += limb;
  }
  return text;
}

BigUnsigned& BigUnsigned::multiply_small(uint32_t factor) {
  uint64_t carry = 0;
  for (uint32_t& limb : limbs_) {
    const uint64_t product = uint64_t{limb} * factor + carry;
    limb = static_cast<uint32_t>(product % kBase);
    carry = product / kBase;
  }
  while (carry != 0) {
    limbs_.push_back(static_cast<uint32_t>(carry % kBase));
    carry /= kBase;
  }
  trim();
  return *this;
}

BigUnsigned operator*(const BigUnsigned& a, const BigUnsigned& b) {
  BigUnsigned result;
  if (a.is_zero() || b.is_zero()) return result;
  std::vector<uint64_t> sums(a.limbs_.size() + b.limbs_.size(), 0);
  for (size_t i = 0; i < a.limbs_.size(); ++i) {
    uint64_t carry = 0;
    for (size_t j = 0; j < b.limbs_.size(); ++j) {
      // < 10⁹ + (10⁹−1)² + 10⁹ < 2⁶⁴: no overflow before the carry is split off.
      const uint64_t total = sums[i + j] + uint64_t{a.limbs_[i]} * b.limbs_[j] + carry;
      sums[i + j] = total % BigUnsigned::kBase;
      carry = total / BigUnsigned::kBase;
    }
    for (size_t k = i + b.limbs_.size(); carry != 0; ++k) {
      const uint64_t total = sums[k] + carry;
      sums[k] = total % BigUnsigned::kBase;
      carry = total / BigUnsigned::kBase;
    }
  }
  result.limbs_.assign(sums.begin(), sums.end());
  result.trim();
  return result;
}

void BigUnsigned::trim() {
  while (!limbs_.empty() && limbs_.back() == 0) limbs_.pop_back();
}

}  // namespace smol
