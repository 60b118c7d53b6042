// Runs a program as a child (fork + execv, no shell) and reports how it ended, for the bad-input
// catalogue (docs/bad-inputs.md): exit code or signal, its stdout and stderr, and its peak
// resident memory from wait4's rusage (ru_maxrss, KiB on Linux). A child still running after
// `timeout_s` is killed with SIGKILL and reported as timed out (a hang is a failure).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace smol::test {

struct ChildResult {
  bool exited = false;     // ended by exit() (else by a signal)
  int exit_code = -1;      // when exited
  int signal = 0;          // when killed by a signal
  bool timed_out = false;  // we killed it after the timeout
  long max_rss_kib = 0;    // peak resident set of the child
  double seconds = 0;      // wall time
  std::string out, err;    // stdout, stderr
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `argv[0]` is the program path. The child runs in `cwd`, reads `stdin_path` ("" = /dev/null)
// and writes its stdout / stderr to `<capture_prefix>.out` / `.err`.
inline ChildResult run_child(const std::vector<std::string>& argv, const std::string& cwd,
                             const std::string& stdin_path, const std::string& capture_prefix,
                             double timeout_s) {
  ChildResult result;
  const std::string out_path = capture_prefix + ".out", err_path = capture_prefix + ".err";
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return result;
  if (pid == 0) {
    // In the child only async-signal-safe calls until execv.
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    const int in = ::open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  for (;;) {
    const pid_t done = ::wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!result.timed_out && elapsed > timeout_s) {
      ::kill(pid, SIGKILL);
      result.timed_out = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.max_rss_kib = usage.ru_maxrss;
  result.exited = WIFEXITED(status);
  result.exit_code = result.exited ? WEXITSTATUS(status) : -1;
  result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  return result;
}

}  // namespace smol::test
