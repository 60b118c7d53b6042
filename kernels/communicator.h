// Communicator: the collectives data parallelism needs (docs/design.md §8). The Backend stays
// collective-free; the trainer holds a Communicator beside it. Implementations:
//   single  one process (world 1): every op is a copy or nothing; needs no launcher, no MPI
//   mpi     cpu backend: OpenMPI on host memory (how multi-process training is tested here)
//   nccl    cuda backend: NCCL on device memory, enqueued on the backend's stream (or a side
//           stream inside an overlap region); under cuda-emu the same source runs with the NCCL
//           entry points answered by MPI (kernels/emu/emu_nccl.h)
//
// Contracts every implementation keeps:
//  - Every rank calls the same ops in the same order with tensors of the same numel and dtype
//    (F32 everywhere; BF16 on nccl). Buffers are flat: a Tensor's numel() elements, any shape.
//  - Ordering: an op sees every backend op enqueued before it and is seen by every backend op
//    enqueued after it (on cuda: same stream, no host wait; on cpu: it returns when done).
//  - Overlap region: between begin_overlap() and end_overlap() ops are started, not finished
//    (nccl: on a side stream that first waits for the work enqueued so far; mpi: nonblocking
//    MPI_I* requests). Their buffers must not be read or written until end_overlap(), which
//    makes later backend ops see every result. This is how gradient buckets are reduced while
//    the backward of earlier layers still runs.
//  - Deterministic for a fixed world size (a fixed reduction order per element).
//  - A peer that dies or hangs does not hang the others forever: an op (or end_overlap) that has
//    not completed after timeout_seconds throws smol::Error naming the op, this rank and the
//    timeout; abort() then tears the job down (MPI_Abort / ncclCommAbort).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace smol {

enum class ReduceOp : uint8_t { Sum, Max };

// Who started this process and where it sits in the job (docs/design.md §8 "Launch").
struct LaunchInfo {
  enum class Launcher : uint8_t {
    None,  // no launcher variables, or a world of 1: a single process
    Mpi,   // mpirun / mpiexec / srun with PMI(x): OMPI_COMM_WORLD_*, PMI_*, PMIX_RANK
    Env,   // torchrun-style RANK / WORLD_SIZE / LOCAL_RANK, or Slurm's SLURM_PROCID / ...
  };
  Launcher launcher = Launcher::None;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;       // rank among the processes of this node: picks the GPU
  std::string source;       // the variables that said so, for messages ("OMPI_COMM_WORLD_*")
  std::string master_addr;  // MASTER_ADDR (Env launcher: the TCP rendezvous host)
  int master_port = 0;      // MASTER_PORT
  bool distributed() const { return world_size > 1; }
};

// Reads the launcher's variables through `getenv` (std::getenv in production). When several
// families are set they must agree (same rank and world size), else an Error naming both
// variables; also an Error for a rank outside [0, world size), a non-numeric value, or an Env
// launch of world > 1 without MASTER_ADDR / MASTER_PORT.
LaunchInfo parse_launch_environment(const std::function<const char*(const char*)>& getenv);
LaunchInfo read_launch_environment();

struct CommunicatorOptions {
  double timeout_seconds = 1800;  // HF TrainingArguments.ddp_timeout's default
  // How ranks share the NCCL unique id: "auto" (MPI when launched by MPI, else TCP on
  // MASTER_ADDR:MASTER_PORT), "mpi" or "tcp".
  std::string nccl_bootstrap = "auto";
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;  // "single", "mpi", "nccl"
  virtual int rank() const = 0;          // 0 .. world_size()−1
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;

  // In place: every rank's x becomes the reduction over ranks. F32 (BF16 where the communicator
  // allows it) or F64 (device scalars kept in double, reduced in double).
  virtual void all_reduce(Tensor x, ReduceOp op) = 0;
  // in [world_size · n] on every rank; out [n] on rank i gets the reduction of block i of in.
  virtual void reduce_scatter(Tensor out, const Tensor& in, ReduceOp op) = 0;
  // in [n] on every rank; out [world_size · n] gets rank i's in at block i. In place when in is
  // block rank() of out.
  virtual void all_gather(Tensor out, const Tensor& in) = 0;
  // In place: every rank's x becomes root's x.
  virtual void broadcast(Tensor x, int root) = 0;
  virtual void barrier() = 0;

  virtual void begin_overlap() = 0;
  virtual void end_overlap() = 0;

  // Host values (returns when done; a host wait on cuda): metrics, token counts, the loss.
  virtual void all_reduce_host(std::span<double> values, ReduceOp op) = 0;
  // Every rank's `bytes`, in rank order, on every rank (lengths may differ).
  virtual std::vector<std::string> all_gather_host(const std::string& bytes) = 0;

  // Tears the whole job down after an error on this rank (the caller has printed its message).
  // Never returns.
  [[noreturn]] virtual void abort(int exit_code) = 0;
};

// The communicator for `backend` and `launch`: single when !launch.distributed(); mpi for the
// cpu backend (an Env launch on cpu is an Error: cpu multi-process needs an MPI launcher); nccl
// for cuda and cuda-emu (cuda-emu needs an MPI launch). Errors name what is missing.
std::unique_ptr<Communicator> make_communicator(Backend& backend, const LaunchInfo& launch,
                                                const CommunicatorOptions& options = {});

}  // namespace smol
