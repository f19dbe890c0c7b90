#include "csrc/cpu/altup.h"

#include <algorithm>
#include <cmath>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/altup.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// Columns [j0, j0 + n) of one row: s = 0; s += H[n] * C[k][n] in stream order; out = s + H[k].
// Products and sums are rounded separately (no fused multiply-add; CMakeLists.txt compiles this
// file without contraction), so every target gives the bits of the scalar loop.
void AltUpPredictColumns(const float* streams, const float* c, float* out, int64_t N, int64_t stride,
                         int64_t j0, int64_t n_cols) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df);
  const size_t n = size_t(n_cols);
  hn::Vec<decltype(df)> h[kAltUpMaxStreams];
  for (size_t j = size_t(j0); j < size_t(j0) + n; j += L) {
    const size_t len = std::min(L, size_t(j0) + n - j);
    for (int64_t s = 0; s < N; ++s) {
      const float* p = streams + s * stride + j;
      h[s] = len == L ? hn::LoadU(df, p) : LoadF32Partial(df, p, len);
    }
    for (int64_t k = 0; k < N; ++k) {
      auto acc = hn::Zero(df);
      for (int64_t s = 0; s < N; ++s) acc = hn::Add(acc, hn::Mul(h[s], hn::Set(df, c[k * N + s])));
      acc = hn::Add(acc, h[k]);
      float* q = out + k * stride + j;
      if (len == L) {
        hn::StoreU(acc, df, q);
      } else {
        StoreF32Partial(df, acc, q, len);
      }
    }
  }
}

// out[k] = P[k] + (y - P[0]) * c[k] over columns [j0, j0 + n) of one row.
void AltUpCorrectColumns(const float* pred, const float* y, const float* c, float* out, int64_t N,
                         int64_t stride, int64_t j0, int64_t n_cols) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df);
  const size_t n = size_t(n_cols);
  for (size_t j = size_t(j0); j < size_t(j0) + n; j += L) {
    const size_t len = std::min(L, size_t(j0) + n - j);
    const auto load = [&](const float* p) { return len == L ? hn::LoadU(df, p) : LoadF32Partial(df, p, len); };
    const auto innovation = hn::Sub(load(y + j), load(pred + j));
    for (int64_t k = 0; k < N; ++k) {
      const auto v = hn::Add(load(pred + k * stride + j), hn::Mul(innovation, hn::Set(df, c[k])));
      float* q = out + k * stride + j;
      if (len == L) {
        hn::StoreU(v, df, q);
      } else {
        StoreF32Partial(df, v, q, len);
      }
    }
  }
}

// Sum of x^2 over a row in float64 lanes (each float32 square is exact in float64).
HWY_INLINE double SumSquares(const float* x, size_t d) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;  // as many float32 lanes as dd has float64 lanes
  const size_t L = hn::Lanes(dd);
  auto a0 = hn::Zero(dd), a1 = hn::Zero(dd);
  size_t i = 0;
  for (; i + 2 * L <= d; i += 2 * L) {
    const auto v0 = hn::PromoteTo(dd, hn::LoadU(df, x + i)), v1 = hn::PromoteTo(dd, hn::LoadU(df, x + i + L));
    a0 = hn::Add(a0, hn::Mul(v0, v0));
    a1 = hn::Add(a1, hn::Mul(v1, v1));
  }
  for (; i + L <= d; i += L) {
    const auto v = hn::PromoteTo(dd, hn::LoadU(df, x + i));
    a0 = hn::Add(a0, hn::Mul(v, v));
  }
  if (i < d) {
    const auto v = hn::PromoteTo(dd, LoadF32Partial(df, x + i, d - i));  // zeros past the end
    a1 = hn::Add(a1, hn::Mul(v, v));
  }
  return hn::GetLane(hn::SumOfLanes(dd, hn::Add(a0, a1)));
}

