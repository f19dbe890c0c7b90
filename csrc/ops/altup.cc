#include "csrc/ops/altup.h"

#include <cmath>
#include <initializer_list>
#include <utility>
#include <vector>

#include "csrc/cpu/altup.h"
#include "csrc/ops/common.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::ops {
namespace {

void check_f32(const char* op, const char* name, const TensorView& t) {
  GC_CHECK(t.dtype == DType::kF32, TypeError, op, ": ", name, " must be float32, got ", dtype_name(t.dtype));
}

// Checks the streams [N, ..., d] and the router logits [..., N]; returns {N, rows, d}.
std::vector<int64_t> check_streams(const char* op, const char* name, const TensorView& s,
                                   const TensorView& logits) {
  check_f32(op, name, s);
  check_f32(op, "router_logits", logits);
  GC_CHECK(s.ndim() >= 2, ValueError, op, ": ", name, " must be [N, ..., d] (at least 2 dimensions), got shape ",
           s.shape_str());
  const int64_t N = s.size(0), d = s.size(-1);
  GC_CHECK(N >= 1 && N <= cpu::kAltUpMaxStreams, ValueError, op, ": ", name, " has ", N,
           " streams (its first dimension); 1 to ", cpu::kAltUpMaxStreams, " are supported");
  std::vector<int64_t> expected(s.shape.begin() + 1, s.shape.end() - 1);
  expected.push_back(N);
  check_shape(op, "router_logits", logits, expected);
  check_same_device(op, "router_logits", logits, name, s);
  return {N, d == 0 ? 0 : s.numel() / (N * d), d};
}

// The CUDA kernels take dense tensors only (no device-side copy of strided views yet).
void check_cuda_dense(const char* op, std::initializer_list<std::pair<const char*, const TensorView*>> ts) {
  for (const auto& [name, t] : ts) {
    GC_CHECK(!t || t->is_contiguous(), ValueError, op, ": ", name, " on ", t->device.str(), " must be contiguous");
  }
#ifndef GEMMACPP_WITH_CUDA
  throw ValueError(str_cat(op, ": the tensors are on ", ts.begin()->second->device.str(),
                           " but this build has no CUDA support"));
#endif
}

}  // namespace

Tensor altup_predict(const TensorView& s_in, const TensorView& l_in, const TensorView& c_in, const TensorView* out) {
  const auto nmd = check_streams("altup_predict", "streams", s_in, l_in);
  const int64_t N = nmd[0];
  check_f32("altup_predict", "coefs", c_in);
  check_shape("altup_predict", "coefs", c_in, {N * N, N});
  check_same_device("altup_predict", "coefs", c_in, "streams", s_in);
  if (!s_in.device.is_cpu()) {
    check_cuda_dense("altup_predict", {{"streams", &s_in}, {"router_logits", &l_in}, {"coefs", &c_in}, {"out", out}});
    Output y("altup_predict", out, s_in.dtype, s_in.shape, s_in.device);
    ops::dispatch::altup_predict(s_in.device, static_cast<const float*>(s_in.data), static_cast<const float*>(l_in.data),
                                 static_cast<const float*>(c_in.data), static_cast<float*>(y.view().data), N, nmd[1],
                                 nmd[2]);
    return y.finish();
  }
  Tensor keep_s, keep_l, keep_c;
  const TensorView& s = dense(s_in, keep_s);
  const TensorView& l = dense(l_in, keep_l);
  const TensorView& c = dense(c_in, keep_c);
  Output y("altup_predict", out, s.dtype, s.shape, s.device);
  cpu::altup_predict(static_cast<const float*>(s.data), static_cast<const float*>(l.data),
                     static_cast<const float*>(c.data), static_cast<float*>(y.view().data), N, nmd[1], nmd[2]);
  return y.finish();
}

Tensor altup_correct(const TensorView& p_in, const TensorView& a_in, const TensorView& l_in, const TensorView& c_in,
                     const TensorView* out) {
  const auto nmd = check_streams("altup_correct", "predictions", p_in, l_in);
  const int64_t N = nmd[0];
  check_f32("altup_correct", "activated", a_in);
  check_shape("altup_correct", "activated", a_in, std::vector<int64_t>(p_in.shape.begin() + 1, p_in.shape.end()));
  check_same_device("altup_correct", "activated", a_in, "predictions", p_in);
  check_f32("altup_correct", "coefs", c_in);
  check_shape("altup_correct", "coefs", c_in, {N, N});
  check_same_device("altup_correct", "coefs", c_in, "predictions", p_in);
  if (!p_in.device.is_cpu()) {
    check_cuda_dense("altup_correct", {{"predictions", &p_in}, {"activated", &a_in}, {"router_logits", &l_in},
                                       {"coefs", &c_in}, {"out", out}});
    Output y("altup_correct", out, p_in.dtype, p_in.shape, p_in.device);
    ops::dispatch::altup_correct(p_in.device, static_cast<const float*>(p_in.data), static_cast<const float*>(a_in.data),
                                 static_cast<const float*>(l_in.data), static_cast<const float*>(c_in.data),
                                 static_cast<float*>(y.view().data), N, nmd[1], nmd[2]);
    return y.finish();
  }
  Tensor keep_p, keep_a, keep_l, keep_c;
  const TensorView& p = dense(p_in, keep_p);
  const TensorView& a = dense(a_in, keep_a);
  const TensorView& l = dense(l_in, keep_l);
  const TensorView& c = dense(c_in, keep_c);
  Output y("altup_correct", out, p.dtype, p.shape, p.device);
  cpu::altup_correct(static_cast<const float*>(p.data), static_cast<const float*>(a.data),
                     static_cast<const float*>(l.data), static_cast<const float*>(c.data),
                     static_cast<float*>(y.view().data), N, nmd[1], nmd[2]);
  return y.finish();
}

Tensor altup_rescale(const TensorView& s_in, float eps, const TensorView* out) {
  check_f32("altup_rescale", "streams", s_in);
  GC_CHECK(s_in.ndim() >= 2, ValueError, "altup_rescale: streams must be [N, ..., d] (at least 2 dimensions), got shape ",
           s_in.shape_str());
  GC_CHECK(std::isfinite(eps) && eps > 0, ValueError, "altup_rescale: eps must be a positive number, got ", eps);
  const int64_t N = s_in.size(0), d = s_in.size(-1), M = (N == 0 || d == 0) ? 0 : s_in.numel() / (N * d);
  if (!s_in.device.is_cpu()) {
    check_cuda_dense("altup_rescale", {{"streams", &s_in}, {"out", out}});
    Output y("altup_rescale", out, s_in.dtype, s_in.shape, s_in.device);
    ops::dispatch::altup_rescale(s_in.device, static_cast<const float*>(s_in.data), static_cast<float*>(y.view().data),
                                 N, M, d, eps);
    return y.finish();
  }
  Tensor keep;
  const TensorView& s = dense(s_in, keep);
  Output y("altup_rescale", out, s.dtype, s.shape, s.device);
  cpu::altup_rescale(static_cast<const float*>(s.data), static_cast<float*>(y.view().data), N, M, d, eps);
  return y.finish();
}

}  // namespace gemmacpp::ops
