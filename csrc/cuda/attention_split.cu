// Split-K attention on CUDA cores (flash-decoding): the keys a query group can see are cut into
// splits, each block folds one split into an unnormalised partial output with its running max and
// sum, and a second kernel combines the splits. Used for decode (Tq <= 8) in every dtype and for
// float32 at any Tq.
#include <cuda_runtime.h>

#include <algorithm>

#include "csrc/core/error.h"
#include "csrc/cuda/attention_mask.cuh"
#include "csrc/cuda/attention_split.cuh"
#include "csrc/cuda/common.cuh"
#include "csrc/cuda/dtype_dispatch.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda::detail {
namespace {

constexpr int kThreads = 128;                      // 4 warps
constexpr int kRows = 8;                           // query rows per block
constexpr int kKeys = 32;                          // keys per shared-memory tile (one per lane)
constexpr int kAccPerThread = kRows * int(kMaxAttentionHeadDim) / kThreads;  // 16

template <class T>
struct SplitParams {
  const T* q;
  const T* k;
  const T* v;
  float* part_o;   // [splits, B * Hq * Tq, D]
  float* part_ml;  // [splits, B * Hq * Tq, 2]: running max and sum
  int64_t qs[3], ks[3], vs[3];
  int64_t Tq, Tk, Hq, Hkv, D, G;  // G = Hq / Hkv
  int64_t q_start;
  int64_t keys_per_split;  // a multiple of kKeys
  float scale, softcap;
  AttentionMask mask;
};

// Row padding of the K tile in shared memory (one 32-bit word) so that lanes reading different
// keys of the same dimension fall in different banks.
template <class T>
__host__ __device__ constexpr int64_t k_row(int64_t D) {
  return D + (sizeof(T) == 4 ? 1 : 2);
}

__device__ __forceinline__ float warp_max(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Block (split, b * Hkv + kv head, row group). The block's rows are up to kRows consecutive
// (query head in the group, query) pairs of one KV head, so that the K/V tiles it loads serve
// every query head of the group (GQA/MQA read the cache once per group, not once per head).
template <class T>
__global__ void __launch_bounds__(kThreads) split_kernel(SplitParams<T> P) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t D = P.D, kst = k_row<T>(D);
  float* q_s = reinterpret_cast<float*>(smem);             // [kRows][D]
  float* s_s = q_s + kRows * D;                             // [kRows][kKeys]
  float* alpha_s = s_s + kRows * kKeys;                     // [kRows]
  T* k_s = reinterpret_cast<T*>(alpha_s + kRows);           // [kKeys][kst]
  T* v_s = k_s + kKeys * kst;                               // [kKeys][D]

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t split = blockIdx.x;
  const int64_t b = blockIdx.y / P.Hkv, kvh = blockIdx.y % P.Hkv;
  const int64_t rows_total = P.G * P.Tq;
  const int64_t r0 = int64_t(blockIdx.z) * kRows;
  const int nrows = int(rows_total - r0 < kRows ? rows_total - r0 : kRows);

  // Positions of this block's rows; the keys any of them sees.
  int64_t p_lo = INT64_MAX, p_hi = INT64_MIN;
  for (int r = 0; r < nrows; ++r) {
    const int64_t p = P.q_start + (r0 + r) % P.Tq;
    p_lo = p < p_lo ? p : p_lo;
    p_hi = p > p_hi ? p : p_hi;
  }
  const KeyRanges kr = key_ranges(P.mask, p_lo, p_hi);
  const int64_t n_vis = kr.count();
  const int64_t v0 = split * P.keys_per_split;
  const int64_t v1 = v0 + P.keys_per_split < n_vis ? v0 + P.keys_per_split : n_vis;

  for (int64_t e = tid; e < kRows * D; e += kThreads) {
    const int r = int(e / D);
    const int64_t d = e % D;
    float x = 0.0f;
    if (r < nrows) {
      const int64_t row = r0 + r, hq = kvh * P.G + row / P.Tq, i = row % P.Tq;
      x = to_f32(P.q[b * P.qs[0] + i * P.qs[1] + hq * P.qs[2] + d]);
    }
    q_s[e] = x;
  }
  // Warp w owns the softmax state of rows w and w + 4 (every lane holds the same values).
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  bool poisoned[2] = {false, false};  // the row saw a NaN or +inf score (output_scale)
  float acc[kAccPerThread];
#pragma unroll
  for (int t = 0; t < kAccPerThread; ++t) acc[t] = 0.0f;

  const T* kbase = P.k + b * P.ks[0] + kvh * P.ks[2];
  const T* vbase = P.v + b * P.vs[0] + kvh * P.vs[2];
  for (int64_t vt = v0; vt < v1; vt += kKeys) {
    const int n = int(v1 - vt < kKeys ? v1 - vt : kKeys);
    __syncthreads();  // the previous tile is consumed (and q_s is written, on the first pass)
    for (int64_t e = tid; e < n * D; e += kThreads) {
      const int64_t c = e / D, d = e % D, j = kr.key(vt + c);
      k_s[c * kst + d] = kbase[j * P.ks[1] + d];
      v_s[c * D + d] = vbase[j * P.vs[1] + d];
    }
    __syncthreads();
    // Scores: warp-uniform row, one key per lane.
    for (int e = tid; e < kRows * kKeys; e += kThreads) {
      const int r = e / kKeys, c = e % kKeys;
      float s = -INFINITY;
      if (r < nrows && c < n) {
        const int64_t j = kr.key(vt + c), p = P.q_start + (r0 + r) % P.Tq;
        if (P.mask.visible(j, p)) {
          const float* qr = q_s + r * D;
          const T* kc = k_s + c * kst;
          float dot = 0.0f;
          for (int64_t d = 0; d < D; ++d) dot = fmaf(qr[d], to_f32(kc[d]), dot);
          s = dot * P.scale;
          if (P.softcap > 0.0f) s = P.softcap * tanhf(s / P.softcap);
        }
      }
      s_s[e] = s;
    }
    __syncthreads();
    // Online softmax of the tile, one row per warp at a time.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = warp + 4 * h;
      float s = s_s[r * kKeys + lane];
      // A NaN or +inf score makes the row's output NaN; its softmax state stays finite.
      poisoned[h] = poisoned[h] || __any_sync(0xffffffffu, poisons_row(s));
      if (poisons_row(s)) s = -INFINITY;
      const float m_new = fmaxf(m_run[h], warp_max(s));
      const float base = m_new == -INFINITY ? 0.0f : m_new;  // a row with nothing visible yet
      const float p = __expf(s - base);                       // exp(-inf) = 0 for masked keys
      const float alpha = __expf(m_run[h] - base);
      l_run[h] = l_run[h] * alpha + warp_sum(p);
      m_run[h] = m_new;
      s_s[r * kKeys + lane] = p;
      if (lane == 0) alpha_s[r] = alpha;
    }
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kAccPerThread; ++t) {
      const int64_t e = tid + int64_t(t) * kThreads;
      if (e < kRows * D) {
        const int r = int(e / D);
        const int64_t d = e % D;
        const float* pr = s_s + r * kKeys;
        float a = acc[t] * alpha_s[r];
        for (int c = 0; c < n; ++c) a = fmaf(pr[c], to_f32(v_s[c * D + d]), a);
        acc[t] = a;
      }
    }
  }

  // Partial results of this split, indexed by the global row (b, hq, i).
  const int64_t NR = int64_t(gridDim.y / P.Hkv) * P.Hq * P.Tq;
  auto global_row = [&](int r) {
    const int64_t row = r0 + r, hq = kvh * P.G + row / P.Tq, i = row % P.Tq;
    return (b * P.Hq + hq) * P.Tq + i;
  };
