// Collectives: the communicator data parallelism needs (docs/design.md §8) — declared here with
// its contracts; the data-parallel issue implements it over NCCL on cuda (on the backend's
// stream, Backend::stream_handle) and over MPI on cpu (how the multi-process path is tested).
//
// Every rank calls the same collectives in the same order with tensors of the same shape and
// dtype (F32 or BF16; the reduction runs in fp32 for BF16). Buffers are flat: a Tensor's
// numel() elements, any shape. On cuda a call is enqueued on the backend's stream and returns
// without a host wait (later ops on that stream see the result); on cpu it returns when done.
// Reductions are deterministic for a fixed world size (a fixed reduction order per element).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/backend.h"

namespace smol {

enum class ReduceOp : uint8_t { Sum, Avg };

class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int rank() const = 0;        // 0 .. world_size()−1
  virtual int world_size() const = 0;  // 1 when not distributed (every call is then a copy)

  // In place: every rank's x becomes Σ_ranks x (Avg: divided by world_size).
  virtual void all_reduce(Tensor x, ReduceOp op) = 0;
  // in [world_size · n] on every rank; out [n] on rank i gets the reduction of block i.
  virtual void reduce_scatter(Tensor out, const Tensor& in, ReduceOp op) = 0;
  // in [n] on every rank; out [world_size · n] gets rank i's in at block i.
  virtual void all_gather(Tensor out, const Tensor& in) = 0;
  // In place: every rank's x becomes root's x.
  virtual void broadcast(Tensor x, int root) = 0;
};

// The communicator for `backend` from the launcher's environment (mpirun's or torchrun-style
// rank / world-size variables); a single-rank one when none is set. Error naming the variable
// when the environment is inconsistent. Declared for the data-parallel issue, which defines it.
std::unique_ptr<Collectives> make_collectives(Backend& backend);

}  // namespace smol
