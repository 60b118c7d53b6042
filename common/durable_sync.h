// fsync for files and directories (docs/run-directory.md "Crash safety"). A rename into place is
// atomic against a killed process because the page cache outlives it; to survive a power cut or
// a kernel crash too, the file's bytes must reach the disk before the rename (fsync of the file)
// and the rename itself must (fsync of the directory that holds the new name).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/error.h"

namespace smol {

// Flushes `path` (a regular file or a directory) to the disk; throws naming it and the system's
// reason. A directory on a file system that cannot sync directories (EINVAL: some network and
// special file systems) is left as it is: there is nothing more a process can do there.
inline void sync_to_disk(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) throw_error("cannot open ", path, " to flush it to disk: ", std::strerror(errno));
  int status = 0;
  do {
    status = ::fsync(fd);
  } while (status != 0 && errno == EINTR);
  const int error = status != 0 ? errno : 0;
  ::close(fd);
  if (error != 0 && !(directory && error == EINVAL))
    throw_error("cannot flush ", path, " to disk: ", std::strerror(error),
                error == ENOSPC || error == EDQUOT ? " (disk full?)" : "");
}

// The directory that holds `path` ("." for a bare name).
inline std::string parent_directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace smol
