#include "csrc/ops/dispatch.h"

#include <string>

#include "csrc/core/error.h"
#include "csrc/cpu/activation.h"
#include "csrc/cpu/altup.h"
#include "csrc/cpu/attention.h"
#include "csrc/cpu/conv1d_temporal.h"
#include "csrc/cpu/elementwise.h"
#include "csrc/cpu/embedding.h"
#include "csrc/cpu/gaussian_topk.h"
#include "csrc/cpu/layer_norm.h"
#include "csrc/cpu/linear.h"
#include "csrc/cpu/moe.h"
#include "csrc/cpu/patches.h"
#include "csrc/cpu/pooling.h"
#include "csrc/cpu/quant.h"
#include "csrc/cpu/quant_int8.h"
#include "csrc/cpu/reference/attention_scores.h"
#include "csrc/cpu/reference/rg_lru_scan.h"
#include "csrc/cpu/rg_lru.h"
#include "csrc/cpu/rms_norm.h"
#include "csrc/cpu/rope.h"
#include "csrc/cpu/softcap.h"
#include "csrc/cpu/token_logprobs.h"
#ifdef GEMMACPP_WITH_CUDA
#include "csrc/cuda/activation.h"
#include "csrc/cuda/altup.h"
#include "csrc/cuda/attention.h"
#include "csrc/cuda/gaussian_topk.h"
#include "csrc/cuda/linear.h"
#include "csrc/cuda/rms_norm.h"
#include "csrc/cuda/rope.h"
#include "csrc/cuda/softcap.h"
#endif

