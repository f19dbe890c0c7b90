#include "csrc/core/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "csrc/core/error.h"

namespace gemmacpp {
namespace {
thread_local bool read_into_memory = false;  // see MappedFile::ReadIntoMemory
}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  // A FIFO or device would block open() (a FIFO until some writer comes) or map nothing sensible:
  // refused before opening, and O_NONBLOCK covers a file swapped for one in between.
  struct stat before;
  GC_CHECK(::stat(path.c_str(), &before) != 0 || S_ISREG(before.st_mode), ValueError, "cannot map '",
           path, "': not a regular file");
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  GC_CHECK(fd >= 0, ValueError, "cannot open '", path, "': ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    ::close(fd);
    throw ValueError(str_cat("cannot map '", path, "': ",
                             err ? std::strerror(err) : "not a regular file"));
  }
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  f->size_ = size_t(st.st_size);
  if (f->size_ > 0 && read_into_memory) {
    // 64-byte aligned like a mapping's start, with room for the kernels' last-vector over-read.
    void* p = std::aligned_alloc(64, (f->size_ + 127) / 64 * 64);
    if (!p) {
      ::close(fd);
      throw MemoryError(str_cat("cannot read '", path, "' into memory: ", f->size_, " bytes"));
    }
    f->data_ = static_cast<const uint8_t*>(p);
    f->in_memory_ = true;
    size_t done = 0;
    while (done < f->size_) {
      const ssize_t n = ::pread(fd, static_cast<uint8_t*>(p) + done, f->size_ - done, off_t(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const int err = n < 0 ? errno : 0;
        ::close(fd);
        throw ValueError(str_cat("cannot read '", path, "': ", err ? std::strerror(err) : "file shrank while reading"));
      }
      done += size_t(n);
    }
    ::close(fd);
  } else if (f->size_ > 0) {  // mmap refuses length 0; an empty file simply has no bytes
    void* p = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    ::close(fd);
    GC_CHECK(p != MAP_FAILED, ValueError, "cannot map '", path, "': ", std::strerror(err));
    f->data_ = static_cast<const uint8_t*>(p);
  } else {
    ::close(fd);
  }
  return f;
}

void MappedFile::advise_sparse() const {
  if (in_memory_ || !data_) return;
  ::madvise(const_cast<uint8_t*>(data_), size_, MADV_RANDOM);  // a hint: failure is harmless
}

MappedFile::~MappedFile() {
  if (data_ && in_memory_) std::free(const_cast<uint8_t*>(data_));
  else if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::ReadIntoMemory::ReadIntoMemory() : previous_(read_into_memory) { read_into_memory = true; }
MappedFile::ReadIntoMemory::~ReadIntoMemory() { read_into_memory = previous_; }

}  // namespace gemmacpp
