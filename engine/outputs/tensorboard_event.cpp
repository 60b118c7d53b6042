// Hand-written protobuf encoding and decoding of TensorBoard's Event (fields and rules in
// tensorboard_event.h).
#include "engine/outputs/tensorboard_event.h"

#include <bit>
#include <cstring>

#include "common/error.h"

namespace smol {
namespace {

// Wire types (protobuf encoding guide, "Message Structure").
constexpr uint32_t kWireVarint = 0;
constexpr uint32_t kWireFixed64 = 1;
constexpr uint32_t kWireLengthDelimited = 2;
constexpr uint32_t kWireFixed32 = 5;

// Field numbers (event.proto, summary.proto).
constexpr uint32_t kEventWallTime = 1;
constexpr uint32_t kEventStep = 2;
constexpr uint32_t kEventFileVersion = 3;
constexpr uint32_t kEventSummary = 5;
constexpr uint32_t kEventSessionLog = 7;
constexpr uint32_t kEventSourceMetadata = 10;
constexpr uint32_t kSourceMetadataWriter = 1;
constexpr uint32_t kSummaryValue = 1;
constexpr uint32_t kValueTag = 1;
constexpr uint32_t kValueSimpleValue = 2;
constexpr uint32_t kSessionLogStatus = 1;
constexpr uint64_t kSessionStatusStart = 1;

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_key(std::string& out, uint32_t field, uint32_t wire_type) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | wire_type);
}

void put_fixed(std::string& out, uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}

void put_length_delimited(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kWireLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

std::string encode_value(const TensorBoardValue& value) {
  std::string out;
  if (!value.tag.empty()) put_length_delimited(out, kValueTag, value.tag);
  if (value.has_simple_value) {  // a oneof member: written even when 0
    put_key(out, kValueSimpleValue, kWireFixed32);
    put_fixed(out, std::bit_cast<uint32_t>(value.simple_value), 4);
  }
  return out;
}

// Reads protobuf fields one at a time from a byte range; every overrun is an Error naming
// `where`.
class WireReader {
 public:
  WireReader(std::string_view bytes, const std::string& where) : bytes_(bytes), where_(where) {}

  bool done() const { return pos_ == bytes_.size(); }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      SMOL_CHECK(pos_ < bytes_.size(), where_, ": protobuf varint runs past the end");
      const auto byte = static_cast<uint8_t>(bytes_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    throw_error(where_, ": protobuf varint longer than 10 bytes");
  }

  uint64_t fixed(int bytes) {
    SMOL_CHECK(bytes_.size() - pos_ >= static_cast<size_t>(bytes), where_,
               ": protobuf fixed-width field runs past the end");
    uint64_t value = 0;
    for (int i = 0; i < bytes; ++i) {
      value |= static_cast<uint64_t>(static_cast<uint8_t>(bytes_[pos_++])) << (8 * i);
    }
    return value;
  }

  std::string_view length_delimited() {
    const uint64_t length = varint();
    SMOL_CHECK(length <= bytes_.size() - pos_, where_, ": protobuf field of ", length,
               " bytes runs past the end (", bytes_.size() - pos_, " left)");
    const std::string_view field = bytes_.substr(pos_, length);
    pos_ += length;
    return field;
  }

  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case kWireVarint:
        varint();
        return;
      case kWireFixed64:
        fixed(8);
        return;
      case kWireLengthDelimited:
        length_delimited();
        return;
      case kWireFixed32:
        fixed(4);
        return;
      default:
        throw_error(where_, ": unsupported protobuf wire type ", wire_type);
    }
  }

 private:
  std::string_view bytes_;
  const std::string& where_;
  size_t pos_ = 0;
};

// Reads the next key; returns {field number, wire type}.
std::pair<uint32_t, uint32_t> next_key(WireReader& reader) {
  const uint64_t key = reader.varint();
  return {static_cast<uint32_t>(key >> 3), static_cast<uint32_t>(key & 7)};
}

TensorBoardValue decode_value(std::string_view bytes, const std::string& where) {
  TensorBoardValue value;
  WireReader reader(bytes, where);
  while (!reader.done()) {
    const auto [field, wire] = next_key(reader);
    if (field == kValueTag && wire == kWireLengthDelimited) {
      value.tag = std::string(reader.length_delimited());
    } else if (field == kValueSimpleValue && wire == kWireFixed32) {
      value.has_simple_value = true;
      value.simple_value = std::bit_cast<float>(static_cast<uint32_t>(reader.fixed(4)));
    } else {
      reader.skip(wire);
    }
  }
  return value;
}