namespace gemmacpp::ops::dispatch {
namespace {

[[noreturn]] void no_cuda_kernel(const char* op, Device device) {
  throw NotImplementedError(std::string(op) + ": no kernel for " + device.str() + " yet");
}

}  // namespace

// Without CUDA support every tensor is on the CPU (nothing else can be made), so the CUDA branch
// compiles away.
#ifdef GEMMACPP_WITH_CUDA
#define GEMMACPP_ON_CUDA(device, call) \
  if (!(device).is_cpu()) return call
#else
#define GEMMACPP_ON_CUDA(device, call) \
  if (!(device).is_cpu()) no_cuda_kernel(__func__, device)
#endif

void linear(Device device, const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, const float* bias, float* out, int64_t ldo) {
  GEMMACPP_ON_CUDA(device, cuda::linear(x, ldx, M, K, wdt, w, ldw, N, DType::kF32, bias, 1, out, ldo,
                                        device.index));
  cpu::linear(x, ldx, M, K, wdt, w, ldw, N, bias, out, ldo);
}

void linear_quantized(Device device, const float* x, int64_t ldx, int64_t M, int64_t K, QType t,
                      const uint8_t* w, int64_t N, const float* bias, float* out, int64_t ldo,
                      int64_t row_bytes, Activations act) {
  if (!device.is_cpu()) no_cuda_kernel("linear_quantized", device);
  if (act == Activations::kInt8) {
    return cpu::linear_quantized_int8(x, ldx, M, K, t, w, N, bias, out, ldo, row_bytes);
  }
  cpu::linear_quantized(x, ldx, M, K, t, w, N, bias, out, ldo, row_bytes);
}

void dequantize(Device device, QType t, const uint8_t* data, int64_t n, int64_t k, float* out) {
  if (!device.is_cpu()) no_cuda_kernel("dequantize", device);
  cpu::dequantize(t, data, n, k, out);
}

void embedding_rows(Device device, DType dt, const void* table, const int64_t* ids, int64_t M,
                    int64_t d, float scale, float* out) {
  if (!device.is_cpu()) no_cuda_kernel("embedding_rows", device);
  cpu::embedding_rows(dt, table, ids, M, d, scale, out);
}

void embedding_rows_quantized(Device device, QType qt, const uint8_t* table, uint64_t row_bytes,
                              const int64_t* ids, int64_t M, int64_t d, float scale, float* out) {
  if (!device.is_cpu()) no_cuda_kernel("embedding_rows_quantized", device);
  cpu::embedding_rows_quantized(qt, table, row_bytes, ids, M, d, scale, out);
}

void moe_route(Device device, const float* logits, int64_t M, int64_t E, int64_t k,
               const float* per_expert_scale, int32_t* ids, float* weights) {
  if (!device.is_cpu()) no_cuda_kernel("moe_route", device);
  cpu::moe_route(logits, M, E, k, per_expert_scale, ids, weights);
}

int64_t moe_workspace_floats(int64_t M, int64_t k, int64_t D, int64_t F) {
  return cpu::moe_workspace_floats(M, k, D, F);
}

void moe_experts(Device device, const float* x, int64_t ldx, int64_t M, const int32_t* ids,
                 const float* weights, int64_t k, const ExpertStack& gate_up,
                 const ExpertStack& down, float* out, int64_t ldo, float* workspace) {
  if (!device.is_cpu()) no_cuda_kernel("moe", device);
  cpu::moe_experts(x, ldx, M, ids, weights, k, gate_up, down, out, ldo, workspace);
}

void rms_norm(Device device, DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
              const void* weight, float eps, bool unit_offset) {
  GEMMACPP_ON_CUDA(device, cuda::rms_norm(dt, x, y, rows, d, wdt, weight, eps, unit_offset, device.index));
  cpu::rms_norm(dt, x, y, rows, d, wdt, weight, eps, unit_offset);
}

void layer_norm(Device device, DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
                const void* weight, const void* bias, float eps) {
  if (!device.is_cpu()) no_cuda_kernel("layer_norm", device);
  cpu::layer_norm(dt, x, y, rows, d, wdt, weight, bias, eps);
}

void rope(Device device, DType dt, const void* x, void* y, int64_t B, int64_t T, int64_t H, int64_t D,
          DType pos_dt, const void* positions, bool per_batch, double base, double scale,
          int64_t rotary_dim, int64_t rotated_pairs) {
  GEMMACPP_ON_CUDA(device, cuda::rope(dt, x, y, B, T, H, D, pos_dt, positions, per_batch, base, scale,
                                      rotary_dim, rotated_pairs, device.index));
  cpu::rope(dt, x, y, B, T, H, D, pos_dt, positions, per_batch, base, scale, rotary_dim, rotated_pairs);
}

void gelu_tanh(Device device, DType dt, const void* x, void* y, int64_t n) {
  GEMMACPP_ON_CUDA(device, cuda::gelu_tanh(dt, x, y, n, device.index));
  cpu::gelu_tanh(dt, x, y, n);
}

void geglu(Device device, DType dt, const void* gate, const void* up, void* y, int64_t n) {
  GEMMACPP_ON_CUDA(device, cuda::geglu(dt, gate, up, y, n, device.index));
  cpu::geglu(dt, gate, up, y, n);
}

void softcap(Device device, DType dt, const void* x, void* y, int64_t n, float cap) {
  GEMMACPP_ON_CUDA(device, cuda::softcap(dt, x, y, n, cap, device.index));
  cpu::softcap(dt, x, y, n, cap);
}

void add_into(Device device, float* x, const float* y, int64_t n) {
  if (!device.is_cpu()) no_cuda_kernel("add_into", device);
  cpu::add_into(x, y, n);
}

void scale_into(Device device, float* x, float s, int64_t n) {
  if (!device.is_cpu()) no_cuda_kernel("scale_into", device);
  cpu::scale_into(x, s, n);
}

void image_patches(Device device, const float* pixels, int64_t N, int64_t C, int64_t S, int64_t ps,
                   float* cols) {
  if (!device.is_cpu()) no_cuda_kernel("image_patches", device);
  cpu::image_patches(pixels, N, C, S, ps, cols);
}

void pool_patch_grid(Device device, const float* features, int64_t N, int64_t G, int64_t d, int64_t T,
                     float* out) {
  if (!device.is_cpu()) no_cuda_kernel("pool_patch_grid", device);
  cpu::pool_patch_grid(features, N, G, d, T, out);
}

void altup_predict(Device device, const float* streams, const float* router_logits, const float* coefs,
                   float* out, int64_t N, int64_t M, int64_t d) {
  GEMMACPP_ON_CUDA(device, cuda::altup_predict(streams, router_logits, coefs, out, N, M, d, device.index));
  cpu::altup_predict(streams, router_logits, coefs, out, N, M, d);
}

void altup_correct(Device device, const float* predictions, const float* activated, const float* router_logits,
                   const float* coefs, float* out, int64_t N, int64_t M, int64_t d) {
  GEMMACPP_ON_CUDA(device, cuda::altup_correct(predictions, activated, router_logits, coefs, out, N, M, d,
                                                device.index));
  cpu::altup_correct(predictions, activated, router_logits, coefs, out, N, M, d);
}

void altup_rescale(Device device, const float* streams, float* out, int64_t N, int64_t M, int64_t d, float eps) {
  GEMMACPP_ON_CUDA(device, cuda::altup_rescale(streams, out, N, M, d, eps, device.index));
  cpu::altup_rescale(streams, out, N, M, d, eps);
}

void mean_of_parts(Device device, const float* x, int64_t parts, int64_t n, float* out) {
  if (!device.is_cpu()) no_cuda_kernel("mean_of_parts", device);
  cpu::mean_of_parts(x, parts, n, out);
}

void scale_columns(Device device, const float* x, const float* scale, int64_t rows, int64_t d, float* out) {
  if (!device.is_cpu()) no_cuda_kernel("scale_columns", device);
  cpu::scale_columns(x, scale, rows, d, out);
}

void gaussian_topk(Device device, DType dt, const void* x, void* y, int64_t rows, int64_t F, float z) {
  GEMMACPP_ON_CUDA(device, cuda::gaussian_topk(dt, x, y, rows, F, z, device.index));
  cpu::gaussian_topk(dt, x, y, rows, F, z);
}

void mean_rows(Device device, const float* x, int64_t d, const int64_t* offset, const int64_t* skip, int64_t B,
               float* out) {
  if (!device.is_cpu()) no_cuda_kernel("mean_rows", device);
  cpu::mean_rows(x, d, offset, skip, B, out);
}

void l2_normalize_rows(Device device, const float* x, float* y, int64_t rows, int64_t d, float eps) {
  if (!device.is_cpu()) no_cuda_kernel("l2_normalize_rows", device);
  cpu::l2_normalize_rows(x, y, rows, d, eps);
}

void attention(Device device, const AttentionArgs* seqs, int64_t n) {
  if (!device.is_cpu()) {
#ifdef GEMMACPP_WITH_CUDA
    for (int64_t i = 0; i < n; ++i) {
      if (seqs[i].B > 0 && seqs[i].Tq > 0) cuda::attention(seqs[i], device.index);
    }
    return;
#else
    no_cuda_kernel("attention", device);
#endif
  }
  cpu::attention_varlen(seqs, n);
}

void conv1d_temporal(Device device, const Conv1dTemporalArgs& a) {
  if (!device.is_cpu()) no_cuda_kernel("conv1d_temporal", device);
  cpu::conv1d_temporal(a);
}

void rg_lru(Device device, const RgLruArgs& a) {
  if (!device.is_cpu()) no_cuda_kernel("rg_lru", device);
  cpu::rg_lru(a);
}

void attention_scores(Device device, const AttentionArgs* seqs, int64_t n, const int64_t* first_key,
                      int64_t T, int64_t Tk, float* s) {
  if (!device.is_cpu()) no_cuda_kernel("attention_scores", device);
  cpu::reference::attention_scores(seqs, n, first_key, T, Tk, s);
}

void attention_pattern(Device device, const AttentionArgs* seqs, int64_t n, const int64_t* first_key,
                       int64_t T, int64_t Tk, float* s) {
  if (!device.is_cpu()) no_cuda_kernel("attention_pattern", device);
  cpu::reference::attention_pattern(seqs, n, first_key, T, Tk, s);
}

void attention_values(Device device, const AttentionArgs* seqs, int64_t n, const int64_t* first_key,
                      int64_t T, int64_t Tk, const float* p) {
  if (!device.is_cpu()) no_cuda_kernel("attention_values", device);
  cpu::reference::attention_values(seqs, n, first_key, T, Tk, p);
}

std::vector<float> rg_lru_recurrence_weights(Device device, const float* gate_a, const uint8_t* reset,
                                             int64_t rows, int64_t W, DType a_dtype,
                                             const void* a_param, float c) {
  if (!device.is_cpu()) no_cuda_kernel("rg_lru_recurrence_weights", device);
  return cpu::reference::rg_lru_recurrence_weights(gate_a, reset, rows, W, a_dtype, a_param, c);
}

void rg_lru_scan(Device device, const float* a, const float* x, const float* gate_x, int64_t nb,
                 int64_t n, int64_t W, const float* h0, float* y, float* h_last) {
  if (!device.is_cpu()) no_cuda_kernel("rg_lru_scan", device);
  cpu::reference::rg_lru_scan(a, x, gate_x, nb, n, W, h0, y, h_last);
}

void token_logprobs(Device device, const float* logits, int64_t ld, int64_t M, int64_t V,
                    const int64_t* target, double* logp, int64_t* argmax) {
  if (!device.is_cpu()) no_cuda_kernel("token_logprobs", device);
  cpu::token_logprobs(logits, ld, M, V, target, logp, argmax);
}

}  // namespace gemmacpp::ops::dispatch
