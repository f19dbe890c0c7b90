// Building a Tokenizer from GGUF metadata or from a Hugging Face tokenizer.json.

#include "csrc/core/error.h"
#include "csrc/io/checkpoint.h"
#include "csrc/io/json_reader.h"
#include "csrc/tokenizer/tokenizer.h"

namespace gemmacpp {
namespace {

// Python's str.isspace() code points: the converter's test for "a token of blanks".
bool py_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// Code points of valid UTF-8, or false.
bool code_points(const std::string& s, std::vector<uint32_t>* out) {
  out->clear();
  for (size_t i = 0; i < s.size();) {
    const auto b = uint8_t(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; k < n; ++k) c = (c << 6) | (uint8_t(s[i + k]) & 0x3F);
    out->push_back(c);
    i += n;
  }
  return true;
}

const json::Value* member(const json::Value& v, const char* key) {
  return v.kind == json::Value::Kind::kObject ? v.get(key) : nullptr;
}

std::string string_member(const json::Value& v, const char* key, const std::string& what) {
  const json::Value* m = member(v, key);
  GC_CHECK(m && m->kind == json::Value::Kind::kString, ValueError, what, ": '", key, "' must be a string");
  return m->str;
}

bool is_null(const json::Value* v) { return !v || v->kind == json::Value::Kind::kNull; }

// {"String": "x"} patterns only; regex patterns are not supported.
std::string string_pattern(const json::Value& v, const std::string& what) {
  const json::Value* p = member(v, "pattern");
  const json::Value* s = p ? member(*p, "String") : nullptr;
  if (!s || s->kind != json::Value::Kind::kString)
    throw NotImplementedError(str_cat(what, ": only {\"String\": ...} patterns are supported"));
  return s->str;
}

// A merge spelled "left right": split at the first space after the first character (llama.cpp's
// rule; pieces hold U+2581, not spaces, in the files that spell merges so).
bool split_merge(const std::string& m, std::string* left, std::string* right) {
  const size_t sp = m.find(' ', 1);
  if (sp == std::string::npos || m.find(' ', sp + 1) != std::string::npos) return false;
  *left = m.substr(0, sp);
  *right = m.substr(sp + 1);
  return true;
}

}  // namespace

void Tokenizer::add_merge(const std::string& left, const std::string& right, uint64_t rank, const std::string& what) {
  auto lookup = [&](const std::string& s) {
    const int32_t i = piece_to_id(s);
    GC_CHECK(i >= 0, ValueError, what, ": merge piece '", s, "' is not in the vocabulary");
    return i;
  };
  const uint64_t key = uint64_t(uint32_t(lookup(left))) << 32 | uint32_t(lookup(right));
  merges_.insert_or_assign(key, Merge{rank, lookup(left + right)});  // a repeat overrides
}

std::shared_ptr<const Tokenizer> Tokenizer::from_gguf(const WeightFile& f) {
  const std::string what = str_cat("tokenizer from '", f.path, "'");
  const MetaValue* model = f.meta("tokenizer.ggml.model");
  GC_CHECK(model, ValueError, what, ": no tokenizer.ggml.model in the metadata");
  // "llama": Gemma 1/2/3's SentencePiece vocabulary, merges implied by the pieces' order. "gemma4":
  // Gemma 4's BPE, the same spelling (U+2581 for spaces, byte fallback, no prefix space) with its
  // merge list stored (tokenizer.ggml.merges), run over the whole text between added tokens.
  const std::string kind = model->as_string();
  if (kind != "llama" && kind != "gemma4")
    throw NotImplementedError(str_cat(what, ": tokenizer.ggml.model '", kind,
                                      "' (only 'llama', SentencePiece BPE, and 'gemma4' are supported)"));
  const MetaValue* arch = f.meta("general.architecture");
  const std::string a = arch ? arch->as_string() : "";
  // Only Gemma's merge order is known to match the reference (merges follow the file's order, not
  // the scores); other SentencePiece BPE vocabularies would need the score order.
  if (kind == "llama" && a != "gemma" && a != "gemma2" && a != "gemma3" && a != "gemma-embedding")
    throw NotImplementedError(str_cat(what, ": architecture '", a, "' (only gemma, gemma2, gemma3)"));
  const MetaValue* tokens = f.meta("tokenizer.ggml.tokens");
  GC_CHECK(tokens && tokens->type == MetaValue::Type::kArray && tokens->elem_type == MetaValue::Type::kString,
           ValueError, what, ": tokenizer.ggml.tokens must be an array of strings");
  const size_t n = size_t(tokens->count);
  GC_CHECK(n > 0 && n < (size_t(1) << 31), ValueError, what, ": ", n, " tokens");
  const MetaValue* types = f.meta("tokenizer.ggml.token_type");
  GC_CHECK(!types || (types->type == MetaValue::Type::kArray && types->count == n), ValueError, what,
           ": tokenizer.ggml.token_type must be an array with one entry per token");

  const MetaValue* merges = f.meta("tokenizer.ggml.merges");
  GC_CHECK(kind != "gemma4" || (merges && merges->type == MetaValue::Type::kArray &&
                                merges->elem_type == MetaValue::Type::kString),
           ValueError, what, ": a gemma4 tokenizer needs tokenizer.ggml.merges, an array of strings");

  std::shared_ptr<Tokenizer> t(new Tokenizer());
  t->order_ = kind == "gemma4" ? MergeOrder::kMergeList : MergeOrder::kVocabPosition;
  t->pieces_ = tokens->strings;
  std::vector<uint32_t> cps;
  std::vector<uint8_t> respelled(n, 0);
  for (size_t i = 0; i < n; ++i) {
    // Gemma files store tokens of blanks with real spaces ("  "); the reference spells them with
    // U+2581 (one per character), as the text is spelled after normalisation.
    std::string& p = t->pieces_[i];
    if (p.find(' ') == std::string::npos || !code_points(p, &cps)) continue;
    bool blank = true;
    for (uint32_t c : cps) blank = blank && py_space(c);
    if (!blank) continue;
    p.clear();
    for (size_t k = 0; k < cps.size(); ++k) p += "\xE2\x96\x81";
    respelled[i] = 1;
  }
  // Control tokens (type 3) are special added tokens; user-defined ones (4) plain added tokens,
  // except those respelled above (the reference looks them up by their old spelling and misses).
  if (types) {
    for (size_t i = 0; i < n; ++i) {
      const int64_t type = types->element(i).as_int();
      if (type == 3) t->added_.push_back({t->pieces_[i], int32_t(i), true});
      else if (type == 4 && !respelled[i]) t->added_.push_back({t->pieces_[i], int32_t(i), false});
    }
  }
  auto id = [&](const char* key) -> int32_t {
    const MetaValue* v = f.meta(key);
    if (!v) return -1;
    const int64_t x = v->as_int();
    GC_CHECK(x >= 0 && x < int64_t(n), ValueError, what, ": ", key, " = ", x, " is not a token id");
    return int32_t(x);
  };
  t->bos_id_ = id("tokenizer.ggml.bos_token_id");
  t->eos_id_ = id("tokenizer.ggml.eos_token_id");
  t->unk_id_ = id("tokenizer.ggml.unknown_token_id");
  t->pad_id_ = id("tokenizer.ggml.padding_token_id");
  t->build_tables();
  if (kind == "gemma4") {
    t->merges_.reserve(merges->strings.size() * 2);
    std::string l, r;
    for (size_t k = 0; k < merges->strings.size(); ++k) {
      GC_CHECK(split_merge(merges->strings[k], &l, &r), ValueError, what, ": merge '", merges->strings[k],
               "' is not two pieces");
      t->add_merge(l, r, k, what);
    }
  }
  return t;
}

std::shared_ptr<const Tokenizer> Tokenizer::from_hf_json(const std::string& path_in) {
  const std::string path = checkpoint::is_directory(path_in) ? path_in + "/tokenizer.json" : path_in;
  const std::string text = checkpoint::read_file(path);
  const std::string what = str_cat("tokenizer '", path, "'");
  const json::Value root = json::parse(text.data(), text.size(), what);
  using K = json::Value::Kind;

  const json::Value* model = member(root, "model");
  GC_CHECK(model && model->kind == K::kObject, ValueError, what, ": no 'model' object");
  const json::Value* type = member(*model, "type");
  if (type && !(type->kind == K::kString && type->str == "BPE"))
    throw NotImplementedError(str_cat(what, ": model type '", type->str, "' (only BPE is supported)"));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json::Value* v = member(*model, key);
    if (!is_null(v) && !(v->kind == K::kString && v->str.empty()))
      throw NotImplementedError(str_cat(what, ": model.", key, " is not supported"));
  }
  const json::Value* vocab = member(*model, "vocab");
  const json::Value* merges = member(*model, "merges");
  GC_CHECK(vocab && vocab->kind == K::kObject, ValueError, what, ": model.vocab must be an object");
  GC_CHECK(merges && merges->kind == K::kArray, ValueError, what, ": model.merges must be an array");

