#include "csrc/nn/sequence_attention.h"

#include <algorithm>
#include <cstring>

namespace gemmacpp {

cpu::AttentionArgs packed_sequence_attention(const float* q, float* out, const float* k, const float* v,
                                             int64_t r0, int64_t n, int64_t H, int64_t K, int64_t D) {
  const int64_t R = K * D;
  cpu::AttentionArgs a;
  a.dtype = DType::kF32;
  a.q = q + r0 * H * D; a.out = out + r0 * H * D;
  a.k = k + r0 * R; a.v = v + r0 * R;
  a.B = 1; a.Tq = n; a.Tk = n; a.Hq = H; a.Hkv = K; a.D = D;
  const int64_t qs[3] = {n * H * D, H * D, D}, ks[3] = {n * R, R, D};
  for (int j = 0; j < 3; ++j) {
    a.q_stride[j] = a.out_stride[j] = qs[j];
    a.k_stride[j] = a.v_stride[j] = ks[j];
  }
  a.causal = true;
  return a;
}

int64_t ring_window(float* ring_k, float* ring_v, int64_t W, int64_t pos0, const float* new_k,
                    const float* new_v, int64_t n, int64_t R, std::vector<float>& k_win,
                    std::vector<float>& v_win, cpu::AttentionArgs& a) {
  const int64_t n_old = std::min(W - 1, pos0);
  const size_t row_bytes = size_t(R) * sizeof(float);
  k_win.resize(size_t((n_old + n) * R));
  v_win.resize(size_t((n_old + n) * R));
  for (int64_t j = 0; j < n_old; ++j) {
    const int64_t src = (pos0 - n_old + j) % W;
    std::memcpy(k_win.data() + j * R, ring_k + src * R, row_bytes);
    std::memcpy(v_win.data() + j * R, ring_v + src * R, row_bytes);
  }
  std::memcpy(k_win.data() + n_old * R, new_k, size_t(n) * row_bytes);
  std::memcpy(v_win.data() + n_old * R, new_v, size_t(n) * row_bytes);
  // Only the last W new positions can be seen again.
  for (int64_t t = std::max<int64_t>(0, n - W); t < n; ++t) {
    const int64_t dst = (pos0 + t) % W;
    std::memcpy(ring_k + dst * R, new_k + t * R, row_bytes);
    std::memcpy(ring_v + dst * R, new_v + t * R, row_bytes);
  }
  a.k = k_win.data(); a.v = v_win.data();
  a.Tk = n_old + n;
  a.q_start = n_old;
  a.k_stride[0] = a.v_stride[0] = a.Tk * R;
  return n_old;
}

}  // namespace gemmacpp
