#include "csrc/io/gguf.h"

#include <algorithm>
#include <cstring>

#include "csrc/core/error.h"

namespace gemmacpp {
namespace {

constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;       // arrays of arrays: bounded recursion
constexpr uint64_t kDefaultAlignment = 32;

bool valid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t b0 = s[i];
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
    if (len == 0 || n - i < size_t(len)) return false;
    uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] >> 6) != 2) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += size_t(len);
  }
  return true;
}

// Reads little-endian fields, checking each against the bytes the file has left.
class Reader {
 public:
  Reader(const MappedFile& f, std::string where) : p_(f.data()), size_(f.size()), where_(std::move(where)) {}

  [[noreturn]] void fail(const std::string& msg) const {
    throw ValueError(str_cat(where_, ": ", msg));
  }
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      fail(str_cat("truncated: ", what, " needs ", n, " bytes at offset ", pos_, ", but the file has ",
                   remaining(), " left"));
  }
  uint64_t uint(int bytes, const std::string& what) {
    need(uint64_t(bytes), what);
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | p_[pos_ + k];
    pos_ += uint64_t(bytes);
    return v;
  }
  uint32_t u32(const std::string& what) { return uint32_t(uint(4, what)); }
  uint64_t u64(const std::string& what) { return uint(8, what); }
  const uint8_t* bytes(uint64_t n, const std::string& what) {
    need(n, what);
    const uint8_t* b = p_ + pos_;
    pos_ += n;
    return b;
  }
  std::string string(const std::string& what) {
    uint64_t len = u64(what + " length");
    if (len > remaining())
      fail(str_cat(what, " length ", len, " at offset ", pos_ - 8, " is more than the ", remaining(),
                   " bytes left in the file"));
    const uint8_t* b = bytes(len, what);
    return std::string(reinterpret_cast<const char*>(b), size_t(len));
  }
  // A count of items of at least `min_item_bytes` each: no larger than what is left could hold.
  uint64_t count(uint64_t n, uint64_t min_item_bytes, const std::string& what) const {
    if (min_item_bytes > 0 && n > remaining() / min_item_bytes)
      fail(str_cat(what, " ", n, " is more than the ", remaining(),
                   " bytes left could hold (truncated or corrupt file)"));
    return n;
  }

 private:
  const uint8_t* p_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string where_;
};

using VT = MetaValue::Type;

// Counts are capped by the bytes left, but an in-memory item is larger than its smallest
// encoding (a MetaValue is ~150 bytes, an empty nested array 12): reserve only up to a bound and
// let the vectors grow with the items actually read.
size_t bounded_reserve(uint64_t count) { return size_t(std::min<uint64_t>(count, uint64_t(1) << 20)); }

bool valid_value_type(uint32_t t) { return t <= uint32_t(VT::kF64); }

// The fewest bytes one value of type t takes in the file (for capping counts).
uint64_t min_value_bytes(VT t) {
  if (t == VT::kString) return 8;
  if (t == VT::kArray) return 12;
  return uint64_t(meta_scalar_size(t));
}

