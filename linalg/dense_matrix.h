// DenseMatrix: a small row-major matrix in double, the working type of the host-side linear
// algebra (LoRA initialisers now, the spectral refactor next; docs/design.md §3, §4). Products
// go through OpenBLAS dgemm; the rest are plain loops. Results meant for the model are rounded
// to fp32 once, by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace smol {

// A dense row-major matrix in double: the host linear algebra's working type.
struct DenseMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<double> data;

  DenseMatrix() = default;
  DenseMatrix(int64_t r, int64_t c) : rows(r), cols(c), data(static_cast<size_t>(r * c), 0.0) {}
  double& at(int64_t i, int64_t j) { return data[static_cast<size_t>(i * cols + j)]; }
  double at(int64_t i, int64_t j) const { return data[static_cast<size_t>(i * cols + j)]; }
  bool empty() const { return data.empty(); }
};

// c = op(a)·op(b), op(x) = x or xᵀ (OpenBLAS dgemm). Throws when the inner dimensions differ.
DenseMatrix multiply(const DenseMatrix& a, bool transpose_a, const DenseMatrix& b,
                     bool transpose_b);
DenseMatrix transposed(const DenseMatrix& a);
// The columns `columns` of a, in that order.
DenseMatrix select_columns(const DenseMatrix& a, const std::vector<int64_t>& columns);
// begin, begin + stride, ... < end.
std::vector<int64_t> index_range(int64_t begin, int64_t end, int64_t stride = 1);
void scale_in_place(DenseMatrix& a, double factor);
double frobenius(const DenseMatrix& a);  // ‖a‖_F

}  // namespace smol
