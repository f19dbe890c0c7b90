#include "csrc/nn/packed_batch.h"

#include <algorithm>
#include <cstring>

#include "csrc/core/error.h"

namespace gemmacpp::nn {

PackedBatch::PackedBatch(int64_t B_, int64_t T_, const int64_t* lengths, int64_t n_layers,
                         const CacheExtent& cache)
    : B(B_), T(T_) {
  GC_CHECK(B >= 1 && T >= 1, ValueError, "forward: tokens must be a non-empty [B, T] batch, got [",
           B, ", ", T, "]");
  if (cache.lengths) {
    GC_CHECK(int64_t(cache.lengths->size()) == B, ValueError, "forward: the cache holds ",
             cache.lengths->size(), " sequences, tokens have ", B);
    GC_CHECK(cache.layers == n_layers, ValueError, "forward: the cache was made for a model with ",
             cache.layers, " layers");
  }
  count.resize(size_t(B));
  offset.assign(size_t(B) + 1, 0);
  start.assign(size_t(B), 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lengths ? lengths[b] : T;
    GC_CHECK(n >= 0 && n <= T, ValueError, "forward: length ", n, " of row ", b, " is outside [0, ", T, "]");
    count[size_t(b)] = n;
    offset[size_t(b) + 1] = offset[size_t(b)] + n;
    if (!cache.lengths) continue;
    start[size_t(b)] = (*cache.lengths)[size_t(b)];
    GC_CHECK(cache.max_len < 0 || start[size_t(b)] + n <= cache.max_len, ValueError,
             "forward: the cache holds ", start[size_t(b)], " positions of at most ", cache.max_len,
             " for sequence ", b, "; ", n, " more do not fit");
  }
  M = offset[size_t(B)];
  uniform = std::all_of(count.begin(), count.end(), [&](int64_t n) { return n == count[0]; });
}

std::vector<int64_t> PackedBatch::ids(const int64_t* tokens, int64_t vocab, const uint8_t* replaced) const {
  std::vector<int64_t> out(static_cast<size_t>(M));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < count[size_t(b)]; ++t) {
      const int64_t id = replaced && replaced[b * T + t] ? 0 : tokens[b * T + t];
      GC_CHECK(id >= 0 && id < vocab, ValueError, "forward: token id ", id, " is out of range [0, ",
               vocab, ")");
      out[size_t(offset[size_t(b)] + t)] = id;
    }
  }
  return out;
}

std::vector<int64_t> PackedBatch::positions(int64_t shift) const {
  std::vector<int64_t> out(static_cast<size_t>(M));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < count[size_t(b)]; ++t) out[size_t(offset[size_t(b)] + t)] = start[size_t(b)] + t + shift;
  }
  return out;
}

PackedBatch PackedBatch::head_rows(bool last_only, float* x, int64_t width) const {
  if (!last_only) return *this;
  // Only each sequence's last token goes through the head (the head is most of a small model's
  // prefill cost at a 262k vocabulary). Row r moves to row <= r, so front to back is safe.
  PackedBatch h;
  h.B = B;
  h.T = 1;
  h.count.resize(size_t(B));
  h.offset.assign(size_t(B) + 1, 0);
  h.start.resize(size_t(B));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = count[size_t(b)];
    h.count[size_t(b)] = n > 0;
    h.offset[size_t(b) + 1] = h.offset[size_t(b)] + (n > 0);
    h.start[size_t(b)] = start[size_t(b)] + std::max<int64_t>(n - 1, 0);
    if (n == 0) continue;
    std::memmove(x + h.offset[size_t(b)] * width, x + (offset[size_t(b)] + n - 1) * width,
                 size_t(width) * sizeof(float));
  }
  h.M = h.offset[size_t(B)];
  h.uniform = std::all_of(h.count.begin(), h.count.end(), [&](int64_t n) { return n == h.count[0]; });
  return h;
}

void PackedBatch::spread(float* rows, int64_t width) const {
  // From the back: packed row offset[b] + t never lies after its place b * T + t, so moving the
  // last rows first overwrites nothing still to be moved; rows of earlier sequences all lie
  // before b * T, so sequence b's padding can be zeroed as soon as its rows are in place.
  const size_t row_bytes = size_t(width) * sizeof(float);
  for (int64_t b = B - 1; b >= 0; --b) {
    const int64_t n = count[size_t(b)];
    for (int64_t t = n - 1; t >= 0; --t) {
      float* dst = rows + (b * T + t) * width;
      const float* src = rows + (offset[size_t(b)] + t) * width;
      if (src != dst) std::memmove(dst, src, row_bytes);
    }
    if (n < T) std::memset(rows + (b * T + n) * width, 0, size_t(T - n) * row_bytes);
  }
}

void PackedBatch::zero_padding(float* rows, int64_t width) const {
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = count[size_t(b)];
    if (n < T) std::memset(rows + (b * T + n) * width, 0, size_t((T - n) * width) * sizeof(float));
  }
}

void PackedHooks::operator()(int site, float* rows, std::initializer_list<int64_t> inner) const {
  if (!wants(site)) return;
  const int64_t B = batch_.B, T = batch_.T;
  int64_t row_elems = 1;
  for (int64_t n : inner) row_elems *= n;
  std::vector<int64_t> shape = {B, T};
  shape.insert(shape.end(), inner.begin(), inner.end());
  if (batch_.M == B * T) {  // every sequence fills its T rows: the packed rows are [B, T, ...]
    hooks_->call(site, rows, shape);
    return;
  }
  std::vector<float> padded(size_t(B * T * row_elems), 0.0f);
  const size_t row_bytes = size_t(row_elems) * sizeof(float);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = batch_.count[size_t(b)];
    if (n > 0) std::memcpy(padded.data() + b * T * row_elems, rows + batch_.offset[size_t(b)] * row_elems, size_t(n) * row_bytes);
  }
  hooks_->call(site, padded.data(), shape);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = batch_.count[size_t(b)];
    if (n > 0) std::memcpy(rows + batch_.offset[size_t(b)] * row_elems, padded.data() + b * T * row_elems, size_t(n) * row_bytes);
  }
}

void PackedHooks::spread(int site, float* rows, int64_t width) const {
  if (!wants(site)) return;
  hooks_->call(site, rows, {batch_.B, batch_.T, width});
  batch_.zero_padding(rows, width);  // padding stays zero whatever the hook wrote there
}

}  // namespace gemmacpp::nn
