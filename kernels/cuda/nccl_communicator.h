// The nccl communicator (kernels/cuda/nccl_communicator.cu), built twice like every cuda source:
// against libnccl (make_nccl_communicator, SMOL_HAVE_CUDA) and against cuda-emu's NCCL over MPI
// (make_emu_nccl_communicator, SMOL_HAVE_EMU). make_communicator picks one by backend name.
#pragma once

#include <memory>

#include "kernels/communicator.h"

namespace smol {

std::unique_ptr<Communicator> make_nccl_communicator(Backend& backend, const LaunchInfo& launch,
                                                     const CommunicatorOptions& options);
std::unique_ptr<Communicator> make_emu_nccl_communicator(Backend& backend, const LaunchInfo& launch,
                                                         const CommunicatorOptions& options);

}  // namespace smol
