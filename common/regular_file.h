// Opening a user's input file safely (docs/design.md §9 "Untrusted input"): a path given as a
// model, tokenizer, config or dataset may name a FIFO, a directory, a terminal or /dev/zero.
// Reading a FIFO blocks until someone writes to it (forever, for a typo'd path), and /dev/zero
// never ends, so every reader of a user file first checks that it is a regular file, with the
// descriptor opened non-blocking so that even the open() of a FIFO cannot hang.
//
//   open_regular_file(path, what)        -> a descriptor of a regular file (the caller closes it)
//   require_regular_file(path, what)     -> throws unless `path` is a regular file (for readers
//                                           that stream through std::ifstream afterwards)
//   read_regular_file(path, what, limit) -> the whole file, refusing one larger than `limit`
//
// `what` names the role in the message: "tokenizer.json", "dataset file", "config".
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "common/error.h"

namespace smol {

// What a non-regular file is, for messages ("a FIFO", "a directory", ...).
inline const char* file_kind_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

// A read-only descriptor of `path`; throws smol::Error naming `what` and `path` when it cannot
// be opened or is not a regular file. O_NONBLOCK keeps open() of a FIFO from waiting for a
// writer; it is cleared again, as it means nothing for a regular file. `size_out` gets the size.
inline int open_regular_file(const std::string& path, const std::string& what,
                             uint64_t* size_out = nullptr) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw_error("cannot open ", what, " ", path, ": ", std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int stat_errno = errno;
    ::close(fd);
    throw_error("cannot read ", what, " ", path, ": ", std::strerror(stat_errno));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    throw_error("cannot read ", what, " ", path, ": it is ", file_kind_name(info.st_mode),
                ", not a regular file");
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  if (size_out != nullptr) *size_out = static_cast<uint64_t>(info.st_size);
  return fd;
}

// Throws unless `path` is a regular file (stat follows symlinks, so a link to a file passes).
// stat() never blocks on a FIFO, so a std::ifstream opened afterwards is safe.
inline void require_regular_file(const std::string& path, const std::string& what) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    throw_error("cannot open ", what, " ", path, ": ", std::strerror(errno));
  if (!S_ISREG(info.st_mode))
    throw_error("cannot read ", what, " ", path, ": it is ", file_kind_name(info.st_mode),
                ", not a regular file");
}

// The whole of a regular file. A file over `max_bytes` is refused before anything is read, so
// that a parser's memory (a small multiple of its input) stays bounded (docs/design.md §9).
inline std::string read_regular_file(const std::string& path, const std::string& what,
                                     uint64_t max_bytes) {
  uint64_t size = 0;
  const int fd = open_regular_file(path, what, &size);
  if (size > max_bytes) {
    ::close(fd);
    throw_error(what, " ", path, " is ", size, " bytes; the limit is ", max_bytes,
                " (is this the right file?)");
  }
  std::string text(static_cast<size_t>(size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::read(fd, text.data() + done, text.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int read_errno = errno;
      ::close(fd);
      throw_error("cannot read ", what, " ", path, ": ", std::strerror(read_errno));
    }
    if (got == 0) break;  // the file shrank while being read: parse what is there
    done += static_cast<size_t>(got);
  }
  ::close(fd);
  text.resize(done);
  return text;
}

// Size limits on whole-file text inputs (docs/design.md §9 "Untrusted input"). A JSON or YAML
// parser holds several times its input in memory, so the limits are far above any real file of
// the kind and far below what would exhaust a machine.
inline constexpr uint64_t kMaxSmallJsonBytes = 64ull << 20;  // config.json, adapter_config.json,
                                                             // tokenizer_config.json (templates)
inline constexpr uint64_t kMaxTokenizerJsonBytes = 512ull << 20;  // a 256K vocab is ~20 MB
inline constexpr uint64_t kMaxConfigYamlBytes = 16ull << 20;      // a run config is ~2 KB
inline constexpr uint64_t kMaxStateJsonBytes = 1ull << 30;        // trainer_state.json grows
                                                                  // with log_history

}  // namespace smol
