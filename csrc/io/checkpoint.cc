#include "csrc/io/checkpoint.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "csrc/core/error.h"

namespace gemmacpp::checkpoint {

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_gguf(const std::string& path) { return ends_with(path, ".gguf"); }

std::string folder_of(const std::string& path) {
  if (is_directory(path)) return path;
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string side_file(const std::string& path, const std::string& name) {
  const std::string folder = folder_of(path);
  return folder.back() == '/' ? folder + name : folder + "/" + name;
}

std::vector<SentenceModule> sentence_transformers_modules(const std::string& folder) {
  const std::string path = folder + "/modules.json";
  if (!is_regular_file(path)) return {};
  std::string what;
  const json::Value root = read_json_file(path, &what);
  GC_CHECK(root.kind == json::Value::Kind::kArray, ValueError, what, ": not a list of modules");
  std::vector<SentenceModule> out;
  for (const json::Value& m : root.array) {
    GC_CHECK(m.kind == json::Value::Kind::kObject, ValueError, what, ": a module is not an object");
    const json::Reader r{m, what};
    std::string type = r.string_or("type", "");
    type = type.substr(type.find_last_of('.') + 1);  // sentence_transformers.models.Dense: Dense
    out.push_back({type, r.string_or("path", "")});
  }
  return out;
}

std::string model_path(const std::string& path) {
  if (!is_directory(path)) return path;
  for (const SentenceModule& m : sentence_transformers_modules(path)) {
    if (m.type == "Transformer" && !m.path.empty()) return path + "/" + m.path;
  }
  return path;
}

std::string read_file(const std::string& path) {
  // Opening a FIFO blocks until a writer comes: only regular files are read.
  struct stat st;
  GC_CHECK(::stat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode), ValueError, "cannot read '", path,
           "': not a regular file");
  std::ifstream in(path, std::ios::binary);
  GC_CHECK(in, ValueError, "cannot open '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json::Value read_json_file(const std::string& path, std::string* what) {
  const std::string text = read_file(path), name = "'" + path + "'";
  if (what) *what = name;
  return json::parse(text.data(), text.size(), name);
}

}  // namespace gemmacpp::checkpoint
