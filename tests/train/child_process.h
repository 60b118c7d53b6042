// A `smolengine` child process for the crash-safety tests (tests/train/crash_safety_test.cpp,
// kill_resume_test.cpp): started with fork/exec (so the test knows its pid and can signal it),
// its stdout and stderr read line by line as they come (the trainer flushes each line), with an
// optional file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored: a write past it fails with EFBIG,
// as on a full disk) and extra environment variables.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace smol::test {

struct ChildOptions {
  std::optional<rlim_t> file_size_limit;                 // bytes
  std::vector<std::pair<std::string, std::string>> env;  // set in the child
};

class ChildProcess {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts `program` with `args` (argv[1..]).
  ChildProcess(const std::string& program, const std::vector<std::string>& args,
               const ChildOptions& options = {}) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    std::vector<std::string> argv_text = {program};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::dup2(fds[1], 2);
      ::close(fds[0]);
      ::close(fds[1]);
      if (options.file_size_limit) {
        ::signal(SIGXFSZ, SIG_IGN);  // kept across exec: writes fail with EFBIG instead
        const rlimit limit{*options.file_size_limit, *options.file_size_limit};
        ::setrlimit(RLIMIT_FSIZE, &limit);
      }
      for (const auto& [key, value] : options.env) ::setenv(key.c_str(), value.c_str(), 1);
      ::execv(program.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    fd_ = fds[0];
    started_ = Clock::now();
  }
  ~ChildProcess() {
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    if (fd_ >= 0) ::close(fd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  // Seconds since the child started.
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }

  // Reads output until `done(line)` holds for a complete line (true), the output ends or
  // `timeout_seconds` pass (false).
  bool read_until(const std::function<bool(const std::string&)>& done, double timeout_seconds) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_seconds);
    while (true) {
      for (; scanned_ < lines_.size(); ++scanned_)
        if (done(lines_[scanned_])) {
          ++scanned_;
          return true;
        }
      const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
      if (left <= 0 || !read_some(static_cast<int>(left * 1000) + 1)) return false;
    }
  }
  // The lines read so far (complete ones), and when each arrived (seconds since start).
  const std::vector<std::string>& lines() const { return lines_; }
  const std::vector<double>& line_times() const { return line_times_; }

  void signal(int signal) { ::kill(pid_, signal); }

  // Reads the rest of the output and waits; returns the exit code, or 128 + the signal that
  // ended the process (as a shell reports it).
  int wait() {
    while (read_some(-1)) {
    }
    if (!waited_) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      waited_ = true;
      exit_code_ = WIFEXITED(status)     ? WEXITSTATUS(status)
                   : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                         : -1;
      signaled_ = WIFSIGNALED(status);
    }
    return exit_code_;
  }
  // Whether the process was ended by a signal (rather than exiting, with any code).
  bool signaled() const { return signaled_; }
  // Everything it printed.
  std::string output() const {
    std::string text;
    for (const std::string& line : lines_) text += line + "\n";
    return text + partial_;
  }

 private:
  // One read (waiting up to timeout_ms, -1 = forever); false at the end of the output.
  bool read_some(int timeout_ms) {
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, timeout_ms);
    if (ready == 0) return true;  // timed out, still open
    if (ready < 0) return errno == EINTR;
    char buffer[4096];
    const ssize_t n = ::read(fd_, buffer, sizeof(buffer));
    if (n <= 0) {
      ::close(fd_);
      fd_ = -1;
      return false;
    }
    const double now = elapsed();
    for (ssize_t i = 0; i < n; ++i) {
      if (buffer[i] == '\n' || buffer[i] == '\r') {
        if (!partial_.empty()) {
          lines_.push_back(partial_);
          line_times_.push_back(now);
        }
        partial_.clear();
      } else {
        partial_ += buffer[i];
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  Clock::time_point started_;
  std::vector<std::string> lines_;
  std::vector<double> line_times_;
  std::string partial_;
  size_t scanned_ = 0;
  bool waited_ = false;
  bool signaled_ = false;
  int exit_code_ = -1;
};

}  // namespace smol::test
