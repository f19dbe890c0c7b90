// What the weight readers (safetensors, GGUF) produce: a table of tensors that point into
// read-only file mappings, plus the file's metadata. Nothing is copied; each tensor holds its
// mapping alive.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "csrc/core/dtype.h"
#include "csrc/core/mmap.h"
#include "csrc/io/ggml_types.h"

namespace gemmacpp {

// One tensor's storage: a plain element type (dtype) or a GGML block-quantized type.
struct WeightTensor {
  std::string name;
  bool quantized = false;            // true: raw GGML blocks, see ggml_type
  DType dtype = DType::kF32;         // when !quantized
  GGMLType ggml_type = GGMLType::F32;  // GGUF files: the stored type (also for plain ones)
  bool supported = true;             // false: a GGML type gemmacpp cannot read
  std::vector<int64_t> shape;        // NumPy order (outermost first)
  const uint8_t* data = nullptr;     // into the mapping
  uint64_t nbytes = 0;
  uint64_t offset = 0;               // of data in its file
  std::shared_ptr<const MappedFile> file;

  std::string type_name() const;     // "float32", "bfloat16", ... or the GGML name "Q4_K"
  int64_t numel() const;
};

// A metadata value: GGUF's typed scalars, strings and arrays; safetensors' strings (and the
// numbers of a sharded index's "metadata").
struct MetaValue {
  enum class Type : uint32_t {  // GGUF's value type ids
    kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
    kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
  };
  Type type = Type::kString;
  uint64_t u = 0;  // unsigned and bool
  int64_t i = 0;   // signed
  double f = 0;    // float32/float64
  std::string str;
  // Arrays: element type and count; numbers and bools stay in the mapping (little-endian, maybe
  // unaligned; `raw` is valid while the WeightFile that read it lives), strings are in
  // `strings`, nested arrays in `items`.
  Type elem_type = Type::kU8;
  uint64_t count = 0;
  const uint8_t* raw = nullptr;
  std::vector<std::string> strings;
  std::vector<MetaValue> items;

  bool is_integer() const;
  bool is_float() const { return type == Type::kF32 || type == Type::kF64; }
  int64_t as_int() const;        // ValueError unless an integer (or bool) that fits
  double as_double() const;      // any number
  const std::string& as_string() const;
  // Element k of an array, as its own MetaValue of type elem_type (a copy).
  MetaValue element(uint64_t k) const;
};

const char* meta_type_name(MetaValue::Type t);
std::string shape_string(const std::vector<int64_t>& shape);  // "[2, 3]"
int meta_scalar_size(MetaValue::Type t);  // 0 for string/array

class WeightFile {
 public:
  std::string format;  // "gguf" or "safetensors"
  std::string path;    // the file, or the checkpoint folder
  std::vector<std::pair<std::string, MetaValue>> metadata;  // in file order
  std::vector<WeightTensor> tensors;                       // in file order
  std::vector<std::shared_ptr<const MappedFile>> files;    // every mapping (metadata arrays too)

  const WeightTensor* find(const std::string& name) const;
  const WeightTensor& at(const std::string& name) const;  // ValueError when absent
  const MetaValue* meta(const std::string& key) const;
  // Indexes tensor names and metadata keys (readers call it last); ValueError on duplicates.
  void build_index();

 private:
  std::unordered_map<std::string, size_t> by_name_;
  std::unordered_map<std::string, size_t> meta_by_key_;
};

// The readers are in safetensors.h and gguf.h; this picks one.
// A .gguf or .safetensors file, a safetensors index, or a checkpoint folder: by extension / magic / folder.
WeightFile open_weights(const std::string& path);

}  // namespace gemmacpp
