// Flash-attention forward on tensor cores for float16/bfloat16 (mma.sync m16n8k16, float32
// accumulation), FlashAttention-2 style: a block owns 64 queries of one head (4 warps, 16 rows
// each), walks the visible key tiles in shared memory, and keeps the softmax state and the output
// in registers. Tiles outside the causal/window band are never loaded; tiles wholly inside it
// skip the per-element mask.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "csrc/core/error.h"
#include "csrc/cuda/attention_mask.cuh"
#include "csrc/cuda/attention_split.cuh"
#include "csrc/cuda/runtime.h"

namespace gemmacpp::cuda::detail {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kBlockRows = 16 * kWarps;  // queries per block
constexpr int kPad = 8;                  // elements of row padding in shared memory (16 bytes)

template <class T>
struct MmaParams {
  const T* q;
  const T* k;
  const T* v;
  T* out;
  int64_t qs[3], ks[3], vs[3], os[3];
  int64_t Tq, Tk, Hq, G, D;  // G = Hq / Hkv
  int64_t q_start;
  float scale, softcap;
  AttentionMask mask;
  bool vec8;  // D, strides and pointers allow 16-byte loads
};

template <class T> struct Mma;
// D (16x8, f32) += A (16x16, row-major) * B (16x8, column-major). Fragment layouts: PTX ISA,
// "Matrix Fragments for mma.m16n8k16 with floating point type".
template <> struct Mma<__half> {
  __device__ __forceinline__ static void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    __trap();
#endif
  }
  __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
};
template <> struct Mma<__nv_bfloat16> {
  __device__ __forceinline__ static void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    __trap();
#endif
  }
  __device__ __forceinline__ static uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
};

template <class T>
__device__ __forceinline__ uint32_t load_pair(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// Copies rows [t0, t0 + n) (n <= R) of a [*, D] head slice with row stride `rs` into R rows of
// shared memory of DP + kPad elements, zero-filling rows past n and columns past D. With
// `transpose`, element (row c, dim d) goes to dst[d * (R + kPad) + c] instead.
template <class T, int DP, int R, bool kTranspose>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int64_t rs, int64_t n, int64_t D,
                                          bool vec8) {
  const T zero = T(0.0f);
  if (vec8) {
    constexpr int kChunks = DP / 8;
    for (int e = threadIdx.x; e < R * kChunks; e += kThreads) {
      const int c = e / kChunks, d = (e % kChunks) * 8;
      uint4 val = make_uint4(0, 0, 0, 0);
      if (c < n && d < D) val = *reinterpret_cast<const uint4*>(src + c * rs + d);
      if (!kTranspose) {
        *reinterpret_cast<uint4*>(dst + c * (DP + kPad) + d) = val;
      } else {
        const T* t = reinterpret_cast<const T*>(&val);
#pragma unroll
        for (int u = 0; u < 8; ++u) dst[(d + u) * (R + kPad) + c] = t[u];
      }
    }
  } else {
    for (int e = threadIdx.x; e < R * DP; e += kThreads) {
      const int c = e / DP, d = e % DP;
      const T val = (c < n && d < D) ? src[c * rs + d] : zero;
      if (!kTranspose) dst[c * (DP + kPad) + d] = val;
      else dst[d * (R + kPad) + c] = val;
    }
  }
}

// Grid (query blocks, Hq, B). DP: head_dim rounded up to 64/128/256; BC: keys per tile.
template <class T, int DP, int BC>
__global__ void __launch_bounds__(kThreads) mma_kernel(MmaParams<T> P) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int QST = DP + kPad, KST = DP + kPad, VST = BC + kPad;
  T* q_s = reinterpret_cast<T*>(smem);  // [kBlockRows][QST]
  T* k_s = q_s + kBlockRows * QST;      // [BC][KST]
  T* vt_s = k_s + BC * KST;             // [DP][VST]: V transposed, keys contiguous

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, tig = lane % 4;  // mma fragment coordinates
  // Last query block first: under a causal mask later queries see more keys, and starting the
  // longest blocks first shortens the tail of the grid.
  const int64_t i0 = int64_t(gridDim.x - 1 - blockIdx.x) * kBlockRows;
  const int64_t hq = blockIdx.y, b = blockIdx.z, kvh = hq / P.G;
  const int64_t n_q = P.Tq - i0 < kBlockRows ? P.Tq - i0 : kBlockRows;
  const int64_t p_lo = P.q_start + i0, p_hi = p_lo + n_q - 1;
  const T* kbase = P.k + b * P.ks[0] + kvh * P.ks[2];
  const T* vbase = P.v + b * P.vs[0] + kvh * P.vs[2];

  load_tile<T, DP, kBlockRows, false>(q_s, P.q + b * P.qs[0] + i0 * P.qs[1] + hq * P.qs[2],
                                      P.qs[1], n_q, P.D, P.vec8);

  // Rows this thread holds in the C fragments: ra and ra + 8 of the warp's 16.
  const int ra = warp * 16 + g;
  const int64_t pos[2] = {p_lo + ra, p_lo + ra + 8};
  const int k_steps = int((P.D + 15) / 16);  // of the QK^T product; columns past D are zero
  const int d_tiles = int((P.D + 7) / 8);    // of the PV product
  constexpr int kNT = BC / 8, kDT = DP / 8;

  float o[kDT][4];
