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

// dtype, device and head layout of q, k and v, whose last two dimensions are (heads, head_dim)
// in both the batched and the packed layout.
void check_qkv(const TensorView& q, const TensorView& k, const TensorView& v) {
  check_float(kOp, "q", q);
  check_same_dtype(kOp, "k", k, "q", q);
  check_same_dtype(kOp, "v", v, "q", q);
  check_same_device(kOp, "k", k, "q", q);
  check_same_device(kOp, "v", v, "q", q);
  GC_CHECK(k.shape == v.shape, ValueError, kOp, ": k and v must have the same shape, got k ",
           k.shape_str(), " and v ", v.shape_str());
  GC_CHECK(k.size(-1) == q.size(-1), ValueError, kOp, ": k has head_dim ", k.size(-1),
           " but q has ", q.size(-1));
  GC_CHECK(k.size(-2) >= 1, ValueError, kOp, ": k must have at least one head, got shape ",
           k.shape_str());
  GC_CHECK(q.size(-2) % k.size(-2) == 0, ValueError, kOp, ": the number of query heads (",
           q.size(-2), ") must be a multiple of the number of key/value heads (", k.size(-2), ")");
}

void check_options(const AttentionOptions& opt) {
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
}

// The two columns of key_range [rows, 2], checked for dtype, shape and device.
struct KeyRangeColumns {
  std::vector<int64_t> lo, hi;
};

KeyRangeColumns read_key_range(const TensorView& r_in, int64_t rows) {
  GC_CHECK(r_in.dtype == DType::kI64, TypeError, kOp, ": key_range must be int64, got ",
           dtype_name(r_in.dtype));
  check_shape(kOp, "key_range", r_in, {rows, 2});
  GC_CHECK(r_in.device.is_cpu(), ValueError, kOp, ": key_range must be on the CPU");
  Tensor keep;
  const int64_t* r = static_cast<const int64_t*>(dense(r_in, keep).data);
  KeyRangeColumns c;
  c.lo.resize(size_t(rows));
  c.hi.resize(size_t(rows));
  for (int64_t i = 0; i < rows; ++i) c.lo[size_t(i)] = r[2 * i], c.hi[size_t(i)] = r[2 * i + 1];
  return c;
}

// The kernels bound the keys of a block of queries by its first and last query's ranges.
void check_non_decreasing(const KeyRangeColumns& c, int64_t begin, int64_t end,
                          const char* where) {
  for (int64_t i = begin + 1; i < end; ++i) {
    const size_t u = size_t(i);
    GC_CHECK(c.lo[u] >= c.lo[u - 1] && c.hi[u] >= c.hi[u - 1], ValueError, kOp,
             ": key_range columns must be non-decreasing", where, "; row ", i, " is [", c.lo[u],
             ", ", c.hi[u], ") after [", c.lo[u - 1], ", ", c.hi[u - 1], ")");
  }
}

// cu_seqlens_q or cu_seqlens_k: int32 or int64 [n + 1] on the CPU, from 0 up to the number of
// rows of `rows_of`, non-decreasing.
std::vector<int64_t> read_cu_seqlens(const char* name, const TensorView& t, const char* rows_name,
                                     int64_t rows) {
  GC_CHECK(t.dtype == DType::kI32 || t.dtype == DType::kI64, TypeError, kOp, ": ", name,
           " must be int32 or int64, got ", dtype_name(t.dtype));
  check_rank(kOp, name, t, 1, "[sequences + 1]");
  GC_CHECK(t.device.is_cpu(), ValueError, kOp, ": ", name, " must be on the CPU, got ",
           t.device.str());
  GC_CHECK(t.size(0) >= 1, ValueError, kOp, ": ", name,
           " must have at least one entry (the leading 0), got shape ", t.shape_str());
  std::vector<int64_t> cu(size_t(t.size(0)));
  for (int64_t i = 0; i < t.size(0); ++i) {
    const int64_t at = i * t.stride(0);
    cu[size_t(i)] = t.dtype == DType::kI32 ? int64_t(t.ptr<const int32_t>()[at])
                                           : t.ptr<const int64_t>()[at];
  }
  GC_CHECK(cu[0] == 0, ValueError, kOp, ": ", name, " must start at 0, got ", cu[0]);
  for (size_t i = 1; i < cu.size(); ++i) {
    GC_CHECK(cu[i] >= cu[i - 1], ValueError, kOp, ": ", name,
             " must be non-decreasing; entry ", i, " (", cu[i], ") is less than entry ", i - 1,
             " (", cu[i - 1], ")");
  }
  GC_CHECK(cu.back() == rows, ValueError, kOp, ": ", name, " must end at the number of rows of ",
           rows_name, " (", rows, "), got ", cu.back());
  return cu;
}

// Rows [begin, end) of a packed [rows, heads, head_dim] tensor as a batch of one
// [1, end - begin, heads, head_dim].
TensorView sequence_rows(const TensorView& t, int64_t begin, int64_t end) {
  TensorView s = t;
  s.data = static_cast<char*>(t.data) + begin * t.stride(0) * dtype_size(t.dtype);
  s.shape = {1, end - begin, t.size(1), t.size(2)};
  s.strides = {(end - begin) * t.stride(0), t.stride(0), t.stride(1), t.stride(2)};
  return s;
}
}  // namespace

