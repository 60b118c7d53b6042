// Crash safety of `smolengine train` on configs/tiny_gsm8k.yaml (cpu), docs/run-directory.md
// "Crash safety": SIGINT / SIGTERM write a checkpoint and exit 130 / 143 (a second signal exits
// at once); a full disk during a save ends the run naming the file and leaves the previous
// checkpoint intact with no *.tmp.* litter; an existing run is refused unless --resume or
// --overwrite (which never deletes foreign files); a second process on the same directory is
// refused by the lock, which a SIGKILLed run does not leave stale; an unwritable directory fails
// before the model loads; a non-finite loss stops the run naming the step with the last good
// checkpoint kept; a device allocation failure (cuda-emu with a capped memory) names the
// requested and free bytes and the config keys to turn. The kill -9 chain is
// kill_resume_test.cpp.
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/train/checkpoint.h"
#include "kernels/out_of_memory_message.h"
#include "tests/support/tiny_train_run.h"
#include "tests/train/child_process.h"

namespace smol {
namespace {

namespace fs = std::filesystem;
using test::ChildOptions;
using test::ChildProcess;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every *.tmp.* / *.deleted.* / *.old.* entry under `dir`, recursively.
std::vector<std::string> litter_under(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (contains(name, ".tmp.") || contains(name, ".deleted.") || contains(name, ".old."))
      found.push_back(e.path().string());
  }
  return found;
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    if (c == ' ') {
      if (!word.empty()) words.push_back(word);
      word.clear();
    } else {
      word += c;
    }
  }
  if (!word.empty()) words.push_back(word);
  return words;
}

class CrashSafety : public test::TinyTrainRunTest {
 protected:
  CrashSafety() : TinyTrainRunTest("smol_crash_") {}

  // argv of `smolengine train` on the tiny config into `out`, plus `extra` (space-separated,
  // no shell quoting).
  std::vector<std::string> train_args(const fs::path& out, const std::string& extra) {
    std::vector<std::string> args = {"train",        test::kSourceDir + "/configs/tiny_gsm8k.yaml",
                                     "--device",     "cpu",
                                     "--data-dir",   test::kDataDir,
                                     "--output-dir", out.string(),
                                     "--set",        "tokenizer.name_or_path=" + test::kModelFile,
                                     "--set",        "dataset.train_split=train[:64]",
                                     "--set",        "training.logging_steps=1"};
    for (const std::string& word : split_words(extra)) args.push_back(word);
    return args;
  }
  // Runs to the end; returns (exit code, output).
  std::pair<int, std::string> train(const fs::path& out, const std::string& extra,
                                    const ChildOptions& options = {}) {
    ChildProcess child(SMOLENGINE_BINARY, train_args(out, extra), options);
    const int code = child.wait();
    return {code, child.output()};
  }
};

// Signals a running `child` after its second step and checks how it stops: exit code
// `expected_code`, one line naming the checkpoint and the resume command, exactly one
// checkpoint (of the step it stopped at), loadable, and no litter. Returns that step.
int64_t expect_signal_stops_cleanly(ChildProcess& child, const fs::path& out, int signal,
                                    int expected_code, const std::string& signal_name,
                                    int64_t max_steps) {
  EXPECT_TRUE(
      child.read_until([](const std::string& l) { return l.rfind("step 2/", 0) == 0; }, 120))
      << child.output();
  child.signal(signal);
  EXPECT_EQ(child.wait(), expected_code) << child.output();
  EXPECT_FALSE(child.signaled());
  const std::string output = child.output();
  EXPECT_TRUE(contains(output, "stopped by " + signal_name + " at step ")) << output;
  EXPECT_TRUE(contains(output, "--resume latest")) << output;
  const auto checkpoints = list_checkpoints(out.string());
  EXPECT_EQ(checkpoints.size(), 1u) << output;
  if (checkpoints.empty()) return -1;
  const int64_t step = checkpoints.back().first;
  EXPECT_GE(step, 2);
  EXPECT_LT(step, max_steps);
  EXPECT_TRUE(contains(output, "stopped by " + signal_name + " at step " + std::to_string(step) +
                                   " of " + std::to_string(max_steps) + ": checkpoint " +
                                   checkpoints.back().second))
      << output;
  EXPECT_NO_THROW(verify_checkpoint(checkpoints.back().second));
  EXPECT_TRUE(litter_under(out).empty());
  return step;
}

