// Which checkpoints exist and which save_total_limit deletes (HF Trainer._rotate_checkpoints:
// the best survives; limit 1 keeps the best and the newest); interrupted saves are never listed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/train/checkpoint.h"

namespace smol {
namespace {

namespace fs = std::filesystem;

class CheckpointDirs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("smol_ckpt_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void make(const std::string& name, bool complete = true) {
    fs::create_directories(dir_ / name);
    if (complete) std::ofstream(dir_ / name / "training_state.safetensors") << "x";
  }
  std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& [step, path] : list_checkpoints(dir_.string()))
      out.push_back(fs::path(path).filename().string());
    return out;
  }
  fs::path dir_;
};

TEST_F(CheckpointDirs, ListsCompleteCheckpointsByStep) {
  make("checkpoint-10");
  make("checkpoint-2");
  make("checkpoint-4.tmp.123");  // an interrupted save
  make("checkpoint-6", false);   // no training state: incomplete
  make("checkpoint-x");
  EXPECT_EQ(names(), (std::vector<std::string>{"checkpoint-2", "checkpoint-10"}));
  EXPECT_EQ(fs::path(resolve_checkpoint("latest", dir_.string())).filename(), "checkpoint-10");
  EXPECT_EQ(resolve_checkpoint("some/dir", dir_.string()), "some/dir");
  fs::remove_all(dir_ / "checkpoint-2");
  fs::remove_all(dir_ / "checkpoint-10");
  EXPECT_THROW(resolve_checkpoint("latest", dir_.string()), Error);
}

TEST_F(CheckpointDirs, RotationKeepsTheBest) {
  for (int s : {1, 2, 3, 4, 5}) make("checkpoint-" + std::to_string(s));
  const auto deleted = rotate_checkpoints(dir_.string(), 3, "checkpoint-2");
  EXPECT_EQ(deleted.size(), 2u);
  EXPECT_EQ(names(), (std::vector<std::string>{"checkpoint-2", "checkpoint-4", "checkpoint-5"}));
}

TEST_F(CheckpointDirs, LimitOneKeepsBestAndNewest) {
  for (int s : {1, 2, 3}) make("checkpoint-" + std::to_string(s));
  rotate_checkpoints(dir_.string(), 1, "checkpoint-1");
  EXPECT_EQ(names(), (std::vector<std::string>{"checkpoint-1", "checkpoint-3"}));
  rotate_checkpoints(dir_.string(), 1, "checkpoint-3");
  EXPECT_EQ(names(), (std::vector<std::string>{"checkpoint-3"}));
}

TEST_F(CheckpointDirs, ZeroLimitKeepsEverything) {
  for (int s : {1, 2, 3}) make("checkpoint-" + std::to_string(s));
  EXPECT_TRUE(rotate_checkpoints(dir_.string(), 0, "").empty());
  EXPECT_EQ(names().size(), 3u);
}

}  // namespace
}  // namespace smol
