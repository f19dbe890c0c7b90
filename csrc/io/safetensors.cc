#include "csrc/io/safetensors.h"


#include <algorithm>
#include <map>
#include <optional>

#include "csrc/core/error.h"
#include "csrc/io/checkpoint.h"
#include "csrc/io/json_reader.h"

namespace gemmacpp {
namespace {

struct DTypeName {
  const char* name;
  std::optional<DType> dtype;  // nullopt: a safetensors dtype gemmacpp has no element type for
  int size;
};

constexpr DTypeName kDTypes[] = {
    {"F32", DType::kF32, 4},  {"F16", DType::kF16, 2},   {"BF16", DType::kBF16, 2},
    {"F64", DType::kF64, 8},  {"I64", DType::kI64, 8},   {"I32", DType::kI32, 4},
    {"I8", DType::kI8, 1},    {"U8", DType::kU8, 1},     {"BOOL", DType::kBool, 1},
    {"I16", std::nullopt, 2}, {"U16", std::nullopt, 2},  {"U32", std::nullopt, 4},
    {"U64", std::nullopt, 8}, {"F8_E4M3", std::nullopt, 1}, {"F8_E5M2", std::nullopt, 1},
};

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int k = 7; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}

// A non-negative JSON integer, or ValueError naming `what`.
uint64_t json_uint(const json::Value& v, const std::string& what) {
  GC_CHECK(v.is_uint(), ValueError, what, " must be a non-negative integer");
  return v.magnitude;
}

struct Range {
  uint64_t begin, end;
  size_t tensor;
};

}  // namespace

WeightFile read_safetensors(const std::string& path) {
  auto file = MappedFile::open(path);
  const std::string where = str_cat("safetensors file '", path, "'");
  const uint64_t size = file->size();
  GC_CHECK(size >= 8, ValueError, where, ": ", size,
           " bytes is too small to hold the 8-byte header length");
  const uint64_t header_len = read_le64(file->data());
  GC_CHECK(header_len <= size - 8, ValueError, where, ": header length ", header_len,
           " runs past the end of the file (", size, " bytes)");
  GC_CHECK(header_len >= 2, ValueError, where, ": header length ", header_len,
           " is too small for a JSON object");
  const uint8_t* header = file->data() + 8;
  // Writers may pad the header with trailing spaces to align the data.
  json::Value root = json::parse(reinterpret_cast<const char*>(header), size_t(header_len),
                                 where + " header");
  GC_CHECK(root.kind == json::Value::Kind::kObject, ValueError, where,
           ": header is not a JSON object");

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  WeightFile wf;
  wf.format = "safetensors";
  wf.path = path;
  wf.files.push_back(file);
  std::vector<Range> ranges;
  for (const auto& [name, info] : root.object) {
    if (name == "__metadata__") {
      GC_CHECK(info.kind == json::Value::Kind::kObject, ValueError, where,
               ": __metadata__ is not an object");
      for (const auto& [key, value] : info.object) {
        GC_CHECK(value.kind == json::Value::Kind::kString, ValueError, where, ": __metadata__[\"",
                 key, "\"] is not a string");
        MetaValue m;
        m.type = MetaValue::Type::kString;
        m.str = value.str;
        wf.metadata.emplace_back(key, std::move(m));
      }
      continue;
    }
    const std::string what = str_cat(where, ": tensor '", name, "'");
    GC_CHECK(info.kind == json::Value::Kind::kObject, ValueError, what, " is not a JSON object");
    const json::Value* dt = info.get("dtype");
    const json::Value* shape = info.get("shape");
    const json::Value* offsets = info.get("data_offsets");
    GC_CHECK(dt && dt->kind == json::Value::Kind::kString, ValueError, what,
             ": missing or non-string \"dtype\"");
    GC_CHECK(shape && shape->kind == json::Value::Kind::kArray, ValueError, what,
             ": missing or non-array \"shape\"");
    GC_CHECK(offsets && offsets->kind == json::Value::Kind::kArray && offsets->array.size() == 2,
             ValueError, what, ": \"data_offsets\" must be [begin, end]");
    const DTypeName* type = nullptr;
    for (const auto& t : kDTypes)
      if (dt->str == t.name) type = &t;
    GC_CHECK(type, ValueError, what, ": unknown dtype \"", dt->str, "\"");
    GC_CHECK(type->dtype, ValueError, what, ": dtype ", type->name,
             " is not supported by gemmacpp");

    WeightTensor t;
    t.name = name;
    t.dtype = *type->dtype;
    uint64_t numel = 1;
    for (size_t d = 0; d < shape->array.size(); ++d) {
      uint64_t n = json_uint(shape->array[d], str_cat(what, ": shape[", d, "]"));
      GC_CHECK(n <= uint64_t(INT64_MAX), ValueError, what, ": shape[", d, "] = ", n,
               " is too large");
      GC_CHECK(!__builtin_mul_overflow(numel, n, &numel) && numel <= uint64_t(INT64_MAX),
               ValueError, what, ": the number of elements overflows");
      t.shape.push_back(int64_t(n));
    }
    uint64_t nbytes;
    GC_CHECK(!__builtin_mul_overflow(numel, uint64_t(type->size), &nbytes), ValueError, what,
             ": the byte size overflows");
    const uint64_t begin = json_uint(offsets->array[0], what + ": data_offsets[0]");
    const uint64_t end = json_uint(offsets->array[1], what + ": data_offsets[1]");
    GC_CHECK(begin <= end, ValueError, what, ": data_offsets [", begin, ", ", end,
             "] end before they begin");
    GC_CHECK(end <= data_size, ValueError, what, ": data_offsets [", begin, ", ", end,
             "] run past the end of the data section (", data_size, " bytes)");
    GC_CHECK(end - begin == nbytes, ValueError, what, ": data_offsets [", begin, ", ", end,
             "] hold ", end - begin, " bytes, but ", dt->str, " ", shape_string(t.shape),
             " needs ", nbytes);
    t.nbytes = nbytes;
    t.offset = data_start + begin;
    t.data = file->data() + t.offset;
    t.file = file;
    ranges.push_back({begin, end, wf.tensors.size()});
    wf.tensors.push_back(std::move(t));
  }
  // No two tensors may share bytes.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t k = 1; k < ranges.size(); ++k) {
    const Range& a = ranges[k - 1];
    const Range& b = ranges[k];
    GC_CHECK(b.begin >= a.end || a.begin == a.end || b.begin == b.end, ValueError, where,
             ": tensors '", wf.tensors[a.tensor].name, "' [", a.begin, ", ", a.end, ") and '",
             wf.tensors[b.tensor].name, "' [", b.begin, ", ", b.end, ") overlap");
  }
  wf.build_index();
  return wf;
}

