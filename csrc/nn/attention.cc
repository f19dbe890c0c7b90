#include "csrc/nn/attention.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {
namespace {

// Causal float32 self-attention of sequence rows [r0, r0 + n) of packed q / out [M, H * D] (their
// pointers are the reader's to set) and k / v [M, K * D] over its own n keys; the caller adds the
// mask and a cache's keys.
AttentionArgs packed_sequence(const float* k, const float* v, int64_t r0, int64_t n, int64_t H, int64_t K,
                              int64_t D) {
  const int64_t R = K * D;
  AttentionArgs a;
  a.dtype = DType::kF32;
  a.k = k + r0 * R;
  a.v = v + r0 * R;
  a.B = 1, a.Tq = n, a.Tk = n, a.Hq = H, a.Hkv = K, a.D = D;
  const int64_t qs[3] = {n * H * D, H * D, D}, ks[3] = {n * R, R, D};
  for (int j = 0; j < 3; ++j) {
    a.q_stride[j] = a.out_stride[j] = qs[j];
    a.k_stride[j] = a.v_stride[j] = ks[j];
  }
  return a;
}

// The sequence's n new keys/values (rows of R floats, at positions pos0, pos0 + 1, ...) go into its
// fixed ring of W rows, which already holds positions up to pos0 - 1 (only the last W are kept there).
// a then attends over the ring's older keys (up to W - 1, in position order) followed by the new
// ones, copied to one contiguous run in k_win / v_win: the kernel needs relative positions only.
// Returns the key index of the first new token (the number of older keys).
int64_t ring_window(float* ring_k, float* ring_v, int64_t W, int64_t pos0, const float* new_k,
                    const float* new_v, int64_t n, int64_t R, std::vector<float>& k_win,
                    std::vector<float>& v_win, AttentionArgs& a) {
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
  a.k = k_win.data();
  a.v = v_win.data();
  a.Tk = n_old + n;
  a.q_start = n_old;
  a.k_stride[0] = a.v_stride[0] = a.Tk * R;
  return n_old;
}

// Room for `floats` in v, growing by doubling but never past `most` (a window buffer's size).
void grow_to(std::vector<float>& v, size_t floats, size_t most) {
  if (floats <= v.size()) return;
  if (floats > v.capacity()) v.reserve(std::min(most, std::max(floats, 2 * v.capacity())));
  v.resize(floats);
}

// The sequence's n new keys/values (rows of R floats, at positions pos0, pos0 + 1, ...) go into its
// window buffer of a window W (cache.h): rows [0, pos0 - first) hold positions [first, pos0) in
// order, at most L = window_rows rows. a attends over the last up to W - 1 older keys followed by
// the new ones, in place in the buffer when they fit (the older ones moved to the front first if
// the new ones do not fit after them); a chunk that does not fit even then (a long prefill) is
// copied to k_win / v_win, and the buffer keeps its last W - 1 rows. The same keys and key
// indices either way. Returns the key index of the first new token (the number of older keys).
int64_t window_in_place(std::vector<float>& ck, std::vector<float>& cv, int64_t& first, int64_t W, int64_t L,
                        int64_t pos0, const float* new_k, const float* new_v, int64_t n, int64_t R,
                        std::vector<float>& k_win, std::vector<float>& v_win, AttentionArgs& a) {
  const int64_t n_old = std::min(W - 1, pos0);
  const size_t row_bytes = size_t(R) * sizeof(float), most = size_t(L * R);
  const float *keys_k, *keys_v;
  if (n_old + n > L) {
    const int64_t old_row = pos0 - n_old - first;
    k_win.resize(size_t((n_old + n) * R));
    v_win.resize(size_t((n_old + n) * R));
    if (n_old > 0) {
      std::memcpy(k_win.data(), ck.data() + old_row * R, size_t(n_old) * row_bytes);
      std::memcpy(v_win.data(), cv.data() + old_row * R, size_t(n_old) * row_bytes);
    }
    std::memcpy(k_win.data() + n_old * R, new_k, size_t(n) * row_bytes);
    std::memcpy(v_win.data() + n_old * R, new_v, size_t(n) * row_bytes);
    const int64_t keep = W - 1;  // < n_old + n, as L >= W
    grow_to(ck, size_t(keep * R), most);
    grow_to(cv, size_t(keep * R), most);
    if (keep > 0) {
      std::memcpy(ck.data(), k_win.data() + (n_old + n - keep) * R, size_t(keep) * row_bytes);
      std::memcpy(cv.data(), v_win.data() + (n_old + n - keep) * R, size_t(keep) * row_bytes);
    }
    first = pos0 + n - keep;
    keys_k = k_win.data();
    keys_v = v_win.data();
  } else {
    if (pos0 - first + n > L) {  // the seen rows to the front: the copy once every ~L - W + 1 tokens
      const int64_t old_row = pos0 - n_old - first;
      std::memmove(ck.data(), ck.data() + old_row * R, size_t(n_old) * row_bytes);
      std::memmove(cv.data(), cv.data() + old_row * R, size_t(n_old) * row_bytes);
      first = pos0 - n_old;
    }
    const int64_t at = pos0 - first;
    grow_to(ck, size_t((at + n) * R), most);
    grow_to(cv, size_t((at + n) * R), most);
    std::memcpy(ck.data() + at * R, new_k, size_t(n) * row_bytes);
    std::memcpy(cv.data() + at * R, new_v, size_t(n) * row_bytes);
    keys_k = ck.data() + (at - n_old) * R;
    keys_v = cv.data() + (at - n_old) * R;
  }
  a.k = keys_k;
  a.v = keys_v;
  a.Tk = n_old + n;
  a.q_start = n_old;
  a.k_stride[0] = a.v_stride[0] = a.Tk * R;
  return n_old;
}

// Per-query key ranges (key indices, this call's token t at key_offset + t) for causal attention
// (with a window W > 0 on local layers) in which tokens of a span [s, e) also see the span's later
// tokens: lo = p - W + 1 (or, with !in_window, at most s), hi = max(p + 1, e). Both non-decreasing.
void span_key_ranges(const std::vector<int64_t>& spans, int64_t n, int64_t key_offset, int64_t window,
                     bool in_window, std::vector<int64_t>* lo, std::vector<int64_t>* hi) {
  lo->resize(size_t(n));
  hi->resize(size_t(n));
  size_t k = 0;
  for (int64_t t = 0; t < n; ++t) {
    while (k < spans.size() && spans[k + 1] <= t) k += 2;
    const bool in_span = k < spans.size() && spans[k] <= t;
    const int64_t p = key_offset + t;
    int64_t l = window > 0 ? std::max<int64_t>(0, p - window + 1) : 0;
    int64_t h = p + 1;
    if (in_span) {
      h = std::max(h, key_offset + spans[k + 1]);
      if (!in_window) l = std::min(l, key_offset + spans[k]);
    }
    (*lo)[size_t(t)] = l;
    (*hi)[size_t(t)] = h;
  }
}

// Per-query key ranges of a bidirectional sliding window: the keys with |p - j| <= radius, p the
// query's key index (this call's token t at key_offset + t). Both ends non-decreasing.
void radius_key_ranges(int64_t n, int64_t key_offset, int64_t radius, std::vector<int64_t>* lo,
                       std::vector<int64_t>* hi) {
  lo->resize(size_t(n));
  hi->resize(size_t(n));
  for (int64_t t = 0; t < n; ++t) {
    const int64_t p = key_offset + t;
    (*lo)[size_t(t)] = std::max<int64_t>(0, p - radius);
    (*hi)[size_t(t)] = p + radius + 1;  // the kernel clips it to the keys there are
  }
}

}  // namespace

