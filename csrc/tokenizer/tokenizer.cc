// Encoding and decoding. The tables are built once by the loaders (tokenizer_load.cc); here
// everything is read-only, so one Tokenizer serves any number of threads.
#include "csrc/tokenizer/tokenizer.h"

#include <algorithm>
#include <cstring>

#include "csrc/core/error.h"

namespace gemmacpp {
namespace {

// Bytes in the UTF-8 sequence that starts at s[i] (1 for a broken one, so that every byte of any
// input ends up in some symbol and byte fallback covers it).
size_t utf8_len(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = uint8_t(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) { *cp = 0xFFFFFFFF; return 1; }
  uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto t = uint8_t(s[i + k]);
    if ((t & 0xC0) != 0x80) { *cp = 0xFFFFFFFF; return 1; }
    c = (c << 6) | (t & 0x3F);
  }
  *cp = c;
  return n;
}

// Strict UTF-8 (as Rust's String::from_utf8: no overlong forms, surrogates or values past U+10FFFF).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = uint8_t(s[i]);
    if (b < 0x80) { ++i; continue; }
    size_t n;
    uint32_t min, c;
    if ((b >> 5) == 6) { n = 2; min = 0x80; c = b & 0x1F; }
    else if ((b >> 4) == 14) { n = 3; min = 0x800; c = b & 0x0F; }
    else if ((b >> 3) == 30) { n = 4; min = 0x10000; c = b & 0x07; }
    else return false;
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto t = uint8_t(s[i + k]);
      if ((t & 0xC0) != 0x80) return false;
      c = (c << 6) | (t & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

void append_replaced(std::string* out, std::string_view s, const std::string& from, const std::string& to) {
  if (from.empty()) { out->append(s); return; }
  size_t start = 0;
  for (size_t p; (p = s.find(from, start)) != std::string_view::npos; start = p + from.size()) {
    out->append(s.substr(start, p - start));
    out->append(to);
  }
  out->append(s.substr(start));
}

// One symbol of a word being merged: a doubly linked list over a vector, as merges remove the
// right one of each pair.
struct Symbol {
  int32_t id;
  int32_t prev, next;
  uint32_t len;  // bytes of the word it covers; 0 once merged into its left neighbour
};

struct Candidate {
  uint64_t rank;
  int32_t pos;     // the left symbol
  int32_t merged;  // the id the pair makes
  // The pair as queued, to recognise stale entries without looking the merge up again.
  int32_t left_id, right_pos, right_id;
};

// Min-heap order: lowest rank first, then the leftmost pair (the reference breaks ties the same way).
struct Later {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

}  // namespace

const std::string& Tokenizer::id_to_piece(int64_t id) const {
  GC_CHECK(id >= 0 && id < int64_t(pieces_.size()), ValueError, "tokenizer: token id ", id,
           " is out of range [0, ", pieces_.size(), ")");
  return pieces_[size_t(id)];
}

int32_t Tokenizer::piece_to_id(std::string_view piece) const {
  auto it = vocab_.find(piece);
  return it == vocab_.end() ? -1 : it->second;
}

bool Tokenizer::find_merge(int32_t left, int32_t right, Merge* m) const {
  if (order_ == MergeOrder::kMergeList) {
    auto it = merges_.find(uint64_t(uint32_t(left)) << 32 | uint32_t(right));
    if (it == merges_.end()) return false;
    *m = it->second;
    return true;
  }
  thread_local std::string joined;
  const std::string& l = pieces_[size_t(left)];
  joined.assign(l);
  joined.append(pieces_[size_t(right)]);
  auto it = vocab_.find(std::string_view(joined));
  if (it == vocab_.end()) return false;
  // The converter's order: the merged piece's position, then the longer left part (of two splits
  // of one string the longer left part is longer in bytes too).
  m->rank = uint64_t(uint32_t(it->second)) << 32 | (0xFFFFFFFFu - uint32_t(l.size()));
  m->merged = it->second;
  return true;
}

void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>* out) const {
  thread_local std::vector<Symbol> syms;
  thread_local std::vector<Candidate> heap;
  syms.clear();
  heap.clear();
  bool last_unk = false;
  for (size_t i = 0; i < word.size();) {
    uint32_t cp;
    const size_t n = utf8_len(word, i, &cp);
    int32_t id = -1;
    if (cp < char_ids_.size()) {
      id = char_ids_[cp];
    } else if (cp != 0xFFFFFFFF) {
      auto it = vocab_.find(word.substr(i, n));
      if (it != vocab_.end()) id = it->second;
    }
    if (id >= 0) {
      syms.push_back({id, 0, 0, uint32_t(n)});
      last_unk = false;
    } else {
      bool bytes_ok = byte_fallback_;
      for (size_t k = 0; bytes_ok && k < n; ++k) bytes_ok = byte_ids_[uint8_t(word[i + k])] >= 0;
      if (bytes_ok) {
        for (size_t k = 0; k < n; ++k) syms.push_back({byte_ids_[uint8_t(word[i + k])], 0, 0, 1});
        last_unk = false;
      } else if (unk_id_ >= 0) {
        // Consecutive unknown characters become one <unk> (the reference's fuse_unk).
        if (last_unk) syms.back().len += uint32_t(n);
        else syms.push_back({unk_id_, 0, 0, uint32_t(n)});
        last_unk = true;
      }
    }
    i += n;
  }
  const auto count = int32_t(syms.size());
  for (int32_t k = 0; k < count; ++k) {
    syms[size_t(k)].prev = k - 1;
    syms[size_t(k)].next = k + 1 < count ? k + 1 : -1;
  }
  Merge m;
  auto push = [&](int32_t pos) {
    const Symbol& s = syms[size_t(pos)];
    if (s.next >= 0 && find_merge(s.id, syms[size_t(s.next)].id, &m)) {
      heap.push_back({m.rank, pos, m.merged, s.id, s.next, syms[size_t(s.next)].id});
      std::push_heap(heap.begin(), heap.end(), Later());
    }
  };
  for (int32_t k = 0; k + 1 < count; ++k) push(k);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), Later());
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = syms[size_t(top.pos)];
    // Stale: the left symbol was merged away or grew, or its right neighbour changed since queued
    // (a symbol's id changes whenever it grows, and merged-away symbols are never revived).
    if (left.len == 0 || left.next != top.right_pos || left.id != top.left_id) continue;
    Symbol& right = syms[size_t(left.next)];
    if (right.id != top.right_id) continue;
    left.id = top.merged;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (left.next >= 0) syms[size_t(left.next)].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  for (int32_t k = count > 0 ? 0 : -1; k >= 0; k = syms[size_t(k)].next) out->push_back(syms[size_t(k)].id);
}

