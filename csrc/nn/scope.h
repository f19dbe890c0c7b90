// Where a block sits in its model's block tree. A block names its weights and its hook sites by
// paths relative to its own ("attn.q.weight", "attn.hook_q" inside "blocks.3."), so that one tree
// names both: the family's NameMap turns weight paths into stored names, the hook sites are the
// full paths themselves (TransformerLens's names).
#pragma once

#include <string>

#include "csrc/io/weight_binder.h"
#include "csrc/nn/hooks.h"

namespace gemmacpp::nn {

struct Scope {
  const WeightBinder& weights;
  HookSites& sites;
  std::string path;  // "", "blocks.3." or "vision.blocks.0.attn.": ends with a dot unless empty

  std::string name(const std::string& relative) const { return path + relative; }
  int site(const std::string& relative) const { return sites.add(path + relative); }
  Scope sub(const std::string& child) const { return {weights, sites, path + child + "."}; }
};

}  // namespace gemmacpp::nn