AttentionSpec attention_spec(const ModelConfig& c, int64_t i) {
  const LayerConfig& layer = c.layers[size_t(i)];
  AttentionSpec a;
  a.d = c.d, a.heads = c.n_heads;
  a.kv_heads = c.layer_kv_heads(i);
  a.head_dim = c.layer_head_dim(i);
  a.qkv_bias = c.attn_bias;
  a.qk_norm = c.qk_norm;
  a.v_norm = c.v_norm;
  a.norm_eps = c.norm_eps;
  a.norm_unit_offset = c.norm_unit_offset;
  a.causal = !c.bidirectional;
  (c.bidirectional ? a.radius : a.window) = layer.local ? layer.window : 0;
  a.softcap = c.attn_softcap;
  a.scale = c.attn_scale();
  a.rope_base = layer.rope_base;
  a.rope_scale = layer.rope_scale;
  a.rotary_dim = c.rotary_dim;
  a.rotated_pairs = layer.rotated_pairs;
  a.k_eq_v = layer.k_eq_v;
  a.kv_source = layer.kv_source;
  for (const LayerConfig& later : c.layers) a.publishes_kv |= later.kv_source == i;
  return a;
}

Attention::Attention(const Scope& s, const AttentionSpec& spec, int64_t layer)
    : spec_(spec), layer_(layer) {
  const int64_t d = spec.d, qd = spec.heads * spec.head_dim, kvd = spec.kv_heads * spec.head_dim;
  const bool own_kv = spec.kv_source < 0;
  auto bias = [&](const char* proj, bool has) { return has ? s.name(std::string(proj) + ".bias") : ""; };
  q_ = Linear(s.weights, s.name("q.weight"), qd, d, bias("q", spec.qkv_bias));
  if (own_kv) k_ = Linear(s.weights, s.name("k.weight"), kvd, d, bias("k", spec.qkv_bias));
  if (own_kv && !spec.k_eq_v) v_ = Linear(s.weights, s.name("v.weight"), kvd, d, bias("v", spec.qkv_bias));
  o_ = Linear(s.weights, s.name("o.weight"), d, qd, bias("o", spec.o_bias));
  if (spec.qk_norm) {
    q_norm_ = RMSNorm(s.weights, s.name("q_norm.weight"), spec.head_dim, spec.norm_eps, spec.norm_unit_offset);
    if (own_kv) {
      k_norm_ = RMSNorm(s.weights, s.name("k_norm.weight"), spec.head_dim, spec.norm_eps, spec.norm_unit_offset);
    }
  }
  if (spec.v_norm && own_kv) v_norm_ = RMSNorm::weightless(spec.head_dim, spec.norm_eps);
  // TransformerLens' names: hook_q/hook_k are the projections, hook_q_normed/hook_k_normed the
  // same after the QK-norm (only where there is one).
  q_site_ = s.site("hook_q");
  q_normed_site_ = spec.qk_norm ? s.site("hook_q_normed") : -1;
  k_site_ = own_kv ? s.site("hook_k") : -1;
  k_normed_site_ = own_kv && spec.qk_norm ? s.site("hook_k_normed") : -1;
  v_site_ = own_kv ? s.site("hook_v") : -1;
  scores_site_ = s.site("hook_scores");
  pattern_site_ = s.site("hook_pattern");
  z_site_ = s.site("hook_z");
}

