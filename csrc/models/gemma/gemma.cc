#include "csrc/models/gemma/gemma.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/cpu/activation.h"
#include "csrc/cpu/attention.h"
#include "csrc/cpu/linear.h"
#include "csrc/cpu/quant.h"
#include "csrc/cpu/quant_blocks.h"
#include "csrc/cpu/rms_norm.h"
#include "csrc/cpu/rope.h"
#include "csrc/nn/attention_probe.h"
#include "csrc/nn/weight_ops.h"
#include "csrc/nn/packed_batch.h"
#include "csrc/nn/sequence_attention.h"
#include "csrc/nn/tied_head.h"

namespace gemmacpp {
namespace {

bool is_directory(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string parent_dir(const std::string& p) {
  size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
}

// Binds tensors by name below a prefix, checking shapes and types as it goes.
struct Binder {
  const WeightFile& f;
  std::string prefix;

  // Matrices may be GGML block-quantized (read by linear_quantized); norms may not.
  const WeightTensor* get(const std::string& name, std::vector<int64_t> shape, bool matrix = false) const {
    const WeightTensor* t = f.find(prefix + name);
    GC_CHECK(t, ValueError, "'", f.path, "' has no tensor '", prefix + name, "'");
    GC_CHECK(t->shape == shape, ValueError, "'", f.path, "': tensor '", t->name, "' has shape ",
             shape_string(t->shape), ", the config needs ", shape_string(shape));
    GC_CHECK(t->supported, NotImplementedError, "'", f.path, "': tensor '", t->name,
             "' is stored as ", t->type_name(), ", which gemmacpp does not read");
    if (t->quantized) {
      cpu::QType q = cpu::QType::kQ8_0;
      GC_CHECK(matrix && parse_qtype(t->type_name(), &q), NotImplementedError, "'", f.path,
               "': tensor '", t->name, "' is stored as ", t->type_name(), ", which gemmacpp cannot use here");
      GC_CHECK(shape.back() % qtype_info(q).block_values == 0, ValueError, "'", f.path, "': tensor '",
               t->name, "' rows of ", shape.back(), " are not whole ", t->type_name(), " blocks");
      return t;
    }
    GC_CHECK(is_float_activation(t->dtype), TypeError, "'", f.path, "': tensor '", t->name,
             "' has dtype ", dtype_name(t->dtype), "; expected float32, float16 or bfloat16");
    return t;
  }
};

// Rows of args.embeds replace the embeddings of masked tokens (image soft tokens are not scaled).
void override_embeddings(const GemmaModel::Args& args, const PackedBatch& p, int64_t d, float* x) {
  GC_CHECK(args.embed_mask, ValueError, "forward: embeds without embed_mask");
  for (int64_t b = 0; b < args.B; ++b)
    for (int64_t t = 0; t < p.count[size_t(b)]; ++t)
      if (args.embed_mask[b * args.T + t])
        std::memcpy(x + (p.offset[size_t(b)] + t) * d, args.embeds + (b * args.T + t) * d,
                    size_t(d) * sizeof(float));
}

// args.spans grouped by row as flat (start, end) pairs, checked.
std::vector<std::vector<int64_t>> spans_by_row(const GemmaModel::Args& args, const std::vector<int64_t>& count) {
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(args.B));
  for (int64_t i = 0; i < args.n_spans; ++i) {
    const int64_t b = args.spans[3 * i], s = args.spans[3 * i + 1], e = args.spans[3 * i + 2];
    GC_CHECK(b >= 0 && b < args.B, ValueError, "forward: span ", i, " names row ", b, " of ", args.B);
    std::vector<int64_t>& row = out[size_t(b)];
    GC_CHECK(s >= 0 && s < e && e <= count[size_t(b)] && (row.empty() || s >= row.back()), ValueError,
             "forward: span [", s, ", ", e, ") of row ", b, " is empty, outside its ", count[size_t(b)],
             " tokens, or overlaps or precedes the previous span");
    row.push_back(s);
    row.push_back(e);
  }
  return out;
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

}  // namespace

GemmaModel::GemmaModel(ModelConfig config, std::shared_ptr<const WeightFile> weights)
    : config_(std::move(config)), weights_(std::move(weights)) {
  const ModelConfig& c = config_;
  c.validate();
  const WeightFile& f = *weights_;
  const bool gguf = f.format == "gguf";
  // llama.cpp's converter stores Gemma norm weights as 1 + w; HF files store w.
  norm_unit_offset_ = !gguf;
  // HF text models save under "model."; multimodal Gemma 3 under its language model.
  std::string prefix;
  if (!gguf) {
    for (const char* p : {"model.", "model.language_model.", "language_model.model."}) {
      if (f.find(std::string(p) + "embed_tokens.weight")) { prefix = p; break; }
    }
    GC_CHECK(!prefix.empty(), ValueError, "'", f.path,
             "' has no embedding tensor (model.embed_tokens.weight): not a Gemma checkpoint?");
  }
  Binder b{f, prefix};
  // One tensor by its HF name or its GGUF name.
  auto get = [&](const std::string& hf, const std::string& gg, std::vector<int64_t> shape,
                 bool matrix = false) { return b.get(gguf ? gg : hf, std::move(shape), matrix); };
  const int64_t d = c.d, qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
  embed_ = get("embed_tokens.weight", "token_embd.weight", {c.vocab, d}, true);
  final_norm_ = get("norm.weight", "output_norm.weight", {d});
  const bool g1 = c.family == "gemma";
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string l = "layers." + std::to_string(i) + ".", g = "blk." + std::to_string(i) + ".";
    GemmaLayerWeights w;
    w.attn_norm = get(l + "input_layernorm.weight", g + "attn_norm.weight", {d});
    w.q = get(l + "self_attn.q_proj.weight", g + "attn_q.weight", {qd, d}, true);
    w.k = get(l + "self_attn.k_proj.weight", g + "attn_k.weight", {kvd, d}, true);
    w.v = get(l + "self_attn.v_proj.weight", g + "attn_v.weight", {kvd, d}, true);
    w.o = get(l + "self_attn.o_proj.weight", g + "attn_output.weight", {d, qd}, true);
    if (c.qk_norm) {
      w.q_norm = get(l + "self_attn.q_norm.weight", g + "attn_q_norm.weight", {c.head_dim});
      w.k_norm = get(l + "self_attn.k_norm.weight", g + "attn_k_norm.weight", {c.head_dim});
    }
    // Gemma 1 calls its pre-MLP norm post_attention_layernorm; Gemma 2/3 use that name for the
    // sandwich norm after attention and pre_feedforward_layernorm for the pre-MLP one.
    if (g1) {
      w.ffw_norm = get(l + "post_attention_layernorm.weight", g + "ffn_norm.weight", {d});
    } else {
      w.post_attn_norm = get(l + "post_attention_layernorm.weight", g + "post_attention_norm.weight", {d});
      w.ffw_norm = get(l + "pre_feedforward_layernorm.weight", g + "ffn_norm.weight", {d});
      w.post_ffw_norm = get(l + "post_feedforward_layernorm.weight", g + "post_ffw_norm.weight", {d});
    }
    w.gate = get(l + "mlp.gate_proj.weight", g + "ffn_gate.weight", {c.ffn, d}, true);
    w.up = get(l + "mlp.up_proj.weight", g + "ffn_up.weight", {c.ffn, d}, true);
    w.down = get(l + "mlp.down_proj.weight", g + "ffn_down.weight", {d, c.ffn}, true);
    layers_.push_back(w);
  }
}

void GemmaModel::forward(const Args& args) const {
  const ModelConfig& c = config_;
  KVCache* cache = args.cache;
  // A KV cache's global layers hold at most max_len positions: the packing checks they fit.
  const PackedBatch p(args.B, args.T, args.lengths, c.n_layers, cache_extent(cache, /*bounded=*/true));
  const int64_t B = p.B, T = p.T, M = p.M, V = c.vocab;
  const std::vector<int64_t>& count = p.count;
  const std::vector<int64_t>& offset = p.offset;
  const std::vector<int64_t>& start = p.start;
  const std::vector<int64_t> ids = p.ids(args.tokens, V, args.embed_mask);  // masked: replaced below
  const std::vector<int64_t> positions = p.positions(args.position_offset);
  if (M == 0) {
    std::memset(args.logits, 0, size_t((args.last_only ? B : B * T) * V) * sizeof(float));
    return;
  }

  const int64_t d = c.d, H = c.n_heads, K = c.n_kv_heads, D = c.head_dim, F = c.ffn, R = K * D;
  const float eps = float(c.norm_eps);
  std::vector<float> x(size_t(M * d)), h(size_t(M * d)), q(size_t(M * H * D)), k(size_t(M * R)),
      v(size_t(M * R)), o(size_t(M * H * D)), gate(size_t(M * F)), up(size_t(M * F));
  std::vector<float> k_window, v_window;  // a ring layer's keys/values in position order

  auto norm = [&](const float* in, float* out, int64_t rows, int64_t width, const WeightTensor* w) {
    cpu::rms_norm(DType::kF32, in, out, rows, width, w->dtype, w->data, eps, norm_unit_offset_);
  };

  // Hooks: each point is asked for once; with no HookSet nothing below costs anything.
  HookSet* hooks = args.hooks;
  const PackedHooks offer(hooks, p);

  model_ops::embed_rows(*embed_, ids.data(), M, c.embed_scale, x.data());
  if (args.embeds) override_embeddings(args, p, d, x.data());
  const std::vector<std::vector<int64_t>> spans = spans_by_row(args, count);
  std::vector<int64_t> key_lo, key_hi;  // per-query key ranges of one sequence with spans
  offer(HookPoint::kEmbed, -1, x.data(), {d});
  for (int64_t li = 0; li < c.n_layers; ++li) {
    const GemmaLayerWeights& w = layers_[size_t(li)];
    const LayerConfig& lc = c.layers[size_t(li)];
    offer(HookPoint::kResidPre, li, x.data(), {d});

    norm(x.data(), h.data(), M, d, w.attn_norm);
    model_ops::linear(h.data(), M, *w.q, nullptr, q.data());
    model_ops::linear(h.data(), M, *w.k, nullptr, k.data());
    model_ops::linear(h.data(), M, *w.v, nullptr, v.data());
    if (c.qk_norm) {
      norm(q.data(), q.data(), M * H, D, w.q_norm);
      norm(k.data(), k.data(), M * K, D, w.k_norm);
    }
    offer(HookPoint::kQ, li, q.data(), {H, D});
    offer(HookPoint::kK, li, k.data(), {K, D});
    offer(HookPoint::kV, li, v.data(), {K, D});
    // Packed rows as one sequence of M tokens, each with its own position.
    cpu::rope(DType::kF32, q.data(), q.data(), 1, M, H, D, DType::kI64, positions.data(), false,
              lc.rope_base, lc.rope_scale, D);
    cpu::rope(DType::kF32, k.data(), k.data(), 1, M, K, D, DType::kI64, positions.data(), false,
              lc.rope_base, lc.rope_scale, D);

    // Scores or pattern hooks: this layer's attention takes the plain path that materialises them.
    std::unique_ptr<AttentionProbe> probe;
    if (hooks && (hooks->wants(HookPoint::kScores, li) || hooks->wants(HookPoint::kPattern, li))) {
      probe = std::make_unique<AttentionProbe>(T, count, offset, start);
    }
    // Attention one sequence at a time: each sees only its own keys.
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = count[size_t(b)], r0 = offset[size_t(b)], pos0 = start[size_t(b)];
      if (n == 0) continue;
      cpu::AttentionArgs a = packed_sequence_attention(q.data(), o.data(), k.data(), v.data(), r0, n, H, K, D);
      a.window = lc.local ? lc.window : 0;
      a.softcap = c.attn_softcap;
      a.scale = c.attn_scale();
      int64_t key_offset = 0;  // key index of this call's first token
      if (cache) {
        LayerKV& kv = cache->layers()[size_t(li)];
        std::vector<float>& ck = kv.k[size_t(b)];
        std::vector<float>& cv = kv.v[size_t(b)];
        const float* new_k = k.data() + r0 * R;
        const float* new_v = v.data() + r0 * R;
        if (!kv.ring) {
          ck.resize(size_t((pos0 + n) * R));
          cv.resize(size_t((pos0 + n) * R));
          std::memcpy(ck.data() + pos0 * R, new_k, size_t(n * R) * sizeof(float));
          std::memcpy(cv.data() + pos0 * R, new_v, size_t(n * R) * sizeof(float));
          a.k = ck.data(); a.v = cv.data();
          a.Tk = pos0 + n;
          a.q_start = pos0;
          key_offset = pos0;
          a.k_stride[0] = a.v_stride[0] = a.Tk * R;
        } else {
          const int64_t rows = std::min(kv.capacity, pos0 + n);  // the ring once the new keys are in
          ck.resize(size_t(rows * R));
          cv.resize(size_t(rows * R));
          key_offset = ring_window(ck.data(), cv.data(), kv.capacity, pos0, new_k, new_v, n, R, k_window,
                                   v_window, a);
        }
      }
      if (!spans[size_t(b)].empty()) {
        span_key_ranges(spans[size_t(b)], n, key_offset, a.window, args.span_in_window, &key_lo, &key_hi);
        a.key_lo = key_lo.data();
        a.key_hi = key_hi.data();
      }
      if (probe) {
        probe->add(b, a);
      } else {
        cpu::attention(a);
      }
    }
    if (probe) probe->run(*hooks, li, q.data(), o.data());
    offer(HookPoint::kZ, li, o.data(), {H, D});

    model_ops::linear(o.data(), M, *w.o, nullptr, h.data());
    if (w.post_attn_norm) norm(h.data(), h.data(), M, d, w.post_attn_norm);
    offer(HookPoint::kAttnOut, li, h.data(), {d});
    model_ops::add_into(x.data(), h.data(), M * d);
    offer(HookPoint::kResidMid, li, x.data(), {d});

    norm(x.data(), h.data(), M, d, w.ffw_norm);
    model_ops::linear(h.data(), M, *w.gate, nullptr, gate.data());
    model_ops::linear(h.data(), M, *w.up, nullptr, up.data());
    offer(HookPoint::kMlpPre, li, gate.data(), {F});
    offer(HookPoint::kMlpPreLinear, li, up.data(), {F});
    cpu::geglu(DType::kF32, gate.data(), up.data(), gate.data(), M * F);
    offer(HookPoint::kMlpPost, li, gate.data(), {F});
    model_ops::linear(gate.data(), M, *w.down, nullptr, h.data());
    if (w.post_ffw_norm) norm(h.data(), h.data(), M, d, w.post_ffw_norm);
    offer(HookPoint::kMlpOut, li, h.data(), {d});
    model_ops::add_into(x.data(), h.data(), M * d);
    offer(HookPoint::kResidPost, li, x.data(), {d});
  }
  if (cache) {
    for (int64_t b = 0; b < B; ++b) cache->advance(b, count[size_t(b)]);
  }
  tied_head(p, args.last_only, x.data(), *final_norm_, eps, norm_unit_offset_, *embed_,
            c.final_softcap, hooks, args.logits);
}

std::shared_ptr<GemmaModel> load_gemma(const std::string& path) {
  // A HF checkpoint's config comes first, so that a folder without one says so.
  const bool folder = is_directory(path);
  ModelConfig config;
  if (folder || !ends_with(path, ".gguf")) config = config_from_hf_file((folder ? path : parent_dir(path)) + "/config.json");
  auto weights = std::make_shared<const WeightFile>(open_weights(path));
  if (weights->format == "gguf") config = config_from_gguf(*weights);
  return std::make_shared<GemmaModel>(std::move(config), std::move(weights));
}

}  // namespace gemmacpp
