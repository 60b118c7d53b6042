// The tiny random Llama against HF transformers (+PEFT) in fp32 (tests/golden/model):
// logits of 3 packed rows, and loss + every gradient for LoRA on all seven projections and
// for full fine-tuning.
#include <gtest/gtest.h>

#include "model_test_util.h"

namespace smol::test {
namespace {

TEST(GoldenTiny, ForwardLogitsMatchTransformers) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, TrainMode::Frozen);
  const SafetensorsFile golden = SafetensorsFile::open(golden_dir() + "/forward.safetensors");
  const std::vector<int32_t> ids = golden.read_i32("ids");
  const std::vector<int32_t> lengths = golden.read_i32("lengths");
  std::vector<TokenRow> rows;
  size_t at = 0;
  for (int32_t n : lengths) {
    rows.push_back({std::vector<int32_t>(ids.begin() + at, ids.begin() + at + n), {}});
    at += n;
  }
  std::vector<float> logits;
  model->forward_logits(rows, &logits);
  // The golden is float64 rounded to fp32; ours is fp32 over 2 layers of width ≤ 96: differences
  // are summation-order rounding, ~1e-6 relative on logits of magnitude ~1; 1e-4 absolute is the
  // issue's bound.
  const std::vector<float> ref = golden.read_f32("logits").data;
  const double err = max_abs_diff(logits, ref);

  EXPECT_LE(err, 1e-4);
  std::printf("[golden tiny] forward logits max |err| = %.3g\n", err);
}

// Loss and gradients of the padded 2-row batch: HF's loss is the mean over supervised tokens,
// so our loss_scale is 1/supervised and loss = loss_sum / supervised.
void check_gradients(TrainMode mode, std::optional<LoraSettings> lora, const std::string& file,
                     bool load_lora_params) {
  auto backend = make_cpu_backend();
  auto model = load_tiny(*backend, mode, lora);
  const SafetensorsFile golden = SafetensorsFile::open(golden_dir() + "/" + file);
  if (load_lora_params)
    for (const SafetensorsEntry& e : golden.entries())
      if (e.name.rfind("param.", 0) == 0)
        model->write_tensor(e.name.substr(6), golden.read_f32(e.name));
  const std::vector<TokenRow> rows = golden_train_rows();
  int64_t supervised = 0;
  for (const TokenRow& r : rows)
    for (size_t t = 1; t < r.labels.size(); ++t) supervised += r.labels[t] != -100;
  model->zero_grads();
  const ForwardResult res = model->forward_backward(rows, 1.0f / supervised, 0, true);
  ASSERT_EQ(res.supervised, supervised);
  const double loss = res.loss_sum / res.supervised;
  const double ref_loss = golden.read_f32("loss").data.at(0);
  // Loss ~5.7 (ln 300) summed in double from fp32 token losses: relative 1e-6 is rounding.
  EXPECT_NEAR(loss, ref_loss, 1e-5 * std::fabs(ref_loss));
  double worst = 0;
  std::string worst_name;
  size_t checked = 0;
  for (const TrainableParam& p : model->trainable_params()) {
    const SafetensorsEntry* ref = golden.find("grad." + p.name);
    ASSERT_NE(ref, nullptr) << "no golden gradient for " << p.name;
    std::vector<float> grad(static_cast<size_t>(p.grad.numel()));
    backend->download(grad.data(), p.grad);
    const double err = rel_l2(grad, golden.read_f32("grad." + p.name).data);
    // Relative L2 error of the whole tensor against the float64 truth: fp32 rounding through
    // ~20 chained ops is ~1e-6 (measured ≤ 1.3e-6); the bound is 1e-4.
    EXPECT_LE(err, 1e-4) << p.name;
    if (err > worst) worst = err, worst_name = p.name;
    ++checked;
  }
  size_t expected = 0;
  for (const SafetensorsEntry& e : golden.entries()) expected += e.name.rfind("grad.", 0) == 0;
  EXPECT_EQ(checked, expected) << "every golden gradient must be compared";
  std::printf("[golden tiny] %s: loss %.7f vs %.7f, %zu grads, worst rel-L2 %.3g (%s)\n",
              file.c_str(), loss, ref_loss, checked, worst, worst_name.c_str());
}

TEST(GoldenTiny, LoraAllProjectionsGradientsMatchPeft) {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.targets = {Projection::Q,    Projection::K,  Projection::V,   Projection::O,
                  Projection::Gate, Projection::Up, Projection::Down};
  check_gradients(TrainMode::Lora, lora, "lora.safetensors", true);
}

TEST(GoldenTiny, FullFineTuningGradientsMatchTransformers) {
  check_gradients(TrainMode::Full, std::nullopt, "full.safetensors", false);
}

}  // namespace
}  // namespace smol::test