SlotSpec Attention::cache_slot(int64_t max_len) const {
  if (spec_.kv_source >= 0) return std::monostate{};  // it reads its source's slot
  KvSpec kv;
  kv.row_elems = spec_.kv_heads * spec_.head_dim;
  kv.fixed = spec_.fixed_ring;
  kv.ring = spec_.window > 0 && (spec_.fixed_ring || spec_.window < max_len);
  kv.capacity = kv.ring ? spec_.window : 0;
  return kv;
}

void Attention::rotate(const Forward& f, float* x, int64_t heads) const {
  if (!spec_.rope) return;
  // Packed rows as one sequence of M tokens, each with its own position.
  const int64_t D = spec_.head_dim, rd = spec_.rotary_dim > 0 ? spec_.rotary_dim : D;
  const int64_t pairs = spec_.rotated_pairs >= 0 ? spec_.rotated_pairs : rd / 2;
  ops::dispatch::rope(f.device, DType::kF32, x, x, 1, f.rows(), heads, D, DType::kI64, f.positions.data(), false,
                      spec_.rope_base, spec_.rope_scale, rd, pairs);
}

void Attention::make_keys(const Forward& f, const float* h, Workspace::Frame& ws, AttentionKeys& keys) const {
  const PackedBatch& p = f.batch;
  const int64_t M = p.M, B = p.B, H = spec_.heads, K = spec_.kv_heads, D = spec_.head_dim, R = K * D;
  // The new rows: in the caller's workspace frame, or, when later layers read them, in buffers
  // that last the forward.
  float *k, *v;
  if (spec_.publishes_kv) {
    k = keys.k_rows.emplace(M * R, f.device).data();
    v = keys.v_rows.emplace(M * R, f.device).data();
  } else {
    k = ws.take(M * R);
    v = ws.take(M * R);
  }
  k_(f.device, h, M, k);
  f.offer(k_site_, k, {K, D});
  if (spec_.k_eq_v) {
    std::memcpy(v, k, size_t(M * R) * sizeof(float));  // the projection: before the k norm and RoPE
  } else {
    v_(f.device, h, M, v);
  }
  if (spec_.qk_norm) {
    k_norm_(f.device, k, k, M * K);
    f.offer(k_normed_site_, k, {K, D});
  }
  if (spec_.v_norm) v_norm_(f.device, v, v, M * K);
  f.offer(v_site_, v, {K, D});
  rotate(f, k, K);

  // One problem per sequence: each sees only its own keys, with a cache its past ones too. Their
  // key windows and span ranges live as long as keys.
  KvSlot* kv = f.cache ? &f.cache->kv(layer_) : nullptr;
  keys.seqs.assign(size_t(B), AttentionArgs{});
  keys.k_win.assign(kv && kv->spec.ring ? size_t(B) : 0, {});
  keys.v_win.assign(keys.k_win.size(), {});
  keys.key_lo.assign(size_t(B), {});
  keys.key_hi.assign(size_t(B), {});
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = p.count[size_t(b)], r0 = p.offset[size_t(b)], pos0 = p.start[size_t(b)];
    AttentionArgs& a = keys.seqs[size_t(b)];
    a = packed_sequence(k, v, r0, n, H, K, D);
    if (n == 0) continue;  // nothing to attend, nothing for the cache
    a.causal = spec_.causal;
    a.window = spec_.window;
    a.softcap = spec_.softcap;
    a.scale = spec_.scale;
    int64_t key_offset = 0;  // key index of this call's first token
    if (kv) {
      std::vector<float>& ck = kv->k[size_t(b)];
      std::vector<float>& cv = kv->v[size_t(b)];
      const float* new_k = k + r0 * R;
      const float* new_v = v + r0 * R;
      if (!kv->spec.ring) {
        ck.resize(size_t((pos0 + n) * R));
        cv.resize(size_t((pos0 + n) * R));
        std::memcpy(ck.data() + pos0 * R, new_k, size_t(n * R) * sizeof(float));
        std::memcpy(cv.data() + pos0 * R, new_v, size_t(n * R) * sizeof(float));
        a.k = ck.data();
        a.v = cv.data();
        a.Tk = pos0 + n;
        a.q_start = pos0;
        key_offset = pos0;
        a.k_stride[0] = a.v_stride[0] = a.Tk * R;
      } else if (!kv->spec.fixed) {
        key_offset = window_in_place(ck, cv, kv->first[size_t(b)], kv->spec.capacity, kv->spec.window_rows(), pos0,
                                     new_k, new_v, n, R, keys.k_win[size_t(b)], keys.v_win[size_t(b)], a);
      } else {
        const int64_t W = kv->spec.capacity;
        ck.resize(size_t(W * R));  // allocated whole at creation (and after reset)
        cv.resize(size_t(W * R));
        key_offset = ring_window(ck.data(), cv.data(), W, pos0, new_k, new_v, n, R, keys.k_win[size_t(b)],
                                 keys.v_win[size_t(b)], a);
      }
    }
    std::vector<int64_t>& lo = keys.key_lo[size_t(b)];
    std::vector<int64_t>& hi = keys.key_hi[size_t(b)];
    if (f.spans && !(*f.spans)[size_t(b)].empty()) {
      span_key_ranges((*f.spans)[size_t(b)], n, key_offset, a.window, f.span_in_window, &lo, &hi);
    } else if (spec_.radius > 0) {
      radius_key_ranges(n, key_offset, spec_.radius, &lo, &hi);
    }
    if (!lo.empty()) {
      a.key_lo = lo.data();
      a.key_hi = hi.data();
    }
  }
}

