// CRC-32C against published check values and the TFRecord mask.
#include <gtest/gtest.h>

#include <string>

#include "engine/outputs/crc32c.h"

namespace smol {
namespace {

TEST(Crc32c, MatchesPublishedCheckValues) {
  // The standard check value of CRC-32C (the CRC catalogue's "check" for CRC-32/ISCSI).
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0x00000000u);
  // RFC 3720 (iSCSI) appendix B.4 test vectors: 32 bytes of zeros, of 0xFF, and 0..31.
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
}

TEST(Crc32c, MaskRotatesAndAddsTheTensorFlowDelta) {
  EXPECT_EQ(mask_crc32c(0), 0xA282EAD8u);
  // 0x00008000 rotated right by 15 is 1; 1 + delta.
  EXPECT_EQ(mask_crc32c(0x00008000u), 0xA282EAD9u);
  // The addition wraps modulo 2^32: 0xFFFFFFFF rotates to itself, + delta − 2^32.
  EXPECT_EQ(mask_crc32c(0xFFFFFFFFu), 0xA282EAD7u);
}

}  // namespace
}  // namespace smol
