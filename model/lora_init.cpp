// Initialising every adapter of a model (see lora_init.h; formulas in lora_factors.h).
#include "model/lora_init.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace smol {

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

}  // namespace smol
