// The unchecked entry of every op, for the model blocks (csrc/nn): the kernels' own arguments and
// a device to run on. Each entry only switches between the CPU kernel and the CUDA kernel (or says
// that an op has no CUDA kernel yet); the checks live in the checked entries (ops/<op>.h), which
// Python calls, so a model's forward pays nothing per call for them. The caller guarantees what
// those checks would: shapes, dtypes, contiguity, all pointers on `device`.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/core/activations.h"
#include "csrc/core/attention_args.h"
#include "csrc/core/conv1d_temporal_args.h"
#include "csrc/core/dtype.h"
#include "csrc/core/expert_stack.h"
#include "csrc/core/qtype.h"
#include "csrc/core/rg_lru_args.h"
#include "csrc/core/tensor.h"

namespace gemmacpp::ops::dispatch {

// out[m * ldo + n] = sum_k x[m * ldx + k] w[n * ldw + k] (+ bias[n]); x, out, bias float32; w
// float32, float16 or bfloat16 (wdt).
void linear(Device device, const float* x, int64_t ldx, int64_t M, int64_t K, DType wdt, const void* w,
            int64_t ldw, int64_t N, const float* bias, float* out, int64_t ldo);
// The same with w the [N, K] matrix of GGML blocks of type t, rows row_bytes apart (0: back to
// back; longer: the first K values of each stored row, K a multiple of the block size); with
// Activations::kInt8, x is rounded to int8 per block first (csrc/cpu/quant_int8.h).
void linear_quantized(Device device, const float* x, int64_t ldx, int64_t M, int64_t K, QType t,
                      const uint8_t* w, int64_t N, const float* bias, float* out, int64_t ldo,
                      int64_t row_bytes = 0, Activations act = Activations::kFloat32);
// n rows of k values of type t to float32.
void dequantize(Device device, QType t, const uint8_t* data, int64_t n, int64_t k, float* out);
// out[m, :] = table[ids[m], :] * scale: a [V, d] table of dtype dt, or (quantized) of GGML blocks
// of type qt, row_bytes per row.
void embedding_rows(Device device, DType dt, const void* table, const int64_t* ids, int64_t M,
                    int64_t d, float scale, float* out);
void embedding_rows_quantized(Device device, QType qt, const uint8_t* table, uint64_t row_bytes,
                              const int64_t* ids, int64_t M, int64_t d, float scale, float* out);

// Mixture of experts (csrc/cpu/moe.h): router logits [M, E] to ids and weights [M, k]; the experts'
// gated MLPs on the rows routed to each, into out [M, D] (workspace: moe_workspace_floats(M, k, D,
// F) floats, or null to allocate them per call).
void moe_route(Device device, const float* logits, int64_t M, int64_t E, int64_t k,
               const float* per_expert_scale, int32_t* ids, float* weights);
int64_t moe_workspace_floats(int64_t M, int64_t k, int64_t D, int64_t F);
void moe_experts(Device device, const float* x, int64_t ldx, int64_t M, const int32_t* ids,
                 const float* weights, int64_t k, const ExpertStack& gate_up,
                 const ExpertStack& down, float* out, int64_t ldo, float* workspace);

// logp[m] = logits[m, target[m]] - logsumexp(logits[m]) in float64 and argmax[m], for M rows of V
// float32 logits, row stride ld (csrc/cpu/token_logprobs.h).
void token_logprobs(Device device, const float* logits, int64_t ld, int64_t M, int64_t V,
                    const int64_t* target, double* logp, int64_t* argmax);

void rms_norm(Device device, DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
              const void* weight, float eps, bool unit_offset);
void layer_norm(Device device, DType dt, const void* x, void* y, int64_t rows, int64_t d, DType wdt,
                const void* weight, const void* bias, float eps);
void rope(Device device, DType dt, const void* x, void* y, int64_t B, int64_t T, int64_t H, int64_t D,
          DType pos_dt, const void* positions, bool per_batch, double base, double scale,
          int64_t rotary_dim, int64_t rotated_pairs);
void gelu_tanh(Device device, DType dt, const void* x, void* y, int64_t n);
void geglu(Device device, DType dt, const void* gate, const void* up, void* y, int64_t n);
void softcap(Device device, DType dt, const void* x, void* y, int64_t n, float cap);
void add_into(Device device, float* x, const float* y, int64_t n);  // x += y, float32
void scale_into(Device device, float* x, float s, int64_t n);       // x *= s, float32

// Gemma 3n (csrc/cpu/altup.h, gaussian_topk.h): AltUp's per-row stream mixing over streams [N, M, d]
// (out may alias the streams), and the gate's activation sparsity over rows of F.
void altup_predict(Device device, const float* streams, const float* router_logits, const float* coefs,
                   float* out, int64_t N, int64_t M, int64_t d);
void altup_correct(Device device, const float* predictions, const float* activated, const float* router_logits,
                   const float* coefs, float* out, int64_t N, int64_t M, int64_t d);
void altup_rescale(Device device, const float* streams, float* out, int64_t N, int64_t M, int64_t d, float eps);
void gaussian_topk(Device device, DType dt, const void* x, void* y, int64_t rows, int64_t F, float z);
// out[i] = the mean of `parts` float32 arrays of n (part p at x + p * n), summed in order.
void mean_of_parts(Device device, const float* x, int64_t parts, int64_t n, float* out);
// out[r, j] = x[r, j] * scale[j], float32 rows of d (out may be x).
void scale_columns(Device device, const float* x, const float* scale, int64_t rows, int64_t d, float* out);

// ViT patch layouts (csrc/cpu/patches.h): images to patch rows, patch grids average-pooled.
void image_patches(Device device, const float* pixels, int64_t N, int64_t C, int64_t S, int64_t ps,
                   float* cols);
void pool_patch_grid(Device device, const float* features, int64_t N, int64_t G, int64_t d, int64_t T,
                     float* out);

// Sentence pooling (csrc/cpu/pooling.h): per-sequence means of packed rows, unit-norm rows.
void mean_rows(Device device, const float* x, int64_t d, const int64_t* offset, const int64_t* skip, int64_t B,
               float* out);
void l2_normalize_rows(Device device, const float* x, float* y, int64_t rows, int64_t d, float eps);

// n independent attention problems (packed sequences, each its own AttentionArgs), in one call.
void attention(Device device, const AttentionArgs* seqs, int64_t n);
void conv1d_temporal(Device device, const Conv1dTemporalArgs& a);
void rg_lru(Device device, const RgLruArgs& a);

// CPU references of what the fused kernels keep to themselves, for the hooks that read or edit
// it (csrc/cpu/reference): attention scores and patterns, the RG-LRU's recurrence weights.
void attention_scores(Device device, const AttentionArgs* seqs, int64_t n, const int64_t* first_key,
                      int64_t T, int64_t Tk, float* s);
void attention_pattern(Device device, const AttentionArgs* seqs, int64_t n, const int64_t* first_key,
                       int64_t T, int64_t Tk, float* s);
void attention_values(Device device, const AttentionArgs* seqs, int64_t n, const int64_t* first_key,
                      int64_t T, int64_t Tk, const float* p);
std::vector<float> rg_lru_recurrence_weights(Device device, const float* gate_a, const uint8_t* reset,
                                             int64_t rows, int64_t W, DType a_dtype,
                                             const void* a_param, float c);
void rg_lru_scan(Device device, const float* a, const float* x, const float* gate_x, int64_t nb,
                 int64_t n, int64_t W, const float* h0, float* y, float* h_last);

}  // namespace gemmacpp::ops::dispatch
