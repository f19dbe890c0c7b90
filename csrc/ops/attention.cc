#include "csrc/ops/attention.h"

#include <cmath>
#include <vector>

#include "csrc/cpu/attention.h"
#include "csrc/ops/common.h"
#ifdef GEMMACPP_WITH_CUDA
#include "csrc/cuda/attention.h"
#endif

namespace gemmacpp::ops {

namespace {
constexpr const char* kOp = "attention";

void copy_strides(const TensorView& t, int64_t (&s)[3]) {
  s[0] = t.stride(0), s[1] = t.stride(1), s[2] = t.stride(2);
}

// Both backends take the same arguments; only the pointers' device differs.
void fill_args(AttentionArgs& a, const TensorView& q, const TensorView& k, const TensorView& v,
               const TensorView& out, const AttentionOptions& opt) {
  a.dtype = q.dtype;
  a.q = q.data, a.k = k.data, a.v = v.data, a.out = out.data;
  a.B = q.size(0), a.Tq = q.size(1), a.Tk = k.size(1), a.Hq = q.size(2), a.Hkv = k.size(2);
  a.D = q.size(3);
  copy_strides(q, a.q_stride);
  copy_strides(k, a.k_stride);
  copy_strides(v, a.v_stride);
  copy_strides(out, a.out_stride);
  a.causal = opt.causal;
  a.window = opt.window.value_or(0);
  a.softcap = opt.softcap.value_or(0.0f);
  a.scale = opt.scale ? *opt.scale : (a.D > 0 ? 1.0f / std::sqrt(float(a.D)) : 1.0f);
  a.q_start = opt.q_start.value_or(a.Tk - a.Tq);
  a.prefix_len = opt.prefix_len;
}
}  // namespace

Tensor attention(const TensorView& q_in, const TensorView& k_in, const TensorView& v_in,
                 const AttentionOptions& opt, const TensorView* out) {
  check_rank(kOp, "q", q_in, 4, "[batch, time, heads, head_dim]");
  check_rank(kOp, "k", k_in, 4, "[batch, time, kv_heads, head_dim]");
  check_rank(kOp, "v", v_in, 4, "[batch, time, kv_heads, head_dim]");
  check_float(kOp, "q", q_in);
  check_same_dtype(kOp, "k", k_in, "q", q_in);
  check_same_dtype(kOp, "v", v_in, "q", q_in);
  check_same_device(kOp, "k", k_in, "q", q_in);
  check_same_device(kOp, "v", v_in, "q", q_in);
  GC_CHECK(k_in.shape == v_in.shape, ValueError, kOp, ": k and v must have the same shape, got k ",
           k_in.shape_str(), " and v ", v_in.shape_str());
  const int64_t B = q_in.size(0), Tq = q_in.size(1), Hq = q_in.size(2), D = q_in.size(3);
  const int64_t Hkv = k_in.size(2);
  GC_CHECK(k_in.size(0) == B, ValueError, kOp, ": k has batch size ", k_in.size(0),
           " but q has ", B);
  GC_CHECK(k_in.size(3) == D, ValueError, kOp, ": k has head_dim ", k_in.size(3), " but q has ",
           D);
  GC_CHECK(Hkv >= 1, ValueError, kOp, ": k must have at least one head, got shape ",
           k_in.shape_str());
  GC_CHECK(Hq % Hkv == 0, ValueError, kOp, ": the number of query heads (", Hq,
           ") must be a multiple of the number of key/value heads (", Hkv, ")");
  GC_CHECK(!opt.window || *opt.window >= 1, ValueError, kOp, ": window must be >= 1, got ",
           opt.window.value_or(0));
  GC_CHECK(!opt.softcap || (std::isfinite(*opt.softcap) && *opt.softcap > 0), ValueError, kOp,
           ": softcap must be a positive finite number, got ", opt.softcap.value_or(0.0f));
  GC_CHECK(!opt.scale || std::isfinite(*opt.scale), ValueError, kOp,
           ": scale must be a finite number, got ", opt.scale.value_or(0.0f));
  GC_CHECK(!opt.q_start || *opt.q_start >= 0, ValueError, kOp, ": q_start must be >= 0, got ",
           opt.q_start.value_or(0));
  GC_CHECK(opt.prefix_len >= 0, ValueError, kOp, ": prefix_len must be >= 0, got ",
           opt.prefix_len);
  std::vector<int64_t> key_lo, key_hi;
  if (opt.key_range) {
    const TensorView& r_in = *opt.key_range;
    GC_CHECK(r_in.dtype == DType::kI64, TypeError, kOp, ": key_range must be int64, got ",
             dtype_name(r_in.dtype));
    check_shape(kOp, "key_range", r_in, {Tq, 2});
    GC_CHECK(r_in.device.is_cpu(), ValueError, kOp, ": key_range must be on the CPU");
    Tensor keep;
    const int64_t* r = static_cast<const int64_t*>(dense(r_in, keep).data);
    for (int64_t i = 0; i < Tq; ++i) {
      key_lo.push_back(r[2 * i]);
      key_hi.push_back(r[2 * i + 1]);
      GC_CHECK(i == 0 || (key_lo[size_t(i)] >= key_lo[size_t(i) - 1] &&
                          key_hi[size_t(i)] >= key_hi[size_t(i) - 1]),
               ValueError, kOp, ": key_range columns must be non-decreasing; row ", i, " is [",
               key_lo[size_t(i)], ", ", key_hi[size_t(i)], ") after [", key_lo[size_t(i) - 1], ", ",
               key_hi[size_t(i) - 1], ")");
    }
  }
  if (!q_in.device.is_cpu()) {
    GC_CHECK(!opt.key_range, NotImplementedError, kOp, ": key_range has no CUDA kernel yet");
#ifdef GEMMACPP_WITH_CUDA
    // No device-side copies of strided views yet: head_dim rows must be contiguous already.
    GC_CHECK(q_in.rows_contiguous(), ValueError, kOp, ": q on ", q_in.device.str(),
             " must have a contiguous last dimension");
    GC_CHECK(k_in.rows_contiguous(), ValueError, kOp, ": k on ", k_in.device.str(),
             " must have a contiguous last dimension");
    GC_CHECK(v_in.rows_contiguous(), ValueError, kOp, ": v on ", v_in.device.str(),
             " must have a contiguous last dimension");
    GC_CHECK(out == nullptr || out->rows_contiguous(), ValueError, kOp, ": out on ",
             q_in.device.str(), " must have a contiguous last dimension");
    GC_CHECK(D <= cuda::kMaxAttentionHeadDim, ValueError, kOp, ": head_dim ", D,
             " is larger than the CUDA kernels take (", cuda::kMaxAttentionHeadDim, ")");
    Output y(kOp, out, q_in.dtype, {B, Tq, Hq, D}, q_in.device, /*need_contiguous=*/false);
    if (B == 0 || Tq == 0 || Hq == 0 || D == 0) return y.finish();
    cuda::AttentionArgs a;
    fill_args(a, q_in, k_in, v_in, y.view(), opt);
    cuda::attention(a, q_in.device.index);
    return y.finish();
#else
    throw ValueError(std::string(kOp) + ": q is on " + q_in.device.str() +
                     " but this build has no CUDA support");
#endif
  }

  // The kernels need contiguous head_dim rows; any other stride is read as given.
  Tensor kq, kk, kv;
  const TensorView& q = dense_rows(q_in, kq);
  const TensorView& k = dense_rows(k_in, kk);
  const TensorView& v = dense_rows(v_in, kv);
  Output y(kOp, out, q.dtype, {B, Tq, Hq, D}, q.device, /*need_contiguous=*/false);

  cpu::AttentionArgs a;
  fill_args(a, q, k, v, y.view(), opt);
  if (opt.key_range) a.key_lo = key_lo.data(), a.key_hi = key_hi.data();
  cpu::attention(a);
  return y.finish();
}

}  // namespace gemmacpp::ops
