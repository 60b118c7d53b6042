// The communicator implementations of kernels/communicator.h, each in its own file; the public
// way in is make_communicator (kernels/communicator_factory.cpp).
#pragma once

#include <memory>

#include "kernels/communicator.h"

namespace smol {

// World 1: every op a copy (through `backend`, so device memory works) or nothing.
std::unique_ptr<Communicator> make_single_communicator(Backend& backend, const LaunchInfo& launch);
// The cpu backend's: MPI over host memory. `launch` must be an MPI launch whose rank and world
// size match MPI_COMM_WORLD's.
std::unique_ptr<Communicator> make_mpi_communicator(const LaunchInfo& launch,
                                                    const CommunicatorOptions& options);

}  // namespace smol