// metrics.jsonl without the wall-clock fields, one string per event.
std::vector<std::string> metrics_without_timings(const fs::path& metrics) {
  std::vector<std::string> events;
  for (nlohmann::json e : test::read_jsonl(metrics)) {
    for (auto it = e.begin(); it != e.end();) {
      const std::string& k = it.key();
      if (k == "elapsed_seconds" || k.find("per_second") != std::string::npos ||
          k == "eval_runtime")
        it = e.erase(it);
      else
        ++it;
    }
    events.push_back(e.dump());
  }
  return events;
}

TEST_F(CrashSafety, SigintAndSigtermWriteACheckpointAndExitWith128PlusTheSignal) {
  // 12 steps with an evaluation and a save at 6 and 12: SIGINT after step 2 stops at a step
  // that is not a save step, and the run resumed from that checkpoint ends with the metrics of
  // the uninterrupted run, bit for bit.
  const std::string run =
      "--set training.max_steps=12 --set training.eval_steps=6 --set training.save_steps=6"
      " --set dataset.eval_split=test[:2] --set evaluation.max_new_tokens=4"
      " --set dataset.max_length=64";
  {
    const fs::path out = root_ / "sigint";
    ChildProcess child(SMOLENGINE_BINARY, train_args(out, run));
    expect_signal_stops_cleanly(child, out, SIGINT, 130, "SIGINT", 12);
    const auto [code, output] = train(out, run + " --resume latest");
    EXPECT_EQ(code, 0) << output;
    EXPECT_TRUE(contains(output, "resumed from")) << output;
    const fs::path whole = root_ / "whole";
    const auto [whole_code, whole_output] = train(whole, run);
    ASSERT_EQ(whole_code, 0) << whole_output;
    EXPECT_EQ(metrics_without_timings(out / "metrics.jsonl"),
              metrics_without_timings(whole / "metrics.jsonl"));
    EXPECT_EQ(test::read_file(out / "adapter_model.safetensors"),
              test::read_file(whole / "adapter_model.safetensors"));
  }
  {
    const fs::path out = root_ / "sigterm";
    ChildProcess child(SMOLENGINE_BINARY, train_args(out, run));
    expect_signal_stops_cleanly(child, out, SIGTERM, 143, "SIGTERM", 12);
  }
}

TEST_F(CrashSafety, ASignalDuringAnEvaluationStopsAfterItWithTheStepsCheckpoint) {
  // The evaluation after step 2 (16 prompts, 16 new tokens each: it takes a while) is under way
  // when SIGINT arrives: it finishes and is logged (the resumed run must not repeat or skip it),
  // the step's checkpoint is written, and the run stops there.
  const fs::path out = root_ / "eval";
  ChildProcess child(SMOLENGINE_BINARY,
                     train_args(out,
                                "--set training.max_steps=50 --set training.eval_steps=2"
                                " --set training.save_steps=1000 --set dataset.max_length=64"
                                " --set dataset.eval_split=test[:16]"
                                " --set evaluation.max_new_tokens=16"));
  ASSERT_TRUE(
      child.read_until([](const std::string& l) { return l.rfind("step 2/", 0) == 0; }, 120))
      << child.output();
  child.signal(SIGINT);
  EXPECT_EQ(child.wait(), 130) << child.output();
  const std::string output = child.output();
  EXPECT_TRUE(contains(output, "eval @ step 2:")) << output;
  EXPECT_TRUE(contains(output, "stopped by SIGINT at step 2 of 50")) << output;
  int64_t last_eval = -1;
  for (const nlohmann::json& e : test::read_jsonl(out / "metrics.jsonl"))
    if (e["kind"] == "eval") last_eval = e["step"].get<int64_t>();
  EXPECT_EQ(last_eval, 2);
  EXPECT_NO_THROW(verify_checkpoint((out / "checkpoint-2").string()));
}

