// `smolengine dump-step` end to end: the binary, a config, a JSONL batch, the safetensors it
// writes — compared with the PyTorch full fine-tuning fixture; plus --all-params with a PiSSA
// residual, --set overrides and the errors for malformed input.
#include <gtest/gtest.h>

#include "tests/support/run_smolengine.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "model/lora_init.h"
#include "training_fixtures.h"

namespace smol {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir() {
  const fs::path dir = fs::temp_directory_path() / "smol_training_dump_step";
  fs::create_directories(dir);
  return dir;
}

std::string write_config(const std::string& name, const std::string& peft) {
  const fs::path path = temp_dir() / name;
  std::ofstream(path) << "model:\n  name_or_path: " << test::golden("tiny") << "\n"
                      << "peft:\n"
                      << peft << "training:\n  seed: 42\ntask_name: tiny\n";
  return path.string();
}

TEST(DumpStep, FullFineTuningMatchesTransformers) {
  const std::string config = write_config("full.yaml", "  method: full\n");
  const std::string out = (temp_dir() / "full.safetensors").string();
  const test::CommandResult r =
      test::run_smolengine("dump-step " + config + " --batch " + test::golden("batch1.jsonl") +
                           " --out " + out + " --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const SafetensorsFile ours = SafetensorsFile::open(out);
  const SafetensorsFile golden = SafetensorsFile::open(test::golden("full_step.safetensors"));
  // Padding identical to HF's collator: same ids and labels, [B, L] with L a multiple of 8.
  EXPECT_EQ(ours.read_i32("input_ids"), golden.read_i32("input_ids"));
  EXPECT_EQ(ours.read_i32("labels"), golden.read_i32("labels"));
  const double loss = golden.read_f32("loss").data[0];
  EXPECT_NEAR(ours.read_f32("loss").data[0], loss, 1e-5 * loss);
  double worst = 0;
  size_t grads = 0;
  for (const SafetensorsEntry& e : golden.entries()) {
    if (e.name.rfind("grad.", 0) != 0 && e.name.rfind("param.", 0) != 0) continue;
    ASSERT_NE(ours.find(e.name), nullptr) << "dump-step did not write " << e.name;
    const double error =
        test::max_norm_relative_error(ours.read_f32(e.name).data, golden.read_f32(e.name).data);
    EXPECT_LT(error, 1e-4) << e.name;  // tolerance reasoning: test_golden_step.cpp
    worst = std::max(worst, error);
    grads += e.name.rfind("grad.", 0) == 0;
  }
  EXPECT_EQ(grads, 2u + 2u * 9u);  // embed, norm, 2 × (7 projections + 2 norms)
  std::printf("[dump-step full] worst param/grad rel %.3g\n", worst);
}

TEST(DumpStep, AllParamsWritesThePissaResidualAndSetOverrides) {
  const std::string config =
      write_config("pissa.yaml",
                   "  lora_r: 8\n  lora_alpha: 8\n  lora_dropout: 0\n  init_lora_weights: pissa\n");
  const std::string out = (temp_dir() / "pissa.safetensors").string();
  const test::CommandResult r = test::run_smolengine(
      "dump-step " + config + " --batch " + test::golden("batch2.jsonl") + " --out " + out +
      " --all-params --set peft.lora_r=4 --set " + "peft.target_modules=[q_proj,down_proj]");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const SafetensorsFile ours = SafetensorsFile::open(out);
  EXPECT_EQ(ours.metadata().at("smolengine.lora_init"), "pissa");
  EXPECT_EQ(ours.metadata().at("smolengine.residualised"), "true");
  const std::string q = projection_weight_name(1, Projection::Q);
  // --set won: r = 4, targets q and down only.
  EXPECT_EQ(ours.entry("param." + lora_tensor_name(q, "A")).shape, (std::vector<int64_t>{4, 32}));
  EXPECT_NE(ours.find("grad." + lora_tensor_name(q, "B")), nullptr);
  EXPECT_EQ(ours.find("grad." + lora_tensor_name(projection_weight_name(0, Projection::V), "A")),
            nullptr);
  // The frozen q weight is the residual W − s·B·A, not the file's W.
  const HostTensor residual = ours.read_f32("param." + q);
  const HostTensor original = test::tiny_model().weights.at(q);
  EXPECT_GT(test::max_abs_error(residual.data, original.data), 1e-3);
  const auto& shape = ours.entry("logits").shape;
  ASSERT_EQ(shape.size(), 3u);
  EXPECT_EQ(shape[0], 3);
  EXPECT_EQ(shape[1] % 8, 0);
  EXPECT_EQ(shape[2], 97);
}

TEST(DumpStep, MalformedInputsNameTheirPlace) {
  const std::string config = write_config("bad.yaml", "  method: full\n");
  const fs::path bad_jsonl = temp_dir() / "bad.jsonl";
  std::ofstream(bad_jsonl) << "{\"input_ids\": [1, 2], \"labels\": [-100, 2]}\n"
                           << "{\"input_ids\": [1, 2], \"labels\": [-100]\n";
  const std::string out = (temp_dir() / "never.safetensors").string();
  fs::remove(out);
  test::CommandResult r = test::run_smolengine("dump-step " + config + " --batch " +
                                               bad_jsonl.string() + " --out " + out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(bad_jsonl.string() + ":2"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));

  std::ofstream(bad_jsonl) << "{\"input_ids\": [1, 2], \"labels\": [-100, 2]}\n"
                           << "{\"input_ids\": [1, 500], \"labels\": [-100, 3]}\n";
  r = test::run_smolengine("dump-step " + config + " --batch " + bad_jsonl.string() + " --out " +
                           out);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(":2: input id 500"), std::string::npos) << r.output;

  r = test::run_smolengine("dump-step " + config + " --batch " + test::golden("batch1.jsonl") +
                           " --out " + out + " --set training.learning_rat=1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("training.learning_rat"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace smol
