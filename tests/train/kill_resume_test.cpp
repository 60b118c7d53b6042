// The kill -9 chain (issue 13 item 3, docs/run-directory.md "Crash safety"): `smolengine train`
// on the tiny config (cpu, full fine-tuning so that a checkpoint — the model and AdamW's m and
// v, ~38 MB — takes long enough to write that kills land inside it; 24 steps, evaluation and a
// checkpoint every 4, save_total_limit 2)
// is killed with SIGKILL at 50 random moments, each time continued with --resume latest from
// where it stopped (or started again with --overwrite when it died before its first
// checkpoint), then run to the end. After every kill every checkpoint in the run directory must
// load in full (verify_checkpoint: trainer_state, AdamW moments, model tensors, configs, the
// step) and no half-written directory may carry a checkpoint's name; at the end metrics.jsonl
// holds exactly the losses, gradient norms, learning rates and evaluation metrics of an
// uninterrupted run, bit for bit (cpu is deterministic and resume is exact:
// docs/run-directory.md "checkpoint-N/"), and the final model and checkpoint are the same
// bytes.
//
// The moments are random but aimed (the seed is printed; SMOL_KILL_SEED replays a chain): the
// test reads the run's progress lines as they come and kills a random time after one of them,
// drawn from the uninterrupted run's own timings, so that kills land during a training step,
// during an evaluation, during a checkpoint's write, or during start-up (model, data, resume).
// Where each kill really landed is judged afterwards from the last line the run printed and
// from what it left on disk, and the counts are printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/outputs/metrics_log.h"
#include "engine/train/checkpoint.h"
#include "tests/support/tiny_train_run.h"
#include "tests/train/child_process.h"

