#include "csrc/cpu/token_logprobs.h"

#include <cmath>
#include <limits>
#include <vector>

#include "csrc/core/threads.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/token_logprobs.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// The largest value of x[0, n) (NaN when there is one) and the first index holding it.
void ChunkMax(const float* x, int64_t n, float* max_out, int64_t* index_out) {
  const hn::ScalableTag<float> d;
  const int64_t N = int64_t(hn::Lanes(d));
  auto vmax = hn::Set(d, -std::numeric_limits<float>::infinity());
  auto nan_seen = hn::FirstN(d, 0);  // all false
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(d, x + i);
    nan_seen = hn::Or(nan_seen, hn::IsNaN(v));
    vmax = hn::Max(vmax, v);
  }
  float m = hn::GetLane(hn::MaxOfLanes(d, vmax));
  bool nan = !hn::AllFalse(d, nan_seen);
  for (int64_t j = i; j < n; ++j) {
    nan = nan || std::isnan(x[j]);
    m = x[j] > m ? x[j] : m;
  }
  // The first index of the maximum (or of the first NaN): a second, early-exit scan.
  int64_t at = 0;
  for (; at < n; ++at) {
    if (nan ? std::isnan(x[at]) : x[at] == m) break;
  }
  *max_out = nan ? std::numeric_limits<float>::quiet_NaN() : m;
  *index_out = at < n ? at : 0;  // n == 0 or all -inf rows keep index 0, as NumPy does
}

// sum_i exp(double(x[i]) - m) in float64.
double ChunkSumExp(const float* x, int64_t n, double m) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;  // as many floats as dd has doubles
  const int64_t N = int64_t(hn::Lanes(dd));
  const auto vm = hn::Set(dd, m);
  auto s0 = hn::Zero(dd), s1 = hn::Zero(dd);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::Add(s0, hn::Exp(dd, hn::Sub(hn::PromoteTo(dd, hn::LoadU(df, x + i)), vm)));
    s1 = hn::Add(s1, hn::Exp(dd, hn::Sub(hn::PromoteTo(dd, hn::LoadU(df, x + i + N)), vm)));
  }
  double s = hn::GetLane(hn::SumOfLanes(dd, hn::Add(s0, s1)));
  for (; i < n; ++i) s += std::exp(double(x[i]) - m);
  return s;
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(ChunkMax);
HWY_EXPORT(ChunkSumExp);

namespace {
// Vocabulary chunk of one task: a 262144-entry row makes 8 tasks, so that one row (a decode
// step, a short continuation) still uses every thread.
constexpr int64_t kChunk = 32768;
}  // namespace

void token_logprobs(const float* logits, int64_t ld, int64_t M, int64_t V, const int64_t* target,
                    double* logp, int64_t* argmax) {
  if (M == 0) return;
  const int64_t chunks = (V + kChunk - 1) / kChunk;
  const int64_t tasks = M * chunks;
  std::vector<float> cmax(tasks);
  std::vector<int64_t> cidx(tasks);
  std::vector<double> csum(tasks);
  auto span = [&](int64_t t, int64_t* begin, int64_t* len) {
    *begin = (t % chunks) * kChunk;
    *len = V - *begin < kChunk ? V - *begin : kChunk;
  };
  parallel_for(tasks, [&](int64_t t, int) {
    int64_t b, n;
    span(t, &b, &n);
    HWY_DYNAMIC_DISPATCH(ChunkMax)(logits + (t / chunks) * ld + b, n, &cmax[t], &cidx[t]);
    cidx[t] += b;
  });
  // Each row's maximum and its first index, from its chunks in order.
  std::vector<double> rmax(M);
  for (int64_t m = 0; m < M; ++m) {
    float best = cmax[m * chunks];
    int64_t at = cidx[m * chunks];
    for (int64_t c = 1; c < chunks && !std::isnan(best); ++c) {
      const float v = cmax[m * chunks + c];
      if (std::isnan(v) || v > best) {
        best = v;
        at = cidx[m * chunks + c];
      }
    }
    rmax[m] = best;
    argmax[m] = at;
  }
  parallel_for(tasks, [&](int64_t t, int) {
    int64_t b, n;
    span(t, &b, &n);
    csum[t] = HWY_DYNAMIC_DISPATCH(ChunkSumExp)(logits + (t / chunks) * ld + b, n, rmax[t / chunks]);
  });
  for (int64_t m = 0; m < M; ++m) {
    double s = 0;
    for (int64_t c = 0; c < chunks; ++c) s += csum[m * chunks + c];
    // An infinite maximum makes x - m NaN for it, as in the float64 reference: the NaN stays.
    logp[m] = double(logits[m * ld + target[m]]) - (rmax[m] + std::log(s));
  }
}
}  // namespace gemmacpp::cpu
#endif
