// safetensors reader: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and [begin, end) byte range relative to the end of the header, then the data.
#pragma once

#include <string>

#include "csrc/io/weights.h"

namespace gemmacpp {

// One .safetensors file. ValueError naming the file and the problem for anything malformed:
// header length past the file, invalid JSON, unknown dtype, ranges out of the data section,
// overlapping, or not numel * dtype size long.
WeightFile read_safetensors(const std::string& path);

// A checkpoint: a folder holding model.safetensors.index.json (its weight_map names the shard of
// each tensor) or model.safetensors; or the path of an index file or of a .safetensors file.
WeightFile read_safetensors_checkpoint(const std::string& path);

}  // namespace gemmacpp
