// DenseMatrix operations (see dense_matrix.h).
#include "linalg/dense_matrix.h"

#include <cblas.h>

#include <cmath>

#include "common/error.h"

namespace smol {

DenseMatrix multiply(const DenseMatrix& a, bool transpose_a, const DenseMatrix& b,
                     bool transpose_b) {
  const int64_t m = transpose_a ? a.cols : a.rows;
  const int64_t k = transpose_a ? a.rows : a.cols;
  const int64_t kb = transpose_b ? b.cols : b.rows;
  const int64_t n = transpose_b ? b.rows : b.cols;
  SMOL_CHECK(k == kb, "matrix product: inner dimensions ", k, " and ", kb, " differ");
  DenseMatrix c(m, n);
  if (m == 0 || n == 0 || k == 0) return c;
  cblas_dgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
              transpose_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0, a.data.data(), static_cast<int>(a.cols), b.data.data(),
              static_cast<int>(b.cols), 0.0, c.data.data(), static_cast<int>(n));
  return c;
}

DenseMatrix transposed(const DenseMatrix& a) {
  DenseMatrix t(a.cols, a.rows);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < a.cols; ++j) t.at(j, i) = a.at(i, j);
  return t;
}

DenseMatrix select_columns(const DenseMatrix& a, const std::vector<int64_t>& columns) {
  DenseMatrix out(a.rows, static_cast<int64_t>(columns.size()));
  for (int64_t i = 0; i < a.rows; ++i)
    for (size_t j = 0; j < columns.size(); ++j)
      out.at(i, static_cast<int64_t>(j)) = a.at(i, columns[j]);
  return out;
}

std::vector<int64_t> index_range(int64_t begin, int64_t end, int64_t stride) {
  std::vector<int64_t> idx;
  for (int64_t i = begin; i < end; i += stride) idx.push_back(i);
  return idx;
}

void scale_in_place(DenseMatrix& a, double factor) {
  for (double& x : a.data) x *= factor;
}

double frobenius(const DenseMatrix& a) {
  double sum = 0;
  for (double x : a.data) sum += x * x;
  return std::sqrt(sum);
}

}  // namespace smol
