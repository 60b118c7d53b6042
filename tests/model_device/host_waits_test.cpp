// Host waits in one LoRA optimizer step on cuda-emu (docs/design.md §2: no host waits inside a
// step on cuda). The emulator counts every call that would block the host on a GPU
// (kernels/emu/emu_host_waits.h); a step of two micro-batches of the tiny golden Llama, with
// the loss kept on the device (forward_backward_accumulate) and read once, must stay within
// a budget of a handful: the grad-norm read for clipping and the loss read, one each.
//
// Counted after a warm-up step, which allocates the activation arena and scratch, uploads the
// RoPE tables and grows the layout area (cudaFree of a smaller area waits: once, not per step).
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/emu/emu_host_waits.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

struct Optimizer {
  std::vector<Buffer> buffers;
  std::vector<AdamWTensor> tensors;
};

Optimizer make_optimizer(Backend& backend, LlamaModel& model) {
  Optimizer opt;
  for (const TrainableParam& p : model.trainable_params()) {
    const size_t bytes = static_cast<size_t>(p.value.numel()) * sizeof(float);
    opt.buffers.push_back(backend.allocate(bytes));
    opt.buffers.push_back(backend.allocate(bytes));
    const Buffer& m = opt.buffers[opt.buffers.size() - 2];
    const Buffer& v = opt.buffers.back();
    opt.tensors.push_back({p.value, p.grad, m.view(DType::F32, p.value.shape),
                           v.view(DType::F32, p.value.shape), 0.01f});
  }
  return opt;
}

std::vector<std::vector<TokenRow>> micro_batches() {
  const std::vector<TokenRow> rows = golden_train_rows();
  return {{rows[0]}, {rows[1]}};
}

// One optimizer step as the trainer runs it: zero grads, forward+backward per micro-batch with
// the loss on the device, global grad norm (the one read clipping needs), AdamW, the loss read.
double lora_step(LlamaModel& model, Optimizer& opt, int64_t step, int64_t supervised_total) {
  Backend& backend = model.backend();
  model.zero_grads();
  for (const auto& batch : micro_batches())
    model.forward_backward_accumulate(batch, 1.0f / static_cast<float>(supervised_total),
                                      static_cast<uint64_t>(step));
  std::vector<Tensor> grads;
  for (const AdamWTensor& t : opt.tensors) grads.push_back(t.grad);
  const double norm = std::sqrt(backend.sum_of_squares(grads));
  AdamWHyper hyper;
  hyper.lr = 1e-3f;
  hyper.step = step;
  hyper.grad_scale = norm > 1.0 ? static_cast<float>(1.0 / norm) : 1.0f;
  backend.adamw_step(opt.tensors, hyper);
  return model.read_loss();
}

int64_t supervised_tokens() {
  int64_t n = 0;
  for (const TokenRow& r : golden_train_rows())
    for (size_t t = 1; t < r.labels.size(); ++t) n += r.labels[t] != -100;
  return n;
}

LoraSettings lora_qv() {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.dropout = 0.1;
  return lora;
}

TEST(HostWaits, LoraOptimizerStepOnCudaEmuStaysWithinBudget) {
  std::unique_ptr<Backend> device;
  try {
    device = make_backend("cuda-emu");
  } catch (const Error&) {
    GTEST_SKIP() << "cuda-emu is not in this build";
  }
  device->set_device_checks(false);  // the product configuration (the debug mode reads flags)
  auto model = load_tiny(*device, TrainMode::Lora, lora_qv());
  Optimizer opt = make_optimizer(*device, *model);
  const int64_t supervised = supervised_tokens();
  lora_step(*model, opt, 1, supervised);  // warm-up: allocations, tables, layout area

  const emu::HostWaitCounts before = emu::host_wait_counts();
  const double loss = lora_step(*model, opt, 2, supervised);
  const emu::HostWaitCounts after = emu::host_wait_counts();
  const uint64_t total = after.total() - before.total();
  std::printf(
      "[ measured ] host waits in one LoRA step (2 micro-batches): %llu "
      "(stream %llu, device %llu, event %llu, memcpy %llu, free %llu)\n",
      static_cast<unsigned long long>(total),
      static_cast<unsigned long long>(after.stream_sync - before.stream_sync),
      static_cast<unsigned long long>(after.device_sync - before.device_sync),
      static_cast<unsigned long long>(after.event_sync - before.event_sync),
      static_cast<unsigned long long>(after.memcpy_sync - before.memcpy_sync),
      static_cast<unsigned long long>(after.free_sync - before.free_sync));
  // The two reads the step needs on the host (grad norm, loss), plus a margin of two for the
  // upload staging's rare half switch (an event wait) — independent of layers and micro-batches.
  EXPECT_LE(total, 4u);
  EXPECT_GE(total, 2u) << "the grad-norm and loss reads are host waits: the counter is broken";
  EXPECT_TRUE(std::isfinite(loss) && loss > 0) << loss;

  // More micro-batches and layers do not add waits: a step of the same model with four
  // micro-batches waits as often.
  const emu::HostWaitCounts before4 = emu::host_wait_counts();
  model->zero_grads();
  for (int i = 0; i < 2; ++i)
    for (const auto& batch : micro_batches()) model->forward_backward_accumulate(batch, 1.0f, 3);
  model->read_loss();
  EXPECT_EQ(emu::host_wait_counts().total() - before4.total(), 1u)
      << "four micro-batches and one loss read";
}

// The deferred loss equals the downloaded one: same per-token losses, summed on the device in
// double per micro-batch and accumulated in fp32 (≤ 2^-24 relative per add, two adds).
TEST(HostWaits, DeferredLossEqualsDownloadedLoss) {
  for (const std::string device_name : {"cpu", "cuda-emu"}) {
    std::unique_ptr<Backend> backend;
    try {
      backend = make_backend(device_name);
    } catch (const Error&) {
      continue;
    }
    auto deferred = load_tiny(*backend, TrainMode::Lora, lora_qv());
    auto downloaded = load_tiny(*backend, TrainMode::Lora, lora_qv());
    double want = 0;
    for (const auto& batch : micro_batches()) {
      deferred->forward_backward_accumulate(batch, 1.0f, 5);
      want += downloaded->forward_backward(batch, 1.0f, 5).loss_sum;
    }
    const double got = deferred->read_loss();
    EXPECT_NEAR(got, want, 4 * 0x1p-24 * std::fabs(want)) << device_name;
    EXPECT_EQ(deferred->read_loss(), 0.0) << device_name << ": read_loss resets";
  }
}

}  // namespace
}  // namespace smol::test
