// PiSSA and pissa_niter_4 against PEFT's own initialisation (tests/golden/training/
// pissa.safetensors) on the tiny model with gapped target weights (four singular values
// 4, 3.5, 3, 2.5, then a tail below 0.02), LoRA r = 4, α = 8 on all seven projections.
//
// Singular vectors are defined up to sign, so products B·A are compared, not factors.
// PEFT's SVD runs in fp32 (relative accuracy ≈ 1e-6 of ‖W‖ on well-separated values), ours in
// double: B·A agree to ~1e-6 of the max-norm; 2e-5 bounds it. pissa_niter_4 uses a different
// random sketch than torch, but with σ5/σ4 < 0.008 four power iterations converge to the same
// rank-4 subspace to (0.008)^9, far below fp32, so the same bound holds.
// W_res + s·B·A reproduces W to fp32 rounding: W_res and the factors are rounded to fp32 once
// (≤ 1 ulp of |W| ≤ 4, i.e. ≤ 5e-7), so 2e-6 absolute.
#include <gtest/gtest.h>

#include <cstdio>

#include "kernels/cpu/cpu_backend.h"
#include "model/lora_init.h"
#include "training_fixtures.h"

namespace smol {
namespace {

std::vector<float> scaled_product(const HostTensor& b, const HostTensor& a, double scaling) {
  const int64_t out = b.shape[0], r = b.shape[1], in = a.shape[1];
  std::vector<float> product(static_cast<size_t>(out * in));
  for (int64_t i = 0; i < out; ++i)
    for (int64_t j = 0; j < in; ++j) {
      double sum = 0;
      for (int64_t k = 0; k < r; ++k)
        sum += static_cast<double>(b.data[i * r + k]) * a.data[k * in + j];
      product[i * in + j] = static_cast<float>(scaling * sum);
    }
  return product;
}

void check_pissa(const std::string& init) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  const LoadedModel& tiny = test::tiny_model();
  LlamaModel model(*backend, tiny.config, TrainMode::Lora, test::fixture_lora());
  model.load_weights(tiny.weights);
  const SafetensorsFile golden = SafetensorsFile::open(test::golden("pissa.safetensors"));
  std::vector<std::string> targets;
  for (const SafetensorsEntry& e : golden.entries())
    if (e.name.rfind("weight.", 0) == 0) {
      targets.push_back(e.name.substr(7));
      model.write_tensor(targets.back(), golden.read_f32(e.name));
    }
  ASSERT_EQ(targets.size(), 14u);

  LoraInitSpec spec = parse_lora_init(init, "test");
  spec.seed = 5;
  const LoraInitReport report = initialize_lora(model, spec);
  EXPECT_TRUE(report.residualised);
  EXPECT_EQ(report.layers.size(), 14u);
  const double s = test::fixture_lora().scaling();

  double worst_product = 0, worst_reconstruction = 0, worst_residual = 0;
  for (const std::string& name : targets) {
    const HostTensor a = model.read_tensor(lora_tensor_name(name, "A"));
    const HostTensor b = model.read_tensor(lora_tensor_name(name, "B"));
    const HostTensor residual = model.read_tensor(name);
    const HostTensor w = golden.read_f32("weight." + name);
    const std::vector<float> ours = scaled_product(b, a, s);
    const std::vector<float> peft =
        scaled_product(golden.read_f32(init + "." + lora_tensor_name(name, "B")),
                       golden.read_f32(init + "." + lora_tensor_name(name, "A")), s);
    const double product_error = test::max_norm_relative_error(ours, peft);
    EXPECT_LT(product_error, 2e-5) << name;
    std::vector<float> rebuilt(residual.data.size());
    for (size_t i = 0; i < rebuilt.size(); ++i) rebuilt[i] = residual.data[i] + ours[i];
    const double reconstruction = test::max_abs_error(rebuilt, w.data);
    EXPECT_LT(reconstruction, 2e-6) << name;
    const double residual_error =
        test::max_abs_error(residual.data, golden.read_f32(init + ".residual." + name).data);
    EXPECT_LT(residual_error, 2e-5) << name;
    worst_product = std::max(worst_product, product_error);
    worst_reconstruction = std::max(worst_reconstruction, reconstruction);
    worst_residual = std::max(worst_residual, residual_error);
  }
  std::printf(
      "[golden %s] s·B·A vs PEFT rel %.3g, W_res + s·B·A vs W abs %.3g, W_res vs PEFT "
      "abs %.3g\n",
      init.c_str(), worst_product, worst_reconstruction, worst_residual);
}

TEST(PissaInit, MatchesPeftFullSvd) {
  check_pissa("pissa");
}
TEST(PissaInit, NiterMatchesPeftRandomizedSvd) {
  check_pissa("pissa_niter_4");
}

TEST(LoraInit, GaussianAndKaimingDrawTheDocumentedDistributions) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  const LoadedModel& tiny = test::tiny_model();
  LoraSettings lora = test::fixture_lora();
  LlamaModel model(*backend, tiny.config, TrainMode::Lora, lora);
  model.load_weights(tiny.weights);
  const std::string q = projection_weight_name(0, Projection::Q);
  const HostTensor w_before = model.read_tensor(q);

