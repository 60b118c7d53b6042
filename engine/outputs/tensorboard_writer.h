// TensorBoard event-file writer for a run's scalars (docs/design.md §7), so that `tensorboard
// --logdir RUN` and `wandb sync --sync-tensorboard RUN` show the curves with no Python in the
// engine.
//
// The file is `<dir>/events.out.tfevents.<unix seconds, 10 digits>.<hostname>` (the name
// TensorBoard's loader globs for; ".<n>" is appended if that name exists already, so a
// resumed run started within the same second never overwrites). It is a TFRecord file
// (tfrecord.h) of Event messages (tensorboard_event.h): first {wall_time, file_version
// "brain.Event:2", source_metadata{writer "smolengine"}}, then one Event per scalar
// {wall_time, step, Summary{Value{tag, simple_value}}}: byte for byte what the tensorboard
// package's EventFileWriter writes (and so torch.utils.tensorboard.SummaryWriter.add_scalar),
// except the writer name in the first event (tests/golden/outputs/ checks this).
// simple_value is a float, so values are stored rounded to float32.
//
// Records are buffered by stdio; the caller calls flush() after each group of scalars (one
// log step), so a killed run loses at most the group in flight and never leaves a record a
// reader would mistake for a whole one (every record carries CRCs of its length and data).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace smol {

class TensorBoardWriter {
 public:
  // Creates `dir` (and parents) if needed and opens a new event file in it. A
  // wall_time_override >= 0 replaces the clock everywhere (file name and every event), for
  // tests that compare bytes.
  explicit TensorBoardWriter(const std::string& dir, double wall_time_override = -1);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Appends one scalar event. wall_time < 0 means now (or the override).
  void add_scalar(const std::string& tag, double value, int64_t step, double wall_time = -1);

  // Appends a SessionLog START event at `step`: TensorBoard drops every event it has read
  // (from this file and the earlier files of the run) with step >= `step`. A run resumed from
  // the checkpoint at step k calls this with k + 1 so that the curves of the interrupted
  // attempt past the checkpoint do not double up with the re-run steps.
  void mark_restart(int64_t step, double wall_time = -1);

  // Hands buffered records to the operating system; throws if the write failed.
  void flush();

  const std::string& path() const { return path_; }

 private:
  double now(double wall_time) const;
  void write_record(const std::string& event_bytes);

  std::string path_;
  double wall_time_override_;
  std::FILE* file_ = nullptr;
};

// One scalar read back from an event file.
struct TensorBoardScalar {
  std::string tag;
  int64_t step = 0;
  double value = 0.0;  // the stored float32, widened
  double wall_time = 0.0;
};

// Every simple_value scalar of the event file at `path`, in file order, with both CRCs of
// every record verified (throws an Error naming the file otherwise). Other events (file
// version, session logs, non-scalar values) are skipped. For tests and inspection; the
// trainer never reads event files.
std::vector<TensorBoardScalar> read_tensorboard_scalars(const std::string& path);

}  // namespace smol
