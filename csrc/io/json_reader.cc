#include "csrc/io/json_reader.h"

#include <cmath>
#include <cstdlib>
#include <unordered_set>

#include "csrc/core/error.h"

namespace gemmacpp::json {
namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  Parser(const char* p, size_t n, const std::string& what) : s_(p), n_(n), what_(what) {}

  Value document() {
    Value v = value(0);
    skip_ws();
    if (i_ != n_) fail("unexpected data after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    throw ValueError(str_cat(what_, ": invalid JSON at byte ", i_, ": ", msg));
  }
  void skip_ws() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(char c) {
    skip_ws();
    if (i_ < n_ && s_[i_] == c) { ++i_; return true; }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(str_cat("expected '", c, "'"));
  }
  bool literal(const char* word) {
    size_t len = std::char_traits<char>::length(word);
    if (n_ - i_ >= len && std::char_traits<char>::compare(s_ + i_, word, len) == 0) {
      i_ += len;
      return true;
    }
    return false;
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    skip_ws();
    if (i_ >= n_) fail("unexpected end of input");
    Value v;
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = Value::Kind::kObject;
      if (eat('}')) return v;
      std::unordered_set<std::string> keys;  // duplicates are ambiguous: refuse them
      do {
        skip_ws();
        if (i_ >= n_ || s_[i_] != '"') fail("expected a string key");
        std::string key = string();
        if (!keys.insert(key).second) fail(str_cat("duplicate key \"", key, "\""));
        expect(':');
        v.object.emplace_back(std::move(key), value(depth + 1));
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++i_;
      v.kind = Value::Kind::kArray;
      if (eat(']')) return v;
      do v.array.push_back(value(depth + 1)); while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.kind = Value::Kind::kString;
      v.str = string();
    } else if (literal("true")) {
      v.kind = Value::Kind::kBool;
      v.boolean = true;
    } else if (literal("false")) {
      v.kind = Value::Kind::kBool;
    } else if (literal("null")) {
      v.kind = Value::Kind::kNull;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      number(v);
    } else {
      fail(str_cat("unexpected character 0x", std::hex, int(uint8_t(c))));
    }
    return v;
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  void number(Value& v) {
    v.kind = Value::Kind::kNumber;
    size_t start = i_;
    if (s_[i_] == '-') { v.is_negative = true; ++i_; }
    if (i_ >= n_ || !digit(s_[i_])) fail("bad number");
    bool exact = true;
    uint64_t mag = 0;
    if (s_[i_] == '0') {
      ++i_;
      if (i_ < n_ && digit(s_[i_])) fail("leading zero in a number");
    } else {
      while (i_ < n_ && digit(s_[i_])) {
        unsigned d = unsigned(s_[i_] - '0');
        if (mag > (UINT64_MAX - d) / 10) exact = false;
        else mag = mag * 10 + d;
        ++i_;
      }
    }
    bool fraction = false;
    if (i_ < n_ && s_[i_] == '.') {
      fraction = true;
      ++i_;
      if (i_ >= n_ || !digit(s_[i_])) fail("bad fraction");
      while (i_ < n_ && digit(s_[i_])) ++i_;
    }
    if (i_ < n_ && (s_[i_] == 'e' || s_[i_] == 'E')) {
      fraction = true;
      ++i_;
      if (i_ < n_ && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= n_ || !digit(s_[i_])) fail("bad exponent");
      while (i_ < n_ && digit(s_[i_])) ++i_;
    }
    std::string text(s_ + start, i_ - start);
    v.number = std::strtod(text.c_str(), nullptr);
    v.is_int = exact && !fraction && !(v.is_negative && mag > (uint64_t(1) << 63));
    v.magnitude = v.is_int ? mag : 0;
  }

  unsigned hex4() {
    if (n_ - i_ < 4) fail("truncated \\u escape");
    unsigned cp = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      cp <<= 4;
      if (c >= '0' && c <= '9') cp |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') cp |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') cp |= unsigned(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return cp;
  }

  static void put_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  // One UTF-8 sequence starting at i_, validated (no overlongs, no surrogates, <= U+10FFFF).
  void utf8_char(std::string& out) {
    auto b0 = uint8_t(s_[i_]);
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
    if (len == 0 || n_ - i_ < size_t(len)) fail("invalid UTF-8 in a string");
    unsigned cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int k = 1; k < len; ++k) {
      auto b = uint8_t(s_[i_ + k]);
      if ((b >> 6) != 2) fail("invalid UTF-8 in a string");
      cp = (cp << 6) | (b & 0x3F);
    }
    static const unsigned kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      fail("invalid UTF-8 in a string");
    out.append(s_ + i_, size_t(len));
    i_ += size_t(len);
  }

  std::string string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      if (i_ >= n_) fail("unterminated string");
      char c = s_[i_];
      if (c == '"') { ++i_; return out; }
      if (uint8_t(c) < 0x20) fail("control character in a string");
      if (c != '\\') { utf8_char(out); continue; }
      ++i_;
      if (i_ >= n_) fail("unterminated string");
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a surrogate pair
            if (!(n_ - i_ >= 2 && s_[i_] == '\\' && s_[i_ + 1] == 'u')) fail("lone surrogate");
            i_ += 2;
            unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("lone surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }

  const char* s_;
  size_t n_;
  size_t i_ = 0;
  const std::string& what_;
};

}  // namespace

const Value* Value::get(const std::string& key) const {
  for (const auto& kv : object)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

Value parse(const char* text, size_t size, const std::string& what) {
  return Parser(text, size, what).document();
}

const Value* Reader::get(const char* key) const {
  const Value* v = obj.get(key);
  return (v && v->kind != Value::Kind::kNull) ? v : nullptr;
}

int64_t Reader::integer(const char* key) const {
  const Value* v = get(key);
  GC_CHECK(v, ValueError, what, ": missing ", key);
  GC_CHECK(v->is_uint() && v->magnitude < (uint64_t(1) << 40), ValueError, what, ": ", key,
           " must be a non-negative integer");
  return int64_t(v->magnitude);
}

int64_t Reader::integer_or(const char* key, int64_t dflt) const { return get(key) ? integer(key) : dflt; }

double Reader::number_or(const char* key, double dflt) const {
  const Value* v = get(key);
  if (!v) return dflt;
  GC_CHECK(v->kind == Value::Kind::kNumber, ValueError, what, ": ", key, " must be a number");
  return v->number;
}

std::string Reader::string_or(const char* key, const std::string& dflt) const {
  const Value* v = get(key);
  if (!v) return dflt;
  GC_CHECK(v->kind == Value::Kind::kString, ValueError, what, ": ", key, " must be a string");
  return v->str;
}

bool Reader::flag_or(const char* key, bool dflt) const {
  const Value* v = get(key);
  if (!v) return dflt;
  return v->kind != Value::Kind::kBool || v->boolean;
}

const Value* Reader::object(const char* key) const {
  const Value* v = get(key);
  GC_CHECK(!v || v->kind == Value::Kind::kObject, ValueError, what, ": ", key, " must be an object");
  return v;
}

}  // namespace gemmacpp::json
