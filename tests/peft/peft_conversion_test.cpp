// PiSSA → plain LoRA (io/peft_weight_conversion.h) against PEFT's own
// save_pretrained(path_initial_model_for_weight_conversion=...), and the merge W + s·B·A
// (io/lora_merge.h) against PEFT's merge_and_unload().
#include <cstring>

#include "common/error.h"
#include "io/lora_merge.h"
#include "io/peft_weight_conversion.h"
#include "peft_test_util.h"

namespace smol::test {
namespace {

TEST(PeftConversion, EqualsPeftsConvertedAdapter) {
  PeftAdapter trained = read_peft_adapter(peft_golden("pissa_trained"));
  const PeftAdapter initial = read_peft_adapter(peft_golden("pissa_initial"));
  const PeftAdapter peft = read_peft_adapter(peft_golden("pissa_converted"));
  EXPECT_EQ(trained.config.init_lora_weights, "pissa");
  PeftAdapterConfig config = trained.config;
  const HostTensorMap ours = convert_to_plain_lora(trained.tensors, initial.tensors, config);
  EXPECT_EQ(config.r, peft.config.r);
  EXPECT_EQ(config.r, 8);
  EXPECT_EQ(config.lora_alpha, peft.config.lora_alpha);
  EXPECT_EQ(config.lora_alpha, 16);
  EXPECT_EQ(config.init_lora_weights, peft.config.init_lora_weights);
  EXPECT_EQ(config.init_lora_weights, "true");
  EXPECT_DOUBLE_EQ(config.scaling(), trained.config.scaling());
  ASSERT_EQ(ours.size(), peft.tensors.size());
  for (const auto& [name, t] : peft.tensors) {
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_EQ(ours.at(name).shape, t.shape) << name;
    // Concatenation and negation only: bit-identical to PEFT's torch.cat.
    EXPECT_EQ(ours.at(name).data, t.data) << name;
  }
  // And it writes as a loadable adapter with the new rank.
  const auto dir = scratch_dir("converted") / "adapter";
  write_peft_adapter(dir.string(), config, ours);
  EXPECT_EQ(read_peft_adapter(dir.string()).config.r, 8);
}

TEST(PeftConversion, RsloraKeepsTheScalingWithAlphaTimesSqrt2) {
  // PEFT's converted config for the same PiSSA with use_rslora (only its config is committed).
  const PeftAdapterConfig peft = parse_peft_adapter_config(
      read_file_text(peft_golden("pissa_rslora_converted/adapter_config.json")), "rslora");
  PeftAdapter trained = read_peft_adapter(peft_golden("pissa_trained"));
  const PeftAdapter initial = read_peft_adapter(peft_golden("pissa_initial"));
  PeftAdapterConfig config = trained.config;
  config.use_rslora = true;
  const double scaling_before = config.scaling();
  convert_to_plain_lora(trained.tensors, initial.tensors, config);
  EXPECT_EQ(config.r, peft.r);
  EXPECT_EQ(config.lora_alpha, peft.lora_alpha);  // 8·√2 computed the same way: bit-equal
  EXPECT_NEAR(config.scaling(), scaling_before, 1e-15 * scaling_before);
}

TEST(PeftConversion, ConvertedAdapterOnOriginalBaseGivesTheTrainedFunction) {
  PeftAdapter trained = read_peft_adapter(peft_golden("pissa_trained"));
  const PeftAdapter initial = read_peft_adapter(peft_golden("pissa_initial"));
  PeftAdapter converted;
  converted.config = trained.config;
  converted.tensors = convert_to_plain_lora(trained.tensors, initial.tensors, converted.config);
  const LoadedModel original = load_model(tiny_base_dir());
  const SafetensorsFile expected = SafetensorsFile::open(peft_golden("pissa_expected.safetensors"));
  const std::vector<float> logits =
      logits_with_adapter(original, &converted, expected.read_i32("ids"));
  // Reference: PEFT's trained PiSSA model (residual base + trained rank-4 adapter) in float64.
  // Ours: the original base + the rank-8 adapter in fp32. Mathematically equal; the difference
  // is fp32 rounding (W_res = W − s·B0·A0 in PEFT is itself fp32-rounded, ~1e-7 relative), the
  // same 1e-4 absolute bound as the other logit checks.
  const double err = max_abs_diff(logits, expected.read_f32("pissa_logits").data);
  EXPECT_LE(err, 1e-4);
  // Without the conversion (trained adapter alone on the original base) the function is wrong
  // by far more than the tolerance: the check above can fail.
  PeftAdapter unconverted = trained;
  unconverted.config.init_lora_weights = "true";
  const double wrong =
      max_abs_diff(logits_with_adapter(original, &unconverted, expected.read_i32("ids")),
                   expected.read_f32("pissa_logits").data);
  EXPECT_GT(wrong, 100 * 1e-4);
  std::printf("[peft] converted PiSSA on the original base: max |err| %.3g (unconverted: %.3g)\n",
              err, wrong);
}

TEST(PeftConversion, RefusesMismatchedInputs) {
  const PeftAdapter trained = read_peft_adapter(peft_golden("pissa_trained"));
  const PeftAdapter initial = read_peft_adapter(peft_golden("pissa_initial"));
  PeftAdapterConfig config = trained.config;
  HostTensorMap fewer = initial.tensors;
  fewer.erase("model.layers.1.self_attn.v_proj.lora_A.weight");
  fewer.erase("model.layers.1.self_attn.v_proj.lora_B.weight");
  EXPECT_THROW(convert_to_plain_lora(trained.tensors, fewer, config), Error);
  const PeftAdapter other = read_peft_adapter(peft_golden("lora_adapter"));  // q/v/o/up
  PeftAdapterConfig wide = other.config;
  EXPECT_THROW(convert_to_plain_lora(other.tensors, initial.tensors, wide), Error);
  EXPECT_EQ(config.r, 4) << "config untouched on error";
}

TEST(LoraMerge, EqualsPeftsMergeAndUnload) {
  const PeftAdapter adapter = read_peft_adapter(peft_golden("lora_adapter"));
  const LoadedModel base = load_model(tiny_base_dir());
  HostTensorMap merged = base.weights;
  merge_peft_adapter(merged, adapter, "lora_adapter");
  const SafetensorsFile expected = SafetensorsFile::open(peft_golden("lora_expected.safetensors"));
  size_t compared = 0;
  double worst = 0;
  for (const SafetensorsEntry& e : expected.entries()) {
    if (e.name.rfind("merged.", 0) != 0) continue;
    const std::string name = e.name.substr(7);
    ASSERT_TRUE(merged.count(name)) << name;
    // PEFT: fl(W + fl(s·fl(B·A))) in fp32; ours: fl(W + s·B·A) with B·A in double. Values are
    // below 2 in magnitude, so each rounding is ≤ 2^-23 and the two differ by at most a few
    // of them: 1e-6 absolute.
    const double err = max_abs_diff(merged.at(name).data, expected.read_f32(e.name).data);
    EXPECT_LE(err, 1e-6) << name;
    worst = std::max(worst, err);
    EXPECT_GT(max_abs_diff(merged.at(name).data, base.weights.at(name).data), 1e-2)
        << name << " was not changed by the merge";
    ++compared;
  }
  EXPECT_EQ(compared, 2u * 4u);
  for (const auto& [name, t] : base.weights) {  // untargeted weights are untouched
    if (!expected.find("merged." + name)) {
      EXPECT_EQ(merged.at(name).data, t.data) << name;
    }
  }
  std::printf("[peft] merge vs PEFT merge_and_unload: max |err| %.3g\n", worst);
}

TEST(LoraMerge, RefusesAdaptersForAnotherModelOrAMovedBase) {
  const LoadedModel base = load_model(tiny_base_dir());
  PeftAdapter adapter = read_peft_adapter(peft_golden("lora_adapter"));
  HostTensorMap weights = base.weights;
  weights.erase("model.layers.1.mlp.up_proj.weight");
  EXPECT_THROW(merge_peft_adapter(weights, adapter, "x"), Error);
  weights = base.weights;
  weights.at("model.layers.0.self_attn.q_proj.weight").shape = Shape{32, 128};
  EXPECT_THROW(merge_peft_adapter(weights, adapter, "x"), Error);
  PeftAdapter pissa = read_peft_adapter(peft_golden("pissa_trained"));
  weights = base.weights;
  try {
    merge_peft_adapter(weights, pissa, "pissa_trained");
    ADD_FAILURE() << "merging an unconverted PiSSA adapter must fail";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("residual base"), std::string::npos) << e.what();
  }
  EXPECT_EQ(weights.at("model.layers.0.self_attn.q_proj.weight").data,
            base.weights.at("model.layers.0.self_attn.q_proj.weight").data);
}

}  // namespace
}  // namespace smol::test
