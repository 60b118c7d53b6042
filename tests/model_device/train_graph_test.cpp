// The optimizer step as one CUDA graph (engine/train_step.cpp `train_step` with deferred losses,
// docs/design.md §2.8) on the device under test (default cuda-emu, where the capture is
// emulated node by node, kernels/emu/emu_graph.cpp) against the same device running every op
// eagerly (Backend::set_graphs_enabled(false)). The graph holds the same kernels with the same
// arguments in the same order as the eager step, so losses, parameters, AdamW's moments and the
// recorded gradient norm must be equal bit for bit — a tolerance would hide a stale argument
// (the learning rate, the bias correction's step, a dropout seed, a layout from an earlier step).
//
// The scripts are ragged on purpose, two micro-batches per step (gradient accumulation), LoRA
// q,v with dropout (a mask per micro-batch, layer and projection) and full fine-tuning: shapes
// whose LM-head chunk plan differs (the chunk count, or the rows the composite skips because
// they have no target) change the graph's topology, so the graph is instantiated anew, updated
// in place (same topology, new arguments) and, coming back to an earlier shape, updated from the
// instantiation kept for it. Recorded steps wait for nothing (cuda-emu's host-wait counter), and
// a non-finite loss still skips its update inside the graph.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "device_test_util.h"
#include "engine/optimizer.h"
#include "engine/train_step.h"
#include "kernels/emu/emu_host_waits.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

// A row of `length` tokens (ids from a fixed LCG, inside the tiny vocabulary of 300); labels
// supervise every token after the first `prompt` (-100 before), or none when `prompt` ≥ length.
TokenRow make_row(int length, int prompt, uint32_t seed) {
  TokenRow row;
  uint32_t state = seed * 2654435761u + 12345u;
  for (int t = 0; t < length; ++t) {
    state = state * 1664525u + 1013904223u;
    row.input_ids.push_back(static_cast<int32_t>(3 + (state >> 8) % 297));
  }
  row.labels = row.input_ids;
  for (int t = 0; t < std::min(prompt, length); ++t) row.labels[t] = -100;
  return row;
}

using Update = std::vector<std::vector<TokenRow>>;

// The tiny model's rows are at most 128 tokens (max_position_embeddings).
// LoRA: ten rows of 26 tokens make a micro-batch of 260 rows, whose LM head takes two chunks (rows
// 0-255 and 256-258, the last supervised ones); the golden micro-batches take one. Steps 1 and 2
// have the two-chunk shape (the first records, finds a scratch area or the staging too small and
// runs eagerly; the second instantiates), step 3 the golden one (another topology: instantiated),
// and step 4 returns to the two-chunk topology with new tokens — an update of the instantiation
// kept from step 2, which is not the most recent one. Step 5 (golden: an update of step 3's
// instantiation) starts with a NaN in the loss accumulator, as a diverged forward would leave it.
struct Script {
  std::vector<Update> steps;
  size_t first = 0, other = 0, back = 0;  // `back` updates the instantiation of `first`
  size_t nan_loss = SIZE_MAX;             // this step's loss is made non-finite
};
Script lora_script() {
  auto two_chunks = [](uint32_t seed) {
    std::vector<TokenRow> rows;
    for (uint32_t r = 0; r < 10; ++r) rows.push_back(make_row(26, r == 4 ? 7 : 0, seed + r));
    return Update{rows, {golden_micro_batches()[1]}};
  };
  const Update golden = golden_micro_batches();
  return {{two_chunks(1), two_chunks(20), golden, two_chunks(40), golden}, 1, 2, 3, 4};
}
// Full fine-tuning, small shapes only (its steps cost more on cuda-emu): the golden micro-batches,
// and a variant whose first row has no prompt — its LM head loses the node that zeroes the
// unsupervised rows before the first chunk, so the topology changes.
Script full_script() {
  const Update golden = golden_micro_batches();
  Update no_prompt = golden;
  no_prompt[0][0].labels = no_prompt[0][0].input_ids;
  return {{golden, golden, no_prompt, golden}, 1, 2, 3};
}