  LoraInitSpec spec;  // gaussian: A ~ N(0, 1/r²), B = 0, W untouched
  const LoraInitReport report = initialize_lora(model, spec);
  EXPECT_FALSE(report.residualised);
  EXPECT_EQ(model.read_tensor(q).data, w_before.data);
  double sum_sq = 0;
  size_t count = 0;
  for (const std::string& name : model.tensor_names()) {
    if (name.find("lora_B") != std::string::npos)
      for (float x : model.read_tensor(name).data) EXPECT_EQ(x, 0.0f);
    if (name.find("lora_A") != std::string::npos)
      for (float x : model.read_tensor(name).data) sum_sq += x * x, ++count;
  }
  // 14 adapters · 4 rows · (32 or 48) values ≈ 2000 draws: the sample std of N(0, 1/16) is
  // within 5 % of 0.25 with overwhelming probability (relative sd of the estimate ≈ 1.6 %).
  EXPECT_NEAR(std::sqrt(sum_sq / count), 1.0 / lora.r, 0.05 / lora.r);

  spec.kind = LoraInitKind::Kaiming;  // A ~ U(±1/√in)
  initialize_lora(model, spec);
  const HostTensor a_down =
      model.read_tensor(lora_tensor_name(projection_weight_name(1, Projection::Down), "A"));
  const double bound = 1.0 / std::sqrt(48.0);
  double largest = 0;
  for (float x : a_down.data) largest = std::max(largest, std::fabs(static_cast<double>(x)));
  EXPECT_LE(largest, bound);
  EXPECT_GT(largest, 0.9 * bound);  // 192 uniform draws reach the top 10 % of the range

  // Same seed, same adapter; different seed, different adapter.
  const HostTensor first = model.read_tensor(lora_tensor_name(q, "A"));
  initialize_lora(model, spec);
  EXPECT_EQ(model.read_tensor(lora_tensor_name(q, "A")).data, first.data);
  spec.seed = 43;
  initialize_lora(model, spec);
  EXPECT_NE(model.read_tensor(lora_tensor_name(q, "A")).data, first.data);
}

}  // namespace
}  // namespace smol

namespace smol {
namespace {

// lora_ga and lora_ns end to end on a model: G from the gradient pass, factors, residual —
// the initial forward is unchanged (W_res + s·B·A = W up to fp32 rounding), the adapters are
// nonzero, and B, A are orthogonal up to the stable scale.
TEST(LoraInit, GradientInitsKeepTheForwardInvariant) {
  std::unique_ptr<Backend> backend = make_cpu_backend();
  const LoadedModel& tiny = test::tiny_model();
  const std::vector<TokenRow> rows = test::padded(test::fixture_batch("batch1.jsonl"));
  const std::vector<std::vector<TokenRow>> samples = {
      rows, test::padded(test::fixture_batch("batch2.jsonl"))};
  for (const char* init : {"lora_ga", "lora_ns"}) {
    LlamaModel model(*backend, tiny.config, TrainMode::Lora, test::fixture_lora());
    model.load_weights(tiny.weights);
    std::vector<float> before, after;
    model.forward_logits(rows, &before);
    const WeightGradients g = estimate_weight_gradients(model, samples);
    const LoraInitReport report = initialize_lora(model, parse_lora_init(init, "test"), &g);
    EXPECT_TRUE(report.residualised);
    for (const LoraInitLayerReport& layer : report.layers) EXPECT_GT(layer.moved_norm, 0.0);
    model.forward_logits(rows, &after);
    // Logits are O(1) sums of ≈100 fp32 products; the residual split adds a few ulps.
    const double error = test::max_norm_relative_error(after, before);
    EXPECT_LT(error, 1e-5) << init;
    std::printf("[%s on model] forward change after init rel %.3g\n", init, error);
  }
}

}  // namespace
}  // namespace smol
