// What every libFuzzer target of fuzz/ shares (docs/design.md §9 "Untrusted input"):
//
// - run_parser(fn): runs one parse. A smol::Error is the expected answer to a bad input; any
//   other exception (std::bad_alloc, a leaked nlohmann or yaml-cpp exception, std::out_of_range)
//   breaks the rule "every bad input ends in exactly one smol::Error" and aborts, which libFuzzer
//   reports as a finding and saves the input.
// - ScratchDir: the engine's readers take paths, so targets write the input to files in a
//   per-process directory (under /dev/shm when it exists: no disk writes per execution).
// - split_parts: targets that read several files (a checkpoint, a PEFT adapter) take one input
//   cut at kPartSeparator, a line the dictionaries contain so that mutations keep the structure.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace smol::fuzz {

inline constexpr std::string_view kPartSeparator = "\n#--smol-fuzz-part--#\n";

template <typename Fn>
int run_parser(Fn&& fn) {
  try {
    fn();
  } catch (const smol::Error& e) {
    // The expected outcome of a bad input. SMOL_FUZZ_VERBOSE=1 shows it (to check that the
    // seeds are accepted: scripts/fuzz.sh regress with it set).
    if (std::getenv("SMOL_FUZZ_VERBOSE") != nullptr) std::fprintf(stderr, "error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz: a parser threw something other than smol::Error: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "fuzz: a parser threw a non-std exception\n");
    std::abort();
  }
  return 0;
}

// The input cut at every kPartSeparator; always at least `min_parts` parts (missing ones empty).
inline std::vector<std::string> split_parts(const uint8_t* data, size_t size, size_t min_parts) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    const size_t at = input.find(kPartSeparator, begin);
    if (at == std::string_view::npos) {
      parts.emplace_back(input.substr(begin));
      break;
    }
    parts.emplace_back(input.substr(begin, at - begin));
    begin = at + kPartSeparator.size();
  }
  while (parts.size() < min_parts) parts.emplace_back();
  return parts;
}

class ScratchDir {
 public:
  ScratchDir() {
    const std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string pattern = base + "/smol-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }

  // Writes `bytes` to <dir>/<name> (replacing it) and returns the full path.
  std::string write(const std::string& name, std::string_view bytes) const {
    const std::string file = path_ + "/" + name;
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::fprintf(stderr, "fuzz: cannot write %s\n", file.c_str());
      std::abort();
    }
    return file;
  }
  void remove(const std::string& name) const {
    std::error_code ignored;
    std::filesystem::remove(path_ + "/" + name, ignored);
  }

 private:
  std::string path_;
};

// One scratch directory per process, removed at exit.
inline const ScratchDir& scratch() {
  static const ScratchDir dir;
  return dir;
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace smol::fuzz