#pragma unroll
  for (int t = 0; t < kDT; ++t) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  int poisoned[2] = {0, 0};  // the row saw a NaN or +inf score (output_scale)

  const KeyRanges kr = key_ranges(P.mask, p_lo, p_hi);
  // Two passes: the prefix range, then the band; each tile stays inside its range so that no key
  // is counted twice.
  for (int range = 0; range < 2; ++range) {
    const int64_t jb = range == 0 ? 0 : kr.second_begin;
    const int64_t je = range == 0 ? kr.first_end : kr.second_end;
    for (int64_t j0 = jb; j0 < je; j0 += BC) {
      const int64_t n_k = je - j0 < BC ? je - j0 : BC;
      __syncthreads();  // the previous tile is consumed
      load_tile<T, DP, BC, false>(k_s, kbase + j0 * P.ks[1], P.ks[1], n_k, P.D, P.vec8);
      load_tile<T, DP, BC, true>(vt_s, vbase + j0 * P.vs[1], P.vs[1], n_k, P.D, P.vec8);
      __syncthreads();

      // S = Q K^T for the warp's 16 rows and the tile's BC keys.
      float s[kNT][4];
#pragma unroll
      for (int t = 0; t < kNT; ++t) s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.0f;
      for (int kk = 0; kk < k_steps; ++kk) {
        const int c = kk * 16 + tig * 2;
        uint32_t a[4];
        a[0] = load_pair(q_s + ra * QST + c);
        a[1] = load_pair(q_s + (ra + 8) * QST + c);
        a[2] = load_pair(q_s + ra * QST + c + 8);
        a[3] = load_pair(q_s + (ra + 8) * QST + c + 8);
#pragma unroll
        for (int t = 0; t < kNT; ++t) {
          const T* kr_ = k_s + (t * 8 + g) * KST + c;
          Mma<T>::run(s[t], a, load_pair(kr_), load_pair(kr_ + 8));
        }
      }

      // Scale, soft-cap, mask. A tile needs the per-element mask unless every key of it is in
      // range and visible to every query of the block.
      const bool full = n_k == BC && P.mask.all_visible(j0, j0 + BC, p_lo, p_hi);
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int t = 0; t < kNT; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float x = s[t][e] * P.scale;
          if (P.softcap > 0.0f) x = P.softcap * tanhf(x / P.softcap);
          if (!full) {
            const int64_t jj = t * 8 + tig * 2 + (e & 1);
            if (jj >= n_k || !P.mask.visible(j0 + jj, pos[e / 2])) x = -INFINITY;
          }
          if (poisons_row(x)) {  // the row's output becomes NaN; keep its softmax state finite
            poisoned[e / 2] = 1;
            x = -INFINITY;
          }
          s[t][e] = x;
          mx[e / 2] = fmaxf(mx[e / 2], x);
        }
      }
      // Online softmax: the 4 threads of a group share a row.
      float alpha[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
        const float m_new = fmaxf(m_run[h], mx[h]);
        const float base = m_new == -INFINITY ? 0.0f : m_new;  // nothing visible yet
        alpha[h] = __expf(m_run[h] - base);
        m_run[h] = m_new;
        mx[h] = base;
        l_run[h] *= alpha[h];  // per-thread partial sums; summed over the group at the end
      }
#pragma unroll
      for (int t = 0; t < kNT; ++t) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float p = __expf(s[t][e] - mx[e / 2]);
          s[t][e] = p;
          l_run[e / 2] += p;
        }
      }
#pragma unroll
      for (int t = 0; t < kDT; ++t) {
        o[t][0] *= alpha[0], o[t][1] *= alpha[0];
        o[t][2] *= alpha[1], o[t][3] *= alpha[1];
      }

      // O += P V: the C fragments of S, rounded to T, are the A fragments of P.
