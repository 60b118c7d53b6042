// Run directory guards: writability probe, lock, existing-run rules, leftovers (see
// run_directory.h).
#include "engine/train/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/quote.h"

namespace smol {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLockName = ".lock";

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "metrics.jsonl.tmp.123" → "metrics.jsonl"; "" when `name` is not
// "<base>.<tmp|old|deleted>.<pid>".
std::string leftover_base(const std::string& name) {
  const size_t last_dot = name.rfind('.');
  if (last_dot == std::string::npos || !all_digits(name.substr(last_dot + 1))) return "";
  for (const std::string marker : {".tmp", ".old", ".deleted"}) {
    if (last_dot < marker.size()) continue;
    const size_t at = last_dot - marker.size();
    if (name.compare(at, marker.size(), marker) == 0) return name.substr(0, at);
  }
  return "";
}

std::string list_names(const std::vector<std::string>& names) {
  std::string text;
  const size_t shown = std::min<size_t>(names.size(), 5);
  for (size_t i = 0; i < shown; ++i) text += (i ? ", " : "") + quoted_excerpt(names[i]);
  if (names.size() > shown) text += " and " + std::to_string(names.size() - shown) + " more";
  return text;
}

}  // namespace

bool is_run_file_name(const std::string& name) {
  // Every name docs/run-directory.md lists (the engine's outputs), the lock included.
  static const char* const kNames[] = {kLockName,
                                       "config.yaml",
                                       "metrics.jsonl",
                                       "report.html",
                                       "eval_results.json",
                                       "trainer_state.json",
                                       "eval_predictions.jsonl",
                                       "adapter_model.safetensors",
                                       "adapter_config.json",
                                       "model.safetensors",
                                       "config.json",
                                       "base_model"};
  for (const char* known : kNames)
    if (name == known) return true;
  if (name.rfind("events.out.tfevents.", 0) == 0) return true;
  const std::string checkpoint = "checkpoint-";
  return name.rfind(checkpoint, 0) == 0 && all_digits(name.substr(checkpoint.size()));
}

RunDirectoryLock::RunDirectoryLock(const std::string& dir) {
  const std::string path = (fs::path(dir) / kLockName).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  SMOL_CHECK(fd_ >= 0, "cannot create the lock file ", path, ": ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    SMOL_CHECK(error != EWOULDBLOCK, "output directory ", dir,
               " is in use by another smolengine process (it holds ", path,
               "); wait for it to finish or choose another --output-dir");
    throw_error("cannot lock ", path, ": ", std::strerror(error));
  }
}

RunDirectoryLock::~RunDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the flock
}

RunDirectoryContents survey_run_directory(const std::string& dir) {
  RunDirectoryContents contents;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (is_run_file_name(name))
      contents.run_files.push_back(name);
    else if (const std::string base = leftover_base(name); !base.empty() && is_run_file_name(base))
      contents.leftovers.push_back(name);
    else
      contents.foreign_files.push_back(name);
  }
  SMOL_CHECK(!ec, "cannot list ", dir, ": ", ec.message());
  for (auto* names : {&contents.run_files, &contents.leftovers, &contents.foreign_files})
    std::sort(names->begin(), names->end());
  return contents;
}

void remove_unused_run_directory(const std::string& dir) noexcept {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename() != kLockName) return;
  if (ec) return;
  fs::remove(fs::path(dir) / kLockName, ec);
  fs::remove(dir, ec);
}

void check_directory_writable(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  SMOL_CHECK(!ec, "cannot create the output directory ", dir, ": ", ec.message());
  SMOL_CHECK(fs::is_directory(dir, ec), "output directory ", dir, " is not a directory");
  // access(W_OK) is not enough (root, read-only mounts, ACLs): create a file.
  const std::string probe =
      (fs::path(dir) / (".write-probe.tmp." + std::to_string(::getpid()))).string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  SMOL_CHECK(fd >= 0, "output directory ", dir, " is not writable (", std::strerror(errno),
             "): choose another --output-dir or training.output_dir");
  ::close(fd);
  ::unlink(probe.c_str());
}

std::vector<std::string> prepare_run_directory(const std::string& dir, RunStart start) {
  std::vector<std::string> actions;
  const RunDirectoryContents contents = survey_run_directory(dir);
  // Under the lock no process is writing these: they are what a killed run left.
  for (const std::string& name : contents.leftovers) {
    std::error_code ec;
    fs::remove_all(fs::path(dir) / name, ec);
    SMOL_CHECK(!ec, "cannot remove the leftover ", (fs::path(dir) / name).string(), ": ",
               ec.message());
    actions.push_back("removed " + name + " (left by an interrupted run)");
  }
  std::vector<std::string> run_files;
  for (const std::string& name : contents.run_files)
    if (name != kLockName) run_files.push_back(name);
  if (start == RunStart::Resume || run_files.empty()) return actions;
  if (start == RunStart::Fresh)
    throw_error("output directory ", dir, " already holds a run (", list_names(run_files),
                "): pass --resume latest to continue it, --overwrite to delete it and start "
                "again, or choose another --output-dir");
  SMOL_CHECK(contents.foreign_files.empty(), "--overwrite: output directory ", dir,
             " also holds files smolengine did not write (", list_names(contents.foreign_files),
             "); nothing was deleted: move them away or choose another --output-dir");
  for (const std::string& name : run_files) {
    std::error_code ec;
    fs::remove_all(fs::path(dir) / name, ec);
    SMOL_CHECK(!ec, "--overwrite: cannot delete ", (fs::path(dir) / name).string(), ": ",
               ec.message());
  }
  actions.push_back("--overwrite: deleted the previous run's " + std::to_string(run_files.size()) +
                    " files and folders in " + dir);
  return actions;
}

}  // namespace smol
