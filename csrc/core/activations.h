// How quantized matrix products treat their float32 activations: exactly (the default), or
// rounded to int8 per block first, as llama.cpp does (csrc/cpu/quant_int8.h).
#pragma once

#include <string>

namespace gemmacpp {

enum class Activations : unsigned char { kFloat32, kInt8 };

inline const char* activations_name(Activations a) {
  return a == Activations::kInt8 ? "int8" : "float32";
}

// "float32" or "int8"; false for anything else.
inline bool parse_activations(const std::string& name, Activations* a) {
  if (name == "float32") {
    *a = Activations::kFloat32;
  } else if (name == "int8") {
    *a = Activations::kInt8;
  } else {
    return false;
  }
  return true;
}

}  // namespace gemmacpp
