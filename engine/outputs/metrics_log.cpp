// metrics.jsonl writer, reader and resume truncation (format and durability in metrics_log.h).
#include "engine/outputs/metrics_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_set>

#include "common/atomic_file.h"
#include "common/error.h"

namespace smol {
namespace {

// A JSON value for a double: the number, or null when it is not finite.
nlohmann::ordered_json finite_or_null(double value) {
  if (!std::isfinite(value)) return nullptr;
  return value;
}

// The file split at '\n': complete lines (without the '\n') and the bytes after the last
// '\n' (a torn line when non-empty).
struct JsonlFile {
  std::vector<std::string> lines;
  std::string torn_tail;
};

JsonlFile load_jsonl(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SMOL_CHECK(in.good(), "cannot open ", path);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  JsonlFile file;
  size_t begin = 0;
  for (size_t newline = bytes.find('\n'); newline != std::string::npos;
       newline = bytes.find('\n', begin)) {
    file.lines.push_back(bytes.substr(begin, newline - begin));
    begin = newline + 1;
  }
  file.torn_tail = bytes.substr(begin);
  return file;
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

// Parses a complete line; throws naming path:line_number when it is not a JSON object.
nlohmann::json parse_line(const std::string& line, const std::string& path, size_t line_number) {
  nlohmann::json event = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  SMOL_CHECK(event.is_object(), path, ":", line_number,
             ": not a JSON object: ", line.substr(0, 80));
  return event;
}

// The torn tail as an event when a write was cut exactly before its '\n' (the object is
// whole), else null: the tail is a partial line to drop.
nlohmann::json parse_tail(const std::string& tail) {
  if (tail.empty() || is_blank(tail)) return nullptr;
  nlohmann::json event = nlohmann::json::parse(tail, nullptr, /*allow_exceptions=*/false);
  return event.is_object() ? event : nlohmann::json(nullptr);
}

}  // namespace

std::string MetricsLog::format_line(const LogEvent& event) {
  nlohmann::ordered_json line;
  line["kind"] = event.kind;
  line["step"] = event.step;
  line["epoch"] = finite_or_null(event.epoch);
  line["elapsed_seconds"] = finite_or_null(event.elapsed_seconds);
  for (const auto& [name, value] : event.scalars) {
    SMOL_CHECK(!name.empty(), "metrics event '", event.kind, "' at step ", event.step,
               ": a scalar has an empty name");
    SMOL_CHECK(!line.contains(name) && name != "extra", "metrics event '", event.kind, "' at step ",
               event.step, ": scalar '", name, "' repeats a name already in the line (or 'extra')");
    line[name] = finite_or_null(value);
  }
  if (!event.extra.is_null()) line["extra"] = event.extra;
  try {
    return line.dump();
  } catch (const nlohmann::json::exception& e) {  // invalid UTF-8 in a name or string
    throw_error("metrics event '", event.kind, "' at step ", event.step,
                ": cannot be written as JSON: ", e.what());
  }
}

MetricsLog::MetricsLog(std::string path, bool append) : path_(std::move(path)) {
  if (append && std::filesystem::exists(path_)) {
    const JsonlFile existing = load_jsonl(path_);
    if (!existing.torn_tail.empty()) {
      if (!parse_tail(existing.torn_tail).is_null()) {
        // The object is whole; only its '\n' is missing. Supply it below.
        file_ = std::fopen(path_.c_str(), "ab");
        SMOL_CHECK(file_ != nullptr, "cannot open ", path_, ": ", std::strerror(errno));
        SMOL_CHECK(std::fputc('\n', file_) != EOF && std::fflush(file_) == 0, "error writing ",
                   path_);
        return;
      }
      std::error_code error;
      const auto size = std::filesystem::file_size(path_, error);
      if (!error) std::filesystem::resize_file(path_, size - existing.torn_tail.size(), error);
      SMOL_CHECK(!error, "cannot cut the torn last line of ", path_, ": ", error.message());
    }
  }
  file_ = std::fopen(path_.c_str(), append ? "ab" : "wb");
  SMOL_CHECK(file_ != nullptr, "cannot open ", path_, " for writing: ", std::strerror(errno));
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void MetricsLog::write(const LogEvent& event) {
  const std::string line = format_line(event) + '\n';
  SMOL_CHECK(
      std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0,
      "error writing ", path_, " (disk full?)");
}

std::vector<nlohmann::json> MetricsLog::read(const std::string& path) {
  const JsonlFile file = load_jsonl(path);
  std::vector<nlohmann::json> events;
  for (size_t i = 0; i < file.lines.size(); ++i) {
    if (is_blank(file.lines[i])) continue;
    events.push_back(parse_line(file.lines[i], path, i + 1));
  }
  if (nlohmann::json tail = parse_tail(file.torn_tail); !tail.is_null()) {
    events.push_back(std::move(tail));
  }
  return events;
}

size_t MetricsLog::truncate_after_step(const std::string& path, int64_t step) {
  if (!std::filesystem::exists(path)) return 0;
  JsonlFile file = load_jsonl(path);
  if (!parse_tail(file.torn_tail).is_null()) file.lines.push_back(file.torn_tail);
  std::string kept;
  size_t dropped = 0;
  for (size_t i = 0; i < file.lines.size(); ++i) {
    const std::string& line = file.lines[i];
    if (is_blank(line)) continue;
    const nlohmann::json event = parse_line(line, path, i + 1);
    if (event.contains("step")) {
      SMOL_CHECK(event["step"].is_number_integer(), path, ":", i + 1,
                 ": \"step\" is not an integer");
      if (event["step"].get<int64_t>() > step) {
        ++dropped;
        continue;
      }
    }
    kept += line;
    kept += '\n';
  }
  write_file_atomically(path, kept);
  return dropped;
}

}  // namespace smol
