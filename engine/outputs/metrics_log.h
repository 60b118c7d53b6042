// metrics.jsonl: the run's event log, one JSON object per line per event (docs/design.md §7).
//
// A line is {"kind": ..., "step": ..., "epoch": ..., "elapsed_seconds": ..., <scalars in the
// order given>, "extra": {...}}: scalars sit at the top level under HF Trainer's names (loss,
// learning_rate, grad_norm, eval_loss, ...; the caller chooses them) so that `jq` and pandas
// read the file as they would HF's log_history; "extra" (present only when not null) holds
// structured payloads such as a refactor's spectra. A scalar may not reuse one of the four
// fixed names or "extra" (a duplicate key would make the line ambiguous): that is an Error.
//
// Numbers: doubles are printed with the shortest representation that reads back to the same
// double (nlohmann's dtoa), step as an integer; a non-finite scalar (NaN, ±inf) is written as
// null, since JSON has no spelling for it and a null says "no value" to every reader.
//
// Durability: each write() appends the complete line including '\n' and flushes it, so a
// killed run leaves every finished line intact and at most one torn last line, which read()
// skips and an appending MetricsLog cuts off before writing. A resumed run first calls
// truncate_after_step(path, k) for its checkpoint step k (the events after k will be written
// again), then opens the log with append = true.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace smol {

struct LogEvent {
  std::string kind;  // "train" | "eval" | "refactor" | anything
  int64_t step = 0;
  double epoch = 0.0;
  double elapsed_seconds = 0.0;
  std::vector<std::pair<std::string, double>> scalars;  // written in this order
  nlohmann::json extra;                                 // written under "extra" unless null
};

class MetricsLog {
 public:
  // append = false starts a new file (truncating an old one); append = true continues an
  // existing file (resume), first cutting off a torn last line.
  MetricsLog(std::string path, bool append);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // Appends one line and flushes it.
  void write(const LogEvent& event);

  const std::string& path() const { return path_; }

  // The line `event` is written as (without the '\n').
  static std::string format_line(const LogEvent& event);

  // Every event of the file, in order. A torn last line (no '\n' and not valid JSON) is
  // skipped; any other line that is not a JSON object throws an Error naming file:line.
  static std::vector<nlohmann::json> read(const std::string& path);

  // Keeps the events whose "step" is <= `step` (and lines without a step), drops the rest and
  // a torn last line, by an atomic rewrite; kept lines are copied byte for byte. A missing
  // file is left missing. Returns the number of events dropped.
  static size_t truncate_after_step(const std::string& path, int64_t step);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace smol