void Tokenizer::encode_segment(std::string_view text, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  thread_local std::string norm;
  norm.assign(prepend_);
  append_replaced(&norm, text, replace_from_, replace_to_);
  std::string_view s(norm);
  if (split_after_.empty()) { bpe_word(s, out); return; }
  size_t start = 0;
  for (size_t p; (p = s.find(split_after_, start)) != std::string_view::npos;) {
    const size_t end = p + split_after_.size();
    bpe_word(s.substr(start, end - start), out);
    start = end;
  }
  if (start < s.size()) bpe_word(s.substr(start), out);
}

int Tokenizer::match_added(std::string_view text, size_t pos, size_t* len) const {
  int found = -1;
  int64_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    auto it = trie_.find(uint64_t(node) << 8 | uint8_t(text[i]));
    if (it == trie_.end()) break;
    node = it->second;
    auto t = trie_terminal_.find(int32_t(node));
    if (t != trie_terminal_.end()) { found = t->second; *len = i + 1 - pos; }
  }
  return found;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && bos_id_ >= 0) out.push_back(bos_id_);
  // Added tokens first: leftmost, then longest match; the text between them goes through BPE.
  size_t seg = 0;
  for (size_t i = 0; i < text.size();) {
    size_t len = 0;
    const int a = starts_added_[uint8_t(text[i])] ? match_added(text, i, &len) : -1;
    if (a < 0) { ++i; continue; }
    encode_segment(text.substr(seg, i - seg), &out);
    out.push_back(added_[size_t(a)].id);
    i += len;
    seg = i;
  }
  encode_segment(text.substr(seg), &out);
  return out;
}

