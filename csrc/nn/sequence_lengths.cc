#include "csrc/nn/sequence_lengths.h"

#include <algorithm>

#include "csrc/core/error.h"

namespace gemmacpp {

SequenceLengths::SequenceLengths(int64_t batch, int64_t max_len) : max_len_(max_len) {
  GC_CHECK(batch >= 1, ValueError, "new_cache: batch must be >= 1, got ", batch);
  GC_CHECK(max_len >= 1, ValueError, "new_cache: max_len must be >= 1, got ", max_len);
  lengths_.assign(size_t(batch), 0);
}

SequenceLengths SequenceLengths::selected(const std::vector<int64_t>& sequences) const {
  GC_CHECK(!sequences.empty(), ValueError, "cache.select: no sequences given");
  for (int64_t s : sequences) {
    GC_CHECK(s >= 0 && s < batch(), ValueError, "cache.select: sequence ", s,
             " is out of range [0, ", batch(), ")");
  }
  std::vector<int64_t> out;
  for (int64_t s : sequences) out.push_back(lengths_[size_t(s)]);
  return SequenceLengths(std::move(out), max_len_);
}

void SequenceLengths::reset_lengths() { std::fill(lengths_.begin(), lengths_.end(), 0); }

}  // namespace gemmacpp
