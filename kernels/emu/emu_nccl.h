// cuda-emu NCCL: the NCCL entry points kernels/cuda/nccl_communicator.cu calls (and only those),
// answered over MPI_COMM_WORLD in kernels/emu/emu_nccl.cpp — as emu_cusolver.h answers cuSOLVER.
//
// NCCL's own nccl.h cannot be used here: it includes cuda_runtime.h, which clashes with the emu's
// runtime macros. So the few types and enumerators are declared again (same names and values as
// nccl.h), in namespace smol::emu::nccl; the cuda source pulls them in with a using-directive
// under SMOL_CUDA_EMU. Being C++ names in a namespace, none of them clashes with libnccl's C
// symbols when both builds link into one binary.
//
// Semantics: every call is blocking (emu streams run everything at once, so an enqueued
// collective is complete when it returns); ranks are MPI_COMM_WORLD's, which must be initialised
// (the communicator holds an MpiSession) and match ncclCommInitRank's rank and nranks.
// Reductions are computed in fixed rank order in fp32 (fp64 for ncclFloat64) and rounded once,
// so every rank gets bitwise the same result. Buffers must be device memory (is_device_range).
#pragma once

#include <cstddef>

#include "kernels/emu/emu_cuda.h"

namespace smol::emu::nccl {

#define SMOL_EMU_NCCL_UNIQUE_ID_BYTES 128
enum ncclResult_t {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
};
enum ncclDataType_t { ncclUint8 = 1, ncclFloat32 = 7, ncclFloat64 = 8, ncclBfloat16 = 9 };
enum ncclRedOp_t { ncclSum = 0, ncclMax = 2 };
struct ncclUniqueId {
  char internal[SMOL_EMU_NCCL_UNIQUE_ID_BYTES];
};
struct EmuNcclComm;
using ncclComm_t = EmuNcclComm*;

ncclResult_t ncclGetUniqueId(ncclUniqueId* id);
ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommAbort(ncclComm_t comm);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* async_error);
const char* ncclGetErrorString(ncclResult_t result);
ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream);
ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream);
ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream);
ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream);

}  // namespace smol::emu::nccl