namespace {

WeightFile read_index(const std::string& index_path) {
  const std::string where = str_cat("safetensors index '", index_path, "'");
  auto file = MappedFile::open(index_path);
  json::Value root = json::parse(reinterpret_cast<const char*>(file->data()), file->size(), where);
  GC_CHECK(root.kind == json::Value::Kind::kObject, ValueError, where, ": not a JSON object");
  const json::Value* map = root.get("weight_map");
  GC_CHECK(map && map->kind == json::Value::Kind::kObject, ValueError, where,
           ": missing or non-object \"weight_map\"");
  const std::string dir = checkpoint::folder_of(index_path);

  WeightFile wf;
  wf.format = "safetensors";
  wf.path = dir;
  if (const json::Value* meta = root.get("metadata"); meta && meta->kind == json::Value::Kind::kObject) {
    for (const auto& [key, v] : meta->object) {
      MetaValue m;
      if (v.kind == json::Value::Kind::kString) {
        m.type = MetaValue::Type::kString;
        m.str = v.str;
      } else if (v.kind == json::Value::Kind::kNumber && v.is_int && !v.is_negative) {
        m.type = MetaValue::Type::kU64;
        m.u = v.magnitude;
      } else if (v.kind == json::Value::Kind::kNumber && v.is_int) {
        m.type = MetaValue::Type::kI64;
        m.i = int64_t(0 - v.magnitude);
      } else if (v.kind == json::Value::Kind::kNumber) {
        m.type = MetaValue::Type::kF64;
        m.f = v.number;
      } else {
        continue;  // nested or null metadata: nothing a loader reads
      }
      wf.metadata.emplace_back(key, std::move(m));
    }
  }

  // Shards in order of first mention; each tensor must be in the shard the map names.
  std::vector<std::string> shards;
  std::map<std::string, std::vector<std::string>> wanted;
  for (const auto& [name, shard] : map->object) {
    GC_CHECK(shard.kind == json::Value::Kind::kString, ValueError, where, ": weight_map[\"", name,
             "\"] is not a file name");
    const std::string& s = shard.str;
    GC_CHECK(!s.empty() && s.find('/') == std::string::npos && s != "." && s != "..", ValueError,
             where, ": shard name \"", s, "\" must be a file name in the index's folder");
    if (!wanted.count(s)) shards.push_back(s);
    wanted[s].push_back(name);
  }
  bool first = true;
  for (const std::string& s : shards) {
    WeightFile shard = read_safetensors(dir + "/" + s);
    for (const std::string& name : wanted[s])
      GC_CHECK(shard.find(name), ValueError, where, ": weight_map puts '", name, "' in ", s,
               ", which has no such tensor");
    if (first) {  // the shard's own metadata (e.g. format: pt), after the index's
      for (auto& kv : shard.metadata) {
        bool known = false;
        for (const auto& have : wf.metadata) known = known || have.first == kv.first;
        if (!known) wf.metadata.push_back(std::move(kv));
      }
      first = false;
    }
    for (auto& t : shard.tensors) wf.tensors.push_back(std::move(t));
    for (auto& f : shard.files) wf.files.push_back(std::move(f));
  }
  wf.build_index();  // a tensor in two shards is an error there
  return wf;
}

}  // namespace

WeightFile read_safetensors_checkpoint(const std::string& path) {
  if (!checkpoint::is_directory(path)) {
    if (checkpoint::ends_with(path, ".json")) return read_index(path);
    return read_safetensors(path);
  }
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (checkpoint::is_regular_file(dir + "/model.safetensors.index.json"))
    return read_index(dir + "/model.safetensors.index.json");
  if (checkpoint::is_regular_file(dir + "/model.safetensors")) {
    WeightFile wf = read_safetensors(dir + "/model.safetensors");
    wf.path = dir;
    return wf;
  }
  throw ValueError(str_cat("'", path, "' holds neither model.safetensors.index.json nor "
                           "model.safetensors"));
}

}  // namespace gemmacpp
