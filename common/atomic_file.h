// Whole-file writes that never leave a half-written file behind (docs/design.md §9): the bytes
// go to "<path>.tmp.<pid>", are flushed, and the temporary is renamed over `path` (rename is
// atomic on POSIX file systems). On any failure the temporary is removed and an Error names
// the file and the system's reason (a full disk reads "No space left on device", a file-size
// limit "File too large"). Atomic against the process dying (kill -9), and durable: the
// temporary is fsync'ed before the rename and the directory after it (common/durable_sync.h), so
// a power cut leaves either the old file or the whole new one (docs/run-directory.md "Crash
// safety"). Used for every output a user or a resumed run reads back (configs, metrics
// snapshots, JSON state, reports, safetensors through its streaming writer).
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

#include "common/durable_sync.h"
#include "common/error.h"

namespace smol {

// The general form: `write` streams the contents into the temporary file (e.g. a safetensors
// header then its tensor bytes, without assembling them in memory first).
inline void write_file_atomically(const std::string& path,
                                  const std::function<void(std::ostream&)>& write) {
  const std::string tmp_path = path + ".tmp." + std::to_string(::getpid());
  // errno of the first failed write, taken before anything else can change it.
  const auto fail = [&](std::ofstream& out, const char* what) {
    const int error = errno;
    out.close();
    std::remove(tmp_path.c_str());
    const bool space = error == 0 || error == ENOSPC || error == EFBIG || error == EDQUOT;
    throw_error(what, " ", path, ": ", error != 0 ? std::strerror(error) : "write failed",
                space ? " (disk full?)" : "");
  };
  {
    errno = 0;
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    if (!out.good()) fail(out, "cannot create");
    try {
      write(out);
    } catch (...) {
      out.close();
      std::remove(tmp_path.c_str());
      throw;
    }
    if (out.good()) out.flush();
    if (!out.good()) fail(out, "error writing");
    out.close();  // the last buffered bytes are written here
    if (out.fail()) fail(out, "error writing");
  }
  try {
    sync_to_disk(tmp_path, /*directory=*/false);
  } catch (...) {
    std::remove(tmp_path.c_str());
    throw;
  }
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(tmp_path.c_str());
    throw_error("cannot rename ", tmp_path, " to ", path, ": ", std::strerror(error));
  }
  sync_to_disk(parent_directory_of(path), /*directory=*/true);
}

inline void write_file_atomically(const std::string& path, std::string_view bytes) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

}  // namespace smol
