// Which Highway target the kernels dispatch to, and a switch to another for tests and benchmarks.
// Must agree with the kernels' translation units (same HWY_DISABLED_TARGETS and HWY_WANT_AVX3_DL,
// from CMake), so that HWY_TARGETS is their set of targets.
#include "csrc/cpu/info.h"

#include <cstdint>

#include "csrc/core/error.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/info.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/targets.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
// The target of the code HWY_DYNAMIC_DISPATCH reaches: what the kernels' tables pick, read from
// a table of the same kind rather than recomputed from the CPU's bits.
int64_t DispatchedTarget() { return HWY_TARGET; }
}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(DispatchedTarget);

namespace {

std::vector<std::string> names_of(int64_t targets) {
  std::vector<std::string> names;
  for (int64_t bits = targets; bits != 0; bits &= bits - 1)
    names.push_back(hwy::TargetName(bits & -bits));  // lowest bit = best target
  return names;
}

// What this CPU runs, read once before any set_simd_target: Highway's SupportedTargets() returns
// the forced set while one is in force (in 1.0.3 without checking it against the CPU).
int64_t cpu_targets() {
  static const int64_t targets = hwy::SupportedTargets() & HWY_TARGETS;
  return targets;
}

}  // namespace

std::string simd_target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(DispatchedTarget)()); }

std::vector<std::string> compiled_target_names() { return names_of(HWY_TARGETS); }

std::vector<std::string> supported_target_names() { return names_of(cpu_targets()); }

// SetSupportedTargetsForTest also resets Highway's one ChosenTarget, which every HWY_EXPORT table
// indexes by: the next HWY_DYNAMIC_DISPATCH of any table chooses again, from the forced set.
void set_simd_target(const std::string& name) {
  const int64_t supported = cpu_targets();
  for (int64_t bits = supported; bits != 0; bits &= bits - 1) {
    const int64_t target = bits & -bits;
    if (name == hwy::TargetName(target)) {
      hwy::SetSupportedTargetsForTest(target);
      return;
    }
  }
  std::string known;
  for (const std::string& n : names_of(supported)) known += (known.empty() ? "" : ", ") + n;
  GC_CHECK(false, ValueError, "set_simd_target: target '", name,
           "' is not one this build compiled that this CPU supports (", known, ")");
}

void reset_simd_target() {
  cpu_targets();  // read before any forcing
  hwy::SetSupportedTargetsForTest(0);  // 0: no forced set
}

}  // namespace gemmacpp::cpu
#endif  // HWY_ONCE
