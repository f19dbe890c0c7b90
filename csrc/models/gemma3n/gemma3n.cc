#include "csrc/models/gemma3n/gemma3n.h"

#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/core/mmap.h"
#include "csrc/core/qtype.h"
#include "csrc/models/gemma3n/config.h"
#include "csrc/nn/altup.h"
#include "csrc/nn/attention.h"
#include "csrc/nn/decoder.h"
#include "csrc/nn/laurel.h"
#include "csrc/nn/mlp.h"
#include "csrc/nn/norm.h"
#include "csrc/nn/per_layer.h"
#include "csrc/nn/residual.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::gemma3n {
namespace {

// One Gemma 3n layer. r.x is AltUp's stream 0 of N (stream k at r.x + k * M * d); the blocks run
// on the prediction of stream 0. hook_resid_pre / hook_resid_post are stream 0 before and after
// the layer; altup.hook_predicted and altup.hook_corrected offer all streams [B, T, N, d].
// Members are declared in forward order: that is the order their hook sites are numbered in.
struct Gemma3nLayer {
  int64_t n_streams;
  int resid_pre;
  nn::AltUp altup;
  int predicted;
  nn::RMSNorm ln1;
  int ln1_normalized;
  nn::Laurel laurel;
  nn::Attention attn;
  nn::RMSNorm ln1_post;
  int attn_out, resid_mid;
  nn::RMSNorm ln2;
  int ln2_normalized;
  nn::GatedMlp mlp;
  nn::RMSNorm ln2_post;
  int mlp_out, corrected;
  nn::PerLayerGate ple;
  int resid_post;

  Gemma3nLayer(const nn::ModelConfig& c, int64_t i, const nn::Scope& s)
      : n_streams(c.altup_streams),
        resid_pre(s.site("hook_resid_pre")),
        altup(s, c.d, c.altup_streams, c.norm_eps, c.norm_unit_offset, c.altup_correct_scale),
        predicted(s.site("altup.hook_predicted")),
        ln1(s.weights, s.name("ln1.weight"), c.d, c.norm_eps, c.norm_unit_offset),
        ln1_normalized(s.site("ln1.hook_normalized")),
        laurel(s, c.d, c.laurel_rank, c.norm_eps, c.norm_unit_offset),
        attn(s.sub("attn"), nn::attention_spec(c, i), i),
        ln1_post(s.weights, s.name("ln1_post.weight"), c.d, c.norm_eps, c.norm_unit_offset),
        attn_out(s.site("hook_attn_out")),
        resid_mid(s.site("hook_resid_mid")),
        ln2(s.weights, s.name("ln2.weight"), c.d, c.norm_eps, c.norm_unit_offset),
        ln2_normalized(s.site("ln2.hook_normalized")),
        mlp(s.sub("mlp"), c.d, c.layer_ffn(i), /*bias=*/false, c.layers[size_t(i)].sparse_gate,
            c.layers[size_t(i)].gate_cutoff_z, c.layers[size_t(i)].ffn_stored),
        ln2_post(s.weights, s.name("ln2_post.weight"), c.d, c.norm_eps, c.norm_unit_offset),
        mlp_out(s.site("hook_mlp_out")),
        corrected(s.site("altup.hook_corrected")),
        ple(s, c.d, c.layer_ple_slots(), c.per_layer_input, c.layer_ple_slot(i), c.norm_eps, c.norm_unit_offset,
            /*slice_site=*/true),
        resid_post(s.site("hook_resid_post")) {}

  nn::SlotSpec cache_slot(int64_t max_len) const { return attn.cache_slot(max_len); }

