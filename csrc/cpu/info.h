#pragma once
#include <string>
#include <vector>

namespace gemmacpp::cpu {
// Name of the Highway target that HWY_DYNAMIC_DISPATCH calls now ("AVX2", "AVX3", ...): the best
// one this CPU supports, unless set_simd_target chose another.
std::string simd_target_name();
// Targets this build compiled kernels for, best first.
std::vector<std::string> compiled_target_names();
// The compiled targets this CPU can run, best first (whatever set_simd_target chose).
std::vector<std::string> supported_target_names();
// Makes every kernel dispatch to the named target (one of supported_target_names()); other
// names throw ValueError. For tests and benchmarks: call it while no kernel runs (an op that
// straddles the switch would mix targets, and some of its steps share target-specific layouts).
void set_simd_target(const std::string& name);
// Back to the best target this CPU supports.
void reset_simd_target();
}  // namespace gemmacpp::cpu
