// Gemma's tokenizer: SentencePiece-style BPE over Unicode characters with byte fallback, spaces
// written as U+2581, and added tokens (<bos>, <start_of_turn>, newline runs, ...) matched whole in
// the text first. Encoding gives the ids Hugging Face `tokenizers` gives for the same vocabulary
// (built from a GGUF file by transformers' converter, or from a tokenizer.json).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "csrc/io/weights.h"

namespace gemmacpp {

class Tokenizer {
 public:
  // GGUF metadata: tokenizer.ggml.model "llama" with a Gemma architecture (gemma, gemma2, gemma3),
  // or "gemma4" (Gemma 4's BPE, its merges stored).
  static std::shared_ptr<const Tokenizer> from_gguf(const WeightFile& file);
  // A Hugging Face tokenizer.json (BPE model), or a folder holding one.
  static std::shared_ptr<const Tokenizer> from_hf_json(const std::string& path);

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;
  // ValueError naming the first id outside [0, vocab_size). Byte-fallback runs that are not valid
  // UTF-8 become one U+FFFD per byte, as the reference's ByteFallback decoder does.
  std::string decode(const int64_t* ids, size_t n, bool skip_special) const;

  int32_t vocab_size() const { return int32_t(pieces_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  const std::string& id_to_piece(int64_t id) const;  // ValueError when out of range
  int32_t piece_to_id(std::string_view piece) const;  // -1 when absent
  bool is_special(int32_t id) const { return special_[size_t(id)] != 0; }

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
    bool special;
  };
  // Which pair of adjacent symbols merges first.
  enum class MergeOrder {
    // Transformers' GGUF converter for Gemma: merges are every split of a vocabulary piece into
    // two pieces, ranked by the merged piece's position in the file, then the longer left part.
    // Nothing is stored: a pair's rank is found by looking up the concatenation.
    kVocabPosition,
    // tokenizer.json: the rank is the pair's index in model.merges.
    kMergeList,
  };
  struct Merge {
    uint64_t rank;   // lower merges first
    int32_t merged;  // id of the merged piece
  };

  Tokenizer() = default;
  // After pieces_, added_ and the ids are set: the lookup tables (vocab hash map, byte tokens,
  // added-token trie, per-id decode info).
  void build_tables();
  bool find_merge(int32_t left, int32_t right, Merge* m) const;
  // kMergeList: left + right merge at this rank (ValueError naming `what` for pieces not in the
  // vocabulary).
  void add_merge(const std::string& left, const std::string& right, uint64_t rank, const std::string& what);
  void encode_segment(std::string_view text, std::vector<int32_t>* out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>* out) const;
  // Longest added token starting at text[pos]; its index in added_, or -1.
  int match_added(std::string_view text, size_t pos, size_t* len) const;

  std::vector<std::string> pieces_;
  std::unordered_map<std::string_view, int32_t> vocab_;  // views into pieces_ (never resized)
  MergeOrder order_ = MergeOrder::kVocabPosition;
  std::unordered_map<uint64_t, Merge> merges_;  // kMergeList: (left << 32 | right) -> merge
  std::vector<AddedToken> added_;
  bool byte_fallback_ = true;
  int32_t byte_ids_[256];            // "<0xXX>" pieces, -1 when absent
  std::vector<int32_t> char_ids_;    // id of each single-code-point piece below 0x10000, or -1
  std::vector<uint8_t> special_;     // per id: skipped by decode(skip_special)
  std::vector<int16_t> byte_value_;  // per id: the byte a "<0xXX>" piece stands for, or -1
  // Normalizer: `prepend` before each non-empty segment, then every `replace_from` becomes
  // `replace_to`. Pre-tokenizer: split after each `split_after` (empty: no split).
  std::string prepend_, replace_from_ = " ", replace_to_ = "\xE2\x96\x81", split_after_;
  // Decoder: `decode_from` becomes `decode_to` in every piece; strip up to `strip_start` leading
  // spaces of the result.
  std::string decode_from_ = "\xE2\x96\x81", decode_to_ = " ";
  int strip_start_ = 0;
  // Added-token trie over bytes: (node << 8 | byte) -> child; terminal nodes -> index in added_.
  std::unordered_map<uint64_t, int32_t> trie_;
  std::unordered_map<int32_t, int32_t> trie_terminal_;
  bool starts_added_[256] = {};
  int32_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, unk_id_ = -1;
};

}  // namespace gemmacpp
