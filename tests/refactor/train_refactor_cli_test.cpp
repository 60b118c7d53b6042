// `smolengine train` with trainer.name SpectralRefactorTrainer on configs/tiny_gsm8k.yaml (cpu):
// refactor events in metrics.jsonl with the spectra, report.html drawing them, the run finite
// and tracking plain LoRA's loss, the legacy timing's GA events per trigger, and a resume
// across a refactor step equal to the uninterrupted run bit for bit (the refactor is a
// deterministic function of the saved state, so checkpoints need nothing more). Needs the
// fetched GGUF for the tokenizer; skips loudly without it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/run_smolengine.h"
#include "tests/support/tiny_train_run.h"

namespace smol {
namespace {

namespace fs = std::filesystem;
using test::run_smolengine;

using test::read_file;
using test::read_jsonl;
const std::string kSpectral =
    " --set trainer.name=SpectralRefactorTrainer --set trainer.refactor_every=2";

std::vector<nlohmann::json> events_of(const fs::path& dir, const std::string& kind) {
  std::vector<nlohmann::json> out;
  for (const nlohmann::json& e : read_jsonl(dir / "metrics.jsonl"))
    if (e["kind"] == kind) out.push_back(e);
  return out;
}

class TrainRefactorCli : public test::TinyTrainRunTest {
 public:
  TrainRefactorCli() : TinyTrainRunTest("smol_refactor_") {}
  test::CommandResult train(const fs::path& out, const std::string& extra) {
    return train_tiny(out,
                      "--set training.max_steps=6 --set training.logging_steps=1"
                      " --set training.eval_strategy=no --set training.save_strategy=no " +
                          extra);
  }
  static std::vector<double> losses(const fs::path& dir) {
    std::vector<double> out;
    for (const nlohmann::json& e : events_of(dir, "train")) out.push_back(e["loss"]);
    return out;
  }
};

TEST_F(TrainRefactorCli, LogsEachRefactorWithItsSpectraAndTracksPlainLora) {
  const fs::path plain = root_ / "plain", spectral = root_ / "spectral";
  auto r = train(plain, "");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = train(spectral, kSpectral);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("refactor @ step 2: 4 pairs"), std::string::npos) << r.output;

  // Steps 2 and 4 (6 is the last update: nothing refactors the final adapter).
  const std::vector<nlohmann::json> refactors = events_of(spectral, "refactor");
  ASSERT_EQ(refactors.size(), 2u);
  EXPECT_EQ(refactors[0]["step"], 2);
  EXPECT_EQ(refactors[1]["step"], 4);
  for (const nlohmann::json& e : refactors) {
    EXPECT_GT(e["refactor_ms"].get<double>(), 0.0);
    const nlohmann::json& x = e["extra"];
    ASSERT_EQ(x["layers"].size(), 4u);  // 2 layers × q_proj, v_proj
    EXPECT_EQ(x["layers"][0], "model.layers.0.self_attn.q_proj");
    ASSERT_EQ(x["spectra_before"].size(), 4u);
    ASSERT_EQ(x["spectra_after"].size(), 4u);
    ASSERT_EQ(x["relative_change"].size(), 4u);
    for (size_t layer = 0; layer < 4; ++layer) {
      // balanced, λ 1 (the defaults): every singular value becomes the mean.
      const nlohmann::json& before = x["spectra_before"][layer];
      const nlohmann::json& after = x["spectra_after"][layer];
      ASSERT_EQ(before.size(), 4u);  // r 4
      double mean = 0;
      for (const nlohmann::json& s : before) mean += s.get<double>() / 4;
      EXPECT_GT(mean, 0.0);
      for (const nlohmann::json& s : after) EXPECT_NEAR(s.get<double>(), mean, 1e-5 * mean);
    }
  }
  EXPECT_NE(read_file(spectral / "report.html").find("Refactor spectra"), std::string::npos);

  // Finite, and close to plain LoRA: before step 3 the runs are the same computation; after,
  // B·A is a small perturbation of a random base model's logits (B starts at 0 and takes ≤ 4
  // updates of lr ≤ 1e-3), so the loss may move by far less than 1 %.
  const std::vector<double> a = losses(plain), b = losses(spectral);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(std::isfinite(b[i]));
    if (i < 2)
      EXPECT_EQ(a[i], b[i]) << "step " << i + 1;
    else
      EXPECT_NEAR(b[i], a[i], 1e-2 * a[i]) << "step " << i + 1;
  }
}

TEST_F(TrainRefactorCli, LegacyTimingRefactorsOncePerMicroBatchBeforeTheUpdate) {
  const fs::path out = root_ / "legacy";
  const auto r = train(out, kSpectral +
                                " --set trainer.refactor_timing=legacy"
                                " --set training.gradient_accumulation_steps=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<nlohmann::json> refactors = events_of(out, "refactor");
  // Triggers at k = 2 and 4 completed steps, each run inside update k+1, GA = 2 times.
  ASSERT_EQ(refactors.size(), 4u);
  const int64_t completed[] = {2, 2, 4, 4};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(refactors[i]["extra"]["completed_steps"], completed[i]);
    EXPECT_EQ(refactors[i]["step"], completed[i] + 1);
  }
}

// Resume from checkpoint-2 (saved right after the refactor at step 2) across the refactor at
// step 4: the same losses and the same final adapter and optimizer state, bit for bit.
void check_resume(TrainRefactorCli& t, const fs::path& root, const std::string& extra) {
  const std::string cadence =
      kSpectral + " --set training.save_strategy=steps" + " --set training.save_steps=2 " + extra;
  const fs::path whole = root / "whole";
  auto r = t.train(whole, cadence);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const fs::path resumed = root / "resumed";
  fs::create_directories(resumed);
  fs::copy(whole / "checkpoint-2", resumed / "checkpoint-2", fs::copy_options::recursive);
  {
    std::ofstream metrics(resumed / "metrics.jsonl");
    for (const nlohmann::json& e : read_jsonl(whole / "metrics.jsonl"))
      if (e["step"].get<int64_t>() <= 2) metrics << e.dump() << "\n";
  }
  r = t.train(resumed, cadence + " --resume latest");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto trace = [](const fs::path& dir) {
    std::vector<std::string> out;
    for (const nlohmann::json& e : read_jsonl(dir / "metrics.jsonl"))
      if (e["kind"] == "train" || e["kind"] == "refactor")
        out.push_back(e["kind"].get<std::string>() + ":" +
                      std::to_string(e["step"].get<int64_t>()) + ":" +
                      (e["kind"] == "train" ? e["loss"].dump() : e["extra"].dump()));
    return out;
  };
  EXPECT_EQ(trace(resumed), trace(whole));
  EXPECT_EQ(read_file(resumed / "checkpoint-6/training_state.safetensors"),
            read_file(whole / "checkpoint-6/training_state.safetensors"));
  EXPECT_EQ(read_file(resumed / "adapter_model.safetensors"),
            read_file(whole / "adapter_model.safetensors"));
}

TEST_F(TrainRefactorCli, ResumeAcrossARefactorEqualsTheUninterruptedRun) {
  check_resume(*this, root_ / "step",
               "--set trainer.preserve_momentum=true"
               " --set trainer.clear_momentum=false");
  check_resume(*this, root_ / "legacy", "--set trainer.refactor_timing=legacy");
}

TEST_F(TrainRefactorCli, ATargetFilterThatKeepsNothingIsAnError) {
  const auto r = train(root_ / "none", kSpectral + " --set trainer.target_adapter_keys=[o_proj]");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("leave no LoRA pair to refactor"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace smol
