// SIGINT / SIGTERM handling for the training loop (see stop_signals.h).
#include "engine/train/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "common/error.h"

namespace smol {
namespace {

// The one mutable file-local state (stop_signals.h says why): the first signal received, 0
// while none. Lock-free, so storing it from a handler is async-signal-safe.
std::atomic<int> received_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);
// Whether a StopSignals exists: set by its constructor only, never by a handler (the handlers are
// process-wide: two owners would fight).
std::atomic<bool> installed{false};

extern "C" void on_stop_signal(int signal) {
  int expected = 0;
  if (!received_signal.compare_exchange_strong(expected, signal)) _exit(128 + signal);
}

}  // namespace

StopSignals::StopSignals() {
  SMOL_CHECK(!installed.exchange(true), "StopSignals: only one may exist at a time");
  received_signal.store(0);
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // reads and writes in progress continue
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
  installed.store(false);
}

int StopSignals::requested() const {
  return received_signal.load();
}

const char* StopSignals::name(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "a signal";
  }
}

}  // namespace smol
