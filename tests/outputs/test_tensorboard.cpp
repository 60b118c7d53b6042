// TensorBoard event files against a fixture written by the tensorboard package itself
// (tests/golden/outputs/make_tensorboard_fixture.py): our reader gets its exact values, and
// our writer, fed the same scalars and wall times, writes the same bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/error.h"
#include "engine/outputs/tensorboard_event.h"
#include "engine/outputs/tensorboard_writer.h"
#include "engine/outputs/tfrecord.h"
#include "outputs_test_util.h"

namespace smol {
namespace {

struct FixtureScalar {
  std::string tag;
  double value;  // the double the script passed (NaN / inf spelled as strings in JSON)
  uint32_t float32_bits;
  int64_t step;
  double wall_time;
};

struct Fixture {
  double header_wall_time;
  std::vector<FixtureScalar> scalars;
  int64_t restart_step;
  double restart_wall_time;
  std::vector<FixtureScalar> scalars_after_restart;
};

std::vector<FixtureScalar> parse_scalars(const nlohmann::json& list) {
  std::vector<FixtureScalar> scalars;
  for (const nlohmann::json& entry : list) {
    const nlohmann::json& value = entry["value"];
    scalars.push_back({entry["tag"],
                       value.is_string() ? std::strtod(value.get<std::string>().c_str(), nullptr)
                                         : value.get<double>(),
                       entry["float32_bits"], entry["step"], entry["wall_time"]});
  }
  return scalars;
}

Fixture load_fixture() {
  std::ifstream in(test::golden("scalars.json"));
  EXPECT_TRUE(in.good()) << "missing fixture scalars.json";
  const nlohmann::json json = nlohmann::json::parse(in);
  return {json["header_wall_time"], parse_scalars(json["scalars"]), json["restart"]["step"],
          json["restart"]["wall_time"], parse_scalars(json["scalars_after_restart"])};
}

// Writes the fixture's scalars through our writer; returns the file's path.
std::string write_like_fixture(const Fixture& fixture, const std::string& dir) {
  TensorBoardWriter writer(dir, fixture.header_wall_time);
  for (const FixtureScalar& s : fixture.scalars) {
    writer.add_scalar(s.tag, s.value, s.step, s.wall_time);
  }
  writer.flush();
  writer.mark_restart(fixture.restart_step, fixture.restart_wall_time);
  for (const FixtureScalar& s : fixture.scalars_after_restart) {
    writer.add_scalar(s.tag, s.value, s.step, s.wall_time);
  }
  writer.flush();
  return writer.path();
}

TEST(TensorBoard, ReaderGetsThePackagesExactValues) {
  const Fixture fixture = load_fixture();
  std::vector<FixtureScalar> expected = fixture.scalars;
  expected.insert(expected.end(), fixture.scalars_after_restart.begin(),
                  fixture.scalars_after_restart.end());
  const std::vector<TensorBoardScalar> read =
      read_tensorboard_scalars(test::golden("scalars.tfevents"));
  ASSERT_EQ(read.size(), expected.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].tag, expected[i].tag) << i;
    EXPECT_EQ(read[i].step, expected[i].step) << i;
    // Bit equality: the stored float32 (NaN, -0, denormal and inf included), exactly.
    EXPECT_EQ(std::bit_cast<uint32_t>(static_cast<float>(read[i].value)), expected[i].float32_bits)
        << expected[i].tag << " at step " << expected[i].step;
    EXPECT_EQ(read[i].wall_time, expected[i].wall_time) << i;
  }
  // The header is the package's own: file version and wall time.
  const std::vector<std::string> records = read_tfrecords(test::golden("scalars.tfevents"));
  const TensorBoardEvent header = decode_tensorboard_event(records.at(0), "fixture header");
  EXPECT_EQ(header.kind, TensorBoardEventKind::FileVersion);
  EXPECT_EQ(header.file_version, "brain.Event:2");
  EXPECT_EQ(header.wall_time, fixture.header_wall_time);
  EXPECT_EQ(header.source_writer, "tensorboard.summary.writer.event_file_writer");
  const TensorBoardEvent restart =
      decode_tensorboard_event(records.at(1 + fixture.scalars.size()), "fixture restart");
  EXPECT_EQ(restart.kind, TensorBoardEventKind::SessionStart);
  EXPECT_EQ(restart.step, fixture.restart_step);
}

