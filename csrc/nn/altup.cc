#include "csrc/nn/altup.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {
namespace {

void check_cpu(const Forward& f) {
  GC_CHECK(f.device.is_cpu(), NotImplementedError, "AltUp's stream mixing runs on the CPU only");
}

}  // namespace

void offer_streams(const Forward& f, int site, float* streams, int64_t n, int64_t d) {
  if (!f.offer.wants(site)) return;
  const int64_t M = f.rows();
  const size_t row = size_t(d) * sizeof(float);
  std::vector<float> t(size_t(M * n * d));
  for (int64_t k = 0; k < n; ++k) {
    for (int64_t m = 0; m < M; ++m) std::memcpy(t.data() + (m * n + k) * d, streams + (k * M + m) * d, row);
  }
  f.offer(site, t.data(), {n, d});
  for (int64_t k = 0; k < n; ++k) {
    for (int64_t m = 0; m < M; ++m) std::memcpy(streams + (k * M + m) * d, t.data() + (m * n + k) * d, row);
  }
}

AltUpStreams::AltUpStreams(const Scope& s, const std::string& name, int64_t d, int64_t n, const std::string& site)
    : d_(d), n_(n) {
  for (int64_t k = 0; k + 1 < n; ++k) {
    proj_.emplace_back(s.weights, s.name(name + "." + std::to_string(k) + ".weight"), d, d);
  }
  site_ = s.site(site);
}

void AltUpStreams::operator()(const Forward& f, float* streams, bool spread) const {
  check_cpu(f);
  const int64_t M = f.rows(), d = d_;
  Workspace::Frame ws(*f.workspace);
  float* const in = spread ? nullptr : ws.take(M * d);  // a projection must not write its own input
  for (int64_t k = 1; k < n_; ++k) {
    float* const y = streams + k * M * d;
    // Spreading reads stream 0 into every other stream; gathering maps each stream by its own.
    if (!spread) std::memcpy(in, y, size_t(M * d) * sizeof(float));
    proj_[size_t(k - 1)](f.device, spread ? streams : in, M, y);
  }
  // As transformers: each to stream 0's root mean square, its own mean square clamped at 1e-5.
  ops::dispatch::altup_rescale(f.device, streams, streams, n_, M, d, 1e-5f);
  offer_streams(f, site_, streams, n_, d);
}

void AltUpStreams::mean(const Forward& f, const float* streams, float* x) const {
  ops::dispatch::mean_of_parts(f.device, streams, n_, f.rows() * d_, x);
}

AltUp::AltUp(const Scope& s, int64_t d, int64_t n, double eps, bool unit_offset, bool correct_scale)
    : d_(d),
      n_(n),
      router_norm_(s.weights, s.name("altup.router_norm.weight"), d, eps, unit_offset),
      router_(s.weights, s.name("altup.router.weight"), n, d),
      pred_coefs_(s.weights.f32(s.name("altup.pred_coefs.weight"), {n * n, n})),
      corr_coefs_(s.weights.f32(s.name("altup.corr_coefs.weight"), {n, n})),
      out_scale_(correct_scale ? s.weights.f32(s.name("altup.out_scale"), {d}) : std::vector<float>()) {}

void AltUp::router_logits(const Forward& f, const float* x, float* logits) const {
  const int64_t M = f.rows();
  Workspace::Frame ws(*f.workspace);
  float* const normed = ws.take(M * d_);
  router_norm_(f.device, x, normed, M);
  ops::dispatch::scale_into(f.device, normed, float(1.0 / double(d_)), M * d_);
  router_(f.device, normed, M, logits);
}

void AltUp::predict(const Forward& f, float* streams) const {
  check_cpu(f);  // the coefficient matrices are host vectors
  const int64_t M = f.rows();
  Workspace::Frame ws(*f.workspace);
  float* const logits = ws.take(M * n_);
  router_logits(f, streams, logits);
  ops::dispatch::altup_predict(f.device, streams, logits, pred_coefs_.data(), streams, n_, M, d_);
}

void AltUp::correct(const Forward& f, float* streams, const float* y) const {
  check_cpu(f);
  const int64_t M = f.rows();
  Workspace::Frame ws(*f.workspace);
  float* const logits = ws.take(M * n_);
  router_logits(f, y, logits);
  ops::dispatch::altup_correct(f.device, streams, y, logits, corr_coefs_.data(), streams, n_, M, d_);
}

void AltUp::scaled_active(const Forward& f, const float* streams, float* out) const {
  check_cpu(f);  // out_scale_ is a host vector
  const int64_t M = f.rows(), d = d_;
  if (out_scale_.empty()) {
    std::memcpy(out, streams, size_t(M * d) * sizeof(float));
    return;
  }
  ops::dispatch::scale_columns(f.device, streams, out_scale_.data(), M, d, out);
}

}  // namespace gemmacpp::nn