MetaValue read_value(Reader& r, VT type, const std::string& what, int depth) {
  MetaValue v;
  v.type = type;
  switch (type) {
    case VT::kU8: case VT::kU16: case VT::kU32: case VT::kU64:
      v.u = r.uint(meta_scalar_size(type), what);
      break;
    case VT::kI8: v.i = int8_t(r.uint(1, what)); break;
    case VT::kI16: v.i = int16_t(r.uint(2, what)); break;
    case VT::kI32: v.i = int32_t(r.uint(4, what)); break;
    case VT::kI64: v.i = int64_t(r.uint(8, what)); break;
    case VT::kBool: {
      v.u = r.uint(1, what);
      if (v.u > 1) r.fail(str_cat(what, ": bool value ", v.u, " is neither 0 nor 1"));
      break;
    }
    case VT::kF32: {
      uint32_t bits = uint32_t(r.uint(4, what));
      float x;
      std::memcpy(&x, &bits, 4);
      v.f = x;
      break;
    }
    case VT::kF64: {
      uint64_t bits = r.uint(8, what);
      std::memcpy(&v.f, &bits, 8);
      break;
    }
    case VT::kString: v.str = r.string(what); break;
    case VT::kArray: {
      if (depth >= kMaxArrayNesting) r.fail(str_cat(what, ": arrays nested too deep"));
      uint32_t et = r.u32(what + " element type");
      if (!valid_value_type(et)) r.fail(str_cat(what, ": unknown array element type ", et));
      v.elem_type = VT(et);
      v.count = r.count(r.u64(what + " count"), min_value_bytes(v.elem_type), what + " count");
      if (v.elem_type == VT::kString) {
        v.strings.reserve(bounded_reserve(v.count));
        for (uint64_t k = 0; k < v.count; ++k) v.strings.push_back(r.string(what + " element"));
      } else if (v.elem_type == VT::kArray) {
        v.items.reserve(bounded_reserve(v.count));
        for (uint64_t k = 0; k < v.count; ++k)
          v.items.push_back(read_value(r, VT::kArray, what + " element", depth + 1));
      } else {
        const uint64_t n = v.count * uint64_t(meta_scalar_size(v.elem_type));  // capped above
        v.raw = r.bytes(n, what);
        if (v.elem_type == VT::kBool)
          for (uint64_t k = 0; k < n; ++k)
            if (v.raw[k] > 1) r.fail(str_cat(what, "[", k, "]: bool value ", int(v.raw[k]), " is neither 0 nor 1"));
      }
      break;
    }
  }
  return v;
}

struct Span {
  uint64_t begin, end;
  size_t tensor;
};

}  // namespace

