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
  int64_t integer(const std::string& key) const {
    const MetaValue* v = get(key);
    GC_CHECK(v, ValueError, what(), ": missing ", arch, ".", key);
    return v->as_int();
  }
  int64_t integer_or(const std::string& key, int64_t dflt) const { return get(key) ? get(key)->as_int() : dflt; }
  double number_or(const std::string& key, double dflt) const { return get(key) ? get(key)->as_double() : dflt; }
};

}  // namespace gemmacpp
