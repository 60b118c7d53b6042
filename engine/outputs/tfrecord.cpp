// TFRecord framing and unframing (format in tfrecord.h).
#include "engine/outputs/tfrecord.h"

#include <cstdint>
#include <fstream>
#include <iterator>

#include "common/error.h"
#include "engine/outputs/crc32c.h"

namespace smol {
namespace {

constexpr size_t kLengthBytes = 8;
constexpr size_t kCrcBytes = 4;

void append_little_endian(std::string& out, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFFu));
}

uint64_t load_little_endian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    value |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  }
  return value;
}

}  // namespace

std::string frame_tfrecord(std::string_view data) {
  std::string record;
  record.reserve(kLengthBytes + 2 * kCrcBytes + data.size());
  append_little_endian(record, data.size(), kLengthBytes);
  append_little_endian(record, mask_crc32c(crc32c(record)), kCrcBytes);
  record.append(data);
  append_little_endian(record, mask_crc32c(crc32c(data)), kCrcBytes);
  return record;
}

std::vector<std::string> read_tfrecords(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SMOL_CHECK(in.good(), "cannot open TFRecord file ", path);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string_view bytes(file);

  std::vector<std::string> records;
  size_t offset = 0;
  while (offset < bytes.size()) {
    SMOL_CHECK(bytes.size() - offset >= kLengthBytes + kCrcBytes, path, ": record at byte ", offset,
               " has a truncated header (", bytes.size() - offset, " bytes left)");
    const std::string_view length_bytes = bytes.substr(offset, kLengthBytes);
    const auto length_crc =
        static_cast<uint32_t>(load_little_endian(bytes.substr(offset + kLengthBytes, kCrcBytes)));
    SMOL_CHECK(length_crc == mask_crc32c(crc32c(length_bytes)), path, ": record at byte ", offset,
               " has a bad length CRC");
    const uint64_t length = load_little_endian(length_bytes);
    const size_t body = offset + kLengthBytes + kCrcBytes;
    SMOL_CHECK(length <= bytes.size() - body && bytes.size() - body - length >= kCrcBytes, path,
               ": record at byte ", offset, " claims ", length, " data bytes but the file has ",
               bytes.size() - body, " left (truncated?)");
    const std::string_view data = bytes.substr(body, length);
    const auto data_crc =
        static_cast<uint32_t>(load_little_endian(bytes.substr(body + length, kCrcBytes)));
    SMOL_CHECK(data_crc == mask_crc32c(crc32c(data)), path, ": record at byte ", offset,
               " has a bad data CRC");
    records.emplace_back(data);
    offset = body + length + kCrcBytes;
  }
  return records;
}

}  // namespace smol