  void operator()(const nn::Forward& f, const nn::Residual& r) const {
    const int64_t M = f.rows(), d = r.d, Md = M * d;
    float* const streams = r.x;
    f.offer(resid_pre, r.x, {d});
    altup.predict(f, streams);
    nn::offer_streams(f, predicted, streams, n_streams, d);
    nn::Workspace::Frame ws(*f.workspace);
    float* const lau = ws.take(Md);
    float* const mid = ws.take(Md);
    ln1(f.device, r.x, r.h, M);  // the block runs on stream 0's prediction
    f.offer(ln1_normalized, r.h, {d});
    laurel(f, r.h, lau);
    attn(f, r.h, r.out);
    ln1_post(f.device, r.out, r.out, M);
    f.offer(attn_out, r.out, {d});
    // (prediction + attention + laurel) / sqrt(2)
    std::memcpy(mid, r.x, size_t(Md) * sizeof(float));
    ops::dispatch::add_into(f.device, mid, r.out, Md);
    ops::dispatch::add_into(f.device, mid, lau, Md);
    ops::dispatch::scale_into(f.device, mid, float(1.0 / std::sqrt(2.0)), Md);
    f.offer(resid_mid, mid, {d});
    ln2(f.device, mid, r.h, M);
    f.offer(ln2_normalized, r.h, {d});
    mlp(f, r.h, r.out);
    ln2_post(f.device, r.out, r.out, M);
    f.offer(mlp_out, r.out, {d});
    ops::dispatch::add_into(f.device, mid, r.out, Md);  // the block's output
    altup.correct(f, streams, mid);
    nn::offer_streams(f, corrected, streams, n_streams, d);
    // The corrected stream 0, scaled, gates this layer's per-layer input into the other streams.
    altup.scaled_active(f, streams, r.h);
    ple.gated(f, r.h, r.out);
    for (int64_t k = 1; k < n_streams; ++k) ops::dispatch::add_into(f.device, streams + k * Md, r.out, Md);
    f.offer(resid_post, r.x, {d});
  }
};

// A GGUF file stores AltUp's projections stacked ([N - 1, d, d]); the layers bind them as
// <name>.{k}.weight, slices that point into the stacked tensor's mapping.
std::shared_ptr<const WeightFile> with_altup_slices(std::shared_ptr<const WeightFile> f, int64_t n, int64_t d) {
  WeightFile out = *f;
  for (const char* name : {"altup_proj", "altup_unembd_proj"}) {
    const WeightTensor& t = f->at(std::string(name) + ".weight");
    GC_CHECK(t.shape == std::vector<int64_t>({n - 1, d, d}), ValueError, "'", f->path, "': tensor '", t.name,
             "' has shape ", shape_string(t.shape), ", the config needs ", shape_string({n - 1, d, d}));
    GC_CHECK(t.nbytes % uint64_t(n - 1) == 0, ValueError, "'", f->path, "': tensor '", t.name,
             "' does not split into ", n - 1, " matrices");
    const uint64_t bytes = t.nbytes / uint64_t(n - 1);
    for (int64_t k = 0; k + 1 < n; ++k) {
      WeightTensor s = t;
      s.name = std::string(name) + "." + std::to_string(k) + ".weight";
      s.shape = {d, d};
      s.data = t.data + uint64_t(k) * bytes;
      s.offset = t.offset + uint64_t(k) * bytes;
      s.nbytes = bytes;
      out.tensors.push_back(std::move(s));
    }
  }
  out.build_index();
  return std::make_shared<const WeightFile>(std::move(out));
}

}  // namespace

void read_sparsely(const WeightFile& weights) {
  const MappedFile* last = nullptr;  // the tensors of one file (shard) are consecutive
  for (const WeightTensor& t : weights.tensors) {
    if (t.file && t.file.get() != last) t.file->advise_sparse();
    last = t.file.get();
  }
}

std::shared_ptr<nn::TextModel> make_model(nn::ModelConfig config, std::shared_ptr<const WeightFile> weights) {
  config.validate();
  GC_CHECK(config.altup_streams >= 2 && config.per_layer_input > 0 && config.laurel_rank > 0, ValueError,
           "Gemma 3n: the config needs AltUp streams, per-layer inputs and a LAuReL rank");
  GC_CHECK(config.altup_streams <= 16, NotImplementedError, "Gemma 3n: ", config.altup_streams,
           " AltUp streams; the altup ops take at most 16");
  if (weights->format == "gguf") weights = with_altup_slices(std::move(weights), config.altup_streams, config.d);
  NameMap names = name_map(config, *weights);
  std::vector<int64_t> sources;
  for (int64_t i = 0; i < config.n_layers; ++i) {
    const int64_t s = config.layers[size_t(i)].source;
    sources.push_back(s >= 0 ? s : i);
  }
  names.set_layer_sources(std::move(sources));
  return std::make_shared<nn::Decoder<Gemma3nLayer>>(std::move(config), std::move(weights), names);
}

}  // namespace gemmacpp::gemma3n
