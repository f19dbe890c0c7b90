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

// Typed reads of an object's members, as config files need them: a member that is absent or null
// takes the default, one of the wrong type is a ValueError naming `what` and the key.
struct Reader {
  const Value& obj;
  std::string what;

  const Value* get(const char* key) const;  // nullptr when absent or null
  int64_t integer(const char* key) const;   // required; a non-negative integer below 2^40
  int64_t integer_or(const char* key, int64_t dflt) const;
  double number_or(const char* key, double dflt) const;
  std::string string_or(const char* key, const std::string& dflt) const;
  // Anything but false counts as true where a flag is only refused when false (a lenient read of
  // flags such as tie_word_embeddings that writers store in different ways).
  bool flag_or(const char* key, bool dflt) const;
  // A nested object (ValueError when present and not an object); nullptr when absent or null.
  const Value* object(const char* key) const;
};

}  // namespace gemmacpp::json
