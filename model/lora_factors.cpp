// The initialisers' formulas on one layer (see lora_factors.h).
#include "model/lora_factors.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/error.h"

namespace smol {

DenseMatrix gaussian_matrix(int64_t rows, int64_t cols, SeededRng& rng) {
  DenseMatrix m(rows, cols);
  for (double& x : m.data) x = rng.normal();
  return m;
}

namespace {

// W − s·B·A.
DenseMatrix residual_of(const DenseMatrix& w, const DenseMatrix& b, const DenseMatrix& a,
                        double scaling) {
  DenseMatrix product = multiply(b, false, a, false);
  DenseMatrix residual = w;
  for (size_t i = 0; i < residual.data.size(); ++i) residual.data[i] -= scaling * product.data[i];
  return residual;
}

void check_rank(int64_t r, const DenseMatrix& w, const char* method, int64_t factor = 1) {
  SMOL_CHECK(r > 0 && factor * r <= std::min(w.rows, w.cols), method, ": rank ", r,
             (factor > 1 ? " (times " + std::to_string(factor) + ")" : std::string()),
             " exceeds the smaller dimension of a ", w.rows, "x", w.cols, " weight");
}

// B = U_r·diag(√S'), A = diag(√S')·V_rᵀ with S' = S_r / s (PEFT pissa_init).
LoraFactors factors_from_svd(const DenseMatrix& w, const SvdResult& svd, int64_t r,
                             double scaling) {
  LoraFactors f;
  f.B = DenseMatrix(w.rows, r);
  f.A = DenseMatrix(r, w.cols);
  for (int64_t j = 0; j < r; ++j) {
    const double root = std::sqrt(svd.S[static_cast<size_t>(j)] / scaling);
    for (int64_t i = 0; i < w.rows; ++i) f.B.at(i, j) = svd.U.at(i, j) * root;
    for (int64_t c = 0; c < w.cols; ++c) f.A.at(j, c) = root * svd.V.at(c, j);
  }
  f.residual = residual_of(w, f.B, f.A, scaling);
  return f;
}

// The scale step shared by lora_ga and lora_ns (my_peft). lora_ns adds 1e-12 to √γ and uses
// niter 2 for weightS; lora_ga uses niter 4: `ns_variant` selects those details.
void apply_gradient_init_scale(DenseMatrix& a, DenseMatrix& b, const DenseMatrix& w, int64_t r,
                               double scaling, const LoraInitSpec& spec, SeededRng& rng,
                               bool ns_variant) {
  switch (spec.scale) {
    case LoraGaScale::Gd:
      scale_in_place(a, 1.0 / scaling);
      scale_in_place(b, 1.0 / scaling);
      break;
    case LoraGaScale::Unit:
      break;
    case LoraGaScale::Stable: {
      const double d_out = static_cast<double>(b.rows);
      const double coef =
          std::pow(d_out, 0.25) / (std::sqrt(spec.stable_gamma) + (ns_variant ? 1e-12 : 0.0));
      scale_in_place(a, coef);
      scale_in_place(b, coef);
      break;
    }
    case LoraGaScale::WeightS: {
      const int64_t q = std::min(4 * r, std::min(w.rows, w.cols));
      const DenseMatrix sketch = gaussian_matrix(std::min(w.rows, w.cols), q, rng);
      const SvdResult svd = svd_lowrank(w, q, ns_variant ? 2 : 4, sketch);
      double mean_root = 0;
      for (int64_t j = 0; j < r; ++j)
        mean_root += std::sqrt(svd.S[static_cast<size_t>(j)] / scaling);
      mean_root /= static_cast<double>(r);
      scale_in_place(a, mean_root);
      scale_in_place(b, mean_root);
      break;
    }
  }
}

}  // namespace

LoraFactors pissa_factors(const DenseMatrix& w, int64_t r, double scaling) {
  check_rank(r, w, "pissa");
  return factors_from_svd(w, thin_svd(w), r, scaling);
}

LoraFactors pissa_niter_factors(const DenseMatrix& w, int64_t r, double scaling, int niter,
                                const DenseMatrix& sketch) {
  check_rank(r, w, "pissa_niter");
  return factors_from_svd(w, svd_lowrank(w, r, niter, sketch), r, scaling);
}

LoraFactors lora_ga_factors(const DenseMatrix& w, const DenseMatrix& g, int64_t r, double scaling,
                            const LoraInitSpec& spec, const DenseMatrix& sketch, SeededRng& rng) {
  SMOL_CHECK(g.rows == w.rows && g.cols == w.cols, "lora_ga: gradient ", g.rows, "x", g.cols,
             " does not match the weight ", w.rows, "x", w.cols);
  check_rank(r, w, "lora_ga", 2);  // every direction reads 2r singular vectors
  const int64_t q = std::min(4 * r, std::min(g.rows, g.cols));
  const SvdResult svd = svd_lowrank(g, q, 4, sketch);
  std::vector<int64_t> b_columns, a_rows;
  switch (spec.direction) {
    case LoraGaDirection::ArBr:
      b_columns = index_range(0, 2 * r, 2);
      a_rows = index_range(1, 2 * r, 2);
      break;
    case LoraGaDirection::A2rBr:
      b_columns = index_range(0, r);
      a_rows = index_range(r, 2 * r);
      break;
    case LoraGaDirection::ArB2r:
      b_columns = index_range(r, 2 * r);
      a_rows = index_range(0, r);
      break;
    case LoraGaDirection::Random: {
      // random.sample(range(2r), 2r): A takes the first r of the permutation, B the rest.
      std::vector<int64_t> permutation = index_range(0, 2 * r);
      for (int64_t i = 2 * r - 1; i > 0; --i)
        std::swap(permutation[static_cast<size_t>(i)],
                  permutation[static_cast<size_t>(rng.next_u64() % static_cast<uint64_t>(i + 1))]);
      a_rows.assign(permutation.begin(), permutation.begin() + r);
      b_columns.assign(permutation.begin() + r, permutation.end());
      break;
    }
  }
  LoraFactors f;
  f.B = select_columns(svd.U, b_columns);
  f.A = transposed(select_columns(svd.V, a_rows));
  apply_gradient_init_scale(f.A, f.B, w, r, scaling, spec, rng, false);
  f.residual = residual_of(w, f.B, f.A, scaling);
  return f;
}

DenseMatrix newton_schulz_polar(const DenseMatrix& g, int steps, double eps) {
  DenseMatrix x = g;
  scale_in_place(x, 1.0 / (frobenius(g) + eps));
  // my_peft ns_polar: transpose tall matrices while iterating, then transpose back.
  const bool transpose = x.rows > x.cols;
  if (transpose) x = transposed(x);
  for (int step = 0; step < steps; ++step) {
    DenseMatrix gram = multiply(x, true, x, false);  // XᵀX [n, n]
    for (double& v : gram.data) v = -v;
    for (int64_t i = 0; i < gram.rows; ++i) gram.at(i, i) += 3.0;  // 3I − XᵀX
    x = multiply(x, false, gram, false);
    scale_in_place(x, 0.5);
  }
  return transpose ? transposed(x) : x;
}

LoraFactors lora_ns_factors(const DenseMatrix& w, const DenseMatrix& g, int64_t r, double scaling,
                            const LoraInitSpec& spec, const DenseMatrix& omega, SeededRng& rng) {
  SMOL_CHECK(g.rows == w.rows && g.cols == w.cols, "lora_ns: gradient ", g.rows, "x", g.cols,
             " does not match the weight ", w.rows, "x", w.cols);
  check_rank(r, w, "lora_ns");
  const int64_t k = std::min(r + 4, std::min(w.rows, w.cols));
  SMOL_CHECK(omega.rows == w.rows && omega.cols == k, "lora_ns: Ω is ", omega.rows, "x", omega.cols,
             " but must be ", w.rows, "x", k);
  const DenseMatrix q = newton_schulz_polar(g);                               // [out, in]
  const DenseMatrix basis = qr_orthonormal(multiply(q, true, omega, false));  // [in, k]
  const DenseMatrix v_r = select_columns(basis, index_range(0, r));           // [in, r]
  LoraFactors f;
  f.B = multiply(q, false, v_r, false);  // U_r = Q·V_r [out, r]
  f.A = transposed(v_r);
  apply_gradient_init_scale(f.A, f.B, w, r, scaling, spec, rng, true);
  f.residual = residual_of(w, f.B, f.A, scaling);
  return f;
}

}  // namespace smol
