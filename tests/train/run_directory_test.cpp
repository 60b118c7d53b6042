// The run directory's guards (engine/train/run_directory.h) and the stop-signal flag
// (engine/train/stop_signals.h) in-process: which names are the engine's, leftovers removed,
// a fresh start refused on an existing run, --overwrite deleting only the engine's files, the
// lock refusing a second holder and free again once released, the writability probe.
#include "engine/train/run_directory.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "engine/train/stop_signals.h"

namespace smol {
namespace {

namespace fs = std::filesystem;

class RunDirectory : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("smol_rundir_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void touch(const std::string& name) { std::ofstream(dir_ / name) << "x"; }
  fs::path dir_;
};

TEST_F(RunDirectory, KnowsTheEngineNames) {
  for (const char* name : {"config.yaml", "metrics.jsonl", "report.html", "checkpoint-12",
                           "events.out.tfevents.1700000000.host", "base_model", ".lock",
                           "adapter_model.safetensors", "trainer_state.json"})
    EXPECT_TRUE(is_run_file_name(name)) << name;
  for (const char* name : {"notes.txt", "checkpoint-", "checkpoint-1x", "checkpoint-3.tmp.7",
                           "data.jsonl", "metrics.jsonl.bak"})
    EXPECT_FALSE(is_run_file_name(name)) << name;
}

TEST_F(RunDirectory, SurveysAndRemovesLeftovers) {
  touch("metrics.jsonl");
  touch("metrics.jsonl.tmp.123");
  touch("notes.tmp.5");  // not a leftover of ours: a foreign file
  fs::create_directories(dir_ / "checkpoint-4.tmp.99");
  fs::create_directories(dir_ / "checkpoint-2.deleted.98");
  fs::create_directories(dir_ / "base_model.old.97");
  const RunDirectoryContents c = survey_run_directory(dir_.string());
  EXPECT_EQ(c.run_files, std::vector<std::string>{"metrics.jsonl"});
  EXPECT_EQ(c.leftovers,
            (std::vector<std::string>{"base_model.old.97", "checkpoint-2.deleted.98",
                                      "checkpoint-4.tmp.99", "metrics.jsonl.tmp.123"}));
  EXPECT_EQ(c.foreign_files, std::vector<std::string>{"notes.tmp.5"});
  const auto actions = prepare_run_directory(dir_.string(), RunStart::Resume);
  EXPECT_EQ(actions.size(), 4u);
  EXPECT_FALSE(fs::exists(dir_ / "checkpoint-4.tmp.99"));
  EXPECT_FALSE(fs::exists(dir_ / "metrics.jsonl.tmp.123"));
  EXPECT_TRUE(fs::exists(dir_ / "metrics.jsonl"));
  EXPECT_TRUE(fs::exists(dir_ / "notes.tmp.5"));
}

TEST_F(RunDirectory, FreshRefusesARunAndOverwriteDeletesOnlyItsFiles) {
  touch(".lock");  // the lock alone is not a run
  EXPECT_NO_THROW(prepare_run_directory(dir_.string(), RunStart::Fresh));
  touch("config.yaml");
  fs::create_directories(dir_ / "checkpoint-3");
  try {
    prepare_run_directory(dir_.string(), RunStart::Fresh);
    ADD_FAILURE() << "an existing run was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a run (\"checkpoint-3\", \"config.yaml\")"),
              std::string::npos)
        << e.what();
  }
  touch("mine.txt");
  EXPECT_THROW(prepare_run_directory(dir_.string(), RunStart::Overwrite), Error);
  EXPECT_TRUE(fs::exists(dir_ / "config.yaml"));  // nothing deleted
  fs::remove(dir_ / "mine.txt");
  prepare_run_directory(dir_.string(), RunStart::Overwrite);
  EXPECT_FALSE(fs::exists(dir_ / "config.yaml"));
  EXPECT_FALSE(fs::exists(dir_ / "checkpoint-3"));
  EXPECT_TRUE(fs::exists(dir_ / ".lock"));
}

TEST_F(RunDirectory, TheLockRefusesASecondHolderUntilReleased) {
  {
    RunDirectoryLock first(dir_.string());
    try {
      RunDirectoryLock second(dir_.string());
      ADD_FAILURE() << "two holders";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("in use by another smolengine process"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_NO_THROW(RunDirectoryLock again(dir_.string()));
}

TEST_F(RunDirectory, WritableProbeCreatesTheDirectoryAndLeavesNothing) {
  const fs::path nested = dir_ / "a" / "b";
  check_directory_writable(nested.string());
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_TRUE(fs::is_empty(nested));
  touch("file");
  EXPECT_THROW(check_directory_writable((dir_ / "file" / "run").string()), Error);
}

TEST(StopSignalsFlag, RecordsTheFirstSignalAndRestoresTheHandlers) {
  {
    StopSignals signals;
    EXPECT_EQ(signals.requested(), 0);
    EXPECT_THROW(StopSignals second, Error);  // the handlers are process-wide: one owner
    ::raise(SIGTERM);
    EXPECT_EQ(signals.requested(), SIGTERM);
    EXPECT_EQ(StopSignals::exit_code(SIGTERM), 143);
    EXPECT_EQ(StopSignals::exit_code(SIGINT), 130);
  }
  struct sigaction now {};
  sigaction(SIGTERM, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
}

}  // namespace
}  // namespace smol