  std::shared_ptr<Tokenizer> t(new Tokenizer());
  t->order_ = MergeOrder::kMergeList;
  // Ids: the model's vocabulary, then added tokens (which may lie past it).
  uint64_t size = 0;
  for (const auto& [piece, v] : vocab->object) {
    GC_CHECK(v.is_uint() && v.magnitude < (uint64_t(1) << 31), ValueError, what, ": vocab id of '", piece,
             "' must be a non-negative integer");
    size = std::max(size, v.magnitude + 1);
  }
  const json::Value* added = member(root, "added_tokens");
  GC_CHECK(is_null(added) || added->kind == K::kArray, ValueError, what, ": added_tokens must be an array");
  if (!is_null(added)) {
    for (const json::Value& a : added->array) {
      const json::Value* aid = member(a, "id");
      GC_CHECK(aid && aid->is_uint() && aid->magnitude < (uint64_t(1) << 31), ValueError, what,
               ": added token without a valid id");
      size = std::max(size, aid->magnitude + 1);
      const json::Value* norm = member(a, "normalized");
      const bool special = member(a, "special") && member(a, "special")->boolean;
      for (const char* flag : {"lstrip", "rstrip", "single_word"}) {
        const json::Value* fv = member(a, flag);
        if (fv && fv->boolean)
          throw NotImplementedError(str_cat(what, ": added token option '", flag, "' is not supported"));
      }
      // A normalized added token would be matched in the normalized text; Gemma has none.
      if (norm && norm->boolean && !special)
        throw NotImplementedError(str_cat(what, ": normalized added tokens are not supported"));
      t->added_.push_back({string_member(a, "content", what), int32_t(aid->magnitude), special});
    }
  }
  // The tables are dense up to the largest id: ids may leave gaps, but a few pieces with an id in
  // the millions would cost gigabytes, so the table may be at most about twice the pieces defined.
  const uint64_t defined = vocab->object.size() + t->added_.size();
  GC_CHECK(size <= 2 * defined + 1024, ValueError, what, ": token id ", size - 1, " is far beyond the ",
           defined, " pieces defined (ids must be nearly dense)");
  t->pieces_.assign(size_t(size), std::string());
  for (const auto& [piece, v] : vocab->object) t->pieces_[size_t(v.magnitude)] = piece;
  for (const AddedToken& a : t->added_)
    if (t->pieces_[size_t(a.id)].empty()) t->pieces_[size_t(a.id)] = a.content;
  t->build_tables();