Tensor attention(const TensorView& q_in, const TensorView& k_in, const TensorView& v_in,
                 const AttentionOptions& opt, const TensorView* out) {
  check_rank(kOp, "q", q_in, 4, "[batch, time, heads, head_dim]");
  check_rank(kOp, "k", k_in, 4, "[batch, time, kv_heads, head_dim]");
  check_rank(kOp, "v", v_in, 4, "[batch, time, kv_heads, head_dim]");
  check_qkv(q_in, k_in, v_in);
  const int64_t B = q_in.size(0), Tq = q_in.size(1), Hq = q_in.size(2), D = q_in.size(3);
  GC_CHECK(k_in.size(0) == B, ValueError, kOp, ": k has batch size ", k_in.size(0),
           " but q has ", B);
  check_options(opt);
  KeyRangeColumns ranges;
  if (opt.key_range) {
    ranges = read_key_range(*opt.key_range, Tq);
    check_non_decreasing(ranges, 0, Tq, "");
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
  if (opt.key_range) a.key_lo = ranges.lo.data(), a.key_hi = ranges.hi.data();
  cpu::attention(a);
  return y.finish();
}

Tensor attention_varlen(const TensorView& q_in, const TensorView& k_in, const TensorView& v_in,
                        const TensorView& cu_seqlens_q, const TensorView& cu_seqlens_k,
                        const AttentionOptions& opt, const TensorView* out) {
  check_rank(kOp, "q", q_in, 3, "[total_q, heads, head_dim] (packed sequences)");
  check_rank(kOp, "k", k_in, 3, "[total_k, kv_heads, head_dim] (packed sequences)");
  check_rank(kOp, "v", v_in, 3, "[total_k, kv_heads, head_dim] (packed sequences)");
  check_qkv(q_in, k_in, v_in);
  const int64_t total_q = q_in.size(0), Hq = q_in.size(1), D = q_in.size(2);
  check_options(opt);
  GC_CHECK(!opt.q_start, ValueError, kOp,
           ": q_start cannot be given with cu_seqlens_q/cu_seqlens_k: each sequence's queries "
           "are its last keys (q_start = Tk - Tq per sequence); use key_range for other masks");
  GC_CHECK(q_in.device.is_cpu(), NotImplementedError, kOp,
           ": cu_seqlens_q/cu_seqlens_k (packed sequences) have no CUDA kernel yet; q is on ",
           q_in.device.str());
  GC_CHECK(cu_seqlens_q.ndim() != 1 || cu_seqlens_k.ndim() != 1 ||
               cu_seqlens_q.size(0) == cu_seqlens_k.size(0),
           ValueError, kOp,
           ": cu_seqlens_q and cu_seqlens_k must have the same length (sequences + 1), got ",
           cu_seqlens_q.shape_str(), " and ", cu_seqlens_k.shape_str());
  const std::vector<int64_t> cu_q = read_cu_seqlens("cu_seqlens_q", cu_seqlens_q, "q", total_q);
  const std::vector<int64_t> cu_k =
      read_cu_seqlens("cu_seqlens_k", cu_seqlens_k, "k", k_in.size(0));
  const int64_t n = int64_t(cu_q.size()) - 1;
  KeyRangeColumns ranges;
  if (opt.key_range) {
    ranges = read_key_range(*opt.key_range, total_q);
    for (int64_t s = 0; s < n; ++s)
      check_non_decreasing(ranges, cu_q[size_t(s)], cu_q[size_t(s) + 1], " within each sequence");
  }

  Tensor kq, kk, kv;
  const TensorView& q = dense_rows(q_in, kq);
  const TensorView& k = dense_rows(k_in, kk);
  const TensorView& v = dense_rows(v_in, kv);
  Output y(kOp, out, q.dtype, {total_q, Hq, D}, q.device, /*need_contiguous=*/false);

  // Each sequence's arguments are exactly those of the batched op on that sequence alone.
  std::vector<cpu::AttentionArgs> seqs(static_cast<size_t>(n));
  for (int64_t s = 0; s < n; ++s) {
    const int64_t q0 = cu_q[size_t(s)], q1 = cu_q[size_t(s) + 1];
    const int64_t k0 = cu_k[size_t(s)], k1 = cu_k[size_t(s) + 1];
    cpu::AttentionArgs& a = seqs[size_t(s)];
    fill_args(a, sequence_rows(q, q0, q1), sequence_rows(k, k0, k1), sequence_rows(v, k0, k1),
              sequence_rows(y.view(), q0, q1), opt);
    if (opt.key_range) a.key_lo = ranges.lo.data() + q0, a.key_hi = ranges.hi.data() + q0;
  }
  cpu::attention_varlen(seqs.data(), n);
  return y.finish();
}

}  // namespace gemmacpp::ops
