// LoRA initialisers (seed-spec.md §4); see lora_init.h for the formulas.
#include "model/lora_init.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"

namespace smol {

// ---- names and parsing -----------------------------------------------------------------------

LoraGaDirection parse_lora_ga_direction(const std::string& value, const std::string& where) {
  if (value == "ArB2r") return LoraGaDirection::ArB2r;
  if (value == "ArBr") return LoraGaDirection::ArBr;
  if (value == "A2rBr") return LoraGaDirection::A2rBr;
  if (value == "random") return LoraGaDirection::Random;
  throw_error(where, ": unknown LoRA-GA direction '", value,
              "' (expected ArB2r, ArBr, A2rBr or random)");
}

LoraGaScale parse_lora_ga_scale(const std::string& value, const std::string& where) {
  if (value == "stable") return LoraGaScale::Stable;
  if (value == "gd") return LoraGaScale::Gd;
  if (value == "unit") return LoraGaScale::Unit;
  if (value == "weightS") return LoraGaScale::WeightS;
  throw_error(where, ": unknown LoRA-GA scale '", value,
              "' (expected stable, gd, unit or weightS)");
}

LoraInitSpec parse_lora_init(const std::string& value, const std::string& where) {
  LoraInitSpec spec;
  static const std::string kNiterPrefix = "pissa_niter_";
  if (value == "gaussian") {
    spec.kind = LoraInitKind::Gaussian;
  } else if (value == "true" || value == "True" || value == "kaiming") {
    spec.kind = LoraInitKind::Kaiming;
  } else if (value == "false" || value == "False") {
    spec.kind = LoraInitKind::NonZero;
  } else if (value == "pissa") {
    spec.kind = LoraInitKind::Pissa;
  } else if (value.rfind(kNiterPrefix, 0) == 0) {
    const std::string digits = value.substr(kNiterPrefix.size());
    SMOL_CHECK(!digits.empty() && digits.size() <= 4 &&
                   std::all_of(digits.begin(), digits.end(), ::isdigit),
               where, ": init_lora_weights '", value,
               "' needs pissa_niter_<K> with 0 <= K < 10000");
    spec.kind = LoraInitKind::PissaNiter;
    spec.niter = std::stoi(digits);
  } else if (value == "lora_ga") {
    spec.kind = LoraInitKind::LoraGa;
  } else if (value == "lora_ns") {
    spec.kind = LoraInitKind::LoraNs;
  } else {
    throw_error(where, ": unsupported init_lora_weights '", value,
                "' (expected gaussian, true, false, pissa, pissa_niter_K, lora_ga or lora_ns)");
  }
  return spec;
}

std::string lora_init_name(const LoraInitSpec& spec) {
  switch (spec.kind) {
    case LoraInitKind::Gaussian:
      return "gaussian";
    case LoraInitKind::Kaiming:
      return "true";
    case LoraInitKind::NonZero:
      return "false";
    case LoraInitKind::Pissa:
      return "pissa";
    case LoraInitKind::PissaNiter:
      return "pissa_niter_" + std::to_string(spec.niter);
    case LoraInitKind::LoraGa:
      return "lora_ga";
    case LoraInitKind::LoraNs:
      return "lora_ns";
  }
  return "?";
}

bool lora_init_needs_gradient(LoraInitKind kind) {
  return kind == LoraInitKind::LoraGa || kind == LoraInitKind::LoraNs;
}

bool lora_init_moves_base_weight(LoraInitKind kind) {
  return kind == LoraInitKind::Pissa || kind == LoraInitKind::PissaNiter ||
         kind == LoraInitKind::LoraGa || kind == LoraInitKind::LoraNs;
}

// ---- dense helpers ---------------------------------------------------------------------------

DenseMatrix dense_from_host(const HostTensor& t, const std::string& name) {
  SMOL_CHECK(t.shape.rank == 2, "tensor ", name, " has shape ", t.shape.str(),
             "; a LoRA initialiser needs a matrix");
  SMOL_CHECK(static_cast<int64_t>(t.data.size()) == t.shape.numel(), "tensor ", name, " holds ",
             t.data.size(), " values for shape ", t.shape.str());
  DenseMatrix m(t.shape[0], t.shape[1]);
  std::copy(t.data.begin(), t.data.end(), m.data.begin());
  return m;
}

HostTensor host_from_dense(const DenseMatrix& m) {
  HostTensor t;
  t.shape = Shape{m.rows, m.cols};
  t.data.assign(m.data.begin(), m.data.end());  // the one rounding to fp32
  return t;
}

DenseMatrix gaussian_matrix(int64_t rows, int64_t cols, SeededRng& rng) {
  DenseMatrix m(rows, cols);
  for (double& x : m.data) x = rng.normal();
  return m;
}

namespace {

// c = op(a)·op(b), op(x) = x or xᵀ.
DenseMatrix multiply(const DenseMatrix& a, bool transpose_a, const DenseMatrix& b,
                     bool transpose_b) {
  const int64_t m = transpose_a ? a.cols : a.rows;
  const int64_t k = transpose_a ? a.rows : a.cols;
  const int64_t kb = transpose_b ? b.cols : b.rows;
  const int64_t n = transpose_b ? b.rows : b.cols;
  SMOL_CHECK(k == kb, "LoRA init: inner dimensions ", k, " and ", kb, " differ");
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

std::vector<int64_t> index_range(int64_t begin, int64_t end, int64_t stride = 1) {
  std::vector<int64_t> idx;
  for (int64_t i = begin; i < end; i += stride) idx.push_back(i);
  return idx;
}

void scale_in_place(DenseMatrix& a, double factor) {
  for (double& x : a.data) x *= factor;
}

// W − s·B·A.
DenseMatrix residual_of(const DenseMatrix& w, const DenseMatrix& b, const DenseMatrix& a,
                        double scaling) {
  DenseMatrix product = multiply(b, false, a, false);
  DenseMatrix residual = w;
  for (size_t i = 0; i < residual.data.size(); ++i) residual.data[i] -= scaling * product.data[i];
  return residual;
}

double frobenius(const DenseMatrix& a) {
  double sum = 0;
  for (double x : a.data) sum += x * x;
  return std::sqrt(sum);
}

void check_rank(int64_t r, const DenseMatrix& w, const char* method, int64_t factor = 1) {
  SMOL_CHECK(r > 0 && factor * r <= std::min(w.rows, w.cols), method, ": rank ", r,
             (factor > 1 ? " (times " + std::to_string(factor) + ")" : std::string()),
             " exceeds the smaller dimension of a ", w.rows, "x", w.cols, " weight");
}

}  // namespace

SvdResult thin_svd(const DenseMatrix& a) {
  const int64_t m = a.rows, n = a.cols, k = std::min(m, n);
  SMOL_CHECK(k > 0, "SVD of an empty ", m, "x", n, " matrix");
  DenseMatrix work = a;
  SvdResult result;
  result.S.assign(static_cast<size_t>(k), 0.0);
  result.U = DenseMatrix(m, k);
  DenseMatrix vt(k, n);
  const lapack_int info = LAPACKE_dgesdd(
      LAPACK_ROW_MAJOR, 'S', static_cast<lapack_int>(m), static_cast<lapack_int>(n),
      work.data.data(), static_cast<lapack_int>(n), result.S.data(), result.U.data.data(),
      static_cast<lapack_int>(k), vt.data.data(), static_cast<lapack_int>(n));
  SMOL_CHECK(info == 0, "SVD (LAPACKE_dgesdd) of a ", m, "x", n, " matrix failed: info ", info);
  result.V = transposed(vt);
  return result;
}

DenseMatrix qr_orthonormal(const DenseMatrix& x) {
  const int64_t m = x.rows, k = x.cols;
  SMOL_CHECK(m >= k && k > 0, "QR: need a tall matrix, got ", m, "x", k);
  DenseMatrix q = x;
  std::vector<double> tau(static_cast<size_t>(k));
  lapack_int info =
      LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, static_cast<lapack_int>(m), static_cast<lapack_int>(k),
                     q.data.data(), static_cast<lapack_int>(k), tau.data());
  SMOL_CHECK(info == 0, "QR (LAPACKE_dgeqrf) of a ", m, "x", k, " matrix failed: info ", info);
  info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, static_cast<lapack_int>(m), static_cast<lapack_int>(k),
                        static_cast<lapack_int>(k), q.data.data(), static_cast<lapack_int>(k),
                        tau.data());
  SMOL_CHECK(info == 0, "QR (LAPACKE_dorgqr) of a ", m, "x", k, " matrix failed: info ", info);
  return q;
}