TEST_F(CrashSafety, ASecondSignalExitsAtOnce) {
  // Signalled while it tokenises a large split, before its first step: the first signal only
  // asks for a stop at the next step's end; SIGINT is then sent again every 20 ms (two signals
  // sent back to back may merge into one pending signal) and the second one delivered ends the
  // process there, without the goodbye line of a clean stop.
  const fs::path out = root_ / "twice";
  ChildProcess child(SMOLENGINE_BINARY,
                     train_args(out,
                                "--set training.max_steps=500 --set training.eval_strategy=no"
                                " --set dataset.train_split=train[:3000]"));
  ASSERT_TRUE(
      child.read_until([](const std::string& l) { return l.rfind("model:", 0) == 0; }, 120));
  const auto running = [&] {  // not exited yet (the exit is left to wait() to collect)
    siginfo_t info{};
    return ::waitid(P_PID, child.pid(), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == 0;
  };
  for (int i = 0; i < 250 && running(); ++i) {
    child.signal(SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(child.wait(), 130) << child.output();
  EXPECT_FALSE(child.signaled());  // _exit(130), not killed
  EXPECT_FALSE(contains(child.output(), "stopped by")) << child.output();
  EXPECT_FALSE(contains(child.output(), "step 1/")) << child.output();
}

TEST_F(CrashSafety, AFullDiskDuringASaveKeepsThePreviousCheckpoint) {
  // Full fine-tuning: the checkpoint's training_state.safetensors (AdamW m and v of every
  // weight, ~2x the model) is the largest file the run writes, so a file-size limit between
  // the model's size and it makes exactly that write fail, with EFBIG, as a full disk would.
  const std::string full =
      "--set peft.method=full --set training.learning_rate=1e-4 --set training.eval_strategy=no"
      " --set training.save_steps=2";
  const fs::path out = root_ / "full_disk";
  auto [code, output] = train(out, full + " --set training.max_steps=2");
  ASSERT_EQ(code, 0) << output;
  const fs::path previous = out / "checkpoint-2";
  const uintmax_t model_bytes = fs::file_size(previous / "model.safetensors");
  const uintmax_t state_bytes = fs::file_size(previous / "training_state.safetensors");
  ASSERT_GT(state_bytes, model_bytes + (1 << 20));
  std::vector<std::string> before;
  for (const char* f : {"model.safetensors", "training_state.safetensors", "trainer_state.json"})
    before.push_back(test::read_file(previous / f));

  ChildOptions limited;
  limited.file_size_limit = (model_bytes + state_bytes) / 2;
  std::tie(code, output) =
      train(out, full + " --set training.max_steps=4 --resume latest", limited);
  EXPECT_EQ(code, 1) << output;
  EXPECT_TRUE(contains(output, "error: step 4 of 4: cannot save checkpoint-4")) << output;
  EXPECT_TRUE(contains(output, "training_state.safetensors: File too large (disk full?)"))
      << output;
  EXPECT_TRUE(contains(output, previous.string() + " is intact")) << output;
  // The previous checkpoint is byte for byte what it was, and loads; nothing half-written.
  EXPECT_FALSE(fs::exists(out / "checkpoint-4"));
  int i = 0;
  for (const char* f : {"model.safetensors", "training_state.safetensors", "trainer_state.json"})
    EXPECT_EQ(test::read_file(previous / f), before[i++]) << f;
  EXPECT_NO_THROW(verify_checkpoint(previous.string()));
  EXPECT_EQ(litter_under(out), std::vector<std::string>{});
}

TEST_F(CrashSafety, AnExistingRunIsRefusedUnlessResumeOrOverwrite) {
  const fs::path out = root_ / "existing";
  const std::string short_run = "--set training.max_steps=2 --set training.eval_strategy=no";
  ASSERT_EQ(train(out, short_run).first, 0);

  auto [code, output] = train(out, short_run);
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(contains(output, "already holds a run")) << output;
  EXPECT_TRUE(contains(output, "--overwrite")) << output;
  EXPECT_FALSE(contains(output, "model:")) << output;  // refused before loading the model

  std::tie(code, output) = train(out, short_run + " --overwrite --resume latest");
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(contains(output, "exclude each other")) << output;

  // A foreign file: --overwrite refuses and deletes nothing.
  { std::ofstream(out / "notes.txt") << "mine"; }
  std::tie(code, output) = train(out, short_run + " --overwrite");
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(contains(output, "did not write (\"notes.txt\")")) << output;
  EXPECT_TRUE(fs::exists(out / "notes.txt"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-2"));
  EXPECT_TRUE(fs::exists(out / "metrics.jsonl"));

  // Without it, --overwrite deletes the old run's files (a stale checkpoint of a longer run
  // included) and trains again.
  fs::remove(out / "notes.txt");
  fs::create_directories(out / "checkpoint-99");
  std::tie(code, output) = train(out, short_run + " --overwrite");
  EXPECT_EQ(code, 0) << output;
  EXPECT_TRUE(contains(output, "--overwrite: deleted")) << output;
  EXPECT_FALSE(fs::exists(out / "checkpoint-99"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-2"));
  EXPECT_EQ(test::read_jsonl(out / "metrics.jsonl").size(), 2u);  // this run's two steps only
}

TEST_F(CrashSafety, ASecondProcessIsRefusedAndAKilledOneLeavesNoStaleLock) {
  const fs::path out = root_ / "locked";
  const std::string long_run =
      "--set training.max_steps=500 --set training.eval_strategy=no --set training.save_steps=2";
  ChildProcess first(SMOLENGINE_BINARY, train_args(out, long_run));
  ASSERT_TRUE(
      first.read_until([](const std::string& l) { return l.rfind("step 3/", 0) == 0; }, 120))
      << first.output();
  auto [code, output] = train(out, long_run + " --resume latest");
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(contains(output, "in use by another smolengine process")) << output;
  EXPECT_FALSE(contains(output, "model:")) << output;
  first.signal(SIGKILL);
  EXPECT_EQ(first.wait(), 128 + SIGKILL);
  // The kernel released the dead process's lock: resuming works at once.
  std::tie(code, output) = train(out,
                                 "--set training.max_steps=4 --set training.eval_strategy=no"
                                 " --set training.save_steps=2 --resume latest");
  EXPECT_EQ(code, 0) << output;
  EXPECT_TRUE(litter_under(out).empty());
}

TEST_F(CrashSafety, AnUnwritableOutputDirectoryFailsBeforeTheModelLoads) {
  fs::path out = root_ / "read_only";
  fs::create_directories(out);
  fs::permissions(out, fs::perms::owner_read | fs::perms::owner_exec);
  if (::access(out.c_str(), W_OK) == 0)  // root ignores permissions: use a read-only mount
    out = "/proc/self/task";
  const auto [code, output] = train(out, "--set training.max_steps=2");
  fs::permissions(root_ / "read_only", fs::perms::owner_all);
  EXPECT_EQ(code, 1) << output;
  EXPECT_TRUE(contains(output, "error: output directory " + out.string() + " is not writable"))
      << output;
  EXPECT_FALSE(contains(output, "model:")) << output;
}

TEST_F(CrashSafety, ANonFiniteLossStopsTheRunAndKeepsTheLastGoodCheckpoint) {
  const fs::path out = root_ / "diverge";
  const std::string base = "--set training.eval_strategy=no --set training.save_steps=2";
  auto [code, output] = train(out, base + " --set training.max_steps=2");
  ASSERT_EQ(code, 0) << output;
  const std::string good = test::read_file(out / "checkpoint-2/training_state.safetensors");
  // Continued at lr 3e38 with weight decay 10: the decay factor 1 − lr·wd overflows, the first
  // update leaves inf/NaN weights, and the next step's loss is not finite.
  std::tie(code, output) = train(
      out, base +
               " --set training.max_steps=6 --set training.learning_rate=3e38"
               " --set training.weight_decay=10 --set training.max_grad_norm=0 --resume latest");
  EXPECT_EQ(code, 1) << output;
  EXPECT_TRUE(contains(output, "error: step 4 of 6: the loss is not finite")) << output;
  EXPECT_TRUE(contains(output, "checkpoints written so far are intact")) << output;
  EXPECT_EQ(list_checkpoints(out.string()).size(), 1u);
  EXPECT_EQ(test::read_file(out / "checkpoint-2/training_state.safetensors"), good);
  EXPECT_NO_THROW(verify_checkpoint((out / "checkpoint-2").string()));
}

TEST(OutOfMemoryMessage, NamesTheBytesAndTheKnobs) {
  const std::string m = out_of_memory_message("cuda:0", "a tensor", size_t{3} << 30,
                                              size_t{512} << 20, size_t{80} << 30, "out of memory");
  EXPECT_EQ(m.rfind("cuda:0: out of device memory allocating a tensor of 3.00 GiB (3221225472 "
                    "bytes) with 512.0 MiB free of 80.00 GiB (out of memory)",
                    0),
            0u)
      << m;
  for (const char* knob :
       {"training.per_device_train_batch_size", "training.gradient_accumulation_steps",
        "dataset.max_length", "evaluation.batch_size"})
    EXPECT_TRUE(contains(m, knob)) << knob;
}

TEST_F(CrashSafety, ADeviceOutOfMemoryOnCudaEmuNamesTheBytesAndTheKnob) {
  std::vector<std::string> args = train_args(root_ / "oom", "--set training.max_steps=1");
  for (std::string& a : args)
    if (a == "cpu") a = "cuda-emu";
  ChildOptions small_device;
  small_device.env.push_back({"SMOL_EMU_DEVICE_MEMORY", std::to_string(40 << 20)});
  ChildProcess child(SMOLENGINE_BINARY, args, small_device);
  const int code = child.wait();
  const std::string output = child.output();
  if (contains(output, "unknown device") || contains(output, "not built"))
    GTEST_SKIP() << "no cuda-emu backend in this build";
  EXPECT_EQ(code, 1) << output;
  EXPECT_TRUE(contains(output, "out of device memory allocating")) << output;
  EXPECT_TRUE(contains(output, "free of 40.0 MiB")) << output;
  EXPECT_TRUE(contains(output, "training.per_device_train_batch_size")) << output;
}

}  // namespace
}  // namespace smol
