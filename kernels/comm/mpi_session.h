// MpiSession: MPI's process-wide state (initialised at most once per process, finalised at most
// once, never restarted) behind a reference count. Communicators that need MPI hold a session;
// the last holder to let go finalises MPI — so a production run finalises when its communicator
// is destroyed, while a test binary that holds its own session can create and destroy several
// communicators. A process that never asks for a session (a single-process run) never touches
// MPI. After abort() nothing is finalised (MPI_Abort does not return).
//
// This header does not include mpi.h, so nvcc-compiled sources (kernels/cuda/) can bootstrap
// through it without MPI's compile flags.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace smol::comm {

class MpiSession {
 public:
  // Initialises MPI (MPI_Init_thread, MPI_THREAD_FUNNELED) on the first call in the process;
  // later calls share it. An Error when MPI was finalised already (it cannot start again).
  static std::shared_ptr<MpiSession> acquire();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }  // in MPI_COMM_WORLD
  int size() const { return size_; }

  // MPI_Ibcast of `bytes` bytes over MPI_COMM_WORLD, waited for at most `timeout_seconds` (an
  // Error naming `what` after that).
  void broadcast_bytes(void* data, size_t bytes, int root, double timeout_seconds,
                       const std::string& what) const;
  // Every rank's string in rank order (lengths may differ), with the same deadline.
  std::vector<std::string> all_gather_strings(const std::string& bytes, double timeout_seconds,
                                              const std::string& what) const;
  // MPI_Abort on MPI_COMM_WORLD.
  [[noreturn]] static void abort(int exit_code);

 private:
  struct Key {};

 public:
  explicit MpiSession(Key);

 private:
  bool owns_ = false;  // this session initialised MPI, so it finalises it
  int rank_ = 0, size_ = 1;
};

}  // namespace smol::comm