#pragma unroll
  for (int t = 0; t < kAccPerThread; ++t) {
    const int64_t e = tid + int64_t(t) * kThreads;
    if (e < kRows * D) {
      const int r = int(e / D);
      if (r < nrows) P.part_o[(split * NR + global_row(r)) * D + e % D] = acc[t];
    }
  }
  if (lane == 0) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = warp + 4 * h;
      if (r < nrows) {
        float* ml = P.part_ml + (split * NR + global_row(r)) * 2;
        ml[0] = m_run[h];
        ml[1] = poisoned[h] ? NAN : l_run[h];  // a NaN sum marks a poisoned row
      }
    }
  }
}

// One block per (b, hq, i) row: out = sum_s e^(m_s - M) o_s / sum_s e^(m_s - M) l_s; zeros
// when no split saw a visible key, NaN when one saw a NaN or +inf score (a NaN l_s) or all the
// row's visible scores are -inf (output_scale).
template <class T>
__global__ void combine_kernel(const float* part_o, const float* part_ml, int64_t splits,
                               int64_t NR, int64_t Tq, int64_t Hq, int64_t D, T* out,
                               int64_t os0, int64_t os1, int64_t os2, AttentionMask mask) {
  const int64_t row = blockIdx.x;
  float M = -INFINITY;
  bool poisoned = false;
  for (int64_t s = 0; s < splits; ++s) {
    M = fmaxf(M, part_ml[(s * NR + row) * 2]);
    poisoned = poisoned || isnan(part_ml[(s * NR + row) * 2 + 1]);
  }
  float L = 0.0f;
  if (M != -INFINITY && !poisoned) {
    for (int64_t s = 0; s < splits; ++s) {
      const float* ml = part_ml + (s * NR + row) * 2;
      L += ml[1] * __expf(ml[0] - M);
    }
  }
  const int64_t i = row % Tq, hq = (row / Tq) % Hq, b = row / (Tq * Hq);
  const float scale = output_scale(L, poisoned, mask.sees_keys(mask.args.q_start + i));
  T* o = out + b * os0 + i * os1 + hq * os2;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = 0.0f;
    if (L > 0.0f) {
      for (int64_t s = 0; s < splits; ++s) {
        const float m = part_ml[(s * NR + row) * 2];
        acc += part_o[(s * NR + row) * D + d] * __expf(m - M);
      }
    }
    o[d] = from_f32<T>(L > 0.0f ? acc / L : scale);  // 0 or NaN without a sum
  }
}

