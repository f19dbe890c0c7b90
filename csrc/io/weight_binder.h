// Binding a model's weights by name, with the shape and type checks every family needs. Blocks ask
// for their tensors by canonical names, the paths of the block tree that also name the hook
// points ("blocks.3.attn.q.weight"); a family's NameMap turns those into the names its files
// store ("model.layers.3.self_attn.q_proj.weight" in a HF checkpoint, "blk.3.attn_q.weight" in
// GGUF), as llama.cpp's per-architecture tensor name tables do.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "csrc/io/weights.h"

namespace gemmacpp {

class NameMap {
 public:
  // (canonical, stored) name patterns; "{i}" stands for a layer number in both. Canonical names
  // without a pattern are stored under their own name. Every stored name gets `prefix` in front.
  NameMap(std::string prefix = "", std::vector<std::pair<std::string, std::string>> patterns = {});
  std::string stored(const std::string& canonical) const;
  // Layer j of the block tree ("blocks.{j}.") reads the stored layer sources[j] (a model that runs
  // a subset of a checkpoint's layers).
  void set_layer_sources(std::vector<int64_t> sources) { layer_sources_ = std::move(sources); }

 private:
  std::vector<int64_t> layer_sources_;
  std::string prefix_;
  std::vector<std::pair<std::string, std::string>> patterns_;
};

// The first of `prefixes` under which f holds embed_tokens.weight: where a Hugging Face checkpoint
// keeps its text model ("model.", "model.language_model.", ...). ValueError saying that f is not a
// `family` checkpoint when none does.
std::string text_model_prefix(const WeightFile& f, const std::vector<std::string>& prefixes, const std::string& family);

class WeightBinder {
 public:
  WeightBinder(const WeightFile& file, NameMap names) : file_(file), names_(std::move(names)) {}

  const WeightFile& file() const { return file_; }
  bool has(const std::string& name) const { return file_.find(names_.stored(name)) != nullptr; }

  // A matrix of this shape, float32/float16/bfloat16 or GGML block-quantized (read in place by the
  // quantized kernels; rows must be whole blocks).
  const WeightTensor& matrix(const std::string& name, const std::vector<int64_t>& shape) const;
  // A tensor of this shape stored as float32, float16 or bfloat16 (norms, biases, small tables).
  const WeightTensor& dense(const std::string& name, const std::vector<int64_t>& shape) const;
  // dense(name, shape)'s values as float32, in C order: a copy, for the small tensors kernels read
  // as float32 (biases, conv taps, position tables).
  std::vector<float> f32(const std::string& name, const std::vector<int64_t>& shape) const;

 private:
  const WeightTensor& find(const std::string& name, const std::vector<int64_t>& shape) const;

  const WeightFile& file_;
  NameMap names_;
};

// Its elements as float32, in C order (any float dtype).
std::vector<float> to_f32(const WeightTensor& t);

}  // namespace gemmacpp
