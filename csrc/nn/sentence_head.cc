#include "csrc/nn/sentence_head.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

SentenceHead::SentenceHead(const Scope& s, int64_t d, SentenceHeadSpec spec)
    : spec_(std::move(spec)), d_(d), out_dim_(d), pooled_site_(s.site("hook_pooled")) {
  int64_t width = d;
  for (size_t i = 0; i < spec_.dense.size(); ++i) {
    const DenseSpec& ds = spec_.dense[i];
    GC_CHECK(ds.in == width, ValueError, "sentence head: dense layer ", i, " takes ", ds.in,
             " features, the layer before gives ", width);
    const WeightBinder w(*ds.file, NameMap());
    dense_.push_back({Linear(w, ds.weight_name, ds.out, ds.in, ds.bias_name), ds.tanh,
                      s.site("dense." + std::to_string(i) + ".hook_out")});
    width = ds.out;
  }
  out_dim_ = width;
  embedding_site_ = s.site("hook_embedding");
}

void SentenceHead::operator()(const Forward& f, const float* x, const int64_t* skip, float* out) const {
  const PackedBatch& p = f.batch;
  const int64_t B = p.B;
  int64_t widest = d_;
  for (const Dense& dl : dense_) widest = std::max(widest, dl.linear.out_features());
  Workspace::Frame ws(*f.workspace);
  float* cur = ws.take(B * widest);
  float* next = ws.take(B * widest);
  ops::dispatch::mean_rows(f.device, x, d_, p.offset.data(), skip, B, cur);
  f.offer.per_sequence(pooled_site_, cur, d_);
  for (const Dense& dl : dense_) {
    const int64_t n = dl.linear.out_features();
    dl.linear(f.device, cur, B, next);
    if (dl.tanh) ops::dispatch::softcap(f.device, DType::kF32, next, next, B * n, 1.0f);  // 1 * tanh(x / 1)
    f.offer.per_sequence(dl.site, next, n);
    std::swap(cur, next);
  }
  if (spec_.normalize) ops::dispatch::l2_normalize_rows(f.device, cur, cur, B, out_dim_, 1e-12f);
  f.offer.per_sequence(embedding_site_, cur, out_dim_);
  std::memcpy(out, cur, size_t(B * out_dim_) * sizeof(float));
}

}  // namespace gemmacpp::nn
