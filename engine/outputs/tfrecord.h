// TFRecord framing, the container of TensorBoard event files (docs/design.md §7).
//
// A file is a sequence of records, each
//   uint64 length (little-endian) | uint32 masked_crc32c(length bytes) |
//   length bytes of data          | uint32 masked_crc32c(data)
// (TensorFlow core/lib/io/record_writer.cc; the mask is in crc32c.h). The length CRC lets a
// reader reject a torn or garbled header before trusting it to size a read.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace smol {

// The framed bytes of one record holding `data`.
std::string frame_tfrecord(std::string_view data);

// Every record of the TFRecord file at `path`, both CRCs verified. A short header, a short
// body or a CRC mismatch throws an Error naming the file and the record's byte offset.
std::vector<std::string> read_tfrecords(const std::string& path);

}  // namespace smol