SvdResult svd_lowrank(const DenseMatrix& a, int64_t q, int niter, const DenseMatrix& sketch) {
  const bool transpose = a.rows < a.cols;  // torch: "Assume that A is tall"
  const DenseMatrix tall = transpose ? transposed(a) : a;
  SMOL_CHECK(q > 0 && q <= tall.cols, "svd_lowrank: q = ", q, " must be in [1, ", tall.cols, "]");
  SMOL_CHECK(sketch.rows == tall.cols && sketch.cols == q, "svd_lowrank: the sketch is ",
             sketch.rows, "x", sketch.cols, " but must be ", tall.cols, "x", q);
  // get_approximate_basis: Q = qr(A R); niter × (Q = qr(Aᵀ Q); Q = qr(A Q)).
  DenseMatrix basis = qr_orthonormal(multiply(tall, false, sketch, false));
  for (int i = 0; i < niter; ++i) {
    basis = qr_orthonormal(multiply(tall, true, basis, false));
    basis = qr_orthonormal(multiply(tall, false, basis, false));
  }
  SvdResult small = thin_svd(multiply(basis, true, tall, false));  // Qᵀ A [q, N]
  SvdResult result;
  result.S = small.S;
  result.U = multiply(basis, false, small.U, false);
  result.V = small.V;
  if (transpose) std::swap(result.U, result.V);
  return result;
}