std::string Tokenizer::decode(const int64_t* ids, size_t n, bool skip_special) const {
  for (size_t k = 0; k < n; ++k) {
    GC_CHECK(ids[k] >= 0 && ids[k] < int64_t(pieces_.size()), ValueError, "decode: token id ", ids[k],
             " (at index ", k, ") is out of range [0, ", pieces_.size(), ")");
  }
  std::string out, bytes;
  auto flush = [&] {
    if (bytes.empty()) return;
    if (valid_utf8(bytes)) out += bytes;
    else for (size_t k = 0; k < bytes.size(); ++k) out += "\xEF\xBF\xBD";  // U+FFFD per byte
    bytes.clear();
  };
  for (size_t k = 0; k < n; ++k) {
    const auto id = size_t(ids[k]);
    if (skip_special && special_[id]) continue;
    if (byte_value_[id] >= 0) { bytes.push_back(char(byte_value_[id])); continue; }
    flush();
    append_replaced(&out, pieces_[id], decode_from_, decode_to_);
  }
  flush();
  size_t strip = 0;
  while (strip < size_t(strip_start_) && strip < out.size() && out[strip] == ' ') ++strip;
  return out.substr(strip);
}

void Tokenizer::build_tables() {
  vocab_.clear();
  vocab_.reserve(pieces_.size() * 2);
  for (size_t i = 0; i < pieces_.size(); ++i) vocab_.emplace(std::string_view(pieces_[i]), int32_t(i));
  // Single code points below U+10000 are looked up in a table: most of encoding is this lookup.
  char_ids_.assign(0x10000, -1);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const std::string& p = pieces_[i];
    if (p.empty()) continue;
    uint32_t cp;
    if (utf8_len(p, 0, &cp) == p.size() && cp < 0x10000 && vocab_.at(p) == int32_t(i)) char_ids_[cp] = int32_t(i);
  }
  for (int b = 0; b < 256; ++b) {
    static const char* kHex = "0123456789ABCDEF";
    const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
    byte_ids_[b] = piece_to_id(name);
  }
  // Decoding treats any "<0xHH>" piece (either case of hex digit) as a byte, as the reference does.
  byte_value_.assign(pieces_.size(), -1);
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const std::string& p = pieces_[i];
    if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>' && hex(p[3]) >= 0 && hex(p[4]) >= 0)
      byte_value_[i] = int16_t(hex(p[3]) * 16 + hex(p[4]));
  }
  special_.assign(pieces_.size(), 0);
  trie_.clear();
  trie_terminal_.clear();
  std::fill(std::begin(starts_added_), std::end(starts_added_), false);
  int32_t nodes = 1;
  for (size_t a = 0; a < added_.size(); ++a) {
    const AddedToken& t = added_[a];
    if (t.special) special_[size_t(t.id)] = 1;
    if (t.content.empty()) continue;
    starts_added_[uint8_t(t.content[0])] = true;
    int64_t node = 0;
    for (char c : t.content) {
      auto [it, fresh] = trie_.emplace(uint64_t(node) << 8 | uint8_t(c), nodes);
      if (fresh) ++nodes;
      node = it->second;
    }
    trie_terminal_.emplace(int32_t(node), int32_t(a));  // the first of equal contents wins
  }
}

}  // namespace gemmacpp
