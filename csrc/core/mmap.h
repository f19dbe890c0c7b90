// A read-only memory mapping of a whole file. Weight readers hand out pointers into it, and every
// tensor view holds a shared_ptr to it, so the mapping lives as long as the last view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace gemmacpp {

class MappedFile {
 public:
  // Maps `path` read-only; ValueError naming the file when it cannot be opened or mapped (or is
  // not a regular file). While a ReadIntoMemory lives on this thread, reads it into memory instead.
  static std::shared_ptr<const MappedFile> open(const std::string& path);

  // A mapping shares the file's pages: truncating the file later makes reads of the lost pages
  // fault (SIGBUS), and overwriting it changes the weights under a loaded model. gc.load(...,
  // mmap=False) sets this for the duration of one load, so that every reader's open() (GGUF,
  // safetensors shards, index files) takes a private copy without each growing a flag.
  class ReadIntoMemory {
   public:
    ReadIntoMemory();
    ~ReadIntoMemory();
    ReadIntoMemory(const ReadIntoMemory&) = delete;
    ReadIntoMemory& operator=(const ReadIntoMemory&) = delete;
   private:
    bool previous_;
  };

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Tells the kernel that the mapping is read sparsely (a MatFormer slice: some layers, some
  // columns): a page fault reads that page alone, not the pages around it (MADV_RANDOM; the
  // kernel's read-around is read_ahead_kb, 8 MB on some machines). A hint: no effect on a copy
  // read into memory, or when the kernel refuses.
  void advise_sparse() const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool in_memory_ = false;  // data_ is a heap copy (ReadIntoMemory), not a mapping
  std::string path_;
};

}  // namespace gemmacpp
