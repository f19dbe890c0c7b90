#include "csrc/ops/sae.h"

#include <cstring>
#include <vector>

#include "csrc/cpu/sae.h"
#include "csrc/ops/common.h"

namespace gemmacpp::ops {
namespace {

void check_cpu(const char* op, const TensorView& t) {
  GC_CHECK(t.device.is_cpu(), NotImplementedError, op, ": the input is on ", t.device.str(),
           "; sparse autoencoders have a CPU kernel only");
}

// The rows of a float32 [..., d] array: the array itself when C-contiguous, else a copy.
const TensorView& as_rows(const char* op, const char* name, const TensorView& x, Tensor& keep,
                          int64_t* rows) {
  GC_CHECK(x.dtype == DType::kF32, TypeError, op, ": ", name,
           " must be float32 (activations), got ", dtype_name(x.dtype));
  GC_CHECK(x.ndim() >= 1, ValueError, op, ": ", name, " must have at least 1 dimension, got a "
           "scalar");
  *rows = 1;
  for (int i = 0; i + 1 < x.ndim(); ++i) *rows *= x.shape[i];
  return dense(x, keep);
}

// A weight matrix [rows, cols] read in place (a copy only when its rows are not contiguous).
const TensorView& weight(const char* op, const char* name, const TensorView& w, const char* layout,
                         Tensor& keep) {
  check_float(op, name, w);
  check_rank(op, name, w, 2, layout);
  check_cpu(op, w);
  return dense_rows(w, keep);
}

std::vector<float> optional_vector(const char* op, const char* name, const TensorView* t,
                                   int64_t n) {
  if (!t) return {};
  check_float(op, name, *t);
  check_shape(op, name, *t, {n});
  return float_vector(*t);
}

std::vector<int64_t> with_last(const TensorView& x, int64_t last) {
  std::vector<int64_t> shape(x.shape.begin(), x.shape.end() - 1);
  shape.push_back(last);
  return shape;
}

Tensor from_vector(DType dt, const void* data, int64_t n) {
  Tensor t = Tensor::empty(dt, {n});
  if (n) std::memcpy(t.view().data, data, size_t(n) * dtype_size(dt));
  return t;
}

}  // namespace

SaeEncodeResult sae_encode(const TensorView& x_in, const TensorView& w_in, const TensorView* b_enc,
                           const TensorView* threshold, int64_t k, const std::string& activation,
                           const TensorView* b_dec, bool sparse, bool dense_out, bool pre) {
  const char* op = "sae_encode";
  check_cpu(op, x_in);
  Tensor x_keep, w_keep;
  int64_t M = 0;
  const TensorView* x = &as_rows(op, "x", x_in, x_keep, &M);
  const TensorView& w = weight(op, "W_enc", w_in, "[d_in, d_sae]", w_keep);
  const int64_t K = x->shape.back(), N = w.size(1);
  GC_CHECK(w.size(0) == K, ValueError, op, ": x has d_in = ", K,
           " (its last dimension) but W_enc is ", w.shape_str(), " ([d_in, d_sae])");
  cpu::SaeEncodeArgs a;
  if (activation == "relu") {
    a.act = cpu::SaeActivation::kReLU;
  } else if (activation == "jumprelu") {
    a.act = cpu::SaeActivation::kJumpReLU;
  } else if (activation == "topk") {
    a.act = cpu::SaeActivation::kTopK;
  } else if (activation == "identity") {
    a.act = cpu::SaeActivation::kIdentity;
  } else {
    throw ValueError(str_cat(op, ": unknown activation '", activation,
                             "' (relu, jumprelu, topk or identity)"));
  }
  if (a.act == cpu::SaeActivation::kJumpReLU) {
    GC_CHECK(threshold != nullptr, ValueError, op,
             ": activation 'jumprelu' needs a threshold [d_sae]");
  } else {
    GC_CHECK(threshold == nullptr, ValueError, op,
             ": threshold is only used by activation 'jumprelu', not '", activation, "'");
  }
  if (a.act == cpu::SaeActivation::kTopK) {
    GC_CHECK(k >= 1 && k <= N, ValueError, op, ": activation 'topk' needs 1 <= k <= d_sae = ", N,
             ", got k = ", k);
  } else {
    GC_CHECK(k == 0, ValueError, op, ": k is only used by activation 'topk', not '", activation,
             "'");
  }
  GC_CHECK(sparse || dense_out || pre, ValueError, op, ": no output asked for");
  const std::vector<float> bias = optional_vector(op, "b_enc", b_enc, N);
  const std::vector<float> thr = optional_vector(op, "threshold", threshold, N);
  if (b_dec) {  // SAELens' apply_b_dec_to_input: encode x - b_dec
    const std::vector<float> bd = optional_vector(op, "b_dec", b_dec, K);
    Tensor centred = Tensor::empty(DType::kF32, {M, K});
    const float* src = x->ptr<const float>();
    float* dst = centred.view().ptr<float>();
    for (int64_t m = 0; m < M; ++m)
      for (int64_t i = 0; i < K; ++i) dst[m * K + i] = src[m * K + i] - bd[size_t(i)];
    x_keep = std::move(centred);
    x = &x_keep.view();
  }
  SaeEncodeResult r;
  if (dense_out) r.dense = Tensor::empty(DType::kF32, with_last(x_in, N));
  if (pre) r.pre = Tensor::empty(DType::kF32, with_last(x_in, N));
  a.x = x->ptr<const float>();
  a.ldx = K;
  a.M = M;
  a.K = K;
  a.wdt = w.dtype;
  a.w = w.data;
  a.ldw = K > 1 ? w.stride(0) : N;
  a.N = N;
  a.bias = b_enc ? bias.data() : nullptr;
  a.threshold = threshold ? thr.data() : nullptr;
  a.k = k;
  a.pre = pre ? r.pre.view().ptr<float>() : nullptr;
  a.ldp = N;
  a.dense = dense_out ? r.dense.view().ptr<float>() : nullptr;
  a.ldd = N;
  a.sparse = sparse;
  cpu::SparseRows s = cpu::sae_encode(a);
  if (sparse) {
    r.values = from_vector(DType::kF32, s.values.data(), int64_t(s.values.size()));
    r.indices = from_vector(DType::kI32, s.indices.data(), int64_t(s.indices.size()));
    r.offsets = from_vector(DType::kI64, s.offsets.data(), int64_t(s.offsets.size()));
  }
  return r;
}

namespace {

// Decodes M rows of CSR activations into [M, d_out] (shape `shape`, or out=).
Tensor decode_rows(const char* op, const int64_t* offsets, const int32_t* indices,
                   const float* values, int64_t M, const TensorView& w_in, const TensorView* b_dec,
                   std::vector<int64_t> shape, const TensorView* out) {
  Tensor w_keep;
  const TensorView& w = weight(op, "W_dec", w_in, "[d_sae, d_out]", w_keep);
  const int64_t N = w.size(1);
  const std::vector<float> bias = optional_vector(op, "b_dec", b_dec, N);
  Output y(op, out, DType::kF32, std::move(shape), Device{});
  const int64_t ldw = w.size(0) > 1 ? w.stride(0) : N;
  cpu::sae_decode(offsets, indices, values, M, w.dtype, w.data, ldw, N,
                  b_dec ? bias.data() : nullptr, y.view().ptr<float>(), N);
  return y.finish();
}

}  // namespace

Tensor sae_decode(const TensorView& values_in, const TensorView& indices_in,
                  const TensorView& offsets_in, const TensorView& w_dec, const TensorView* b_dec,
                  const TensorView* out) {
  const char* op = "sae_decode";
  for (const TensorView* t : {&values_in, &indices_in, &offsets_in, &w_dec}) check_cpu(op, *t);
  GC_CHECK(values_in.dtype == DType::kF32, TypeError, op, ": values must be float32, got ",
           dtype_name(values_in.dtype));
  GC_CHECK(indices_in.dtype == DType::kI32 || indices_in.dtype == DType::kI64, TypeError, op,
           ": indices must be int32 or int64, got ", dtype_name(indices_in.dtype));
  GC_CHECK(offsets_in.dtype == DType::kI64, TypeError, op, ": offsets must be int64, got ",
           dtype_name(offsets_in.dtype));
  check_rank(op, "values", values_in, 1, "[nnz]");
  check_rank(op, "indices", indices_in, 1, "[nnz]");
  check_rank(op, "offsets", offsets_in, 1, "[rows + 1]");
  check_rank(op, "W_dec", w_dec, 2, "[d_sae, d_out]");
  const int64_t nnz = values_in.size(0), M = offsets_in.size(0) - 1, S = w_dec.size(0);
  GC_CHECK(indices_in.size(0) == nnz, ValueError, op, ": values has ", nnz,
           " entries but indices has ", indices_in.size(0));
  GC_CHECK(M >= 0, ValueError, op, ": offsets must have rows + 1 >= 1 entries, got none");
  Tensor vk, ik, ok;
  const TensorView& values = dense(values_in, vk);
  const TensorView& offsets = dense(offsets_in, ok);
  const int64_t* off = offsets.ptr<const int64_t>();
  GC_CHECK(off[0] == 0 && off[M] == nnz, ValueError, op, ": offsets must run from 0 to nnz = ",
           nnz, ", got ", off[0], " .. ", off[M]);
  for (int64_t m = 0; m < M; ++m)
    GC_CHECK(off[m] <= off[m + 1], ValueError, op, ": offsets must be non-decreasing, but offsets[",
             m, "] = ", off[m], " > offsets[", m + 1, "] = ", off[m + 1]);
  std::vector<int32_t> idx(static_cast<size_t>(nnz));
  for (int64_t j = 0; j < nnz; ++j) {
    const int64_t i = indices_in.dtype == DType::kI32
                          ? indices_in.ptr<const int32_t>()[j * indices_in.stride(0)]
                          : indices_in.ptr<const int64_t>()[j * indices_in.stride(0)];
    GC_CHECK(i >= 0 && i < S, ValueError, op, ": indices[", j, "] = ", i,
             " is not a feature of W_dec ", w_dec.shape_str(), " ([d_sae, d_out])");
    idx[size_t(j)] = int32_t(i);
  }
  return decode_rows(op, off, idx.data(), values.ptr<const float>(), M, w_dec, b_dec,
                     {M, w_dec.size(1)}, out);
}

Tensor sae_decode_dense(const TensorView& acts_in, const TensorView& w_dec, const TensorView* b_dec,
                        const TensorView* out) {
  const char* op = "sae_decode";
  check_cpu(op, acts_in);
  Tensor keep;
  int64_t M = 0;
  const TensorView& acts = as_rows(op, "acts", acts_in, keep, &M);
  check_rank(op, "W_dec", w_dec, 2, "[d_sae, d_out]");
  const int64_t S = acts.shape.back();
  GC_CHECK(w_dec.size(0) == S, ValueError, op, ": acts has d_sae = ", S,
           " (its last dimension) but W_dec is ", w_dec.shape_str(), " ([d_sae, d_out])");
  const cpu::SparseRows s = cpu::sparse_rows(acts.ptr<const float>(), S, M, S);
  return decode_rows(op, s.offsets.data(), s.indices.data(), s.values.data(), M, w_dec, b_dec,
                     with_last(acts_in, w_dec.size(1)), out);
}

}  // namespace gemmacpp::ops
