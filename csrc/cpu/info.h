#pragma once
#include <string>
#include <vector>

namespace gemmacpp::cpu {
// Name of the Highway target that HWY_DYNAMIC_DISPATCH picks on this CPU ("AVX2", "AVX3", ...).
std::string simd_target_name();
// Targets this build compiled kernels for.
std::vector<std::string> compiled_target_names();
}  // namespace gemmacpp::cpu
