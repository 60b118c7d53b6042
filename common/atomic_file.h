// Whole-file writes that never leave a half-written file behind (docs/design.md §9): the bytes
// go to "<path>.tmp.<pid>", are flushed, and the temporary is renamed over `path` (rename is
// atomic on POSIX file systems). On any failure the temporary is removed and an Error names
// the file. Used for every output a user or a resumed run reads back (configs, metrics
// snapshots, JSON state, reports); safetensors has its own streaming writer built the same way.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

#include "common/error.h"

namespace smol {

// The general form: `write` streams the contents into the temporary file (e.g. a safetensors
// header then its tensor bytes, without assembling them in memory first).
inline void write_file_atomically(const std::string& path,
                                  const std::function<void(std::ostream&)>& write) {
  const std::string tmp_path = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    SMOL_CHECK(out.good(), "cannot write ", tmp_path);
    try {
      write(out);
    } catch (...) {
      out.close();
      std::remove(tmp_path.c_str());
      throw;
    }
    out.flush();
    if (!out.good()) {
      out.close();
      std::remove(tmp_path.c_str());
      throw_error("error writing ", tmp_path, " (disk full?)");
    }
  }
  if (std::rename(tmp_path.c_str(), path.c_str()) != 0) {
    std::remove(tmp_path.c_str());
    throw_error("cannot rename ", tmp_path, " to ", path);
  }
}

inline void write_file_atomically(const std::string& path, std::string_view bytes) {
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

}  // namespace smol
