// Deadline waits on MPI requests (mpi_wait.h).
#include "kernels/comm/mpi_wait.h"

#include <algorithm>
#include <thread>

#include "common/error.h"

namespace smol::comm {

void mpi_check(int status, const std::string& what) {
  if (status == MPI_SUCCESS) return;
  char message[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, message, &length);
  throw_error(what, ": MPI error: ", std::string(message, static_cast<size_t>(length)));
}

bool wait_until(MPI_Request& request, Clock::time_point deadline) {
  // Start with a busy poll (small collectives finish in microseconds), then back off to 1 ms
  // sleeps so a rank waiting for a slow peer does not burn its core.
  auto pause = std::chrono::microseconds(0);
  for (;;) {
    int done = 0;
    mpi_check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) return true;
    if (Clock::now() >= deadline) return false;
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    pause = std::min(pause + std::chrono::microseconds(20), std::chrono::microseconds(1000));
  }
}

Clock::time_point deadline_after(double seconds) {
  const auto span = std::chrono::duration<double>(std::min(seconds, 1e9));
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(span);
}

void throw_timeout(int rank, int world, const std::string& op, double seconds) {
  throw_error("rank ", rank, " of ", world, ": ", op, " did not complete within ", seconds,
              " s: a rank died or is stuck");
}

}  // namespace smol::comm
