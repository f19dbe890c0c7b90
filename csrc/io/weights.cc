#include "csrc/io/weights.h"

#include <sys/stat.h>

#include <cstring>

#include "csrc/core/error.h"
#include "csrc/io/checkpoint.h"
#include "csrc/io/gguf.h"
#include "csrc/io/safetensors.h"

namespace gemmacpp {

std::string WeightTensor::type_name() const {
  if (quantized || !supported) {
    const GGMLTypeInfo* info = ggml_type_info(uint32_t(ggml_type));
    return info ? info->name : "?";
  }
  return dtype_name(dtype);
}

int64_t WeightTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

const char* meta_type_name(MetaValue::Type t) {
  using T = MetaValue::Type;
  switch (t) {
    case T::kU8: return "uint8";
    case T::kI8: return "int8";
    case T::kU16: return "uint16";
    case T::kI16: return "int16";
    case T::kU32: return "uint32";
    case T::kI32: return "int32";
    case T::kF32: return "float32";
    case T::kBool: return "bool";
    case T::kString: return "string";
    case T::kArray: return "array";
    case T::kU64: return "uint64";
    case T::kI64: return "int64";
    case T::kF64: return "float64";
  }
  return "?";
}

int meta_scalar_size(MetaValue::Type t) {
  using T = MetaValue::Type;
  switch (t) {
    case T::kU8: case T::kI8: case T::kBool: return 1;
    case T::kU16: case T::kI16: return 2;
    case T::kU32: case T::kI32: case T::kF32: return 4;
    case T::kU64: case T::kI64: case T::kF64: return 8;
    case T::kString: case T::kArray: return 0;
  }
  return 0;
}

bool MetaValue::is_integer() const {
  using T = Type;
  switch (type) {
    case T::kU8: case T::kI8: case T::kU16: case T::kI16: case T::kU32: case T::kI32:
    case T::kU64: case T::kI64: case T::kBool: return true;
    default: return false;
  }
}

namespace {
bool is_unsigned(MetaValue::Type t) {
  using T = MetaValue::Type;
  return t == T::kU8 || t == T::kU16 || t == T::kU32 || t == T::kU64 || t == T::kBool;
}
}  // namespace

int64_t MetaValue::as_int() const {
  GC_CHECK(is_integer(), ValueError, "metadata value of type ", meta_type_name(type),
           " is not an integer");
  if (is_unsigned(type)) {
    GC_CHECK(u <= uint64_t(INT64_MAX), ValueError, "metadata value ", u, " is too large");
    return int64_t(u);
  }
  return i;
}

double MetaValue::as_double() const {
  if (is_float()) return f;
  GC_CHECK(is_integer(), ValueError, "metadata value of type ", meta_type_name(type),
           " is not a number");
  return is_unsigned(type) ? double(u) : double(i);
}

const std::string& MetaValue::as_string() const {
  GC_CHECK(type == Type::kString, ValueError, "metadata value of type ", meta_type_name(type),
           " is not a string");
  return str;
}

MetaValue MetaValue::element(uint64_t k) const {
  GC_CHECK(type == Type::kArray, ValueError, "metadata value of type ", meta_type_name(type),
           " is not an array");
  GC_CHECK(k < count, ValueError, "metadata array index ", k, " out of range (", count, ")");
  MetaValue v;
  v.type = elem_type;
  if (elem_type == Type::kString) { v.str = strings[k]; return v; }
  if (elem_type == Type::kArray) return items[k];
  const int size = meta_scalar_size(elem_type);
  uint64_t bits = 0;
  for (int b = size - 1; b >= 0; --b) bits = (bits << 8) | raw[k * size + b];  // little-endian
  using T = Type;
  switch (elem_type) {
    case T::kU8: case T::kU16: case T::kU32: case T::kU64: v.u = bits; break;
    case T::kBool: v.u = bits != 0; break;
    case T::kI8: v.i = int8_t(bits); break;
    case T::kI16: v.i = int16_t(bits); break;
    case T::kI32: v.i = int32_t(bits); break;
    case T::kI64: v.i = int64_t(bits); break;
    case T::kF32: { float x; uint32_t b32 = uint32_t(bits); std::memcpy(&x, &b32, 4); v.f = x; break; }
    case T::kF64: { double x; std::memcpy(&x, &bits, 8); v.f = x; break; }
    default: break;
  }
  return v;
}

const WeightTensor* WeightFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors[it->second];
}

const WeightTensor& WeightFile::at(const std::string& name) const {
  const WeightTensor* t = find(name);
  GC_CHECK(t, ValueError, "'", path, "' has no tensor named '", name, "'");
  return *t;
}

const MetaValue* WeightFile::meta(const std::string& key) const {
  auto it = meta_by_key_.find(key);
  return it == meta_by_key_.end() ? nullptr : &metadata[it->second].second;
}

void WeightFile::build_index() {
  by_name_.clear();
  for (size_t k = 0; k < tensors.size(); ++k)
    GC_CHECK(by_name_.emplace(tensors[k].name, k).second, ValueError, format, " '", path,
             "': tensor name '", tensors[k].name, "' appears twice");
  meta_by_key_.clear();
  for (size_t k = 0; k < metadata.size(); ++k)
    GC_CHECK(meta_by_key_.emplace(metadata[k].first, k).second, ValueError, format, " '", path,
             "': metadata key '", metadata[k].first, "' appears twice");
}

WeightFile open_weights(const std::string& path) {
  struct stat st;
  GC_CHECK(::stat(path.c_str(), &st) == 0, ValueError, "no such file or folder: '", path, "'");
  using checkpoint::ends_with;
  if (S_ISDIR(st.st_mode) || ends_with(path, ".json") || ends_with(path, ".safetensors"))
    return read_safetensors_checkpoint(path);
  if (checkpoint::is_gguf(path)) return read_gguf(path);
  // Any other name: GGUF files start with their magic, safetensors with a header length.
  auto file = MappedFile::open(path);
  if (file->size() >= 4 && std::memcmp(file->data(), "GGUF", 4) == 0) return read_gguf(path);
  return read_safetensors(path);
}

}  // namespace gemmacpp