namespace smol {
namespace {

namespace fs = std::filesystem;
using test::ChildProcess;

constexpr int kKills = 50;
constexpr int64_t kMaxSteps = 24;
constexpr int64_t kEvery = 4;  // eval_steps = save_steps
constexpr int64_t kIntervals = kMaxSteps / kEvery;

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

// "step 7/24 (…" → 7; "eval @ step 8: …" → 8; else -1.
int64_t step_of_progress_line(const std::string& line) {
  if (starts_with(line, "step ")) return std::atoll(line.c_str() + 5);
  if (starts_with(line, "eval @ step ")) return std::atoll(line.c_str() + 12);
  return -1;
}

std::vector<std::string> train_args(const fs::path& out, const std::string& start_flag) {
  std::vector<std::string> args = {"train",        test::kSourceDir + "/configs/tiny_gsm8k.yaml",
                                   "--device",     "cpu",
                                   "--data-dir",   test::kDataDir,
                                   "--output-dir", out.string(),
                                   "--set",        "tokenizer.name_or_path=" + test::kModelFile};
  for (const std::string& set : std::vector<std::string>{
           "dataset.train_split=train[:64]", "dataset.eval_split=test[:4]",
           "evaluation.max_new_tokens=8", "dataset.max_length=96",
           "training.max_steps=" + std::to_string(kMaxSteps), "training.logging_steps=1",
           "training.eval_steps=" + std::to_string(kEvery),
           "training.save_steps=" + std::to_string(kEvery), "training.save_total_limit=2",
           "peft.method=full", "training.learning_rate=1e-4"}) {
    args.push_back("--set");
    args.push_back(set);
  }
  if (!start_flag.empty()) args.push_back(start_flag);
  if (start_flag == "--resume") args.push_back("latest");
  return args;
}

// The timings a kill is drawn from, measured on the uninterrupted run's progress lines.
struct PhaseTimes {
  double startup = 1;  // start → the first step's line
  double step = 0.05;  // one training step
  double eval = 0.1;   // an eval step's line → its "eval @" line
  double save = 0.01;  // "eval @" → "saved"
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

PhaseTimes measure(const ChildProcess& run) {
  PhaseTimes t;
  std::vector<double> steps, evals, saves;
  const auto& lines = run.lines();
  const auto& times = run.line_times();
  double previous_step_time = -1;
  int64_t previous_step = -1;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (starts_with(l, "step ")) {
      const int64_t s = step_of_progress_line(l);
      if (previous_step < 0) t.startup = times[i];
      if (previous_step >= 0 && previous_step % kEvery != 0)
        steps.push_back(times[i] - previous_step_time);
      previous_step = s;
      previous_step_time = times[i];
    } else if (starts_with(l, "eval @ step ") && previous_step >= 0) {
      evals.push_back(times[i] - previous_step_time);
      for (size_t j = i + 1; j < lines.size(); ++j)
        if (starts_with(lines[j], "saved ")) {
          saves.push_back(times[j] - times[i]);
          break;
        }
    }
  }
  t.step = std::max(median(steps), 1e-3);
  t.eval = std::max(median(evals), 1e-3);
  t.save = std::max(median(saves), 2e-3);
  return t;
}

// Where a kill landed, from the last progress line the run printed before it died.
std::string landed_in(const ChildProcess& run, bool left_partial_checkpoint) {
  if (left_partial_checkpoint) return "checkpoint write";
  std::string last;
  for (const std::string& l : run.lines())
    if (starts_with(l, "step ") || starts_with(l, "eval @ step ") || starts_with(l, "saved "))
      last = l;
  if (last.empty()) return "start-up";
  if (starts_with(last, "saved ")) {
    return last.find("checkpoint-" + std::to_string(kMaxSteps)) != std::string::npos
               ? "final outputs"
               : "step";  // report.html, then the next step
  }
  const int64_t step = step_of_progress_line(last);
  if (starts_with(last, "eval @ step ")) return "checkpoint write";  // the save follows it
  return step % kEvery == 0 ? "evaluation" : "step";
}

// Every entry named checkpoint-<digits> is a complete checkpoint; partial ones carry a
// *.tmp.* / *.deleted.* name. Returns whether a partial checkpoint directory was left.
bool check_run_directory(const fs::path& out, int kill) {
  bool partial = false;
  if (!fs::exists(out)) return false;
  size_t complete = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    if (!starts_with(name, "checkpoint-")) continue;
    const std::string suffix = name.substr(11);
    if (std::all_of(suffix.begin(), suffix.end(), ::isdigit)) {
      ++complete;
      try {
        verify_checkpoint(e.path().string());
      } catch (const std::exception& error) {
        ADD_FAILURE() << "after kill " << kill << ": " << name
                      << " does not load: " << error.what();
      }
    } else {
      EXPECT_TRUE(suffix.find(".tmp.") != std::string::npos ||
                  suffix.find(".deleted.") != std::string::npos)
          << "after kill " << kill << ": unexpected " << name;
      partial |= suffix.find(".tmp.") != std::string::npos;
    }
  }
  EXPECT_EQ(complete, list_checkpoints(out.string()).size());
  // save_total_limit 2, plus the best one, plus the newest between its rename and the rotation.
  EXPECT_LE(complete, 4u) << "after kill " << kill;
  if (fs::exists(out / "metrics.jsonl")) {
    EXPECT_NO_THROW(MetricsLog::read((out / "metrics.jsonl").string())) << "after kill " << kill;
  }
  return partial;
}

// The events as the comparison sees them: kind, step and every metric except wall-clock ones.
std::vector<std::string> comparable_events(const fs::path& metrics) {
  std::vector<std::string> events;
  for (nlohmann::json e : MetricsLog::read(metrics.string())) {
    for (const char* timing :
         {"elapsed_seconds", "tokens_per_second", "eval_runtime", "eval_samples_per_second",
          "eval_steps_per_second", "eval_tokens_per_second"})
      e.erase(timing);
    events.push_back(e.dump());
  }
  return events;
}

class KillResume : public test::TinyTrainRunTest {
 protected:
  KillResume() : TinyTrainRunTest("smol_kill9_") {}
};

TEST_F(KillResume, FiftyRandomKillsThenResumeEqualsAnUninterruptedRun) {
  const auto test_start = std::chrono::steady_clock::now();
  uint64_t seed = std::random_device{}();
  if (const char* replay = std::getenv("SMOL_KILL_SEED")) seed = std::strtoull(replay, nullptr, 10);
  std::cout << "kill -9 chain: seed " << seed << " (SMOL_KILL_SEED=" << seed << " replays it)\n";
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);
  const auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };

  // The uninterrupted run: the reference result, and the timings kills are drawn from.
  const fs::path whole = root_ / "whole";
  PhaseTimes times;
  {
    ChildProcess run(SMOLENGINE_BINARY, train_args(whole, ""));
    ASSERT_EQ(run.wait(), 0) << run.output();
    times = measure(run);
  }
  std::cout << "phase timings (s): start-up " << times.startup << ", step " << times.step
            << ", evaluation " << times.eval << ", checkpoint save " << times.save << "\n";

  const fs::path out = root_ / "killed";
  std::map<std::string, int> landed;
  int partial_checkpoints = 0, kills = 0, kills_since_advance = 0, resumes = 0, restarts = 0;
  int64_t last_start = -1;
  // Kills per checkpoint interval: the chain reaches the last interval (and the final
  // checkpoint and outputs) with kills to spare.
  const int quota = kKills / (kIntervals + 1);
  while (kills < kKills) {
    const auto found = list_checkpoints(out.string());
    const int64_t start = found.empty() ? 0 : found.back().first;
    kills_since_advance = start == last_start ? kills_since_advance : 0;
    last_start = start;
    const bool has_run = fs::exists(out / "metrics.jsonl") || fs::exists(out / "config.yaml");
    const std::string flag = !found.empty() ? "--resume" : has_run ? "--overwrite" : "";
    resumes += flag == "--resume";
    restarts += flag == "--overwrite";
    ChildProcess run(SMOLENGINE_BINARY, train_args(out, flag));
    ASSERT_TRUE(run.started());

    // Aim: a phase, and the progress line after which to wait a random time. Kills aimed at a
    // checkpoint's write wait less than the uninterrupted run's save took, so that most land
    // inside it and the chain stays in its interval; past the quota the aim moves one interval
    // further, so the chain advances at a steady pace and reaches the last interval.
    const int64_t interval_end =
        std::min(kMaxSteps, start + kEvery * (kills_since_advance >= quota ? 2 : 1));
    const double pick = uniform(0, 1);
    bool reached = true;
    if (start >= kMaxSteps || pick < 0.1) {  // start-up (or the final outputs' short run)
      std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0, times.startup * 1.2)));
    } else if (pick < 0.4) {  // a training step
      std::vector<int64_t> candidates;
      for (int64_t s = interval_end - kEvery + 1; s < interval_end; ++s) candidates.push_back(s);
      const int64_t after =
          candidates[std::uniform_int_distribution<size_t>(0, candidates.size() - 1)(rng)];
      reached = run.read_until(
          [&](const std::string& l) {
            return starts_with(l, "step ") && step_of_progress_line(l) == after;
          },
          120);
      std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0, times.step)));
    } else if (pick < 0.7) {  // an evaluation
      reached = run.read_until(
          [&](const std::string& l) {
            return starts_with(l, "step ") && step_of_progress_line(l) == interval_end;
          },
          120);
      std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0, times.eval)));
    } else {  // a checkpoint's write
      reached = run.read_until(
          [&](const std::string& l) {
            return starts_with(l, "eval @ step ") && step_of_progress_line(l) == interval_end;
          },
          120);
      std::this_thread::sleep_for(std::chrono::duration<double>(uniform(0, times.save * 0.9)));
    }
    run.signal(SIGKILL);
    const int code = run.wait();
    ASSERT_TRUE(reached || run.signaled()) << "the run ended before the aimed moment:\n"
                                           << run.output();
    if (!run.signaled()) {
      // Finished before the kill (only possible in the last interval): not a kill.
      ASSERT_EQ(code, 0) << run.output();
      continue;
    }
    ++kills;
    ++kills_since_advance;
    const bool partial = check_run_directory(out, kills);
    partial_checkpoints += partial;
    ++landed[landed_in(run, partial)];
    if (HasFailure()) {
      std::cout << "kill " << kills << " (seed " << seed << "), the run's output:\n"
                << run.output();
      return;
    }
  }

  // To the end, from wherever the last kill left it.
  const auto before_end = list_checkpoints(out.string());
  const int64_t final_start = before_end.empty() ? 0 : before_end.back().first;
  {
    const bool has_checkpoint = !before_end.empty();
    ChildProcess run(SMOLENGINE_BINARY,
                     train_args(out, has_checkpoint ? "--resume" : "--overwrite"));
    ASSERT_EQ(run.wait(), 0) << run.output();
  }
  check_run_directory(out, kills + 1);
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp."), std::string::npos) << "litter after the chain: " << name;
  }
  EXPECT_EQ(comparable_events(out / "metrics.jsonl"), comparable_events(whole / "metrics.jsonl"));
  EXPECT_EQ(test::read_file(out / "model.safetensors"),
            test::read_file(whole / "model.safetensors"));
  const std::string last = "checkpoint-" + std::to_string(kMaxSteps);
  EXPECT_EQ(test::read_file(out / last / "training_state.safetensors"),
            test::read_file(whole / last / "training_state.safetensors"));

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - test_start).count();
  std::cout << "kill -9 chain: " << kills << " kills (seed " << seed << ") in " << seconds
            << " s; landed in:";
  for (const auto& [phase, count] : landed) std::cout << " " << phase << " " << count << ";";
  std::cout << " " << partial_checkpoints << " left a partial checkpoint directory; " << resumes
            << " resumed with --resume latest, " << restarts
            << " restarted with --overwrite; the last kill left checkpoint-" << final_start
            << " of " << kMaxSteps << "\n";
  RecordProperty("kills", kills);
  EXPECT_GE(kills, kKills);
}

}  // namespace
}  // namespace smol
