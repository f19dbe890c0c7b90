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
  // Maps `path` read-only; ValueError naming the file when it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::string& path);

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }  // nullptr for an empty file
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace gemmacpp