// One row of every stream: the target magnitude from stream 0, then each other stream scaled to it
// (y * target / magnitude: a product, then a quotient, as transformers writes it).
void AltUpRescaleRow(const float* streams, float* out, int64_t N, int64_t stride, int64_t d_signed, float eps) {
  const size_t d = size_t(d_signed);
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df);
  const float target = std::sqrt(float(SumSquares(streams, d) / double(d)));
  if (out != streams) std::copy(streams, streams + d, out);
  for (int64_t k = 1; k < N; ++k) {
    const float* y = streams + k * stride;
    float* o = out + k * stride;
    const float magnitude = std::sqrt(std::max(float(SumSquares(y, d) / double(d)), eps));
    const auto t = hn::Set(df, target), m = hn::Set(df, magnitude);
    size_t j = 0;
    for (; j + L <= d; j += L) hn::StoreU(hn::Div(hn::Mul(hn::LoadU(df, y + j), t), m), df, o + j);
    if (j < d) StoreF32Partial(df, hn::Div(hn::Mul(LoadF32Partial(df, y + j, d - j), t), m), o + j, d - j);
  }
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(AltUpPredictColumns);
HWY_EXPORT(AltUpCorrectColumns);
HWY_EXPORT(AltUpRescaleRow);

namespace {

// Tasks are (row, column chunk) pairs of about kElementwiseChunk stream elements each: a decode
// step's single row still splits across threads, and the split depends on the shape only.
template <class Fn>
void for_row_chunks(int64_t N, int64_t M, int64_t d, const Fn& fn) {
  const int64_t cols = std::max<int64_t>(1, std::min(d, kElementwiseChunk / N));
  const int64_t per_row = (d + cols - 1) / cols;
  parallel_for(M * per_row, [&](int64_t t, int) {
    const int64_t r = t / per_row, j0 = (t % per_row) * cols;
    fn(r, j0, std::min(cols, d - j0));
  });
}

// The router's modalities tanh(logits) in float32, as the model computes them.
void modalities(const float* logits, int64_t N, float* m) {
  for (int64_t j = 0; j < N; ++j) m[j] = std::tanh(logits[j]);
}

}  // namespace

void altup_predict(const float* streams, const float* router_logits, const float* coefs, float* out,
                   int64_t N, int64_t M, int64_t d) {
  if (M <= 0 || d <= 0) return;
  for_row_chunks(N, M, d, [&](int64_t r, int64_t j0, int64_t n) {
    float m[kAltUpMaxStreams], c[kAltUpMaxStreams * kAltUpMaxStreams];
    modalities(router_logits + r * N, N, m);
    // c[k * N + s]: how much of stream s goes into the prediction of stream k.
    for (int64_t i = 0; i < N * N; ++i) {
      float s = 0;
      for (int64_t j = 0; j < N; ++j) s += coefs[i * N + j] * m[j];
      c[i] = s;
    }
    HWY_DYNAMIC_DISPATCH(AltUpPredictColumns)(streams + r * d, c, out + r * d, N, M * d, j0, n);
  });
}

void altup_correct(const float* predictions, const float* activated, const float* router_logits,
                   const float* coefs, float* out, int64_t N, int64_t M, int64_t d) {
  if (M <= 0 || d <= 0) return;
  for_row_chunks(N, M, d, [&](int64_t r, int64_t j0, int64_t n) {
    float m[kAltUpMaxStreams], c[kAltUpMaxStreams];
    modalities(router_logits + r * N, N, m);
    for (int64_t k = 0; k < N; ++k) {
      float s = 0;
      for (int64_t j = 0; j < N; ++j) s += coefs[k * N + j] * m[j];
      c[k] = s + 1.0f;
    }
    HWY_DYNAMIC_DISPATCH(AltUpCorrectColumns)(predictions + r * d, activated + r * d, c, out + r * d,
                                              N, M * d, j0, n);
  });
}

void altup_rescale(const float* streams, float* out, int64_t N, int64_t M, int64_t d, float eps) {
  if (M <= 0 || d <= 0) return;
  // Whole rows per task, about kElementwiseChunk stream elements each: depends on the shape only.
  const int64_t rows_per_task = std::max<int64_t>(1, kElementwiseChunk / (N * d));
  parallel_for((M + rows_per_task - 1) / rows_per_task, [&](int64_t t, int) {
    for (int64_t r = t * rows_per_task; r < std::min(M, (t + 1) * rows_per_task); ++r) {
      HWY_DYNAMIC_DISPATCH(AltUpRescaleRow)(streams + r * d, out + r * d, N, M * d, d, eps);
    }
  });
}

}  // namespace gemmacpp::cpu
#endif
