// A small, strict JSON reader (RFC 8259) for safetensors headers and checkpoint index files:
// no comments, no trailing commas, duplicate keys rejected, nesting depth bounded, integers kept
// exact up to 64 bits. Errors are ValueError with the byte position.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace gemmacpp::json {

struct Value {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  // Numbers: `is_int` when written without fraction or exponent and in range of int64/uint64.
  bool is_int = false;
  bool is_negative = false;
  uint64_t magnitude = 0;  // |value| when is_int
  double number = 0;
  std::string str;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in document order

  const Value* get(const std::string& key) const;  // objects only; nullptr when absent
  bool is_uint() const { return kind == Kind::kNumber && is_int && !is_negative; }
};

// Parses the whole of [text, text+size); `what` prefixes error messages ("'x.safetensors' header").
Value parse(const char* text, size_t size, const std::string& what);

}  // namespace gemmacpp::json
