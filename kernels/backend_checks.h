// Contract checks shared by the public ops of Backend (kernels/backend_ops.cpp) and by any
// backend that checks something extra. Each throws smol::Error naming the op, the argument and
// the shapes/dtypes involved.
#pragma once

#include <cstdint>

#include "kernels/backend.h"

namespace smol::contract {

inline void check_data(const char* op, const char* arg, const Tensor& t) {
  SMOL_CHECK(t.data != nullptr || t.numel() == 0, op, ": ", arg, " ", t.shape.str(),
             " has no data (null pointer)");
}
inline void check_dtype(const char* op, const char* arg, const Tensor& t, DType want) {
  SMOL_CHECK(t.dtype == want, op, ": ", arg, " must be ", dtype_name(want), ", got ",
             dtype_name(t.dtype), " ", t.shape.str());
  check_data(op, arg, t);
}
inline void check_i32(const char* op, const char* arg, const Tensor& t) {
  check_dtype(op, arg, t, DType::I32);
}
// A floating-point tensor of a dtype this backend computes in (F32 or its activation dtype).
inline void check_float(const Backend& backend, const char* op, const char* arg, const Tensor& t) {
  SMOL_CHECK(backend.is_float_dtype(t.dtype), op, ": ", arg, " must be F32",
             backend.activation_dtype() == DType::F32
                 ? ""
                 : (std::string(" or ") + dtype_name(backend.activation_dtype())).c_str(),
             " on the ", backend.name(), " backend, got ", dtype_name(t.dtype), " ", t.shape.str());
  check_data(op, arg, t);
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

}  // namespace smol::contract
