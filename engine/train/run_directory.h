// The run directory's guards, taken before anything expensive happens (docs/run-directory.md
// "Crash safety"):
//
//   - writable: a probe file is created and removed, so a read-only or unwritable output
//     directory fails at start, before the model is loaded, not after the first hour;
//   - one process per run: <run>/.lock is held with flock(LOCK_EX | LOCK_NB) for the process's
//     life. The kernel drops the lock when the process dies (even by SIGKILL), so there is never
//     a stale lock to clean up; the file itself stays and means nothing when unlocked;
//   - an existing run is neither continued nor overwritten by accident: a directory that holds
//     a run's files is refused unless --resume (continue it) or --overwrite (delete the old
//     run's files first). --overwrite deletes only the files the engine writes (the names
//     listed in docs/run-directory.md) and refuses, deleting nothing, when the directory holds
//     anything else;
//   - leftovers of a killed process (a "*.tmp.<pid>" file or checkpoint directory, a
//     "*.old.<pid>" / "*.deleted.<pid>" entry being swapped out) are removed: under the lock no
//     other process can be writing them.
#pragma once

#include <string>
#include <vector>

namespace smol {

// Holds <dir>/.lock exclusively until destroyed (or the process dies).
class RunDirectoryLock {
 public:
  // Throws naming the directory when another process holds the lock.
  explicit RunDirectoryLock(const std::string& dir);
  ~RunDirectoryLock();
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// What a directory holds, by the engine's own file names.
struct RunDirectoryContents {
  std::vector<std::string> run_files;      // files and folders a run writes
  std::vector<std::string> leftovers;      // *.tmp.<pid>, *.old.<pid>, *.deleted.<pid>
  std::vector<std::string> foreign_files;  // anything else (never deleted)
};
RunDirectoryContents survey_run_directory(const std::string& dir);

// Whether `name` (a top-level entry of a run directory) is one the engine writes.
bool is_run_file_name(const std::string& name);

enum class RunStart { Fresh, Resume, Overwrite };

// Creates `dir` if needed, checks that it is writable, and applies the rules above for a run
// started as `start`. Call with the lock held. Returns one line per action taken (removed
// leftovers, deleted files) for the console.
std::vector<std::string> prepare_run_directory(const std::string& dir, RunStart start);

// Removes `dir` when it holds nothing but the lock file: a run that created its directory and
// then failed on its inputs leaves no trace of itself (docs/bad-inputs.md). Never throws.
void remove_unused_run_directory(const std::string& dir) noexcept;

// Creates `dir` (and parents) and checks that a file can be created in it; throws naming the
// directory and the system's reason otherwise.
void check_directory_writable(const std::string& dir);

}  // namespace smol
