#include "csrc/cpu/conv1d_temporal.h"

#include <cstring>
#include <vector>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/conv1d_temporal.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// y = bias + sum_{k >= kmin} weight[k] * rows[k] over n lanes; rows[k] is the input row of tap k
// (K - 1 - k steps before the output), weight rows are W apart.
template <class T>
void ConvRow(const T* const* rows, int64_t kmin, int64_t K, const float* weight, int64_t W,
             const float* bias, T* y, size_t n) {
  const hn::ScalableTag<float> df;
  const size_t N = hn::Lanes(df);
  size_t i = 0;
  for (; i + N <= n; i += N) {
    auto acc = bias ? hn::LoadU(df, bias + i) : hn::Zero(df);
    for (int64_t k = kmin; k < K; ++k) {
      acc = hn::MulAdd(hn::LoadU(df, weight + k * W + i), LoadF32(df, rows[k] + i), acc);
    }
    StoreF32(df, acc, y + i);
  }
  if (i < n) {
    const size_t m = n - i;
    auto acc = bias ? LoadF32Partial(df, bias + i, m) : hn::Zero(df);
    for (int64_t k = kmin; k < K; ++k) {
      acc = hn::MulAdd(LoadF32Partial(df, weight + k * W + i, m), LoadF32Partial(df, rows[k] + i, m),
                       acc);
    }
    StoreF32Partial(df, acc, y + i, m);
  }
}

// Outputs t in [t0, t1) of batch row b, lanes [w0, w0 + n).
void ConvBlock(const Conv1dTemporalArgs& a, int64_t b, int64_t t0, int64_t t1, int64_t w0, size_t n) {
  visit_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* x = static_cast<const T*>(a.x) + b * a.T * a.W + w0;
    const T* state = a.state ? static_cast<const T*>(a.state) + b * (a.K - 1) * a.W + w0 : nullptr;
    T* y = static_cast<T*>(a.y) + b * a.T * a.W + w0;
    const uint8_t* reset = a.reset ? a.reset + b * a.T : nullptr;
    const float* bias = a.bias ? a.bias + w0 : nullptr;
    std::vector<const T*> rows(size_t(a.K));
    for (int64_t t = t0; t < t1; ++t) {
      // Tap k reads input s = t - (K-1) + k; a reset at r in (s, t] hides it, so the first
      // visible tap follows the latest reset among the last K-1 steps.
      int64_t kmin = 0;
      for (int64_t r = t; r > t - (a.K - 1) && r >= 0; --r) {
        if (reset && reset[r]) { kmin = r - t + a.K - 1; break; }
      }
      for (int64_t k = kmin; k < a.K; ++k) {
        const int64_t s = t - (a.K - 1) + k;
        rows[size_t(k)] = s >= 0 ? x + s * a.W : state ? state + (a.K - 1 + s) * a.W : nullptr;
      }
      // Without a state, taps before x[:, 0] read zeros: skip them.
      int64_t first = kmin;
      while (first < a.K && rows[size_t(first)] == nullptr) ++first;
      ConvRow(rows.data(), first, a.K, a.weight + w0, a.W, bias, y + t * a.W, n);
    }
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(ConvBlock);

namespace {
// Fixed task blocks: rows of time by lanes of width (a multiple of every vector length).
constexpr int64_t kTimeBlock = 64;
constexpr int64_t kWidthChunk = 512;
}  // namespace

void conv1d_temporal(const Conv1dTemporalArgs& a) {
  const int64_t nt = (a.T + kTimeBlock - 1) / kTimeBlock, nw = (a.W + kWidthChunk - 1) / kWidthChunk;
  parallel_for(a.B * nt * nw, [&](int64_t task, int) {
    const int64_t b = task / (nt * nw), t0 = (task / nw) % nt * kTimeBlock,
                  w0 = task % nw * kWidthChunk;
    const int64_t t1 = t0 + kTimeBlock < a.T ? t0 + kTimeBlock : a.T;
    const int64_t n = a.W - w0 < kWidthChunk ? a.W - w0 : kWidthChunk;
    HWY_DYNAMIC_DISPATCH(ConvBlock)(a, b, t0, t1, w0, size_t(n));
  });
  if (!a.new_state || a.K <= 1) return;
  // new_state row j is row T + j of concat(state, x): an older state row while T + j < K - 1.
  // Ascending j reads state rows at or after j, so new_state may alias state.
  const int64_t es = dtype_size(a.dtype), row = a.W * es, S = a.K - 1;
  for (int64_t b = 0; b < a.B; ++b) {
    char* dst = static_cast<char*>(a.new_state) + b * S * row;
    for (int64_t j = 0; j < S; ++j) {
      const int64_t s = a.T + j - S;  // x-time of the row
      if (s >= 0) {
        std::memcpy(dst + j * row, static_cast<const char*>(a.x) + (b * a.T + s) * row, size_t(row));
      } else if (a.state) {
        std::memmove(dst + j * row, static_cast<const char*>(a.state) + (b * S + S + s) * row, size_t(row));
      } else {
        std::memset(dst + j * row, 0, size_t(row));
      }
    }
  }
}

}  // namespace gemmacpp::cpu
#endif
