// Ops per decode step (docs/design.md §2.8), counted through the OpHook at depth 0 as
// lora_grouping_test.cpp counts a training step's. A decode step used to append each slot's new
// keys and values with two copies per slot and layer and gather each slot's last row with one
// copy per slot; now one scatter_rows per layer and one gather_rows per LM-head chunk do it, from a
// row index uploaded with the batch. For L layers and B slots (frozen model, greedy):
//   before: 3 uploads + embedding + rmsnorm + L·(7 matmuls + rope_qk + attention + 2 add_rmsnorm
//           + swiglu + 2B copies) + B copies + matmul + argmax + download = 8 + (12 + 2B)·L + B
//   after:  3 uploads (ids, positions, row index) + embedding + L·(2 rmsnorm + 5 matmuls +
//           matmul_batched (gate and up, docs/design.md §2.9) + rope_append_kv (RoPE and the
//           KV-cache append as one op, §2.7 "Fused RoPE"; before it: rope_qk + scatter_rows) +
//           attention + swiglu) + final rmsnorm + gather_rows + matmul + argmax + download
//                                                                          = 9 + 11·L
// (the residual adds happen inside the o and down matmuls, §2.9, so the norms are plain).
// (SmolLM2-135M, L = 30, B = 64: 4272 → 339 ops per step; 369 before rope_append_kv.) The
// counts do not depend on the backend; cpu runs them here (at depth 0: the cpu's
// rope_append_kv runs its default body, rope_qk_forward and scatter_rows, at depth 1).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "model_test_util.h"

namespace smol::test {
namespace {

TEST(DecodeOps, OneScatterPerLayerAndOneGatherPerStepWhateverTheBatch) {
  std::unique_ptr<Backend> cpu = make_backend("cpu");
  std::unique_ptr<LlamaModel> model = load_tiny(*cpu, TrainMode::Frozen);
  const int64_t L = model->config().num_hidden_layers;
  for (const int32_t B : {1, 3}) {
    model->reset_cache(4, 32);
    std::vector<int32_t> slots;
    std::vector<std::vector<int32_t>> prompts, next;
    for (int32_t s = 0; s < B; ++s) {
      slots.push_back(s);
      prompts.push_back(std::vector<int32_t>(static_cast<size_t>(3 + 2 * s), 5 + s));
      next.push_back({7 + s});
    }
    model->decode_greedy(slots, prompts);  // prefill (and every allocation) first
    OpCounter counter;
    cpu->set_op_hook(&counter);
    model->decode_greedy(slots, next);
    cpu->set_op_hook(nullptr);
    const std::map<std::string, int64_t> want{{"upload", 3},
                                              {"embedding_forward", 1},
                                              {"rmsnorm_forward", 2 * L + 1},
                                              {"matmul", 5 * L + 1},
                                              {"matmul_batched", L},
                                              {"rope_append_kv", L},
                                              {"attention_forward", L},
                                              {"swiglu_forward", L},
                                              {"gather_rows", 1},
                                              {"argmax", 1},
                                              {"download", 1}};
    EXPECT_EQ(counter.ops, want) << "B = " << B;
    EXPECT_EQ(counter.total(), 9 + 11 * L) << "B = " << B;
    const int64_t before = 8 + (12 + 2 * B) * L + B;
    std::printf(
        "[ measured ] decode step, %lld layers, batch %d: %lld ops (per-slot copies: %lld)\n",
        static_cast<long long>(L), B, static_cast<long long>(counter.total()),
        static_cast<long long>(before));
  }
}

}  // namespace
}  // namespace smol::test
