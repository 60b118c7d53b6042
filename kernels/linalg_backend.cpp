// LinalgBackend's public ops: each checks its contract (kernels/linalg_backend.h) once, for
// every backend — ranks, shapes, dtypes, batch counts, aliasing, int-sized dimensions (LAPACK
// and cuSOLVER take int) — skips empty problems, and calls the backend's do_<op>.
#include <climits>

#include "kernels/linalg_backend.h"

namespace smol {
namespace {

// A batch of matrices: [m, n] (one) or [B, m, n].
struct MatrixBatch {
  int64_t batch = 1, rows = 0, cols = 0;
};
MatrixBatch matrix_batch(const Tensor& t, const char* op, const char* name) {
  SMOL_CHECK(t.dtype == DType::F32, op, ": ", name, " must be F32, got ", dtype_name(t.dtype));
  SMOL_CHECK(t.shape.rank == 2 || t.shape.rank == 3, op, ": ", name,
             " must be a matrix [m, n] or a batch [B, m, n], got ", t.shape.str());
  SMOL_CHECK(t.numel() == 0 || t.data != nullptr, op, ": ", name, " has no data");
  const int o = t.shape.rank - 2;
  MatrixBatch b{o ? t.shape[0] : 1, t.shape[o], t.shape[o + 1]};
  SMOL_CHECK(b.batch <= INT_MAX && b.rows <= INT_MAX && b.cols <= INT_MAX, op, ": ", name, " ",
             t.shape.str(), " has a dimension beyond int (LAPACK / cuSOLVER limit)");
  return b;
}
// A batch of vectors: [k] (one) or [B, k].
MatrixBatch vector_batch(const Tensor& t, const char* op, const char* name) {
  SMOL_CHECK(t.dtype == DType::F32, op, ": ", name, " must be F32, got ", dtype_name(t.dtype));
  SMOL_CHECK(t.shape.rank == 1 || t.shape.rank == 2, op, ": ", name,
             " must be a vector [k] or a batch [B, k], got ", t.shape.str());
  SMOL_CHECK(t.numel() == 0 || t.data != nullptr, op, ": ", name, " has no data");
  return {t.shape.rank == 2 ? t.shape[0] : 1, 1, t.shape[t.shape.rank - 1]};
}

bool overlap(const Tensor& x, const Tensor& y) {
  const char* xb = static_cast<const char*>(x.data);
  const char* yb = static_cast<const char*>(y.data);
  return x.bytes() > 0 && y.bytes() > 0 && xb < yb + y.bytes() && yb < xb + x.bytes();
}
void check_disjoint(const Tensor& x, const char* x_name, const Tensor& y, const char* y_name,
                    const char* op) {
  SMOL_CHECK(!overlap(x, y), op, ": ", x_name, " and ", y_name, " overlap in memory");
}

void check_same_batch(const MatrixBatch& x, const char* x_name, const MatrixBatch& y,
                      const char* y_name, const char* op) {
  SMOL_CHECK(x.batch == y.batch, op, ": ", x_name, " holds ", x.batch, " matrices but ", y_name,
             " ", y.batch);
}

}  // namespace

void LinalgBackend::qr_thin(Tensor q, Tensor r, const Tensor& a) {
  constexpr const char* op = "qr_thin";
  const MatrixBatch ab = matrix_batch(a, op, "a"), qb = matrix_batch(q, op, "q"),
                    rb = matrix_batch(r, op, "r");
  SMOL_CHECK(ab.rows >= ab.cols, op, ": a ", a.shape.str(),
             " must have at least as many rows as columns (m >= n)");
  check_same_batch(ab, "a", qb, "q", op);
  check_same_batch(ab, "a", rb, "r", op);
  SMOL_CHECK(qb.rows == ab.rows && qb.cols == ab.cols, op, ": q ", q.shape.str(),
             " must have a's matrix shape ", a.shape.str());
  SMOL_CHECK(rb.rows == ab.cols && rb.cols == ab.cols, op, ": r ", r.shape.str(), " must be [",
             ab.batch, ", ", ab.cols, ", ", ab.cols, "] for a ", a.shape.str());
  SMOL_CHECK(q.data == a.data || !overlap(q, a), op, ": q overlaps a without being a itself");
  check_disjoint(r, "r", a, "a", op);
  check_disjoint(r, "r", q, "q", op);
  if (ab.batch == 0 || ab.cols == 0) return;  // nothing to factorise (q has no columns)
  do_qr_thin(q, r, a);
}

void LinalgBackend::svd_small(Tensor u, Tensor s, Tensor vt, const Tensor& a) {
  constexpr const char* op = "svd_small";
  const MatrixBatch ab = matrix_batch(a, op, "a"), ub = matrix_batch(u, op, "u"),
                    vb = matrix_batch(vt, op, "vt"), sb = vector_batch(s, op, "s");
  SMOL_CHECK(ab.rows == ab.cols, op, ": a ", a.shape.str(), " must be square");
  SMOL_CHECK(ab.rows <= kSvdSmallMaxDim, op, ": a ", a.shape.str(), " is larger than ",
             kSvdSmallMaxDim, "x", kSvdSmallMaxDim, " (use svd_truncated)");
  check_same_batch(ab, "a", ub, "u", op);
  check_same_batch(ab, "a", vb, "vt", op);
  check_same_batch(ab, "a", sb, "s", op);
  SMOL_CHECK(ub.rows == ab.rows && ub.cols == ab.rows && vb.rows == ab.rows && vb.cols == ab.rows &&
                 sb.cols == ab.rows,
             op, ": u ", u.shape.str(), ", s ", s.shape.str(), ", vt ", vt.shape.str(),
             " must be [B, r, r], [B, r], [B, r, r] for a ", a.shape.str());
  check_disjoint(u, "u", a, "a", op);
  check_disjoint(s, "s", a, "a", op);
  check_disjoint(vt, "vt", a, "a", op);
  check_disjoint(u, "u", s, "s", op);
  check_disjoint(u, "u", vt, "vt", op);
  check_disjoint(s, "s", vt, "vt", op);
  if (ab.batch == 0 || ab.rows == 0) return;
  do_svd_small(u, s, vt, a);
}

void LinalgBackend::svd_truncated(Tensor u, Tensor s, Tensor vt, const Tensor& a) {
  constexpr const char* op = "svd_truncated";
  SMOL_CHECK(a.shape.rank == 2, op, ": a must be one matrix [m, n], got ", a.shape.str());
  SMOL_CHECK(s.shape.rank == 1, op, ": s must be a vector [k], got ", s.shape.str());
  SMOL_CHECK(u.shape.rank == 2 && vt.shape.rank == 2, op, ": u and vt must be matrices, got ",
             u.shape.str(), " and ", vt.shape.str());
  const MatrixBatch ab = matrix_batch(a, op, "a"), ub = matrix_batch(u, op, "u"),
                    vb = matrix_batch(vt, op, "vt"), sb = vector_batch(s, op, "s");
  const int64_t m = ab.rows, n = ab.cols, k = sb.cols;
  SMOL_CHECK(k >= 1 && k <= std::min(m, n), op, ": k = s.numel() = ", k,
             " must lie in 1..min(m, n) for a ", a.shape.str());
  SMOL_CHECK(ub.rows == m && ub.cols == k && vb.rows == k && vb.cols == n, op, ": u ",
             u.shape.str(), " and vt ", vt.shape.str(), " must be [", m, ", ", k, "] and [", k,
             ", ", n, "] for a ", a.shape.str(), " and k = ", k);
  check_disjoint(u, "u", a, "a", op);
  check_disjoint(s, "s", a, "a", op);
  check_disjoint(vt, "vt", a, "a", op);
  check_disjoint(u, "u", s, "s", op);
  check_disjoint(u, "u", vt, "vt", op);
  check_disjoint(s, "s", vt, "vt", op);
  do_svd_truncated(u, s, vt, a);
}

void LinalgBackend::triangular_solve(Tensor b, const Tensor& t, bool upper, bool transpose) {
  constexpr const char* op = "triangular_solve";
  const MatrixBatch bb = matrix_batch(b, op, "b"), tb = matrix_batch(t, op, "t");
  check_same_batch(bb, "b", tb, "t", op);
  SMOL_CHECK(tb.rows == tb.cols && tb.rows == bb.rows, op, ": t ", t.shape.str(),
             " must be [B, m, m] with m the rows of b ", b.shape.str());
  check_disjoint(b, "b", t, "t", op);
  if (bb.batch == 0 || bb.rows == 0 || bb.cols == 0) return;
  do_triangular_solve(b, t, upper, transpose);
}

}  // namespace smol
