// The decode step as a CUDA graph (docs/design.md §2.8) on the device under test (default
// cuda-emu, where the capture is emulated node by node, kernels/emu/emu_graph.cpp) against the
// same device running every op eagerly (Backend::set_graphs_enabled(false)): the same kernels
// with the same arguments in the same order, so logits and greedy tokens must be equal bit for
// bit. The script is ragged on purpose: prompts of different lengths (prefill, q_len > 1), single
// tokens, a slot that finishes and is reused for a new prompt (truncate_cache) while the others
// decode one token, and the batch changing size and order between steps — layouts, grids and
// the attention kernel's split count change from step to step, which the graph must follow
// (update in place, or a new instantiation when the topology changed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "device_test_util.h"
#include "model_test_util.h"

namespace smol::test {
namespace {

struct Step {
  std::vector<int32_t> slots;
  std::vector<std::vector<int32_t>> tokens;  // empty list: the slot's last greedy token
  bool greedy = false;                       // decode_greedy (ids back) or decode (logits back)
  int32_t truncate_slot = -1;                // truncate_cache(slot, 0) before the step
};

// Runs the script; returns every step's logits (decode) or ids (decode_greedy, as floats).
std::vector<std::vector<float>> run_script(LlamaModel& model, const std::vector<Step>& script) {
  const int64_t V = model.config().vocab_size;
  model.reset_cache(4, 24);
  std::vector<int32_t> last(4, 1);
  std::vector<std::vector<float>> out;
  for (const Step& step : script) {
    if (step.truncate_slot >= 0) model.truncate_cache(step.truncate_slot, 0);
    std::vector<std::vector<int32_t>> feed;
    for (size_t i = 0; i < step.slots.size(); ++i)
      feed.push_back(step.tokens[i].empty() ? std::vector<int32_t>{last[step.slots[i]]}
                                            : step.tokens[i]);
    if (step.greedy) {
      const std::vector<int32_t> ids = model.decode_greedy(step.slots, feed);
      for (size_t i = 0; i < ids.size(); ++i) last[step.slots[i]] = ids[i];
      out.emplace_back(ids.begin(), ids.end());
    } else {
      std::vector<float> logits = model.decode(step.slots, feed);
      for (size_t i = 0; i < step.slots.size(); ++i) {
        const float* row = logits.data() + i * V;
        last[step.slots[i]] = static_cast<int32_t>(std::max_element(row, row + V) - row);
      }
      out.push_back(std::move(logits));
    }
  }
  return out;
}

TEST(DecodeGraph, GraphDecodeEqualsEagerDecodeBitForBit) {
  std::unique_ptr<Backend> graphs = device_backend(), eager = device_backend();
  if (!graphs || !eager)
    GTEST_SKIP() << "SKIPPED LOUDLY: " << device_under_test() << " is not available";
  graphs->set_graphs_enabled(true);
  eager->set_graphs_enabled(false);
  if (!graphs->graphs_enabled()) GTEST_SKIP() << device_under_test() << " has no graphs";
  std::unique_ptr<LlamaModel> with_graphs = load_tiny(*graphs, TrainMode::Frozen);
  std::unique_ptr<LlamaModel> without = load_tiny(*eager, TrainMode::Frozen);
  const std::vector<Step> script{
      {{0, 1, 2}, {{5, 9, 13, 2, 7}, {11, 4, 6}, {3, 3, 8, 21, 30, 44, 9}}, true},
      {{0, 1, 2}, {{}, {}, {}}, false},
      {{0, 1, 2}, {{}, {}, {}}, true},
      {{0, 1, 2}, {{}, {}, {}}, true},
      // slot 1 finished: reused for a new 4-token prompt while 0 and 2 decode one token
      {{0, 1, 2}, {{}, {17, 18, 19, 20}, {}}, false, /*truncate_slot=*/1},
      {{0, 1, 2}, {{}, {}, {}}, true},
      // the batch grows by slot 3 (a 2-token prompt) and changes order
      {{2, 3, 0, 1}, {{}, {40, 41}, {}, {}}, true},
      {{2, 3, 0, 1}, {{}, {}, {}, {}}, false},
      {{2, 3, 0, 1}, {{}, {}, {}, {}}, true},
      // and shrinks to two slots
      {{3, 1}, {{}, {}}, false},
      {{3, 1}, {{}, {}}, true},
  };
  const Backend::GraphStats before = graphs->graph_stats();
  const auto want = run_script(*without, script);
  const auto got = run_script(*with_graphs, script);
  const Backend::GraphStats after = graphs->graph_stats();
  ASSERT_EQ(got.size(), want.size());
  for (size_t s = 0; s < got.size(); ++s) EXPECT_EQ(got[s], want[s]) << "step " << s;
  // Every step ran as one graph launch, or (when the capture met a scratch area, the layout area
  // or the capture staging that had to grow first) eagerly.
  const uint64_t launches = after.launches - before.launches;
  const uint64_t fallbacks = after.eager_fallbacks - before.eager_fallbacks;
  EXPECT_EQ(launches + fallbacks, script.size());
  EXPECT_GE(launches, script.size() / 2) << "most steps should have run as graphs";
  EXPECT_GT(after.updates - before.updates, 0u) << "no step updated the graph in place";
  // The script has at most four topologies (decode_greedy or decode, with or without a step
  // whose attention takes the tiled kernel); kept instantiations serve each when it returns.
  EXPECT_LE(after.instantiations - before.instantiations, 4u);
  EXPECT_EQ(eager->graph_stats().launches, 0u);
  std::printf(
      "[ measured ] %zu steps: %llu graph launches (%llu instantiations, %llu in-place "
      "updates), %llu eager fallbacks; equal bit for bit\n",
      script.size(), static_cast<unsigned long long>(launches),
      static_cast<unsigned long long>(after.instantiations - before.instantiations),
      static_cast<unsigned long long>(after.updates - before.updates),
      static_cast<unsigned long long>(fallbacks));
}

// Generation's steady state — one new token per slot per step, the same slots — keeps the graph's
// topology: after the first graph, every step updates it in place instead of instantiating one.
TEST(DecodeGraph, SteadyDecodingUpdatesOneGraphInPlace) {
  std::unique_ptr<Backend> device = device_backend();
  if (!device) GTEST_SKIP() << "SKIPPED LOUDLY: " << device_under_test() << " is not available";
  device->set_graphs_enabled(true);
  std::unique_ptr<LlamaModel> model = load_tiny(*device, TrainMode::Frozen);
  std::vector<Step> script{{{0, 1, 2}, {{5, 9, 13, 2, 7}, {11, 4, 6}, {3, 3, 8}}, true}};
  constexpr int kSteady = 8;
  for (int i = 0; i < kSteady; ++i) script.push_back({{0, 1, 2}, {{}, {}, {}}, true});
  const Backend::GraphStats before = device->graph_stats();
  run_script(*model, script);
  const Backend::GraphStats after = device->graph_stats();
  const uint64_t instantiations = after.instantiations - before.instantiations;
  const uint64_t updates = after.updates - before.updates;
  const uint64_t fallbacks = after.eager_fallbacks - before.eager_fallbacks;
  // The prefill's topology differs from a one-token step's (its first capture also finds the
  // staging empty: an eager fallback); then one instantiation, and updates from there on,
  // except where a growing scratch or layout area sends a step back to eager.
  EXPECT_LE(instantiations, 2u);
  EXPECT_EQ(instantiations + updates + fallbacks, script.size());
  EXPECT_GE(updates, kSteady - 3u);
  // One launch per step for all of its work: per layer 5 matmuls, the gate/up strided-batched
  // matmul, rope_append_kv (RoPE and the KV-cache append in one kernel, docs/design.md §2.7;
  // before it rope_qk and scatter_rows, 13 nodes a layer), attention (split-K decode and its
  // combine: 2 kernels), 2 rmsnorm, swiglu = 12 nodes; then the embedding (its id-check flag's
  // memset and the kernel), the final rmsnorm, the attention layout's upload, gather_rows, the
  // LM-head matmul and argmax = 7 (docs/design.md §2.8). A matmul is one node on cuda-emu; cuBLASLt
  // on a GPU may launch more than one kernel for it.
  const int64_t L = model->config().num_hidden_layers;
  if (device_under_test() == "cuda-emu")
    EXPECT_EQ(after.last_nodes, static_cast<uint64_t>(12 * L + 7));
  else
    EXPECT_GE(after.last_nodes, static_cast<uint64_t>(12 * L + 7));
  std::printf(
      "[ measured ] %zu steps: %llu instantiations, %llu in-place updates, %llu eager; "
      "%llu nodes per step's graph\n",
      script.size(), static_cast<unsigned long long>(instantiations),
      static_cast<unsigned long long>(updates), static_cast<unsigned long long>(fallbacks),
      static_cast<unsigned long long>(after.last_nodes));
}

// SMOL_CUDA_GRAPHS=0 (gpu-check's A/B switch) turns graphs off for backends made while it is set;
// unset or 1, they are on.
TEST(DecodeGraph, EnvironmentSwitchSetsTheDefault) {
  const char* saved = std::getenv("SMOL_CUDA_GRAPHS");
  const std::string restore = saved ? saved : "";
  setenv("SMOL_CUDA_GRAPHS", "0", 1);
  std::unique_ptr<Backend> off = device_backend();
  setenv("SMOL_CUDA_GRAPHS", "1", 1);
  std::unique_ptr<Backend> on = device_backend();
  if (saved)
    setenv("SMOL_CUDA_GRAPHS", restore.c_str(), 1);
  else
    unsetenv("SMOL_CUDA_GRAPHS");
  if (!off || !on) GTEST_SKIP() << "SKIPPED LOUDLY: " << device_under_test() << " is not available";
  EXPECT_FALSE(off->graphs_enabled());
  EXPECT_TRUE(on->graphs_enabled());
  EXPECT_FALSE(make_backend("cpu")->graphs_enabled());
}

TEST(DecodeGraph, AHostWaitInsideTheGraphIsRefusedAndTheBackendStaysUsable) {
  std::unique_ptr<Backend> device = device_backend();
  if (!device) GTEST_SKIP() << "SKIPPED LOUDLY: " << device_under_test() << " is not available";
  device->set_graphs_enabled(true);
  Buffer buffer = device->allocate(16 * sizeof(float));
  const Tensor t = buffer.view(DType::F32, Shape{16});
  std::unique_ptr<Backend::Graph> graph;
  std::vector<float> host(16, 1.0f);
  device->upload(t, host.data());
  try {
    device->run_as_graph(graph, [&] {
      device->scale(t, 2.0f);
      device->download(host.data(), t);  // a host wait
    });
    ADD_FAILURE() << "a download inside a graph capture was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("SMOL_CUDA_GRAPHS=0"), std::string::npos) << e.what();
  }
  // The refused capture ran nothing and ended: eager work and a new graph both run.
  device->download(host.data(), t);
  for (float x : host) EXPECT_EQ(x, 1.0f);
  device->run_as_graph(graph, [&] { device->scale(t, 3.0f); });
  device->download(host.data(), t);
  for (float x : host) EXPECT_EQ(x, 3.0f);
}

}  // namespace
}  // namespace smol::test
