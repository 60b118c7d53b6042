// MappedFile: open + fstat + mmap(PROT_READ, MAP_PRIVATE); see mapped_file.h.
#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/regular_file.h"

namespace smol {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  // A FIFO, directory or device is refused at open without blocking (common/regular_file.h).
  uint64_t size = 0;
  const int fd = open_regular_file(path, "file", &size);
  size_ = static_cast<size_t>(size);
  if (size_ > 0) {
    void* mapping = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);
    SMOL_CHECK(mapping != MAP_FAILED, "cannot map ", path, ": ", std::strerror(map_errno));
    data_ = static_cast<const uint8_t*>(mapping);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace smol
