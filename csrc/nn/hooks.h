// Hook sites: where a caller may read or edit an intermediate activation of a forward. Every block
// declares its sites when it is built, by names relative to its place in the block tree
// ("attn.hook_q" inside "blocks.3."), and a model's HookSites gives each full name a dense integer
// id in the order a forward reaches them. So hook_names() is the sites themselves and can never
// miss a point; a HookSet answers wants(id) with one bit test, asked once per site and forward, so
// a forward with no hooks (or none at a site) does no extra work.
//
// Names follow TransformerLens (docs/hooks.md has the table). Activations are offered as float32
// row-major arrays shaped like TransformerLens's: [B, T, ...] per token (rows past a sequence's
// length are zero padding, edits there are ignored), [B, H, Tq, Tk] for attention scores and
// patterns.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace gemmacpp::nn {

class HookSites {
 public:
  // A new site; its id is the number of sites added before it. Names are unique.
  int add(const std::string& name);
  int size() const { return int(names_.size()); }
  const std::string& name(int id) const { return names_[size_t(id)]; }
  const std::vector<std::string>& names() const { return names_; }  // in forward order
  int find(const std::string& name) const;  // -1 when there is no such site

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, int> ids_;
};

class HookSet {
 public:
  virtual ~HookSet() = default;
  // Whether call() should be made for this site. Cheap; asked once per forward and site.
  virtual bool wants(int site) const = 0;
  // Offers a contiguous float32 array of this shape; the hook may change it in place, and the
  // forward continues with what it finds there. Exceptions propagate out of the forward.
  virtual void call(int site, float* data, const std::vector<int64_t>& shape) = 0;
};

}  // namespace gemmacpp::nn
