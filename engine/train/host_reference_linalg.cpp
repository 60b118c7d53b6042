// The double-precision host LinalgBackend (see host_reference_linalg.h).
#include "engine/train/host_reference_linalg.h"

#include <cmath>
#include <vector>

#include "common/error.h"
#include "linalg/decompositions.h"

namespace smol {
namespace {

std::vector<float> download_all(Backend& backend, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  backend.download(host.data(), t);
  return host;
}

int64_t batch_of(const Tensor& t) {
  return t.shape.rank == 3 ? t.shape[0] : 1;
}

DenseMatrix matrix_at(const std::vector<float>& host, int64_t b, int64_t m, int64_t n) {
  DenseMatrix a(m, n);
  for (int64_t i = 0; i < m * n; ++i)
    a.data[static_cast<size_t>(i)] = host[static_cast<size_t>(b * m * n + i)];
  return a;
}

void store(std::vector<float>& host, int64_t b, const DenseMatrix& a) {
  for (int64_t i = 0; i < a.rows * a.cols; ++i)
    host[static_cast<size_t>(b * a.rows * a.cols + i)] =
        static_cast<float>(a.data[static_cast<size_t>(i)]);
}

class ReferenceLinalg final : public LinalgBackend {
 public:
  explicit ReferenceLinalg(Backend& backend) : backend_(backend) {}

 protected:
  void do_qr_thin(Tensor q, Tensor r, const Tensor& a) override {
    const int64_t batch = batch_of(a), m = a.shape[a.shape.rank - 2], n = a.shape[a.shape.rank - 1];
    const std::vector<float> in = download_all(backend_, a);
    std::vector<float> q_host(static_cast<size_t>(batch * m * n)),
        r_host(static_cast<size_t>(batch * n * n));
    for (int64_t b = 0; b < batch; ++b) {
      const DenseMatrix x = matrix_at(in, b, m, n);
      DenseMatrix qm = qr_orthonormal(x);
      DenseMatrix rm = multiply(qm, true, x, false);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < i; ++j) rm.at(i, j) = 0;  // exactly upper triangular
        if (rm.at(i, i) < 0) {
          for (int64_t j = 0; j < n; ++j) rm.at(i, j) = -rm.at(i, j);
          for (int64_t k = 0; k < m; ++k) qm.at(k, i) = -qm.at(k, i);
        }
      }
      store(q_host, b, qm);
      store(r_host, b, rm);
    }
    backend_.upload(q, q_host.data());
    backend_.upload(r, r_host.data());
  }

  void do_svd_small(Tensor u, Tensor s, Tensor vt, const Tensor& a) override {
    const int64_t batch = batch_of(a), n = a.shape[a.shape.rank - 1];
    const std::vector<float> in = download_all(backend_, a);
    std::vector<float> u_host(static_cast<size_t>(batch * n * n)), vt_host(u_host.size()),
        s_host(static_cast<size_t>(batch * n));
    for (int64_t b = 0; b < batch; ++b) {
      SvdResult svd = thin_svd(matrix_at(in, b, n, n));
      fix_signs(svd);
      store(u_host, b, svd.U);
      store(vt_host, b, transposed(svd.V));
      for (int64_t k = 0; k < n; ++k)
        s_host[static_cast<size_t>(b * n + k)] = static_cast<float>(svd.S[static_cast<size_t>(k)]);
    }
    backend_.upload(u, u_host.data());
    backend_.upload(s, s_host.data());
    backend_.upload(vt, vt_host.data());
  }

  void do_svd_truncated(Tensor u, Tensor s, Tensor vt, const Tensor& a) override {
    const int64_t m = a.shape[0], n = a.shape[1], k = s.numel();
    SvdResult svd = thin_svd(matrix_at(download_all(backend_, a), 0, m, n));
    fix_signs(svd);
    std::vector<int64_t> keep = index_range(0, k);
    DenseMatrix uk = select_columns(svd.U, keep), vk = select_columns(svd.V, keep);
    std::vector<float> u_host(static_cast<size_t>(m * k)), vt_host(static_cast<size_t>(k * n)),
        s_host(static_cast<size_t>(k));
    store(u_host, 0, uk);
    store(vt_host, 0, transposed(vk));
    for (int64_t i = 0; i < k; ++i)
      s_host[static_cast<size_t>(i)] = static_cast<float>(svd.S[static_cast<size_t>(i)]);
    backend_.upload(u, u_host.data());
    backend_.upload(s, s_host.data());
    backend_.upload(vt, vt_host.data());
  }

  void do_triangular_solve(Tensor b, const Tensor& t, bool upper, bool transpose) override {
    const int64_t batch = batch_of(t), m = t.shape[t.shape.rank - 1], n = b.shape[b.shape.rank - 1];
    const std::vector<float> t_host = download_all(backend_, t);
    std::vector<float> b_host = download_all(backend_, b);
    for (int64_t bi = 0; bi < batch; ++bi) {
      DenseMatrix tm = matrix_at(t_host, bi, m, m), bm = matrix_at(b_host, bi, m, n);
      if (transpose) tm = transposed(tm);
      const bool solve_upper = upper != transpose;
      for (int64_t c = 0; c < n; ++c)
        for (int64_t step = 0; step < m; ++step) {
          const int64_t i = solve_upper ? m - 1 - step : step;
          double sum = bm.at(i, c);
          for (int64_t j = 0; j < m; ++j)
            if (solve_upper ? j > i : j < i) sum -= tm.at(i, j) * bm.at(j, c);
          SMOL_CHECK(tm.at(i, i) != 0, "reference triangular_solve: batch ", bi, " is singular");
          bm.at(i, c) = sum / tm.at(i, i);
        }
      store(b_host, bi, bm);
    }
    backend_.upload(b, b_host.data());
  }

 private:
  static void fix_signs(SvdResult& svd) {
    for (int64_t c = 0; c < svd.U.cols; ++c) {
      int64_t best = 0;
      for (int64_t i = 1; i < svd.U.rows; ++i)
        if (std::fabs(svd.U.at(i, c)) > std::fabs(svd.U.at(best, c))) best = i;
      if (svd.U.at(best, c) < 0) {
        for (int64_t i = 0; i < svd.U.rows; ++i) svd.U.at(i, c) = -svd.U.at(i, c);
        for (int64_t i = 0; i < svd.V.rows; ++i) svd.V.at(i, c) = -svd.V.at(i, c);
      }
    }
  }
  Backend& backend_;
};

}  // namespace

std::unique_ptr<LinalgBackend> make_host_reference_linalg(Backend& backend) {
  return std::make_unique<ReferenceLinalg>(backend);
}

}  // namespace smol
