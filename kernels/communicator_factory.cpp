// make_communicator: the communicator for a backend and a launch (kernels/communicator.h),
// chosen by the backend's name ("cpu", "cuda", "cuda:N", "cuda-emu") like make_backend chooses
// backends by device name.
#include "kernels/comm/communicators.h"
#include "kernels/communicator.h"
#if SMOL_HAVE_CUDA || SMOL_HAVE_EMU
#include "kernels/cuda/nccl_communicator.h"
#endif

namespace smol {

std::unique_ptr<Communicator> make_communicator(Backend& backend, const LaunchInfo& launch,
                                                const CommunicatorOptions& options) {
  if (!launch.distributed()) return make_single_communicator(backend, launch);
  const std::string name = backend.name();
  if (name == "cpu") {
    SMOL_CHECK(launch.launcher == LaunchInfo::Launcher::Mpi,
               "cpu data parallelism runs over MPI: launch with mpirun -np N (RANK/WORLD_SIZE "
               "alone serve NCCL on cuda); this process was started by ",
               launch.source);
    return make_mpi_communicator(launch, options);
  }
#if SMOL_HAVE_EMU
  if (name == "cuda-emu") return make_emu_nccl_communicator(backend, launch, options);
#endif
#if SMOL_HAVE_CUDA
  if (name == "cuda" || name.rfind("cuda:", 0) == 0)
    return make_nccl_communicator(backend, launch, options);
#endif
  throw_error("no communicator for backend '", name, "' in this build (rank ", launch.rank, " of ",
              launch.world_size, ")");
}

}  // namespace smol