#pragma unroll
      for (int kk = 0; kk < BC / 16; ++kk) {
        uint32_t a[4];
        a[0] = Mma<T>::pack(s[2 * kk][0], s[2 * kk][1]);
        a[1] = Mma<T>::pack(s[2 * kk][2], s[2 * kk][3]);
        a[2] = Mma<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = Mma<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        const int c = kk * 16 + tig * 2;
#pragma unroll
        for (int t = 0; t < kDT; ++t) {
          if (t < d_tiles) {
            const T* vr = vt_s + (t * 8 + g) * VST + c;
            Mma<T>::run(o[t], a, load_pair(vr), load_pair(vr + 8));
          }
        }
      }
    }
  }

  // Normalise and store (output_scale: rows with no visible key get zeros, poisoned rows NaN).
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 1);
    l_run[h] += __shfl_xor_sync(0xffffffffu, l_run[h], 2);
    poisoned[h] |= __shfl_xor_sync(0xffffffffu, poisoned[h], 1);
    poisoned[h] |= __shfl_xor_sync(0xffffffffu, poisoned[h], 2);
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t i = i0 + ra + 8 * h;
    if (i >= P.Tq) continue;
    const float inv = output_scale(l_run[h], poisoned[h] != 0, P.mask.sees_keys(pos[h]));
    T* orow = P.out + b * P.os[0] + i * P.os[1] + hq * P.os[2];
#pragma unroll
    for (int t = 0; t < kDT; ++t) {
      const int d = t * 8 + tig * 2;
      if (d < P.D) orow[d] = T(o[t][2 * h] * inv);
      if (d + 1 < P.D) orow[d + 1] = T(o[t][2 * h + 1] * inv);
    }
  }
}

template <class T, int DP, int BC>
void launch(const MmaParams<T>& P, int64_t B) {
  constexpr size_t smem =
      sizeof(T) * (size_t(kBlockRows) * (DP + kPad) + size_t(BC) * (DP + kPad) +
                   size_t(DP) * (BC + kPad));
  // Above 48 KiB the kernel must opt in to the larger shared memory of sm_80/sm_90.
  cudaFuncSetAttribute(mma_kernel<T, DP, BC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       int(smem));
  const dim3 grid(unsigned((P.Tq + kBlockRows - 1) / kBlockRows), unsigned(P.Hq), unsigned(B));
  mma_kernel<T, DP, BC><<<grid, kThreads, smem, cudaStreamLegacy>>>(P);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void attention_mma(const AttentionArgs& a, int device) {
  GC_CHECK(cudaSetDevice(device) == cudaSuccess, ValueError, "cannot use CUDA device ", device);
  GC_CHECK(a.Hq <= 65535 && a.B <= 65535 && (a.Tq + kBlockRows - 1) / kBlockRows <= 0x7fffffff,
           ValueError, "attention: heads ", a.Hq, " or batch ", a.B,
           " exceed the CUDA grid (65535)");
  auto run = [&](auto tag) {
    using T = decltype(tag);
    MmaParams<T> P;
    P.q = static_cast<const T*>(a.q);
    P.k = static_cast<const T*>(a.k);
    P.v = static_cast<const T*>(a.v);
    P.out = static_cast<T*>(a.out);
    bool vec8 = a.D % 8 == 0 && aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
    for (int i = 0; i < 3; ++i) {
      P.qs[i] = a.q_stride[i], P.ks[i] = a.k_stride[i], P.vs[i] = a.v_stride[i];
      P.os[i] = a.out_stride[i];
      vec8 = vec8 && a.q_stride[i] % 8 == 0 && a.k_stride[i] % 8 == 0 && a.v_stride[i] % 8 == 0;
    }
    P.vec8 = vec8;
    P.Tq = a.Tq, P.Tk = a.Tk, P.Hq = a.Hq, P.G = a.Hq / a.Hkv, P.D = a.D;
    P.q_start = a.q_start;
    P.scale = a.scale, P.softcap = a.softcap;
    P.mask.args = a;
    // Smaller key tiles at D = 256 keep the output accumulators (128 floats a thread) in
    // registers.
    if (a.D <= 64) launch<T, 64, 64>(P, a.B);
    else if (a.D <= 128) launch<T, 128, 64>(P, a.B);
    else launch<T, 256, 32>(P, a.B);
  };
  if (a.dtype == DType::kF16) run(__half{});
  else if (a.dtype == DType::kBF16) run(__nv_bfloat16{});
  else throw TypeError("attention: the tensor-core kernel takes float16 or bfloat16");
  check_launch("attention (tensor-core kernel)");
}

}  // namespace gemmacpp::cuda::detail
