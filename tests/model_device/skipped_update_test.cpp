// A non-finite gradient norm on the device (engine/optimizer.h, kernels/backend.h AdamWHyper):
// the update is skipped with no host wait — parameters and moments keep their bits — the clip
// state records the first skipped step, every later update is skipped too, and the lazy read
// (AdamW::read_step_stats) gives the trainer its error naming that step. Run on cpu and on
// cuda-emu (the cuda kernels), for a NaN and an infinite gradient.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "device_test_util.h"
#include "engine/optimizer.h"
#include "engine/train_step.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

std::vector<float> read(Backend& backend, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  backend.download(host.data(), t);
  return host;
}

// Every parameter and moment, in order (bitwise comparison: a skipped update changes nothing).
std::vector<std::vector<float>> state_of(Backend& backend, const AdamW& optimizer) {
  std::vector<std::vector<float>> state;
  for (size_t i = 0; i < optimizer.params().size(); ++i) {
    state.push_back(read(backend, optimizer.params()[i].value));
    state.push_back(read(backend, optimizer.first_moment(i)));
    state.push_back(read(backend, optimizer.second_moment(i)));
  }
  return state;
}

bool same_bits(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() ||
        std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float)) != 0)
      return false;
  return true;
}

// The named backend, or nullptr when this build lacks it (cuda-emu in a cpu-only build).
std::unique_ptr<Backend> backend_if_built(const std::string& name) {
  try {
    return make_backend(name);
  } catch (const Error&) {
    return nullptr;
  }
}

// The tiny golden Llama with LoRA r 4 (alpha 8) on its default targets, factors randomised (the
// same seed every call, so two calls build equal models).
std::unique_ptr<LlamaModel> randomised_tiny_lora(Backend& backend) {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  auto model = load_tiny(backend, TrainMode::Lora, lora);
  randomise_trainable(backend, *model);
  return model;
}

TEST(SkippedUpdate, NonFiniteGradientSkipsTheUpdateAndIsReportedLazily) {
  for (const std::string device_name : {"cpu", "cuda-emu"}) {
    for (const float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      SCOPED_TRACE(device_name + (std::isnan(bad) ? " NaN" : " inf"));
      std::unique_ptr<Backend> backend = backend_if_built(device_name);
      if (!backend) continue;
      auto model = randomised_tiny_lora(*backend);
      AdamWSettings settings;
      settings.weight_decay = 0.01;
      settings.max_grad_norm = 1.0;
      AdamW optimizer(*backend, model->trainable_params(), settings);
      const LrSchedule schedule(LrScheduleKind::Constant, 1e-3, 10, 0);

      // Step 1 is finite and applied.
      const std::vector<std::vector<float>> initial = state_of(*backend, optimizer);
      train_step(*model, optimizer, schedule, golden_micro_batches(), 1);
      OptimizerStepStats stats = optimizer.read_step_stats();
      EXPECT_EQ(stats.first_skipped_step, 0);
      EXPECT_TRUE(std::isfinite(stats.grad_norm) && stats.grad_norm > 0) << stats.grad_norm;
      const std::vector<std::vector<float>> after_1 = state_of(*backend, optimizer);
      EXPECT_FALSE(same_bits(initial, after_1)) << "step 1 must change the parameters";

      // Step 2: real gradients with one element made non-finite.
      model->zero_grads();
      accumulate_gradients(*model, golden_micro_batches(), 2);
      const Tensor grad = optimizer.params().back().grad;
      std::vector<float> host = read(*backend, grad);
      host[host.size() / 2] = bad;
      backend->upload(grad, host.data());
      optimizer.step(schedule.lr(optimizer.steps_done()));
      model->zero_grads();
      EXPECT_TRUE(same_bits(after_1, state_of(*backend, optimizer)))
          << "a non-finite norm must leave parameters and moments unchanged";

      // Step 3 is finite, but a run never continues past a skipped update: skipped too.
      train_step(*model, optimizer, schedule, golden_micro_batches(), 3);
      EXPECT_TRUE(same_bits(after_1, state_of(*backend, optimizer)))
          << "updates after a skipped one must be skipped as well";
      stats = optimizer.read_step_stats();
      EXPECT_EQ(stats.step, 3);
      EXPECT_EQ(stats.first_skipped_step, 2) << "the first skipped step is recorded";
      EXPECT_EQ(std::isnan(stats.first_skipped_grad_norm), std::isnan(bad));
      EXPECT_FALSE(std::isfinite(stats.first_skipped_grad_norm));

      // The trainer's stop: today's message, naming the skipped step.
      try {
        throw_if_update_skipped(stats, 6, 3);
        ADD_FAILURE() << "no error for a skipped update";
      } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("step 2 of 6: AdamW: the gradient norm is not finite ("),
                  std::string::npos)
            << what;
        EXPECT_NE(what.find("the run stopped before applying this update"), std::string::npos)
            << what;
      }
    }
  }
}