WeightFile read_gguf(const std::string& path) {
  auto file = MappedFile::open(path);
  Reader r(*file, str_cat("GGUF file '", path, "'"));
  const uint8_t* magic = r.bytes(4, "the magic");
  if (std::memcmp(magic, "GGUF", 4) != 0) r.fail("bad magic (not a GGUF file)");
  const uint32_t version = r.u32("the version");
  if (version != 2 && version != 3) {
    if (version != 0 && (version & 0xFFFF) == 0)
      r.fail(str_cat("version field ", version, " looks big-endian; only little-endian GGUF is supported"));
    r.fail(str_cat("unsupported GGUF version ", version, " (2 and 3 are)"));
  }
  // Each tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes;
  // each key/value at least 8 (key length) + 4 (type) + 1 (value).
  const uint64_t n_tensors = r.u64("the tensor count");
  const uint64_t n_kv = r.u64("the metadata count");
  r.count(n_tensors, 24, "tensor count");
  r.count(n_kv, 13, "metadata count");

  WeightFile wf;
  wf.format = "gguf";
  wf.path = path;
  wf.files.push_back(file);
  uint64_t alignment = kDefaultAlignment;
  wf.metadata.reserve(bounded_reserve(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = r.string(str_cat("metadata key ", k));
    if (!valid_utf8(reinterpret_cast<const uint8_t*>(key.data()), key.size()))
      r.fail(str_cat("metadata key ", k, " is not valid UTF-8"));
    const uint32_t type = r.u32(str_cat("the type of metadata '", key, "'"));
    if (!valid_value_type(type)) r.fail(str_cat("metadata '", key, "' has unknown value type ", type));
    MetaValue v = read_value(r, VT(type), str_cat("metadata '", key, "'"), 0);
    if (key == "general.alignment") {
      if (v.type != VT::kU32) r.fail(str_cat("general.alignment has type ", meta_type_name(v.type), ", not uint32"));
      if (v.u == 0 || (v.u & (v.u - 1)) != 0)
        r.fail(str_cat("general.alignment ", v.u, " is not a power of two"));
      alignment = v.u;
    }
    wf.metadata.emplace_back(std::move(key), std::move(v));
  }

  wf.tensors.reserve(bounded_reserve(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    WeightTensor t;
    t.name = r.string(str_cat("tensor ", k, " name"));
    if (!valid_utf8(reinterpret_cast<const uint8_t*>(t.name.data()), t.name.size()))
      r.fail(str_cat("tensor ", k, " name is not valid UTF-8"));
    const std::string what = str_cat("tensor '", t.name, "'");
    const uint32_t n_dims = r.u32(what + " n_dims");
    if (n_dims > kMaxDims) r.fail(str_cat(what, " has ", n_dims, " dimensions (at most ", kMaxDims, ")"));
    std::vector<uint64_t> ne(n_dims);  // innermost first
    for (uint32_t d = 0; d < n_dims; ++d) {
      ne[d] = r.u64(str_cat(what, " dimension ", d));
      if (ne[d] > uint64_t(INT64_MAX)) r.fail(str_cat(what, " dimension ", d, " = ", ne[d], " is too large"));
    }
    const uint32_t type_id = r.u32(what + " type");
    const GGMLTypeInfo* type = ggml_type_info(type_id);
    if (!type) r.fail(str_cat(what, " has unknown ggml type ", type_id));
    t.offset = r.u64(what + " offset");
    t.ggml_type = type->type;
    t.supported = type->supported;
    t.quantized = type->block_size > 1;
    if (auto dt = ggml_plain_dtype(type->type)) t.dtype = *dt;
    for (uint32_t d = n_dims; d-- > 0;) t.shape.push_back(int64_t(ne[d]));

    // Bytes = rows * (ne[0] / block_size) * bytes_per_block, with every product checked.
    uint64_t inner = n_dims ? ne[0] : 1;
    if (inner % uint64_t(type->block_size) != 0)
      r.fail(str_cat(what, ": ", type->name, " needs the innermost dimension (", inner,
                     ") to be a multiple of its block size ", type->block_size));
    uint64_t numel = inner, nbytes = (inner / uint64_t(type->block_size)) * uint64_t(type->bytes_per_block);
    bool overflow = nbytes / uint64_t(type->bytes_per_block) != inner / uint64_t(type->block_size);
    for (uint32_t d = 1; d < n_dims; ++d) {
      overflow = overflow || __builtin_mul_overflow(numel, ne[d], &numel) || numel > uint64_t(INT64_MAX) ||
                 __builtin_mul_overflow(nbytes, ne[d], &nbytes);
    }
    if (overflow) r.fail(str_cat(what, " shape ", shape_string(t.shape), " overflows"));
    t.nbytes = nbytes;
    t.file = file;
    wf.tensors.push_back(std::move(t));
  }

  // The data section starts at the header's end rounded up to the alignment.
  const uint64_t header_end = r.pos();
  const uint64_t data_start = (header_end + alignment - 1) / alignment * alignment;  // header_end <= file size, alignment < 2^32: no overflow
  const uint64_t size = file->size();
  if (data_start > size && !wf.tensors.empty())
    r.fail(str_cat("the data section would start at ", data_start, ", past the end of the file (", size, " bytes)"));
  const uint64_t data_size = data_start > size ? 0 : size - data_start;
  std::vector<Span> spans;
  for (size_t k = 0; k < wf.tensors.size(); ++k) {
    WeightTensor& t = wf.tensors[k];
    const std::string what = str_cat("tensor '", t.name, "'");
    if (t.offset % alignment != 0)
      r.fail(str_cat(what, " offset ", t.offset, " is not a multiple of the alignment ", alignment));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      r.fail(str_cat(what, " (", t.nbytes, " bytes at data offset ", t.offset,
                     ") runs past the end of the file (data section of ", data_size, " bytes)"));
    spans.push_back({t.offset, t.offset + t.nbytes, k});
    t.offset += data_start;
    t.data = file->data() + t.offset;
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t k = 1; k < spans.size(); ++k) {
    const Span& a = spans[k - 1];
    const Span& b = spans[k];
    if (b.begin < a.end && a.begin != a.end && b.begin != b.end)
      r.fail(str_cat("tensors '", wf.tensors[a.tensor].name, "' and '", wf.tensors[b.tensor].name,
                     "' overlap"));
  }
  wf.build_index();
  return wf;
}

}  // namespace gemmacpp
