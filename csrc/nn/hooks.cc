#include "csrc/nn/hooks.h"

#include <stdexcept>

namespace gemmacpp::nn {

int HookSites::add(const std::string& name) {
  const int id = int(names_.size());
  if (!ids_.emplace(name, id).second) throw std::logic_error("hook site '" + name + "' declared twice");
  names_.push_back(name);
  return id;
}

int HookSites::find(const std::string& name) const {
  auto it = ids_.find(name);
  return it == ids_.end() ? -1 : it->second;
}

}  // namespace gemmacpp::nn
