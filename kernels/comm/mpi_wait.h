// Waiting for MPI requests with a deadline: what keeps a rank from hanging forever when a peer
// died or stopped calling collectives (kernels/communicator.h, "A peer that dies or hangs").
#pragma once

#include <mpi.h>

#include <chrono>
#include <string>

namespace smol::comm {

using Clock = std::chrono::steady_clock;

// Throws smol::Error "<what>: MPI error: <MPI's message>" when status is not MPI_SUCCESS
// (the communicators set MPI_ERRORS_RETURN so errors come back as codes).
void mpi_check(int status, const std::string& what);

// Polls `request` (MPI_Test, sleeping a little more between polls the longer it takes) until it
// completes — true — or `deadline` passes — false, and the request is left active.
bool wait_until(MPI_Request& request, Clock::time_point deadline);

Clock::time_point deadline_after(double seconds);

// "rank R of N: <op> did not complete within T s: a rank died or is stuck"
[[noreturn]] void throw_timeout(int rank, int world, const std::string& op, double seconds);

}  // namespace smol::comm