  t->merges_.reserve(merges->array.size() * 2);
  for (size_t r = 0; r < merges->array.size(); ++r) {
    const json::Value& m = merges->array[r];
    std::string l, rt;
    if (m.kind == K::kString) {  // "a b"
      GC_CHECK(split_merge(m.str, &l, &rt), ValueError, what, ": merge '", m.str, "' is not two pieces");
    } else {
      GC_CHECK(m.kind == K::kArray && m.array.size() == 2 && m.array[0].kind == K::kString &&
                   m.array[1].kind == K::kString, ValueError, what, ": merge ", r, " is not two strings");
      l = m.array[0].str;
      rt = m.array[1].str;
    }
    t->add_merge(l, rt, r, what);
  }
  const json::Value* bf = member(*model, "byte_fallback");
  t->byte_fallback_ = bf && bf->boolean;
  const json::Value* unk = member(*model, "unk_token");
  if (!is_null(unk) && unk->kind == K::kString) t->unk_id_ = t->piece_to_id(unk->str);

  // Normalizer: Replace(String) and Prepend, alone or in a Sequence.
  t->replace_from_.clear();
  t->replace_to_.clear();
  const json::Value* norm = member(root, "normalizer");
  std::vector<const json::Value*> steps;
  if (!is_null(norm)) {
    if (string_member(*norm, "type", what) == "Sequence") {
      const json::Value* list = member(*norm, "normalizers");
      GC_CHECK(list && list->kind == K::kArray, ValueError, what, ": normalizer Sequence without a list");
      for (const json::Value& s : list->array) steps.push_back(&s);
    } else {
      steps.push_back(norm);
    }
  }
  for (size_t k = 0; k < steps.size(); ++k) {
    const std::string st_type = string_member(*steps[k], "type", what);
    if (st_type == "Replace" && t->replace_from_.empty()) {
      t->replace_from_ = string_pattern(*steps[k], what + " normalizer");
      t->replace_to_ = string_member(*steps[k], "content", what);
    } else if (st_type == "Prepend" && k == 0) {
      t->prepend_ = string_member(*steps[k], "prepend", what);
    } else {
      throw NotImplementedError(str_cat(what, ": normalizer '", st_type, "' here is not supported"));
    }
  }
  // Pre-tokenizer: none, or a Split on a string keeping it at the end of each piece.
  const json::Value* pre = member(root, "pre_tokenizer");
  if (!is_null(pre)) {
    const std::string pt = string_member(*pre, "type", what);
    const json::Value* behavior = member(*pre, "behavior");
    const json::Value* invert = member(*pre, "invert");
    if (pt != "Split" || !behavior || behavior->str != "MergedWithPrevious" || (invert && invert->boolean))
      throw NotImplementedError(str_cat(what, ": pre_tokenizer '", pt, "' is not supported"));
    t->split_after_ = string_pattern(*pre, what + " pre_tokenizer");
  }
  // Decoder: Replace, ByteFallback and Fuse (in that order), then an optional Strip of leading spaces.
  t->decode_from_.clear();
  t->decode_to_.clear();
  const json::Value* dec = member(root, "decoder");
  std::vector<const json::Value*> dsteps;
  if (!is_null(dec)) {
    if (string_member(*dec, "type", what) == "Sequence") {
      const json::Value* list = member(*dec, "decoders");
      GC_CHECK(list && list->kind == K::kArray, ValueError, what, ": decoder Sequence without a list");
      for (const json::Value& s : list->array) dsteps.push_back(&s);
    } else {
      dsteps.push_back(dec);
    }
  }
  bool fused = false;
  for (const json::Value* s : dsteps) {
    const std::string dt = string_member(*s, "type", what);
    if (dt == "Replace" && !fused && t->decode_from_.empty()) {
      t->decode_from_ = string_pattern(*s, what + " decoder");
      t->decode_to_ = string_member(*s, "content", what);
    } else if (dt == "ByteFallback" && !fused) {
    } else if (dt == "Fuse") {
      fused = true;
    } else if (dt == "Strip" && fused && string_member(*s, "content", what) == " " && member(*s, "stop") &&
               member(*s, "stop")->magnitude == 0 && member(*s, "start")) {
      t->strip_start_ = int(member(*s, "start")->magnitude);
    } else {
      throw NotImplementedError(str_cat(what, ": decoder '", dt, "' here is not supported"));
    }
  }
  t->bos_id_ = t->piece_to_id("<bos>");
  t->eos_id_ = t->piece_to_id("<eos>");
  t->pad_id_ = t->piece_to_id("<pad>");
  return t;
}

}  // namespace gemmacpp
