// cuda-emu NCCL over MPI (emu_nccl.h). Each reduction gathers every rank's whole buffer
// (MPI_Allgather of bytes) and reduces in rank order locally: O(world · n) memory, which a test
// device can afford, and bitwise-identical results on every rank with no MPI reduction order to
// trust. Each ncclComm_t owns a duplicate of MPI_COMM_WORLD, so its traffic never matches the
// mpi communicator's or a test's.
#include "kernels/emu/emu_nccl.h"

#include <mpi.h>

#include <climits>
#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"
#include "kernels/emu/emu_capture.h"

namespace smol::emu::nccl {

struct EmuNcclComm {
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
};

namespace {

size_t type_bytes(ncclDataType_t t) {
  switch (t) {
    case ncclUint8:
      return 1;
    case ncclBfloat16:
      return 2;
    case ncclFloat32:
      return 4;
    case ncclFloat64:
      return 8;
  }
  return 0;
}

float bf16_to_float(uint16_t bits) {
  const uint32_t wide = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}
uint16_t float_to_bf16(float f) {  // round to nearest even, NaN stays NaN
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

double load(const char* p, ncclDataType_t t) {
  if (t == ncclBfloat16) {
    uint16_t b;
    std::memcpy(&b, p, 2);
    return bf16_to_float(b);
  }
  if (t == ncclFloat32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  double d;
  std::memcpy(&d, p, 8);
  return d;
}
void store(char* p, double v, ncclDataType_t t) {
  if (t == ncclBfloat16) {
    const uint16_t b = float_to_bf16(static_cast<float>(v));
    std::memcpy(p, &b, 2);
  } else if (t == ncclFloat32) {
    const float f = static_cast<float>(v);
    std::memcpy(p, &f, 4);
  } else {
    std::memcpy(p, &v, 8);
  }
}

bool device(const void* p, size_t bytes) {
  return bytes == 0 || (p != nullptr && is_device_range(p, bytes));
}

// Every rank's `bytes` bytes at `send`, rank after rank.
bool gather_all(EmuNcclComm* c, const void* send, size_t bytes, std::vector<char>& all) {
  if (bytes > INT_MAX) return false;
  all.resize(bytes * static_cast<size_t>(c->size));
  return MPI_Allgather(send, static_cast<int>(bytes), MPI_BYTE, all.data(), static_cast<int>(bytes),
                       MPI_BYTE, c->comm) == MPI_SUCCESS;
}

// out[i] = op over ranks r (in rank order) of all[r][offset + i], accumulated in fp32 (fp64
// for doubles) and rounded once to the data type.
void reduce_block(const std::vector<char>& all, size_t per_rank, size_t offset, size_t count,
                  int ranks, ncclDataType_t t, ncclRedOp_t op, char* out) {
  const size_t eb = type_bytes(t);
  for (size_t i = 0; i < count; ++i) {
    double acc = 0;
    float acc32 = 0;
    for (int r = 0; r < ranks; ++r) {
      const double v = load(all.data() + r * per_rank + (offset + i) * eb, t);
      if (t == ncclFloat64) {
        acc = r == 0 ? v : op == ncclSum ? acc + v : (v > acc ? v : acc);
      } else {
        const float f = static_cast<float>(v);
        acc32 = r == 0 ? f : op == ncclSum ? acc32 + f : (f > acc32 ? f : acc32);
      }
    }
    store(out + i * eb, t == ncclFloat64 ? acc : acc32, t);
  }
}

bool reducible(ncclDataType_t t, ncclRedOp_t op) {
  return (t == ncclFloat32 || t == ncclFloat64 || t == ncclBfloat16) &&
         (op == ncclSum || op == ncclMax);
}

// The collectives exchange over MPI when called, not when a graph runs: recorded into a stream
// capture they would move the capture-time bytes once and nothing at launch. A GPU captures NCCL
// (>= 2.9) collectives; the emulator cannot, so it refuses loudly instead of computing something
// else (data parallelism runs its steps eagerly, docs/design.md §2.8).
void refuse_in_capture(cudaStream_t stream, const char* call) {
  if (stream_capturing(stream))
    throw_error("cuda-emu: ", call,
                " during a stream capture is not emulated (cuda-emu's NCCL exchanges over MPI at "
                "the call, not when the graph runs; docs/design.md §2.8)");
}

}  // namespace

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (id == nullptr) return ncclInvalidArgument;
  std::random_device random;
  for (char& c : id->internal) c = static_cast<char>(random());
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (comm == nullptr || !initialized) return ncclInvalidUsage;
  auto* c = new EmuNcclComm;
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size);
  if (c->rank != rank || c->size != nranks ||
      MPI_Comm_dup(MPI_COMM_WORLD, &c->comm) != MPI_SUCCESS) {
    delete c;
    return ncclInvalidArgument;
  }
  // Every rank must have been given rank 0's id (what a real bootstrap must get right).
  ncclUniqueId root = id;
  if (MPI_Bcast(root.internal, sizeof root.internal, MPI_BYTE, 0, c->comm) != MPI_SUCCESS ||
      std::memcmp(root.internal, id.internal, sizeof id.internal) != 0) {
    MPI_Comm_free(&c->comm);
    delete c;
    return ncclInvalidUsage;
  }
  *comm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return ncclInvalidArgument;
  MPI_Comm_free(&comm->comm);
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  delete comm;  // its MPI communicator is left to MPI_Abort / process exit
  return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error) {
  if (comm == nullptr || async_error == nullptr) return ncclInvalidArgument;
  *async_error = ncclSuccess;  // every call completed (or failed) synchronously
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess:
      return "no error (cuda-emu NCCL)";
    case ncclInvalidArgument:
      return "invalid argument (cuda-emu NCCL)";
    case ncclInvalidUsage:
      return "invalid usage (cuda-emu NCCL: MPI not initialised, ranks "
             "unlike MPI_COMM_WORLD's, or the unique id differs)";
    case ncclSystemError:
      return "system error (cuda-emu NCCL: an MPI call failed)";
    default:
      return "error (cuda-emu NCCL)";
  }
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
  refuse_in_capture(stream, "ncclAllReduce");
  const size_t bytes = count * type_bytes(datatype);
  if (comm == nullptr || !reducible(datatype, op) || !device(sendbuff, bytes) ||
      !device(recvbuff, bytes))
    return ncclInvalidArgument;
  std::vector<char> all;
  if (!gather_all(comm, sendbuff, bytes, all)) return ncclSystemError;
  reduce_block(all, bytes, 0, count, comm->size, datatype, op, static_cast<char*>(recvbuff));
  return ncclSuccess;
}

ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream) {
  refuse_in_capture(stream, "ncclReduceScatter");
  if (comm == nullptr || !reducible(datatype, op)) return ncclInvalidArgument;
  const size_t bytes = recvcount * type_bytes(datatype);
  if (!device(sendbuff, bytes * comm->size) || !device(recvbuff, bytes)) return ncclInvalidArgument;
  std::vector<char> all;
  if (!gather_all(comm, sendbuff, bytes * comm->size, all)) return ncclSystemError;
  reduce_block(all, bytes * comm->size, recvcount * comm->rank, recvcount, comm->size, datatype, op,
               static_cast<char*>(recvbuff));
  return ncclSuccess;
}

ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
  refuse_in_capture(stream, "ncclAllGather");
  if (comm == nullptr || type_bytes(datatype) == 0) return ncclInvalidArgument;
  const size_t bytes = sendcount * type_bytes(datatype);
  if (!device(sendbuff, bytes) || !device(recvbuff, bytes * comm->size) || bytes > INT_MAX)
    return ncclInvalidArgument;
  char* out = static_cast<char*>(recvbuff);
  const bool in_place = sendbuff == out + bytes * comm->rank;
  const int n = static_cast<int>(bytes);
  const int status =
      in_place ? MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, out, n, MPI_BYTE, comm->comm)
               : MPI_Allgather(sendbuff, n, MPI_BYTE, out, n, MPI_BYTE, comm->comm);
  return status == MPI_SUCCESS ? ncclSuccess : ncclSystemError;
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream) {
  refuse_in_capture(stream, "ncclBroadcast");
  if (comm == nullptr || type_bytes(datatype) == 0 || root < 0 || root >= comm->size)
    return ncclInvalidArgument;
  const size_t bytes = count * type_bytes(datatype);
  if (!device(recvbuff, bytes) || (comm->rank == root && !device(sendbuff, bytes)) ||
      bytes > INT_MAX)
    return ncclInvalidArgument;
  if (comm->rank == root && sendbuff != recvbuff) std::memmove(recvbuff, sendbuff, bytes);
  return MPI_Bcast(recvbuff, static_cast<int>(bytes), MPI_BYTE, root, comm->comm) == MPI_SUCCESS
             ? ncclSuccess
             : ncclSystemError;
}

}  // namespace smol::emu::nccl
