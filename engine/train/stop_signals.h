// SIGINT / SIGTERM during `smolengine train` (docs/run-directory.md "Crash safety"): the first
// signal asks the run to stop at the next safe point (the current step, with its logging,
// evaluation and save, finishes; then a checkpoint is written and the process exits with
// 128 + the signal: 130 for SIGINT, 143 for SIGTERM); a second signal ends the process at once
// with the same code (_exit, no checkpoint: the last complete one stays).
//
// The handler only stores the signal number into a lock-free std::atomic<int> and calls _exit
// on the second signal; both are async-signal-safe. That atomic is the one file-local static
// of stop_signals.cpp, because a signal handler cannot reach an object; StopSignals owns it
// (one instance at a time, checked) and is the only way the code reads it.
#pragma once

#include <signal.h>

namespace smol {

class StopSignals {
 public:
  // Installs the handlers for SIGINT and SIGTERM; the destructor restores the previous ones.
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The first signal received (SIGINT or SIGTERM), or 0.
  int requested() const;
  // The conventional exit code for `signal`: 128 + signal.
  static int exit_code(int signal) { return 128 + signal; }
  // "SIGINT", "SIGTERM", or "signal N".
  static const char* name(int signal);

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

}  // namespace smol