void Attention::operator()(const Forward& f, const float* h, float* out) const {
  const PackedBatch& p = f.batch;
  const int64_t M = p.M, B = p.B, H = spec_.heads, D = spec_.head_dim;
  Workspace::Frame ws(*f.workspace);
  float* const q = ws.take(M * H * D);
  float* const o = ws.take(M * H * D);
  q_(f.device, h, M, q);
  f.offer(q_site_, q, {H, D});
  if (spec_.qk_norm) {
    q_norm_(f.device, q, q, M * H);
    f.offer(q_normed_site_, q, {H, D});
  }
  // Keys after the queries, so that hook_q comes before hook_k as the names are numbered.
  AttentionKeys own;
  const AttentionKeys* keys = &own;
  GC_CHECK(f.shared_kv || (spec_.kv_source < 0 && !spec_.publishes_kv), ValueError, "attention of layer ", layer_,
           ": shares keys and values, but the forward has no SharedKv");
  if (spec_.kv_source >= 0) {
    keys = &f.shared_kv->layers[size_t(spec_.kv_source)];
  } else {
    AttentionKeys& k = spec_.publishes_kv ? f.shared_kv->layers[size_t(layer_)] : own;
    make_keys(f, h, ws, k);
    keys = &k;
  }
  rotate(f, q, H);
  std::vector<AttentionArgs> seqs = keys->seqs;
  for (int64_t b = 0; b < B; ++b) {  // the keys' sequences with this layer's queries
    AttentionArgs& a = seqs[size_t(b)];
    a.q = q + p.offset[size_t(b)] * H * D;
    a.out = o + p.offset[size_t(b)] * H * D;
  }

  if (f.offer.wants(scores_site_) || f.offer.wants(pattern_site_)) {
    // The plain path: scores and pattern written out as [B, H, T, Tk], key index = absolute
    // position, so that every sequence's keys line up.
    const int64_t T = p.T;
    int64_t Tk = 0;
    std::vector<int64_t> first_key(size_t(B), 0);
    for (int64_t b = 0; b < B; ++b) {
      Tk = std::max(Tk, p.start[size_t(b)] + p.count[size_t(b)]);
      if (p.count[size_t(b)] > 0) first_key[size_t(b)] = p.start[size_t(b)] - seqs[size_t(b)].q_start;
    }
    std::vector<float> s(size_t(B * H * T * Tk));
    const std::vector<int64_t> shape = {B, H, T, Tk};
    ops::dispatch::attention_scores(f.device, seqs.data(), B, first_key.data(), T, Tk, s.data());
    if (f.offer.wants(scores_site_)) f.hooks()->call(scores_site_, s.data(), shape);
    ops::dispatch::attention_pattern(f.device, seqs.data(), B, first_key.data(), T, Tk, s.data());
    if (f.offer.wants(pattern_site_)) f.hooks()->call(pattern_site_, s.data(), shape);
    ops::dispatch::attention_values(f.device, seqs.data(), B, first_key.data(), T, Tk, s.data());
  } else {
    ops::dispatch::attention(f.device, seqs.data(), B);
  }
  f.offer(z_site_, o, {H, D});
  o_(f.device, o, M, out);
}

}  // namespace gemmacpp::nn
