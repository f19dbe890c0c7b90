// What a text model carries from one forward to the next, per sequence of a batch: each sequence
// has its own length (the positions it has seen, so prompts of different lengths share one cache)
// and each layer its own slot, of the kind its mixer needs:
//  * KvSlot: the keys and values of past positions, float32, [rows][row_elems] per sequence.
//    A full slot keeps every position (up to max_len), position p in row p. A sliding-window
//    layer of window W (`capacity`) keeps a window buffer per sequence instead: positions
//    [first, length) in order, at most W - 1 + W / 4 rows (KvSpec::window_rows). A step appends
//    its rows after the old ones; when they do not fit, the last W - 1 rows (all a later query
//    can see) move to the front first, so that copy comes once every ~W / 4 tokens and the
//    attention reads the window in place (a chunk longer than the buffer, a long prefill, is
//    copied out instead, and the buffer keeps its last W - 1 rows). A fixed ring (RecurrentGemma's cache has one size) has
//    its `capacity` rows from the start, position p in row p % capacity, and its steps copy the
//    window out in position order.
//  * RecurrentSlot: a recurrent block's state, [B, width] and the conv's last inputs
//    [B, conv_rows, width], allocated up front.
// Layers made by a block that keeps nothing have an empty slot.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

namespace gemmacpp::nn {

struct KvSpec {
  int64_t row_elems = 0;  // floats of one position's keys (kv_heads * head_dim)
  bool ring = false;
  bool fixed = false;     // a ring allocated whole at creation
  int64_t capacity = 0;   // the window W; 0 for a full slot (it holds up to max_len)
  // A window buffer's most rows: the W - 1 a query can look back on and a slack of W / 4 that
  // new rows fill before the next shift (W - 1 rows moved per W / 4 tokens: ~4 per token at any
  // window, for 25% more memory than a ring).
  int64_t window_rows() const { return capacity - 1 + std::max<int64_t>(1, capacity / 4); }
  bool operator==(const KvSpec& o) const {
    return row_elems == o.row_elems && ring == o.ring && fixed == o.fixed && capacity == o.capacity;
  }
};
struct RecurrentSpec {
  int64_t width = 0, conv_rows = 0;
  bool operator==(const RecurrentSpec& o) const { return width == o.width && conv_rows == o.conv_rows; }
};
using SlotSpec = std::variant<std::monostate, KvSpec, RecurrentSpec>;

struct KvSlot {
  KvSpec spec;
  std::vector<std::vector<float>> k, v;  // per sequence
  std::vector<int64_t> first;             // per sequence: a window buffer's row 0's position
};
struct RecurrentSlot {
  RecurrentSpec spec;
  std::vector<float> h;     // [B, width]
  std::vector<float> conv;  // [B, conv_rows, width]
};
using Slot = std::variant<std::monostate, KvSlot, RecurrentSlot>;

class Cache {
 public:
  // batch empty sequences of up to max_len positions; ValueError naming new_cache unless
  // batch, max_len >= 1; MemoryError, before allocating, when what it takes up front (fixed rings,
  // recurrent states, per-sequence bookkeeping) exceeds the machine's memory.
  Cache(const std::vector<SlotSpec>& layers, int64_t batch, int64_t max_len);

  int64_t batch() const { return int64_t(lengths_.size()); }
  int64_t max_len() const { return max_len_; }
  const std::vector<int64_t>& lengths() const { return lengths_; }  // positions seen, per sequence
  void advance(int64_t b, int64_t n) { lengths_[size_t(b)] += n; }
  // Whether max_len bounds a sequence: some layer keeps every position.
  bool bounded() const;

  int64_t n_layers() const { return int64_t(slots_.size()); }
  // ValueError naming forward unless this cache was made for layers of exactly these specs.
  void check_layout(const std::vector<SlotSpec>& layers) const;
  KvSlot& kv(int64_t layer) { return std::get<KvSlot>(slots_[size_t(layer)]); }
  RecurrentSlot& recurrent(int64_t layer) { return std::get<RecurrentSlot>(slots_[size_t(layer)]); }

  // Held by a forward for its whole run: a second forward on the same cache at the same time
  // (another thread, or a hook calling forward with it) would interleave their writes, so it is
  // refused with a ValueError naming the conflict; so are reset and select meanwhile.
  class Use {
   public:
    Use(Cache& c, const char* what);
    ~Use();
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
   private:
    std::atomic<bool>& busy_;
  };

  std::vector<int64_t> layer_nbytes() const;
  int64_t nbytes() const;
  void reset();  // every sequence back to length 0 (rings and states zeroed, full slots freed)
  // A new cache holding copies of the given sequences, in that order (repeats allowed): forks one
  // prompt's cache into several continuations, or drops finished sequences. ValueError naming
  // cache.select for none or one out of range.
  Cache select(const std::vector<int64_t>& sequences) const;

 private:
  Cache(const std::vector<SlotSpec>& layers, std::vector<int64_t> lengths, int64_t max_len, bool allocate);

  std::vector<SlotSpec> specs_;
  std::vector<Slot> slots_;
  std::vector<int64_t> lengths_;
  int64_t max_len_ = 0;
  std::unique_ptr<std::atomic<bool>> busy_ = std::make_unique<std::atomic<bool>>(false);
  void check_idle(const char* what) const;
};

}  // namespace gemmacpp::nn
