// CRC-32C, table-driven (see crc32c.h for the definition and why not the SSE4.2 instruction).
#include "engine/outputs/crc32c.h"

#include <array>

namespace smol {
namespace {

// Reflected Castagnoli polynomial: bit i of 0x1EDC6F41 moved to bit 31 − i.
constexpr uint32_t kCastagnoliReflected = 0x82F63B78u;

// table[b] = CRC register after shifting the byte b through eight rounds of the
// polynomial division, so one lookup advances the CRC by a whole byte.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1u) ? kCastagnoliReflected : 0u);
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

}  // namespace

uint32_t crc32c(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char c : bytes) {
    crc = (crc >> 8) ^ kCrc32cTable[(crc ^ static_cast<uint8_t>(c)) & 0xFFu];
  }
  return crc ^ 0xFFFFFFFFu;
}

uint32_t mask_crc32c(uint32_t crc) {
  constexpr uint32_t kMaskDelta = 0xA282EAD8u;
  return ((crc >> 15) | (crc << 17)) + kMaskDelta;
}

}  // namespace smol