bool is_session_start(std::string_view bytes, const std::string& where) {
  WireReader reader(bytes, where);
  bool start = false;
  while (!reader.done()) {
    const auto [field, wire] = next_key(reader);
    if (field == kSessionLogStatus && wire == kWireVarint) {
      start = reader.varint() == kSessionStatusStart;
    } else {
      reader.skip(wire);
    }
  }
  return start;
}

}  // namespace

std::string encode_tensorboard_event(const TensorBoardEvent& event) {
  std::string out;
  // proto3 implicit presence: the serializer skips a double whose bits are all zero.
  const auto wall_bits = std::bit_cast<uint64_t>(event.wall_time);
  if (wall_bits != 0) {
    put_key(out, kEventWallTime, kWireFixed64);
    put_fixed(out, wall_bits, 8);
  }
  if (event.step != 0) {
    put_key(out, kEventStep, kWireVarint);
    put_varint(out, static_cast<uint64_t>(event.step));
  }
  switch (event.kind) {
    case TensorBoardEventKind::FileVersion:
      put_length_delimited(out, kEventFileVersion, event.file_version);
      break;
    case TensorBoardEventKind::Summary: {
      std::string summary;
      for (const TensorBoardValue& value : event.values) {
        put_length_delimited(summary, kSummaryValue, encode_value(value));
      }
      put_length_delimited(out, kEventSummary, summary);
      break;
    }
    case TensorBoardEventKind::SessionStart: {
      std::string session_log;
      put_key(session_log, kSessionLogStatus, kWireVarint);
      put_varint(session_log, kSessionStatusStart);
      put_length_delimited(out, kEventSessionLog, session_log);
      break;
    }
    case TensorBoardEventKind::Other:
      throw_error("encode_tensorboard_event: kind Other is for decoded events only");
  }
  if (!event.source_writer.empty()) {
    std::string source_metadata;
    put_length_delimited(source_metadata, kSourceMetadataWriter, event.source_writer);
    put_length_delimited(out, kEventSourceMetadata, source_metadata);
  }
  return out;
}

TensorBoardEvent decode_tensorboard_event(std::string_view bytes, const std::string& where) {
  TensorBoardEvent event;
  event.kind = TensorBoardEventKind::Other;
  WireReader reader(bytes, where);
  while (!reader.done()) {
    const auto [field, wire] = next_key(reader);
    if (field == kEventWallTime && wire == kWireFixed64) {
      event.wall_time = std::bit_cast<double>(reader.fixed(8));
    } else if (field == kEventStep && wire == kWireVarint) {
      event.step = static_cast<int64_t>(reader.varint());
    } else if (field == kEventFileVersion && wire == kWireLengthDelimited) {
      event.kind = TensorBoardEventKind::FileVersion;
      event.file_version = std::string(reader.length_delimited());
    } else if (field == kEventSummary && wire == kWireLengthDelimited) {
      event.kind = TensorBoardEventKind::Summary;
      WireReader summary(reader.length_delimited(), where);
      while (!summary.done()) {
        const auto [summary_field, summary_wire] = next_key(summary);
        if (summary_field == kSummaryValue && summary_wire == kWireLengthDelimited) {
          event.values.push_back(decode_value(summary.length_delimited(), where));
        } else {
          summary.skip(summary_wire);
        }
      }
    } else if (field == kEventSessionLog && wire == kWireLengthDelimited) {
      event.kind = is_session_start(reader.length_delimited(), where)
                       ? TensorBoardEventKind::SessionStart
                       : TensorBoardEventKind::Other;
    } else if (field == kEventSourceMetadata && wire == kWireLengthDelimited) {
      WireReader source_metadata(reader.length_delimited(), where);
      while (!source_metadata.done()) {
        const auto [metadata_field, metadata_wire] = next_key(source_metadata);
        if (metadata_field == kSourceMetadataWriter && metadata_wire == kWireLengthDelimited) {
          event.source_writer = std::string(source_metadata.length_delimited());
        } else {
          source_metadata.skip(metadata_wire);
        }
      }
    } else {
      reader.skip(wire);
    }
  }
  return event;
}

}  // namespace smol
