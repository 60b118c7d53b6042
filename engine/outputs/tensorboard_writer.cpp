// TensorBoard event-file writer and minimal scalar reader (see tensorboard_writer.h).
#include "engine/outputs/tensorboard_writer.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "common/error.h"
#include "engine/outputs/tensorboard_event.h"
#include "engine/outputs/tfrecord.h"

namespace smol {
namespace {

constexpr const char* kFileVersion = "brain.Event:2";
// source_metadata.writer of the first event, as tensorboard's own writer names itself there.
constexpr const char* kSourceWriter = "smolengine";

double clock_seconds() {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration<double>(since_epoch).count();
}

std::string host_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "localhost";
  return std::string(name.data());
}

// Opens `<dir>/events.out.tfevents.<secs>.<host>[.<n>]` with exclusive creation ("x"), so an
// existing file is never reopened or truncated.
std::FILE* open_new_event_file(const std::string& dir, double wall_time, std::string& path) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%010lld", static_cast<long long>(std::floor(wall_time)));
  const std::string base = dir + "/events.out.tfevents." + seconds + "." + host_name();
  for (int attempt = 0; attempt < 1000; ++attempt) {
    path = attempt == 0 ? base : base + "." + std::to_string(attempt);
    if (std::FILE* file = std::fopen(path.c_str(), "wbx")) return file;
    if (errno != EEXIST)
      throw_error("cannot create TensorBoard event file ", path, ": ", std::strerror(errno));
  }
  throw_error("cannot create TensorBoard event file ", base, ".*: 1000 names taken");
}

// `value` rounded to the nearest float as IEEE 754 does (out-of-range finite values become
// ±FLT_MAX or ±inf), without the undefined behaviour of static_cast<float> out of range.
float to_float32(double value) {
  constexpr double kFloatMax = std::numeric_limits<float>::max();
  if (!std::isfinite(value) || std::fabs(value) <= kFloatMax) return static_cast<float>(value);
  // Half an ulp above FLT_MAX (ulp 2^104) is the tie, which rounds to even: to infinity.
  const bool to_infinity = std::fabs(value) >= kFloatMax + std::ldexp(1.0, 103);
  const float magnitude =
      to_infinity ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::max();
  return std::signbit(value) ? -magnitude : magnitude;
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir, double wall_time_override)
    : wall_time_override_(wall_time_override) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  SMOL_CHECK(!error, "cannot create TensorBoard directory ", dir, ": ", error.message());
  const double start = now(-1);
  file_ = open_new_event_file(dir, start, path_);
  TensorBoardEvent header;
  header.wall_time = start;
  header.kind = TensorBoardEventKind::FileVersion;
  header.file_version = kFileVersion;
  header.source_writer = kSourceWriter;
  write_record(encode_tensorboard_event(header));
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

double TensorBoardWriter::now(double wall_time) const {
  if (wall_time >= 0) return wall_time;
  return wall_time_override_ >= 0 ? wall_time_override_ : clock_seconds();
}

void TensorBoardWriter::write_record(const std::string& event_bytes) {
  const std::string record = frame_tfrecord(event_bytes);
  SMOL_CHECK(std::fwrite(record.data(), 1, record.size(), file_) == record.size(),
             "error writing TensorBoard event file ", path_, " (disk full?)");
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step,
                                   double wall_time) {
  SMOL_CHECK(!tag.empty(), "TensorBoard scalar at step ", step, " has an empty tag");
  TensorBoardEvent event;
  event.wall_time = now(wall_time);
  event.step = step;
  event.kind = TensorBoardEventKind::Summary;
  event.values.push_back({tag, true, to_float32(value)});
  write_record(encode_tensorboard_event(event));
}

void TensorBoardWriter::mark_restart(int64_t step, double wall_time) {
  TensorBoardEvent event;
  event.wall_time = now(wall_time);
  event.step = step;
  event.kind = TensorBoardEventKind::SessionStart;
  write_record(encode_tensorboard_event(event));
}

void TensorBoardWriter::flush() {
  SMOL_CHECK(std::fflush(file_) == 0, "error flushing TensorBoard event file ", path_, ": ",
             std::strerror(errno));
}

std::vector<TensorBoardScalar> read_tensorboard_scalars(const std::string& path) {
  std::vector<TensorBoardScalar> scalars;
  const std::vector<std::string> records = read_tfrecords(path);
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string where = path + " record " + std::to_string(i);
    const TensorBoardEvent event = decode_tensorboard_event(records[i], where);
    if (event.kind != TensorBoardEventKind::Summary) continue;
    for (const TensorBoardValue& value : event.values) {
      if (!value.has_simple_value) continue;
      scalars.push_back({value.tag, event.step, value.simple_value, event.wall_time});
    }
  }
  return scalars;
}

}  // namespace smol