TEST(TensorBoard, WriterReproducesThePackagesBytes) {
  const Fixture fixture = load_fixture();
  test::ScratchDir dir;
  const std::string ours_path = write_like_fixture(fixture, dir.path().string());
  if (const char* keep = std::getenv("SMOL_OUTPUTS_KEEP_DIR")) {  // for the --check run by hand
    std::filesystem::copy_file(ours_path, std::string(keep) + "/smolengine.tfevents",
                               std::filesystem::copy_options::overwrite_existing);
  }
  const std::string ours = test::read_bytes(ours_path);
  const std::string theirs = test::read_bytes(test::golden("scalars.tfevents"));
  const std::vector<std::string> our_records = read_tfrecords(ours_path);
  const std::vector<std::string> their_records = read_tfrecords(test::golden("scalars.tfevents"));
  ASSERT_EQ(our_records.size(), their_records.size());

  // The first event differs only in source_metadata.writer, which names the program that
  // wrote the file (Event field 10 = key 0x52, SourceMetadata.writer field 1 = key 0x0A).
  const std::string their_writer = "tensorboard.summary.writer.event_file_writer";
  const std::string our_writer = "smolengine";
  const std::string their_tail = std::string("\x52") + static_cast<char>(2 + their_writer.size()) +
                                 "\x0a" + static_cast<char>(their_writer.size()) + their_writer;
  const std::string our_tail = std::string("\x52") + static_cast<char>(2 + our_writer.size()) +
                               "\x0a" + static_cast<char>(our_writer.size()) + our_writer;
  const std::string& their_header = their_records[0];
  ASSERT_GT(their_header.size(), their_tail.size());
  const std::string common_prefix = their_header.substr(0, their_header.size() - their_tail.size());
  EXPECT_EQ(their_header, common_prefix + their_tail);
  EXPECT_EQ(our_records[0], common_prefix + our_tail);

  // Every other record, framing and CRCs included, is byte-identical.
  const size_t our_header_bytes = 16 + our_records[0].size();
  const size_t their_header_bytes = 16 + their_records[0].size();
  EXPECT_TRUE(ours.substr(our_header_bytes) == theirs.substr(their_header_bytes))
      << "records after the header differ";
  for (size_t i = 1; i < our_records.size(); ++i) {
    EXPECT_TRUE(our_records[i] == their_records[i]) << "record " << i;
  }
}

TEST(TensorBoard, FileNameIsTimestampAndHostAndNeverReused) {
  test::ScratchDir dir;
  const std::string sub = dir.file("tb/nested");  // created on demand
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  TensorBoardWriter first(sub, 1700000000.75);
  first.add_scalar("loss", 1.0, 1);
  first.flush();
  EXPECT_EQ(std::filesystem::path(first.path()).filename().string(),
            std::string("events.out.tfevents.1700000000.") + host);
  TensorBoardWriter second(sub, 1700000000.75);  // same second: a new name, first kept
  second.flush();
  EXPECT_NE(second.path(), first.path());
  EXPECT_EQ(read_tensorboard_scalars(first.path()).size(), 1u);
  EXPECT_EQ(read_tensorboard_scalars(second.path()).size(), 0u);
  EXPECT_THROW(first.add_scalar("", 1.0, 2), Error);
}

TEST(TensorBoard, ReaderRejectsCorruptionWithTheOffset) {
  const std::string good = test::read_bytes(test::golden("scalars.tfevents"));
  test::ScratchDir dir;
  const std::string path = dir.file("events.out.tfevents.bad");
  const size_t header_bytes = 16 + read_tfrecords(test::golden("scalars.tfevents"))[0].size();

  std::string bad_data = good;
  bad_data[header_bytes + 12 + 5] ^= 0x01;  // a data byte of the second record
  test::write_bytes(path, bad_data);
  try {
    read_tensorboard_scalars(path);
    FAIL() << "a flipped data byte must be caught";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("record at byte " + std::to_string(header_bytes) +
                                         " has a bad data CRC"),
              std::string::npos)
        << e.what();
  }

  std::string bad_length = good;
  bad_length[header_bytes] ^= 0x01;
  test::write_bytes(path, bad_length);
  EXPECT_THROW(read_tensorboard_scalars(path), Error);

  test::write_bytes(path, good.substr(0, good.size() - 3));  // a torn last record
  EXPECT_THROW(read_tensorboard_scalars(path), Error);
  test::write_bytes(path, good.substr(0, header_bytes + 5));  // a torn header
  EXPECT_THROW(read_tensorboard_scalars(path), Error);
  EXPECT_THROW(read_tensorboard_scalars(dir.file("missing")), Error);
}

TEST(TensorBoard, EventRoundTripAndMalformedBytes) {
  TensorBoardEvent event;
  event.wall_time = 1.5;
  event.step = -1;  // 10-byte varint
  event.values = {{"a", true, 0.0f}, {"", true, -2.0f}};
  const std::string bytes = encode_tensorboard_event(event);
  const TensorBoardEvent decoded = decode_tensorboard_event(bytes, "round trip");
  EXPECT_EQ(decoded.step, -1);
  EXPECT_EQ(decoded.wall_time, 1.5);
  ASSERT_EQ(decoded.values.size(), 2u);
  EXPECT_EQ(decoded.values[0].tag, "a");
  EXPECT_TRUE(decoded.values[0].has_simple_value);  // a oneof member, written though 0
  EXPECT_EQ(decoded.values[1].simple_value, -2.0f);
  // Step 0 and wall time 0 are proto3 defaults and are left out: only the summary remains.
  TensorBoardEvent zero;
  zero.values = {{"t", true, 1.0f}};
  EXPECT_EQ(encode_tensorboard_event(zero)[0], '\x2a');  // key of field 5, length-delimited
  // A cut inside a field is an error; a cut between top-level fields (after the 9 bytes of
  // wall_time, after the 11 of step) is a shorter valid message, as for protobuf itself.
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    if (cut == 9 || cut == 20) {
      EXPECT_NO_THROW(decode_tensorboard_event(bytes.substr(0, cut), "cut")) << cut;
    } else {
      EXPECT_THROW(decode_tensorboard_event(bytes.substr(0, cut), "cut"), Error) << cut;
    }
  }
  EXPECT_THROW(decode_tensorboard_event(std::string("\x0b", 1), "group"), Error);
}

}  // namespace
}  // namespace smol
