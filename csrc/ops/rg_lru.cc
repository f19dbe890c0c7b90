#include "csrc/ops/rg_lru.h"

#include <cmath>
#include <cstring>

#include "csrc/cpu/rg_lru.h"
#include "csrc/ops/common.h"

namespace gemmacpp::ops {

RgLruResult rg_lru(const TensorView& x_in, const TensorView& gx_in, const TensorView& ga_in,
                   const TensorView& ap_in, const TensorView* h0_in, const TensorView* reset_in,
                   float c) {
  const char* op = "rg_lru";
  check_float(op, "x", x_in);
  check_rank(op, "x", x_in, 3, "[B, T, W]");
  const int64_t B = x_in.size(0), T = x_in.size(1), W = x_in.size(2);
  check_same_dtype(op, "gate_x", gx_in, "x", x_in);
  check_same_dtype(op, "gate_a", ga_in, "x", x_in);
  check_shape(op, "gate_x", gx_in, x_in.shape);
  check_shape(op, "gate_a", ga_in, x_in.shape);
  check_float(op, "a_param", ap_in);
  check_shape(op, "a_param", ap_in, {W});
  check_same_device(op, "gate_x", gx_in, "x", x_in);
  check_same_device(op, "gate_a", ga_in, "x", x_in);
  check_same_device(op, "a_param", ap_in, "x", x_in);
  if (h0_in) {
    check_float(op, "h0", *h0_in);
    check_shape(op, "h0", *h0_in, {B, W});
    check_same_device(op, "h0", *h0_in, "x", x_in);
  }
  if (reset_in) {
    GC_CHECK(reset_in->dtype == DType::kBool, TypeError, "rg_lru: reset must be bool, got ",
             dtype_name(reset_in->dtype));
    check_shape(op, "reset", *reset_in, {B, T});
    check_same_device(op, "reset", *reset_in, "x", x_in);
  }
  GC_CHECK(std::isfinite(c) && c > 0, ValueError, "rg_lru: c must be a positive number, got ", c);
  GC_CHECK(x_in.device.is_cpu(), NotImplementedError, "rg_lru: x is on ", x_in.device.str(),
           "; only the CPU has an rg_lru kernel");

  Tensor keep[6];
  const TensorView& x = dense(x_in, keep[0]);
  const TensorView& gx = dense(gx_in, keep[1]);
  const TensorView& ga = dense(ga_in, keep[2]);
  const TensorView& ap = dense(ap_in, keep[3]);
  const TensorView* h0 = h0_in ? &dense(*h0_in, keep[4]) : nullptr;
  const uint8_t* reset = nullptr;
  Tensor first_reset;
  if (reset_in) {
    reset = dense(*reset_in, keep[5]).ptr<uint8_t>();
  } else if (!h0 && T > 0) {
    // A fresh sequence starts a segment at t = 0 (the sqrt factor is 1 there).
    first_reset = Tensor::zeros(DType::kBool, {B, T});
    for (int64_t b = 0; b < B; ++b) first_reset.view().ptr<uint8_t>()[b * T] = 1;
    reset = first_reset.view().ptr<uint8_t>();
  }

  RgLruResult r;
  r.y = Tensor::empty(x.dtype, x.shape, x.device);
  r.h_last = Tensor::empty(DType::kF32, {B, W}, x.device);
  cpu::RgLruArgs a;
  a.dtype = x.dtype;
  a.x = x.data; a.gate_x = gx.data; a.gate_a = ga.data;
  a.a_dtype = ap.dtype; a.a_param = ap.data;
  if (h0) { a.h0_dtype = h0->dtype; a.h0 = h0->data; }
  a.reset = reset;
  a.y = r.y.view().data;
  a.h_last = r.h_last.view().ptr<float>();
  a.B = B; a.T = T; a.W = W; a.c = c;
  cpu::rg_lru(a);
  return r;
}

}  // namespace gemmacpp::ops
