#include "csrc/cpu/info.h"

#include "hwy/highway.h"
#include "hwy/targets.h"

namespace gemmacpp::cpu {

// Must agree with the kernels' translation units (same HWY_DISABLED_TARGETS, from CMake).
std::string simd_target_name() {
  const int64_t usable = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(usable & -usable);  // lowest bit = best target
}

std::vector<std::string> compiled_target_names() {
  std::vector<std::string> names;
  for (int64_t bits = HWY_TARGETS; bits != 0; bits &= bits - 1)
    names.push_back(hwy::TargetName(bits & -bits));
  return names;
}

}  // namespace gemmacpp::cpu
