// cuda-emu cuSOLVER: declarations of the cusolverDn entry points kernels/cuda/linalg.cu calls
// (and only those), answered on the CPU by LAPACKE in kernels/emu/emu_cusolver.cpp, plus the
// macros that redirect the cuda source's calls to them — as emu_cuda.h does for the runtime and
// cuBLASLt. Types and enums come from CUDA's own cusolverDn.h, which compiles as plain C++.
#pragma once

#include <cusolverDn.h>

#include "kernels/emu/emu_cuda.h"

namespace smol::emu {

cusolverStatus_t cusolverDnCreate(cusolverDnHandle_t* handle);
cusolverStatus_t cusolverDnDestroy(cusolverDnHandle_t handle);
cusolverStatus_t cusolverDnSetStream(cusolverDnHandle_t handle, cudaStream_t stream);

cusolverStatus_t cusolverDnSgeqrf_bufferSize(cusolverDnHandle_t handle, int m, int n, float* a,
                                             int lda, int* lwork);
cusolverStatus_t cusolverDnSgeqrf(cusolverDnHandle_t handle, int m, int n, float* a, int lda,
                                  float* tau, float* work, int lwork, int* dev_info);
cusolverStatus_t cusolverDnSorgqr_bufferSize(cusolverDnHandle_t handle, int m, int n, int k,
                                             const float* a, int lda, const float* tau, int* lwork);
cusolverStatus_t cusolverDnSorgqr(cusolverDnHandle_t handle, int m, int n, int k, float* a, int lda,
                                  const float* tau, float* work, int lwork, int* dev_info);

cusolverStatus_t cusolverDnCreateGesvdjInfo(gesvdjInfo_t* info);
cusolverStatus_t cusolverDnDestroyGesvdjInfo(gesvdjInfo_t info);
cusolverStatus_t cusolverDnSgesvdj_bufferSize(cusolverDnHandle_t handle, cusolverEigMode_t jobz,
                                              int econ, int m, int n, const float* a, int lda,
                                              const float* s, const float* u, int ldu,
                                              const float* v, int ldv, int* lwork,
                                              gesvdjInfo_t params);
cusolverStatus_t cusolverDnSgesvdj(cusolverDnHandle_t handle, cusolverEigMode_t jobz, int econ,
                                   int m, int n, float* a, int lda, float* s, float* u, int ldu,
                                   float* v, int ldv, float* work, int lwork, int* dev_info,
                                   gesvdjInfo_t params);
cusolverStatus_t cusolverDnSgesvdjBatched_bufferSize(cusolverDnHandle_t handle,
                                                     cusolverEigMode_t jobz, int m, int n,
                                                     const float* a, int lda, const float* s,
                                                     const float* u, int ldu, const float* v,
                                                     int ldv, int* lwork, gesvdjInfo_t params,
                                                     int batch);
cusolverStatus_t cusolverDnSgesvdjBatched(cusolverDnHandle_t handle, cusolverEigMode_t jobz, int m,
                                          int n, float* a, int lda, float* s, float* u, int ldu,
                                          float* v, int ldv, float* work, int lwork, int* dev_info,
                                          gesvdjInfo_t params, int batch);

}  // namespace smol::emu

#ifndef SMOL_EMU_IMPLEMENTATION
#define cusolverDnCreate ::smol::emu::cusolverDnCreate
#define cusolverDnDestroy ::smol::emu::cusolverDnDestroy
#define cusolverDnSetStream ::smol::emu::cusolverDnSetStream
#define cusolverDnSgeqrf_bufferSize ::smol::emu::cusolverDnSgeqrf_bufferSize
#define cusolverDnSgeqrf ::smol::emu::cusolverDnSgeqrf
#define cusolverDnSorgqr_bufferSize ::smol::emu::cusolverDnSorgqr_bufferSize
#define cusolverDnSorgqr ::smol::emu::cusolverDnSorgqr
#define cusolverDnCreateGesvdjInfo ::smol::emu::cusolverDnCreateGesvdjInfo
#define cusolverDnDestroyGesvdjInfo ::smol::emu::cusolverDnDestroyGesvdjInfo
#define cusolverDnSgesvdj_bufferSize ::smol::emu::cusolverDnSgesvdj_bufferSize
#define cusolverDnSgesvdj ::smol::emu::cusolverDnSgesvdj
#define cusolverDnSgesvdjBatched_bufferSize ::smol::emu::cusolverDnSgesvdjBatched_bufferSize
#define cusolverDnSgesvdjBatched ::smol::emu::cusolverDnSgesvdjBatched
#endif  // SMOL_EMU_IMPLEMENTATION
