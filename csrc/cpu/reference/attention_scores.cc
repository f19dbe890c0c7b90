#include "csrc/cpu/reference/attention_scores.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "csrc/cpu/linear.h"

namespace gemmacpp::cpu::reference {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

void attention_scores(const AttentionArgs* seqs, int64_t n, const int64_t* first_key, int64_t T,
                      int64_t Tk, float* s) {
  for (int64_t b = 0; b < n; ++b) {
    const AttentionArgs& a = seqs[b];
    const int64_t H = a.Hq, D = a.D, G = a.Hq / a.Hkv;
    float* sb = s + b * H * T * Tk;
    std::fill(sb, sb + H * T * Tk, 0.0f);
    if (a.Tq == 0) continue;
    for (int64_t h = 0; h < H; ++h) {
      float* rows = sb + h * T * Tk;
      // Raw dot products of the held keys, at their absolute positions.
      cpu::linear(static_cast<const float*>(a.q) + h * D, a.q_stride[1], a.Tq, D, DType::kF32,
                  static_cast<const float*>(a.k) + (h / G) * D, a.k_stride[1], a.Tk, nullptr,
                  rows + first_key[b], Tk);
      for (int64_t t = 0; t < a.Tq; ++t) {
        float* row = rows + t * Tk;
        for (int64_t j = 0; j < Tk; ++j) {
          const int64_t jj = j - first_key[b];  // key index in the kernel's terms
          if (jj < 0 || jj >= a.Tk || !attention_key_visible(a, a.q_start + t, jj)) {
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
}

void attention_pattern(const AttentionArgs* seqs, int64_t n, const int64_t* first_key, int64_t T,
                       int64_t Tk, float* s) {
  for (int64_t b = 0; b < n; ++b) {
    const AttentionArgs& a = seqs[b];
    for (int64_t h = 0; h < a.Hq; ++h) {
      for (int64_t t = 0; t < T; ++t) {
        float* row = s + ((b * a.Hq + h) * T + t) * Tk;
        if (t >= a.Tq) {
          std::fill(row, row + Tk, 0.0f);
          continue;
        }
        float* held = row + first_key[b];
        std::fill(row, held, 0.0f);
        std::fill(held + a.Tk, row + Tk, 0.0f);
        float m = kNegInf;
        bool nan = false;  // std::max drops a NaN; torch's softmax makes the row NaN
        for (int64_t j = 0; j < a.Tk; ++j) {
          m = std::max(m, held[j]);
          nan = nan || std::isnan(held[j]);
        }
        if (nan) {
          std::fill(held, held + a.Tk, std::numeric_limits<float>::quiet_NaN());
          continue;
        }
        if (m == kNegInf) {
          // No visible key: zeros; visible keys whose scores are all -inf: NaN, as torch's softmax.
          const AttentionKeyRange r = attention_main_range(a, a.q_start + t);
          const bool sees_keys = r.lo < r.hi || std::min(a.prefix_len, a.Tk) > 0;
          std::fill(held, held + a.Tk, sees_keys ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
          continue;
        }
        double sum = 0.0;
        for (int64_t j = 0; j < a.Tk; ++j) {
          held[j] = std::exp(held[j] - m);
          sum += held[j];
        }
        const float inv = float(1.0 / sum);
        for (int64_t j = 0; j < a.Tk; ++j) held[j] *= inv;
      }
    }
  }
}

void attention_values(const AttentionArgs* seqs, int64_t n, const int64_t* first_key, int64_t T,
                      int64_t Tk, const float* p) {
  std::vector<float> vt;  // one KV head's values transposed: [D, keys]
  for (int64_t b = 0; b < n; ++b) {
    const AttentionArgs& a = seqs[b];
    if (a.Tq == 0) continue;
    const int64_t H = a.Hq, D = a.D, G = a.Hq / a.Hkv, keys = a.Tk;
    const float* v = static_cast<const float*>(a.v);
    vt.resize(size_t(D * keys));
    for (int64_t kvh = 0; kvh < a.Hkv; ++kvh) {
      for (int64_t j = 0; j < keys; ++j) {
        for (int64_t d = 0; d < D; ++d) vt[size_t(d * keys + j)] = v[j * a.v_stride[1] + kvh * D + d];
      }
      for (int64_t h = kvh * G; h < (kvh + 1) * G; ++h) {
        cpu::linear(p + ((b * H + h) * T) * Tk + first_key[b], Tk, a.Tq, keys, DType::kF32, vt.data(),
                    keys, D, nullptr, static_cast<float*>(a.out) + h * D, a.out_stride[1]);
      }
    }
  }
}

}  // namespace gemmacpp::cpu::reference
