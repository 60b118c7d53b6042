// The TensorBoard Event message, encoded and decoded by hand in protobuf's wire format
// (docs/design.md §7), so that the engine needs no protobuf library.
//
// The fields used, from tensorboard/compat/proto/event.proto and summary.proto:
//   Event      { double wall_time = 1; int64 step = 2;
//                oneof what { string file_version = 3; Summary summary = 5;
//                             SessionLog session_log = 7; ... }
//                SourceMetadata source_metadata = 10; }
//   Summary    { repeated Value value = 1; }
//   Value      { string tag = 1; oneof value { float simple_value = 2; ... } }
//   SessionLog { SessionStatus status = 1; ... }   SessionStatus START = 1
//   SourceMetadata { string writer = 1; }  (names the program that wrote the file)
// (read from the descriptors of tensorboard 2.21's compat/proto/event_pb2 and summary_pb2).
// Wire format: each field is a varint key (field_number << 3 | wire_type) followed by a varint
// (type 0: int64, enum), 8 little-endian bytes (type 1: double), a varint length and bytes
// (type 2: string, nested message) or 4 little-endian bytes (type 5: float).
//
// The encoder writes exactly what protobuf's own serializer writes for these messages, so
// our files are byte-identical to the tensorboard package's: fields in field-number order,
// and proto3 implicit-presence fields (wall_time, step, tag) left out when they hold their
// default (0, 0, ""), while members of a oneof (file_version, summary, simple_value) are
// always written and source_metadata (a message field) whenever it is set. A negative step is the
// 10-byte varint of its two's complement.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace smol {

// One Summary.Value: its tag and, when the value is a simple_value, that float.
struct TensorBoardValue {
  std::string tag;
  bool has_simple_value = false;
  float simple_value = 0.0f;
};

enum class TensorBoardEventKind : uint8_t {
  FileVersion,   // first event of a file: file_version = "brain.Event:2"
  Summary,       // summary with values
  SessionStart,  // session_log { status: START }: readers drop events at step >= this one
  Other,         // any other member of Event.what (graph_def, log_message, ...); decode only
};

struct TensorBoardEvent {
  double wall_time = 0.0;
  int64_t step = 0;
  TensorBoardEventKind kind = TensorBoardEventKind::Summary;
  std::string file_version;              // kind == FileVersion
  std::vector<TensorBoardValue> values;  // kind == Summary
  std::string source_writer;             // source_metadata.writer; "" = no source_metadata
};

// Serialised Event bytes (the payload of one TFRecord).
std::string encode_tensorboard_event(const TensorBoardEvent& event);

// Parses Event bytes; unknown fields are skipped as protobuf does. Malformed bytes (a varint
// past the end, a length past the end, a deprecated group wire type) throw an Error that
// names `where`.
TensorBoardEvent decode_tensorboard_event(std::string_view bytes, const std::string& where);

}  // namespace smol