// A non-finite loss with finite gradients (AdamWHyper::loss_check; the trainer's deferred loss,
// engine/train/step_losses.h): the deferred step skips its update on the device, the record
// keeps the step's finite norm, and the trainer's stop names the loss. Then the deferred path's
// recorded loss equals the synchronous read bit for bit on a finite step.
TEST(SkippedUpdate, NonFiniteLossSkipsTheUpdateOnTheDevice) {
  for (const std::string device_name : {"cpu", "cuda-emu"}) {
    SCOPED_TRACE(device_name);
    std::unique_ptr<Backend> backend = backend_if_built(device_name);
    if (!backend) continue;
    auto model = randomised_tiny_lora(*backend);
    auto twin = randomised_tiny_lora(*backend);  // the synchronous path
    AdamWSettings settings;
    settings.max_grad_norm = 1.0;
    AdamW optimizer(*backend, model->trainable_params(), settings);
    AdamW twin_optimizer(*backend, twin->trainable_params(), settings);
    const LrSchedule schedule(LrScheduleKind::Constant, 1e-3, 10, 0);
    StepLosses losses(*backend);

    // Step 1, finite: the deferred loss equals the synchronous one, and so do the parameters.
    const TrainStepResult deferred =
        train_step(*model, optimizer, schedule, golden_micro_batches(), 1, nullptr, &losses);
    EXPECT_TRUE(std::isnan(deferred.loss)) << "the deferred loss is not read in the step";
    const TrainStepResult sync =
        train_step(*twin, twin_optimizer, schedule, golden_micro_batches(), 1);
    std::vector<StepLoss> got = losses.read();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].step, 1);
    EXPECT_EQ(got[0].loss, sync.loss) << "the same fp32 Σ divided in double";
    EXPECT_TRUE(same_bits(state_of(*backend, optimizer), state_of(*backend, twin_optimizer)));
    EXPECT_EQ(read(*backend, model->loss_accumulator())[0], 0.0f) << "record zeroes the sum";

    // Step 2: finite gradients, but the accumulated loss is made NaN before the update.
    const std::vector<std::vector<float>> after_1 = state_of(*backend, optimizer);
    model->zero_grads();
    accumulate_gradients(*model, golden_micro_batches(), 2, nullptr, nullptr, nullptr,
                         /*read_loss=*/false);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    backend->upload(model->loss_accumulator(), &nan);
    optimizer.step(schedule.lr(optimizer.steps_done()), model->loss_accumulator());
    losses.record(*model, 2, 10);
    model->zero_grads();
    EXPECT_TRUE(same_bits(after_1, state_of(*backend, optimizer)))
        << "a non-finite loss must leave parameters and moments unchanged";
    got = losses.read();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].step, 2);
    EXPECT_TRUE(std::isnan(got[0].loss));
    const OptimizerStepStats stats = optimizer.read_step_stats();
    EXPECT_EQ(stats.first_skipped_step, 2);
    EXPECT_TRUE(std::isfinite(stats.first_skipped_grad_norm)) << "the gradients were finite";
    try {
      throw_if_update_skipped(stats, 6, 2);
      ADD_FAILURE() << "no error for a skipped update";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("step 2 of 6: the loss is not finite"), std::string::npos) << what;
    }
  }
}

// The clip factor computed on the device equals the host formula bit for bit: cuda-emu's
// parameters after one clipped step equal those of the same kernel given the host's factor
// (torch's clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, in double).
TEST(SkippedUpdate, DeviceClipFactorEqualsTheHostFormula) {
  std::unique_ptr<Backend> backend = backend_if_built("cuda-emu");
  if (!backend) GTEST_SKIP() << "cuda-emu is not in this build";
  std::vector<std::vector<float>> results;
  for (const bool on_device : {true, false}) {
    LoraSettings lora;
    lora.r = 4;
    lora.alpha = 8;
    auto model = load_tiny(*backend, TrainMode::Lora, lora);
    randomise_trainable(*backend, *model);
    model->zero_grads();
    accumulate_gradients(*model, golden_micro_batches(), 7);
    std::vector<AdamWTensor> tensors;
    std::vector<Buffer> moments;
    std::vector<Tensor> grads;
    for (const TrainableParam& p : model->trainable_params()) {
      const size_t bytes = static_cast<size_t>(p.value.numel()) * sizeof(float);
      moments.push_back(backend->allocate(bytes));
      moments.push_back(backend->allocate(bytes));
      tensors.push_back({p.value, p.grad,
                         moments[moments.size() - 2].view(DType::F32, p.value.shape),
                         moments.back().view(DType::F32, p.value.shape), 0.01f});
      grads.push_back(p.grad);
    }
    const double max_grad_norm = 0.05;  // below the tiny model's norm: clipping binds
    AdamWHyper hyper;
    hyper.lr = 1e-3f;
    if (on_device) {
      Buffer clip = backend->allocate(3 * sizeof(double));
      hyper.clip_state = clip.view(DType::F64, Shape{3});
      hyper.max_grad_norm = max_grad_norm;
      backend->sum_of_squares_into(hyper.clip_state.elements(0, 1), grads);
      backend->adamw_step(tensors, hyper);
      backend->synchronize();
    } else {
      const double norm = std::sqrt(backend->sum_of_squares(grads));
      ASSERT_GT(norm, max_grad_norm);
      hyper.grad_scale = static_cast<float>(std::min(1.0, max_grad_norm / (norm + 1e-6)));
      backend->adamw_step(tensors, hyper);
    }
    std::vector<float> all;
    for (const TrainableParam& p : model->trainable_params()) {
      const std::vector<float> v = read(*backend, p.value);
      all.insert(all.end(), v.begin(), v.end());
    }
    results.push_back(all);
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  EXPECT_EQ(std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)),
            0);
}

}  // namespace
}  // namespace smol::test