std::vector<float> read(Backend& backend, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  backend.download(host.data(), t);
  return host;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// One side of the comparison: a backend, the tiny model with its trainable tensors randomised
// (the same values on both sides), AdamW with decay and a clip that binds, and the trainer's
// deferred losses.
struct TrainingRun {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<StepLosses> losses;

  TrainingRun(bool graphs, TrainMode mode, std::optional<LoraSettings> lora) {
    backend = device_backend();
    if (!backend) return;
    backend->set_graphs_enabled(graphs);
    backend->set_device_checks(false);  // the product configuration
    model = load_tiny(*backend, mode, lora);
    randomise_trainable(*backend, *model);
    AdamWSettings settings;
    settings.weight_decay = 0.01;
    settings.max_grad_norm = 0.05;  // below every step's norm here: the clip binds
    optimizer = std::make_unique<AdamW>(*backend, model->trainable_params(), settings);
    losses = std::make_unique<StepLosses>(*backend);
  }
  void step(const Update& update, uint64_t seed, const LrSchedule& schedule) {
    train_step(*model, *optimizer, schedule, update, seed, nullptr, losses.get());
  }
  // Every parameter and both moments, in order.
  std::vector<std::vector<float>> state() {
    std::vector<std::vector<float>> out;
    for (size_t i = 0; i < optimizer->params().size(); ++i) {
      out.push_back(read(*backend, optimizer->params()[i].value));
      out.push_back(read(*backend, optimizer->first_moment(i)));
      out.push_back(read(*backend, optimizer->second_moment(i)));
    }
    return out;
  }
};

LoraSettings lora_qv() {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.dropout = 0.1;  // a mask per micro-batch, layer and projection: the seeds must follow
  return lora;
}

void expect_graph_steps_equal_eager_steps(TrainMode mode, std::optional<LoraSettings> lora,
                                          const Script& script) {
  TrainingRun graphs(true, mode, lora), eager(false, mode, lora);
  if (!graphs.backend || !eager.backend)
    GTEST_SKIP() << "SKIPPED LOUDLY: " << device_under_test() << " is not available";
  if (!graphs.backend->graphs_enabled()) GTEST_SKIP() << device_under_test() << " has no graphs";
  // Linear decay after one warmup step: a different lr at every step (recorded each time).
  const LrSchedule schedule(LrScheduleKind::Linear, 2e-3, 10, 1);
  const size_t n = script.steps.size();
  enum class Ran { Eager, Instantiated, Updated };
  std::vector<Ran> ran(n);
  std::vector<uint64_t> nodes(n);
  std::vector<std::vector<float>> before_nan;
  uint64_t graph_step_waits = 0;  // host waits of the graph side's steps after the first
  for (size_t k = 0; k < n; ++k) {
    if (k == script.nan_loss) {
      before_nan = graphs.state();
      const float nan = std::numeric_limits<float>::quiet_NaN();
      graphs.backend->upload(graphs.model->loss_accumulator(), &nan);
      eager.backend->upload(eager.model->loss_accumulator(), &nan);
    }
    const Backend::GraphStats before = graphs.backend->graph_stats();
    const emu::HostWaitCounts waits_before = emu::host_wait_counts();
    graphs.step(script.steps[k], 100 + k, schedule);
    if (k > 0) graph_step_waits += emu::host_wait_counts().total() - waits_before.total();
    eager.step(script.steps[k], 100 + k, schedule);
    const Backend::GraphStats after = graphs.backend->graph_stats();
    ran[k] = after.eager_fallbacks > before.eager_fallbacks ? Ran::Eager
             : after.instantiations > before.instantiations ? Ran::Instantiated
                                                            : Ran::Updated;
    nodes[k] = after.last_nodes;
    std::printf("[ measured ] step %zu: %s, %llu nodes\n", k + 1,
                ran[k] == Ran::Eager          ? "eager (a capture found an area to grow)"
                : ran[k] == Ran::Instantiated ? "graph instantiated"
                                              : "graph updated",
                static_cast<unsigned long long>(nodes[k]));
  }
  // No host wait in a recorded step, not even for the capture staging: a ring whose slot was read
  // two steps earlier (docs/design.md §2.8), counted by cuda-emu (kernels/emu/emu_host_waits.h).
  if (device_under_test() == "cuda-emu") {
    std::printf("[ measured ] host waits in graph steps 2-%zu: %llu\n", n,
                static_cast<unsigned long long>(graph_step_waits));
    EXPECT_EQ(graph_step_waits, 0u);
  }
  const std::vector<StepLoss> got = graphs.losses->read(), want = eager.losses->read();
  ASSERT_EQ(got.size(), n);
  ASSERT_EQ(want.size(), n);
  for (size_t k = 0; k < n; ++k) {
    EXPECT_EQ(got[k].step, want[k].step);
    if (k == script.nan_loss)
      EXPECT_TRUE(std::isnan(got[k].loss)) << got[k].loss;
    else
      EXPECT_TRUE(std::isfinite(want[k].loss) && want[k].loss > 0) << want[k].loss;
    EXPECT_EQ(std::memcmp(&got[k].loss, &want[k].loss, sizeof(double)), 0)
        << "step " << k + 1 << ": graph loss " << got[k].loss << ", eager " << want[k].loss;
  }
  const auto got_state = graphs.state(), want_state = eager.state();
  ASSERT_EQ(got_state.size(), want_state.size());
  for (size_t i = 0; i < got_state.size(); ++i)
    EXPECT_TRUE(same_bits(got_state[i], want_state[i])) << graphs.optimizer->params()[i / 3].name
                                                        << (i % 3 == 0   ? " (value)"
                                                            : i % 3 == 1 ? " (first moment)"
                                                                         : " (second moment)");
  const OptimizerStepStats a = graphs.optimizer->read_step_stats(),
                           b = eager.optimizer->read_step_stats();
  EXPECT_EQ(a.step, static_cast<int64_t>(n));
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(std::memcmp(&a.grad_norm, &b.grad_norm, sizeof(double)), 0) << a.grad_norm;
  EXPECT_LT(a.clip_scale, 1.0) << "the clip must bind for the test to cover it";
  if (script.nan_loss < n) {
    // The loss check inside the graph skipped the update: parameters and moments kept their bits
    // (and equal the eager side's, compared above); the record names the step, with the finite
    // norm of its finite gradients.
    EXPECT_EQ(a.first_skipped_step, static_cast<int64_t>(script.nan_loss + 1));
    EXPECT_EQ(b.first_skipped_step, a.first_skipped_step);
    EXPECT_TRUE(std::isfinite(a.first_skipped_grad_norm)) << "the gradients were finite";
    EXPECT_EQ(ran[script.nan_loss], Ran::Updated) << "the step must have run as a graph";
    ASSERT_EQ(before_nan.size(), got_state.size());
    for (size_t i = 0; i < got_state.size(); ++i)
      EXPECT_TRUE(same_bits(before_nan[i], got_state[i])) << "tensor " << i << " changed";
  } else {
    EXPECT_EQ(a.first_skipped_step, 0);
  }

  // What the graph backend did: each step launched one graph or (an area had to grow) ran
  // eagerly; `first` instantiated a graph, `other` has another topology, and `back` found the
  // instantiation of `first` among the kept ones and updated it (not the most recent one).
  const Backend::GraphStats stats = graphs.backend->graph_stats();
  EXPECT_EQ(stats.launches + stats.eager_fallbacks, n);
  EXPECT_EQ(stats.instantiations + stats.updates, stats.launches);
  EXPECT_GE(stats.instantiations, 2u);
  EXPECT_GE(stats.updates, 1u);
  EXPECT_EQ(ran[script.first], Ran::Instantiated);
  EXPECT_NE(ran[script.other], Ran::Eager);
  EXPECT_NE(nodes[script.other], nodes[script.first]) << "the topology must change";
  EXPECT_EQ(ran[script.back], Ran::Updated);
  EXPECT_EQ(nodes[script.back], nodes[script.first]);
  EXPECT_GT(nodes[script.first], 50u) << "the whole step is one graph";
  EXPECT_EQ(eager.backend->graph_stats().launches, 0u);
}

TEST(TrainGraph, LoraQvStepsEqualEagerStepsBitForBit) {
  expect_graph_steps_equal_eager_steps(TrainMode::Lora, lora_qv(), lora_script());
}

TEST(TrainGraph, FullFineTuningStepsEqualEagerStepsBitForBit) {
  expect_graph_steps_equal_eager_steps(TrainMode::Full, std::nullopt, full_script());
}

}  // namespace
}  // namespace smol::test
