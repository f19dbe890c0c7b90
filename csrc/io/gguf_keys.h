// Typed reads of a GGUF file's "<arch>.<key>" metadata, as the families' config readers need
// them: a missing required key is a ValueError naming the file and the key.
#pragma once

#include <cstdint>
#include <string>

#include "csrc/core/error.h"
#include "csrc/io/weights.h"

namespace gemmacpp {

struct GgufKeys {
  const WeightFile& f;
  std::string arch;

  std::string what() const { return "'" + f.path + "'"; }
  const MetaValue* get(const std::string& key) const { return f.meta(arch + "." + key); }
  // Sizes, counts and windows: non-negative and below 2^40, as the JSON reader's integers, so that
  // what the readers derive from them (products, quotients) cannot overflow.
  int64_t integer(const std::string& key) const {
    const MetaValue* v = get(key);
    GC_CHECK(v, ValueError, what(), ": missing ", arch, ".", key);
    const int64_t x = v->as_int();
    GC_CHECK(x >= 0 && x < (int64_t(1) << 40), ValueError, what(), ": ", arch, ".", key, " is ", x,
             "; it must be a non-negative integer below 2^40");
    return x;
  }
  int64_t integer_or(const std::string& key, int64_t dflt) const { return get(key) ? integer(key) : dflt; }
  double number_or(const std::string& key, double dflt) const { return get(key) ? get(key)->as_double() : dflt; }
};

}  // namespace gemmacpp
