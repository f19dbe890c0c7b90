// What every model cache (KVCache, GriffinCache) keeps besides its layers: a batch of sequences,
// each with its own length (the positions it has seen, so prompts of different lengths share one
// cache), and the max_len the cache was made for. The caches build on it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace gemmacpp {

class SequenceLengths {
 public:
  int64_t batch() const { return int64_t(lengths_.size()); }
  int64_t max_len() const { return max_len_; }
  const std::vector<int64_t>& lengths() const { return lengths_; }  // positions seen, per sequence
  void advance(int64_t b, int64_t n) { lengths_[std::size_t(b)] += n; }

 protected:
  // batch empty sequences; ValueError naming new_cache unless batch, max_len >= 1.
  SequenceLengths(int64_t batch, int64_t max_len);
  // The lengths of the given sequences, in that order (repeats allowed), for a cache's select();
  // ValueError naming cache.select for none or one out of range.
  SequenceLengths selected(const std::vector<int64_t>& sequences) const;
  void reset_lengths();  // every sequence back to length 0

 private:
  SequenceLengths(std::vector<int64_t> lengths, int64_t max_len)
      : max_len_(max_len), lengths_(std::move(lengths)) {}

  int64_t max_len_;
  std::vector<int64_t> lengths_;
};

}  // namespace gemmacpp
