// The argument contracts of Communicator's ops (kernels/communicator.h), checked the same way by
// every implementation so a caller's mistake reads the same on single, mpi and nccl.
#pragma once

#include <string>

#include "common/error.h"
#include "kernels/tensor.h"

namespace smol::comm {

// `dtype` must be F32, or BF16 when the implementation allows it.
inline void check_dtype(const std::string& who, const char* op, DType dtype, bool bf16_ok) {
  SMOL_CHECK(dtype == DType::F32 || (bf16_ok && dtype == DType::BF16), who, ": ", op, " of a ",
             dtype_name(dtype), " tensor: this communicator reduces F32",
             bf16_ok ? " and BF16" : " only");
}

// all_reduce also takes F64: device scalars kept in double (the ZeRO-1 grad norm², docs/design.md
// §8), reduced in double.
inline void check_all_reduce_dtype(const std::string& who, DType dtype, bool bf16_ok) {
  if (dtype != DType::F64) check_dtype(who, "all_reduce", dtype, bf16_ok);
}

inline void check_reduce_scatter(const std::string& who, const Tensor& out, const Tensor& in,
                                 int world, bool bf16_ok) {
  check_dtype(who, "reduce_scatter", in.dtype, bf16_ok);
  SMOL_CHECK(out.dtype == in.dtype, who, ": reduce_scatter: out is ", dtype_name(out.dtype),
             " but in is ", dtype_name(in.dtype));
  SMOL_CHECK(in.numel() == out.numel() * world, who, ": reduce_scatter: in has ", in.numel(),
             " elements, expected world size ", world, " × out's ", out.numel());
}

inline void check_all_gather(const std::string& who, const Tensor& out, const Tensor& in, int world,
                             bool bf16_ok) {
  check_dtype(who, "all_gather", in.dtype, bf16_ok);
  SMOL_CHECK(out.dtype == in.dtype, who, ": all_gather: out is ", dtype_name(out.dtype),
             " but in is ", dtype_name(in.dtype));
  SMOL_CHECK(out.numel() == in.numel() * world, who, ": all_gather: out has ", out.numel(),
             " elements, expected world size ", world, " × in's ", in.numel());
}

// True when `in` is block `rank` of `out` (all_gather in place); false when the two do not
// overlap; an Error for any other overlap.
inline bool all_gather_in_place(const std::string& who, const Tensor& out, const Tensor& in,
                                int rank) {
  const char* o = static_cast<const char*>(out.data);
  const char* i = static_cast<const char*>(in.data);
  if (i == o + rank * in.bytes()) return true;
  const bool disjoint = i + in.bytes() <= o || o + out.bytes() <= i;
  SMOL_CHECK(disjoint || in.bytes() == 0, who, ": all_gather: in overlaps out without being block ",
             rank, " (this rank's) of it");
  return false;
}

inline void check_root(const std::string& who, int root, int world) {
  SMOL_CHECK(root >= 0 && root < world, who, ": broadcast root ", root, " is outside [0, ", world,
             ")");
}

}  // namespace smol::comm