// ---- the formulas ------------------------------------------------------------------------------

namespace {

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

// ---- on a model ------------------------------------------------------------------------------

std::string projection_weight_name(int64_t layer, Projection projection) {
  const bool attention = projection == Projection::Q || projection == Projection::K ||
                         projection == Projection::V || projection == Projection::O;
  return "model.layers." + std::to_string(layer) + (attention ? ".self_attn." : ".mlp.") +
         projection_name(projection) + ".weight";
}

std::string lora_tensor_name(const std::string& weight_name, const char* which) {
  static const std::string kSuffix = ".weight";
  SMOL_CHECK(
      weight_name.size() > kSuffix.size() &&
          weight_name.compare(weight_name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0,
      "weight name ", weight_name, " does not end in .weight");
  return weight_name.substr(0, weight_name.size() - kSuffix.size()) + ".lora_" + which + kSuffix;
}

LoraInitReport initialize_lora(LlamaModel& model, const LoraInitSpec& spec,
                               const WeightGradients* gradients) {
  SMOL_CHECK(model.mode() == TrainMode::Lora && model.lora().has_value(), "LoRA init '",
             lora_init_name(spec), "' needs a model built in LoRA mode");
  const LoraSettings& lora = *model.lora();
  const int64_t r = lora.r;
  const double scaling = lora.scaling();
  LoraInitReport report;
  report.method = lora_init_name(spec);
  report.residualised = lora_init_moves_base_weight(spec.kind);
  if (lora_init_needs_gradient(spec.kind))
    SMOL_CHECK(gradients != nullptr, "LoRA init '", report.method,
               "' needs weight gradients (estimate_weight_gradients)");

  for (int64_t layer = 0; layer < model.config().num_hidden_layers; ++layer) {
    for (Projection projection : lora.targets) {
      const std::string weight_name = projection_weight_name(layer, projection);
      const DenseMatrix w = dense_from_host(model.read_tensor(weight_name), weight_name);
      SeededRng rng(SeededRng::seed_for(spec.seed, weight_name));
      LoraFactors f;
      DenseMatrix gradient;
      const DenseMatrix* g = nullptr;
      if (lora_init_needs_gradient(spec.kind)) {
        auto it = gradients->find(weight_name);
        SMOL_CHECK(it != gradients->end(), "LoRA init '", report.method,
                   "': no gradient for weight ", weight_name);
        gradient = dense_from_host(it->second, "gradient of " + weight_name);
        SMOL_CHECK(gradient.rows == w.rows && gradient.cols == w.cols, "gradient of ", weight_name,
                   " has shape ", it->second.shape.str(), ", the weight is ", w.rows, "x", w.cols);
        g = &gradient;
      }
      switch (spec.kind) {
        case LoraInitKind::Gaussian:
          // PEFT: nn.init.normal_(A, std=1/r); B zeros.
          f.A = gaussian_matrix(r, w.cols, rng);
          scale_in_place(f.A, 1.0 / static_cast<double>(r));
          f.B = DenseMatrix(w.rows, r);
          break;
        case LoraInitKind::Kaiming:
        case LoraInitKind::NonZero: {
          // kaiming_uniform_(a=√5): bound = √3·√(2/(1+5))/√fan_in = 1/√fan_in.
          f.A = DenseMatrix(r, w.cols);
          const double bound_a = 1.0 / std::sqrt(static_cast<double>(w.cols));
          for (double& x : f.A.data) x = rng.uniform(-bound_a, bound_a);
          f.B = DenseMatrix(w.rows, r);
          if (spec.kind == LoraInitKind::NonZero) {
            const double bound_b = 1.0 / std::sqrt(static_cast<double>(r));
            for (double& x : f.B.data) x = rng.uniform(-bound_b, bound_b);
          }
          break;
        }
        case LoraInitKind::Pissa:
          f = pissa_factors(w, r, scaling);
          break;
        case LoraInitKind::PissaNiter:
          f = pissa_niter_factors(w, r, scaling, spec.niter,
                                  gaussian_matrix(std::min(w.rows, w.cols), r, rng));
          break;
        case LoraInitKind::LoraGa: {
          const int64_t q = std::min(4 * r, std::min(w.rows, w.cols));
          const DenseMatrix sketch = gaussian_matrix(std::min(w.rows, w.cols), q, rng);
          f = lora_ga_factors(w, *g, r, scaling, spec, sketch, rng);
          break;
        }
        case LoraInitKind::LoraNs: {
          const int64_t k = std::min(r + 4, std::min(w.rows, w.cols));
          const DenseMatrix omega = gaussian_matrix(w.rows, k, rng);
          f = lora_ns_factors(w, *g, r, scaling, spec, omega, rng);
          break;
        }
      }
      model.write_tensor(lora_tensor_name(weight_name, "A"), host_from_dense(f.A));
      model.write_tensor(lora_tensor_name(weight_name, "B"), host_from_dense(f.B));
      LoraInitLayerReport layer_report;
      layer_report.weight_name = weight_name;
      layer_report.weight_norm = frobenius(w);
      if (!f.residual.empty()) {
        DenseMatrix moved = f.residual;
        for (size_t i = 0; i < moved.data.size(); ++i) moved.data[i] -= w.data[i];
        layer_report.moved_norm = frobenius(moved);
        model.write_tensor(weight_name, host_from_dense(f.residual));
      }
      report.layers.push_back(layer_report);
    }
  }
  return report;
}

WeightGradients estimate_weight_gradients(LlamaModel& lora_model,
                                          const std::vector<std::vector<TokenRow>>& batches) {
  SMOL_CHECK(lora_model.lora().has_value(), "gradient estimation needs a LoRA model's targets");
  // A full fine-tuning copy of the base weights: its backward yields dL/dW for every weight.
  HostTensorMap base;
  for (const std::string& name : lora_model.tensor_names())
    if (name.find(".lora_") == std::string::npos) base[name] = lora_model.read_tensor(name);
  LlamaModel full(lora_model.backend(), lora_model.config(), TrainMode::Full);
  full.load_weights(base);
  full.zero_grads();

  int64_t used_batches = 0;
  for (const auto& batch : batches) {
    int64_t supervised = 0;
    for (const TokenRow& row : batch)
      for (size_t t = 1; t < row.labels.size(); ++t) supervised += row.labels[t] != -100;
    if (supervised > 0) ++used_batches;
  }
  SMOL_CHECK(used_batches > 0, "gradient estimation: none of the ", batches.size(),
             " batches has a supervised token");
  for (size_t i = 0; i < batches.size(); ++i) {
    int64_t supervised = 0;
    for (const TokenRow& row : batches[i])
      for (size_t t = 1; t < row.labels.size(); ++t) supervised += row.labels[t] != -100;
    if (supervised == 0) continue;
    // Σ_b mean_b / n_batches, accumulated in the fp32 grads by scaling each batch's backward.
    const double scale =
        1.0 / (static_cast<double>(supervised) * static_cast<double>(used_batches));
    full.forward_backward(batches[i], static_cast<float>(scale), /*dropout_seed=*/i, true);
  }

  WeightGradients gradients;
  const LoraSettings& lora = *lora_model.lora();
  std::map<std::string, bool> wanted;
  for (int64_t layer = 0; layer < lora_model.config().num_hidden_layers; ++layer)
    for (Projection projection : lora.targets)
      wanted[projection_weight_name(layer, projection)] = true;
  for (const TrainableParam& p : full.trainable_params()) {
    if (!wanted.count(p.name)) continue;
    HostTensor g;
    g.shape = p.grad.shape;
    g.data.resize(static_cast<size_t>(p.grad.numel()));
    full.backend().download(g.data.data(), p.grad);
    gradients[p.name] = std::move(g);
  }
  SMOL_CHECK(gradients.size() == wanted.size(), "gradient estimation: the full model exposed ",
             gradients.size(), " of the ", wanted.size(), " targeted weights");
  return gradients;
}

}  // namespace smol
