// CRC-32C (Castagnoli) and the masked form TFRecord files frame every record with
// (docs/design.md §7: TensorBoard event files).
//
// CRC-32C is the reflected CRC with polynomial 0x1EDC6F41 (reflected 0x82F63B78), initial
// value 0xFFFFFFFF and final xor 0xFFFFFFFF; check value crc32c("123456789") = 0xE3069283.
// TFRecord stores a "masked" CRC so that a CRC of data that itself contains CRCs is not
// trivially related to them: mask(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2^32), the
// rotation and constant of TensorFlow's core/lib/hash/crc32c.h.
//
// A byte-at-a-time table lookup: event files are a few hundred bytes per log step, so the
// hardware instruction would save nothing measurable and cost portability.
#pragma once

#include <cstdint>
#include <string_view>

namespace smol {

// CRC-32C of `bytes`.
uint32_t crc32c(std::string_view bytes);

// The masked CRC TFRecord stores: ((crc >> 15) | (crc << 17)) + 0xA282EAD8.
uint32_t mask_crc32c(uint32_t crc);

}  // namespace smol
