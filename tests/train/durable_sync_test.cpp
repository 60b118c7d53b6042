// fsync of files and directories (common/durable_sync.h), as the atomic writes and checkpoint
// saves call it (docs/run-directory.md "Crash safety"): it succeeds on what exists, names what
// does not, and an atomic write through it leaves the file and no temporary behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/atomic_file.h"
#include "common/durable_sync.h"
#include "common/error.h"

namespace smol::test {
namespace {

namespace fs = std::filesystem;

TEST(DurableSync, FlushesFilesAndDirectoriesAndNamesWhatIsMissing) {
  const fs::path dir =
      fs::temp_directory_path() / ("smol_durable_sync_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string file = (dir / "state.json").string();
  write_file_atomically(file, std::string("{\"step\": 3}\n"));
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "{\"step\": 3}\n");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir)) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1) << "no temporary is left behind";

  EXPECT_NO_THROW(sync_to_disk(file, /*directory=*/false));
  EXPECT_NO_THROW(sync_to_disk(dir.string(), /*directory=*/true));
  const std::string missing = (dir / "missing.bin").string();
  try {
    sync_to_disk(missing, false);
    ADD_FAILURE() << "a missing file was flushed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(sync_to_disk(file, /*directory=*/true), Error) << "a file is not a directory";

  EXPECT_EQ(parent_directory_of("/runs/a/checkpoint-3"), "/runs/a");
  EXPECT_EQ(parent_directory_of("/state.json"), "/");
  EXPECT_EQ(parent_directory_of("state.json"), ".");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace smol::test