int sm_count(int device) {
  int n = 0;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) n = 1;
  return n > 0 ? n : 1;
}

}  // namespace

void attention_split(const AttentionArgs& a, int device) {
  GC_CHECK(cudaSetDevice(device) == cudaSuccess, ValueError, "cannot use CUDA device ", device);
  const int64_t G = a.Hq / a.Hkv;
  const int64_t row_groups = (G * a.Tq + kRows - 1) / kRows;
  GC_CHECK(a.B * a.Hkv <= 65535 && row_groups <= 65535, ValueError,
           "attention: batch * kv_heads = ", a.B * a.Hkv, " or (heads / kv_heads) * Tq / ", kRows,
           " = ", row_groups, " exceeds the CUDA grid (65535)");
  AttentionMask mask;
  mask.args = a;
  // Split the keys that the whole query block can see so that there are about two blocks per SM;
  // the split boundaries depend only on the shape and the device, never on timing.
  const int64_t n_vis = key_ranges(mask, a.q_start, a.q_start + a.Tq - 1).count();
  const int64_t base_blocks = a.B * a.Hkv * row_groups;
  const int64_t tiles = std::max<int64_t>(1, (n_vis + kKeys - 1) / kKeys);
  int64_t splits = std::min<int64_t>(tiles, (2 * sm_count(device) + base_blocks - 1) / base_blocks);
  splits = std::max<int64_t>(1, std::min<int64_t>(splits, 65535));
  const int64_t keys_per_split = (tiles + splits - 1) / splits * kKeys;
  splits = std::max<int64_t>(1, (n_vis + keys_per_split - 1) / keys_per_split);

  const int64_t NR = a.B * a.Hq * a.Tq;
  GC_CHECK(NR <= 0x7fffffff, ValueError, "attention: B * heads * Tq = ", NR,
           " rows exceed the CUDA grid");
  // Scratch for the partials, stream-ordered on the default stream like the kernels: freed after
  // the combine kernel has run, without a host synchronisation.
  const size_t part_bytes = size_t(splits * NR) * size_t(a.D + 2) * sizeof(float);
  void* scratch = nullptr;
  const cudaError_t err = cudaMallocAsync(&scratch, part_bytes, cudaStreamLegacy);
  GC_CHECK(err == cudaSuccess, ValueError, "attention: cudaMallocAsync of ", part_bytes,
           " bytes failed: ", cudaGetErrorString(err));
  struct FreeAfterUse {
    void* p;
    ~FreeAfterUse() { cudaFreeAsync(p, cudaStreamLegacy); }
  } free_after_use{scratch};
  float* part_o = static_cast<float*>(scratch);
  float* part_ml = part_o + splits * NR * a.D;

  visit_float(a.dtype, [&](auto tag) {
    using T = decltype(tag);
    SplitParams<T> P;
    P.q = static_cast<const T*>(a.q);
    P.k = static_cast<const T*>(a.k);
    P.v = static_cast<const T*>(a.v);
    P.part_o = part_o;
    P.part_ml = part_ml;
    for (int i = 0; i < 3; ++i) {
      P.qs[i] = a.q_stride[i], P.ks[i] = a.k_stride[i], P.vs[i] = a.v_stride[i];
    }
    P.Tq = a.Tq, P.Tk = a.Tk, P.Hq = a.Hq, P.Hkv = a.Hkv, P.D = a.D, P.G = G;
    P.q_start = a.q_start;
    P.keys_per_split = keys_per_split;
    P.scale = a.scale, P.softcap = a.softcap;
    P.mask = mask;
    const size_t smem = sizeof(float) * size_t(kRows * a.D + kRows * kKeys + kRows) +
                        sizeof(T) * size_t(kKeys * k_row<T>(a.D) + kKeys * a.D);
    cudaFuncSetAttribute(split_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    const dim3 grid(unsigned(splits), unsigned(a.B * a.Hkv), unsigned(row_groups));
    split_kernel<T><<<grid, kThreads, smem, cudaStreamLegacy>>>(P);
    check_launch("attention (split-K kernel)");
    const int threads = int(std::min<int64_t>(256, (a.D + 31) / 32 * 32));
    combine_kernel<T><<<unsigned(NR), threads, 0, cudaStreamLegacy>>>(
        part_o, part_ml, splits, NR, a.Tq, a.Hq, a.D, static_cast<T*>(a.out), a.out_stride[0],
        a.out_stride[1], a.out_stride[2], mask);
  });
  check_launch("attention (split combine)");
}

}  // namespace gemmacpp::cuda::detail
