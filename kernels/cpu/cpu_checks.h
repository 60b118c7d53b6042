// Internal to the cpu backend: argument checks shared by the op files. Each throws
// smol::Error naming the op, the argument and the shapes/dtypes involved.
#pragma once

#include <cstdint>

#include "kernels/tensor.h"

namespace smol::cpu {

inline void check_dtype(const char* op, const char* arg, const Tensor& t, DType want) {
  SMOL_CHECK(t.dtype == want, op, ": ", arg, " must be ", dtype_name(want),
             " on the cpu backend, got ", dtype_name(t.dtype), " ", t.shape.str());
  SMOL_CHECK(t.data != nullptr || t.numel() == 0, op, ": ", arg, " ", t.shape.str(),
             " has no data (null pointer)");
}
inline void check_f32(const char* op, const char* arg, const Tensor& t) {
  check_dtype(op, arg, t, DType::F32);
}
inline void check_i32(const char* op, const char* arg, const Tensor& t) {
  check_dtype(op, arg, t, DType::I32);
}
inline void check_same_shape(const char* op, const char* arg_a, const Tensor& a, const char* arg_b,
                             const Tensor& b) {
  SMOL_CHECK(a.shape == b.shape, op, ": ", arg_a, " ", a.shape.str(), " and ", arg_b, " ",
             b.shape.str(), " must have the same shape");
}
inline void check_rank(const char* op, const char* arg, const Tensor& t, int rank,
                       const char* layout) {
  SMOL_CHECK(t.shape.rank == rank, op, ": ", arg, " must be ", layout, " (rank ", rank, "), got ",
             t.shape.str());
}
// A per-row vector of `length` elements, e.g. ids, positions, rstd, losses ([T]; a [B, S]
// view of the same T = B·S elements is accepted too, since only the element count matters).
inline void check_vector(const char* op, const char* arg, const Tensor& t, int64_t length) {
  SMOL_CHECK(t.numel() == length, op, ": ", arg, " must have ", length, " elements ([", length,
             "]), got ", t.shape.str());
}

}  // namespace smol::cpu
