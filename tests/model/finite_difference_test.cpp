// Finite-difference checks of the model backward on a small random Llama (init_random), with
// LoRA dropout ON (the golden fixtures have dropout 0): the same dropout_seed redraws the same
// masks, so the loss is a deterministic function of the parameters and central differences
// apply. Also: gradients accumulate across calls and zero_grads clears them.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "model_test_util.h"

namespace smol::test {
namespace {

LlamaConfig small_config() {
  LlamaConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 64;
  c.rope_theta = 100000;
  c.tie_word_embeddings = true;
  return c;
}

const std::vector<TokenRow> kRows{{{3, 9, 27, 17, 51, 2}, {-100, -100, 27, 17, 51, 2}},
                                  {{40, 41, 12, 7}, {-100, 41, 12, 7}}};

double loss_of(LlamaModel& model) {
  // training=true so dropout is applied exactly as in the backward; Frozen models skip grads.
  return model.forward_backward(kRows, 0.0f, 77, true).loss_sum;
}

// Checks the 3 largest-|g| entries of each named tensor by central differences in fp32.
// Loss ~ 4·ln 64 ≈ 40 summed in double from fp32 token losses carries ~1e-5 absolute noise;
// with h = 1e-2 that is ~1e-3 on the derivative, so the bound is 2e-3 + 2% of |g|
// (the golden tests pin the gradients to 1e-6; this one catches gross errors in paths the
// goldens do not exercise, e.g. the dropout backward).
void check(TrainMode mode, std::optional<LoraSettings> lora,
           const std::vector<std::string>& names) {
  auto backend = make_cpu_backend();
  LlamaModel model(*backend, small_config(), mode, lora);
  model.init_random(5, 0.2f);
  for (const TrainableParam& p : model.trainable_params()) {
    if (p.name.find("lora_B") == std::string::npos) continue;
    HostTensor b = model.read_tensor(p.name);  // nonzero B so A gets a gradient
    for (size_t i = 0; i < b.data.size(); ++i) b.data[i] = 0.1f * std::sin(1.0f + 7.0f * i);
    model.write_tensor(p.name, b);
  }
  model.zero_grads();
  model.forward_backward(kRows, 1.0f, 77, true);  // grads of Σ CE
  std::map<std::string, std::vector<float>> grads;
  for (const TrainableParam& p : model.trainable_params()) {
    std::vector<float> g(static_cast<size_t>(p.grad.numel()));
    backend->download(g.data(), p.grad);
    grads[p.name] = g;
  }
  LlamaModel probe(*backend, small_config(), TrainMode::Frozen, lora);
  for (const std::string& name : model.tensor_names())
    probe.write_tensor(name, model.read_tensor(name));
  for (const std::string& name : names) {
    ASSERT_TRUE(grads.count(name)) << name << " is not trainable";
    const std::vector<float>& g = grads[name];
    std::vector<size_t> order(g.size());
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + 3, order.end(),
                      [&](size_t a, size_t b) { return std::fabs(g[a]) > std::fabs(g[b]); });
    HostTensor value = model.read_tensor(name);
    for (int k = 0; k < 3; ++k) {
      const size_t i = order[k];
      const float h = 1e-2f, saved = value.data[i];
      value.data[i] = saved + h;
      probe.write_tensor(name, value);
      const double plus = loss_of(probe);
      value.data[i] = saved - h;
      probe.write_tensor(name, value);
      const double minus = loss_of(probe);
      value.data[i] = saved;
      probe.write_tensor(name, value);
      const double fd = (plus - minus) / (2 * h);
      EXPECT_NEAR(g[i], fd, 2e-3 + 0.02 * std::fabs(fd)) << name << "[" << i << "]";
    }
  }
}

TEST(FiniteDifference, LoraWithDropout) {
  LoraSettings lora;
  lora.r = 4;
  lora.alpha = 8;
  lora.dropout = 0.3;
  lora.targets = {Projection::Q, Projection::V, Projection::O, Projection::Down};
  check(
      TrainMode::Lora, lora,
      {"model.layers.0.self_attn.q_proj.lora_A.weight",
       "model.layers.0.self_attn.v_proj.lora_B.weight",
       "model.layers.1.self_attn.o_proj.lora_A.weight",
       "model.layers.1.mlp.down_proj.lora_A.weight", "model.layers.0.mlp.down_proj.lora_B.weight"});
}

TEST(FiniteDifference, FullFineTuning) {
  check(TrainMode::Full, std::nullopt,
        {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
         "model.layers.0.self_attn.k_proj.weight", "model.layers.1.mlp.gate_proj.weight",
         "model.norm.weight"});
}

TEST(Training, GradientsAccumulateAcrossCallsAndZeroGradsClears) {
  auto backend = make_cpu_backend();
  LoraSettings lora;
  lora.r = 2;
  LlamaModel model(*backend, small_config(), TrainMode::Lora, lora);
  model.init_random(3);
  model.zero_grads();
  model.forward_backward(kRows, 0.5f, 1, true);
  const TrainableParam a = model.trainable_params()[1];  // lora_B: A is random, B = 0
  std::vector<float> once(static_cast<size_t>(a.grad.numel())), twice(once.size());
  backend->download(once.data(), a.grad);
  model.forward_backward(kRows, 0.5f, 1, true);
  backend->download(twice.data(), a.grad);
  double norm = 0;
  for (size_t i = 0; i < once.size(); ++i) {
    EXPECT_NEAR(twice[i], 2 * once[i], 1e-6 + 1e-5 * std::fabs(once[i]));
    norm += std::fabs(once[i]);
  }
  EXPECT_GT(norm, 0);
  model.zero_grads();
  backend->download(twice.data(), a.grad);
  for (float g : twice) EXPECT_EQ(g, 0.0f);
  // Names and order: layer by layer, q then v, A before B (the default targets).
  const std::vector<TrainableParam> params = model.trainable_params();
  ASSERT_EQ(params.size(), 8u);
  EXPECT_EQ(params[0].name, "model.layers.0.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(params[1].name, "model.layers.0.self_attn.q_proj.lora_B.weight");
  EXPECT_EQ(params[3].name, "model.layers.0.self_attn.v_proj.lora_B.weight");
  EXPECT_EQ(params[4].name, "model.layers.1.self_attn.q_proj.lora_A.weight");
  // Eval pass (training=false) leaves gradients untouched.
  model.forward_backward(kRows, 1.0f, 1, false);
  backend->download(twice.data(), a.grad);
  for (float g : twice) EXPECT_EQ(g, 0.0f);
}

TEST(Training, RefusesBadRows) {
  auto backend = make_cpu_backend();
  LlamaModel model(*backend, small_config(), TrainMode::Full);
  EXPECT_THROW(model.forward_backward({{{1, 2, 64}, {}}}, 1.0f, 0), Error);
  EXPECT_THROW(model.forward_backward({{{1, 2, 3}, {1, 2}}}, 1.0f, 0), Error);
  EXPECT_THROW(model.forward_backward({{{1, 2, 3}, {1, -5, 2}}}, 1.0f, 0), Error);
  EXPECT_THROW(model.forward_backward({{{}, {}}}, 1.0f, 0), Error);
  EXPECT_THROW(model.write_tensor("model.norm.weight", HostTensor{Shape{3}, "F32", {1, 2, 3}}),
               Error);
  EXPECT_THROW(model.read_tensor("model.layers.9.mlp.up_proj.weight"), Error);
  EXPECT_THROW(model.load_weights(HostTensorMap{}), Error);  // names the missing tensor
}

}  // namespace
}  // namespace smol::test
