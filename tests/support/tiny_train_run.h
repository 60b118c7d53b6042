// Shared by the CLI tests that train configs/tiny_gsm8k.yaml end to end (tests/train,
// tests/refactor): where the tokenizer model and GSM8K are, a fixture with a per-process
// temporary directory (two checkouts running the suites at once never collide) that skips
// loudly without the model or the data, and readers for the run directory's files.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/run_smolengine.h"

namespace smol::test {

inline const std::string kSourceDir = SMOL_SOURCE_DIR;
inline const std::string kModelFile = kSourceDir + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
inline const std::string kDataDir = kSourceDir + "/../shared/data";

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& p) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

class TinyTrainRunTest : public ::testing::Test {
 protected:
  // `prefix` names the suite's temporary directories.
  explicit TinyTrainRunTest(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    if (!std::filesystem::exists(kModelFile))
      GTEST_SKIP() << "SKIPPED LOUDLY: " << kModelFile << " is missing (scripts/fetch-model.sh)";
    if (!std::filesystem::exists(kDataDir + "/gsm8k/train.jsonl"))
      GTEST_SKIP() << "SKIPPED LOUDLY: no GSM8K under " << kDataDir;
    root_ = std::filesystem::temp_directory_path() /
            (prefix_ + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(root_);
  }
  // `smolengine train configs/tiny_gsm8k.yaml` on the cpu into `out`, the real tokenizer and
  // data, plus `arguments`.
  CommandResult train_tiny(const std::filesystem::path& out, const std::string& arguments) {
    return run_smolengine("train " + kSourceDir +
                          "/configs/tiny_gsm8k.yaml --device cpu --data-dir " + kDataDir +
                          " --output-dir " + out.string() +
                          " --set tokenizer.name_or_path=" + kModelFile + " " + arguments);
  }

  std::filesystem::path root_;

 private:
  std::string prefix_;
};

}  // namespace smol::test
