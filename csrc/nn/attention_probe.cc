#include "csrc/nn/attention_probe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "csrc/cpu/linear.h"

namespace gemmacpp {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// The kernel's visibility rule (csrc/cpu/attention.h) for key index j and query key index p, or
// query t's explicit key range [lo, hi) when the call gave ranges.
bool visible(const cpu::AttentionArgs& a, int64_t n_keys, int64_t p, int64_t j,
             const int64_t* range) {
  if (j < a.prefix_len) return true;
  if (range) return j >= range[0] && j < std::min(range[1], n_keys);
  const int64_t hi = a.causal ? std::min(p + 1, n_keys) : n_keys;
  const int64_t lo = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
  return j >= lo && j < hi;
}

}  // namespace

AttentionProbe::AttentionProbe(int64_t T, const std::vector<int64_t>& count,
                               const std::vector<int64_t>& offset, const std::vector<int64_t>& start)
    : T_(T), count_(count), offset_(offset), start_(start), seqs_(count.size()) {
  for (size_t b = 0; b < count.size(); ++b) Tk_ = std::max(Tk_, start[b] + count[b]);
}

void AttentionProbe::add(int64_t b, const cpu::AttentionArgs& a) {
  mask_ = a;
  Sequence& s = seqs_[size_t(b)];
  const int64_t R = a.Hkv * a.D;
  s.n_keys = a.Tk;
  s.q_start = a.q_start;
  s.first_key = start_[size_t(b)] - a.q_start;
  s.ranges.clear();
  if (a.key_lo) {  // copied: the forward reuses its range buffers for the next sequence
    for (int64_t t = 0; t < a.Tq; ++t) {
      s.ranges.push_back(a.key_lo[t]);
      s.ranges.push_back(a.key_hi[t]);
    }
  }
  s.k.resize(size_t(a.Tk * R));
  s.v.resize(size_t(a.Tk * R));
  const float* k = static_cast<const float*>(a.k);
  const float* v = static_cast<const float*>(a.v);
  for (int64_t j = 0; j < a.Tk; ++j) {
    std::memcpy(s.k.data() + j * R, k + j * a.k_stride[1], size_t(R) * sizeof(float));
    std::memcpy(s.v.data() + j * R, v + j * a.v_stride[1], size_t(R) * sizeof(float));
  }
}

void AttentionProbe::run(HookSet& hooks, int64_t layer, const float* q, float* out) {
  const cpu::AttentionArgs& a = mask_;
  const int64_t B = int64_t(count_.size()), H = a.Hq, D = a.D, G = a.Hq / a.Hkv, R = a.Hkv * D;
  const int64_t T = T_, Tk = Tk_;
  std::vector<float> s(size_t(B * H * T * Tk), 0.0f);  // scores, then (in place) the pattern
  auto at = [&](int64_t b, int64_t h, int64_t t) { return s.data() + ((b * H + h) * T + t) * Tk; };

  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = count_[size_t(b)];
    if (n == 0) continue;
    const Sequence& sq = seqs_[size_t(b)];
    for (int64_t h = 0; h < H; ++h) {
      // Raw dot products of the held keys, at their absolute positions.
      cpu::linear(q + offset_[size_t(b)] * H * D + h * D, H * D, n, D, DType::kF32,
                  sq.k.data() + (h / G) * D, R, sq.n_keys, nullptr, at(b, h, 0) + sq.first_key, Tk);
      for (int64_t t = 0; t < n; ++t) {
        float* row = at(b, h, t);
        for (int64_t j = 0; j < Tk; ++j) {
          const int64_t jj = j - sq.first_key;  // key index in the kernel's terms
          if (jj < 0 || jj >= sq.n_keys || !visible(a, sq.n_keys, sq.q_start + t, jj,
                                                            sq.ranges.empty() ? nullptr : &sq.ranges[size_t(2 * t)])) {
            row[j] = kNegInf;
            continue;
          }
          float x = row[j] * a.scale;
          if (a.softcap > 0) x = a.softcap * std::tanh(x / a.softcap);
          row[j] = x;
        }
      }
    }
  }
  const std::vector<int64_t> shape = {B, H, T, Tk};
  if (hooks.wants(HookPoint::kScores, layer)) hooks.call(HookPoint::kScores, layer, s.data(), shape);

  // Softmax over the keys the sequence holds (edits may unmask them); -inf gets weight 0 and a
  // row with no finite score is all zeros. Padding rows and keys not held are zero.
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = count_[size_t(b)];
    const Sequence& sq = seqs_[size_t(b)];
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = 0; t < T; ++t) {
        float* row = at(b, h, t);
        if (t >= n) {
          std::fill(row, row + Tk, 0.0f);
          continue;
        }
        float* held = row + sq.first_key;
        std::fill(row, held, 0.0f);
        std::fill(held + sq.n_keys, row + Tk, 0.0f);
        float m = kNegInf;
        for (int64_t j = 0; j < sq.n_keys; ++j) m = std::max(m, held[j]);
        if (m == kNegInf) {
          std::fill(held, held + sq.n_keys, 0.0f);
          continue;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < sq.n_keys; ++j) {
          held[j] = std::exp(held[j] - m);
          sum += held[j];
        }
        const float inv = float(1.0 / sum);
        for (int64_t j = 0; j < sq.n_keys; ++j) held[j] *= inv;
      }
    }
  }
  if (hooks.wants(HookPoint::kPattern, layer)) hooks.call(HookPoint::kPattern, layer, s.data(), shape);

  // z = pattern @ v per head, from the held keys' columns only.
  std::vector<float> vt;  // one KV head's values transposed: [D, n_keys]
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = count_[size_t(b)];
    if (n == 0) continue;
    const Sequence& sq = seqs_[size_t(b)];
    vt.resize(size_t(D * sq.n_keys));
    for (int64_t kvh = 0; kvh < a.Hkv; ++kvh) {
      for (int64_t j = 0; j < sq.n_keys; ++j) {
        for (int64_t d = 0; d < D; ++d) vt[size_t(d * sq.n_keys + j)] = sq.v[size_t(j * R + kvh * D + d)];
      }
      for (int64_t h = kvh * G; h < (kvh + 1) * G; ++h) {
        cpu::linear(at(b, h, 0) + sq.first_key, Tk, n, sq.n_keys, DType::kF32, vt.data(), sq.n_keys,
                    D, nullptr, out + offset_[size_t(b)] * H * D + h * D, H * D);
      }
    }
  }
}

}  // namespace gemmacpp
