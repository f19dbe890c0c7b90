// GGUF v2/v3 reader (little-endian): header, typed metadata key/values, tensor infos, and the
// data section at the aligned end of the header (general.alignment, default 32).
#pragma once

#include <string>

#include "csrc/io/weights.h"

namespace gemmacpp {

// Every count, length, offset and size is checked against the bytes the file has left before it
// is used, so a truncated or corrupt file raises ValueError (naming the file and the problem),
// never reads out of bounds or allocates more than the file could describe.
WeightFile read_gguf(const std::string& path);

}  // namespace gemmacpp
