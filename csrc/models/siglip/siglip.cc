#include "csrc/models/siglip/siglip.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "csrc/core/error.h"
#include "csrc/core/threads.h"
#include "csrc/cpu/activation.h"
#include "csrc/cpu/attention.h"
#include "csrc/cpu/layer_norm.h"
#include "csrc/cpu/linear.h"
#include "csrc/cpu/rms_norm.h"
#include "csrc/nn/weight_ops.h"

namespace gemmacpp {
namespace {

using model_ops::add_into;
using model_ops::to_f32;

// A dense float tensor by name, with the shape the config implies.
const WeightTensor* bind(const WeightFile& f, const std::string& name, const std::vector<int64_t>& shape) {
  const WeightTensor* t = f.find(name);
  GC_CHECK(t, ValueError, "'", f.path, "' has no tensor '", name, "'");
  GC_CHECK(t->shape == shape, ValueError, "'", f.path, "': tensor '", name, "' has shape ",
           shape_string(t->shape), ", the config needs ", shape_string(shape));
  GC_CHECK(!t->quantized && t->supported && is_float_activation(t->dtype), TypeError, "'", f.path,
           "': tensor '", name, "' has type ", t->type_name(),
           "; the vision tower reads float32, float16 or bfloat16");
  return t;
}

void layer_norm(const float* in, float* out, int64_t rows, int64_t d, const WeightTensor& w,
                const WeightTensor& b, double eps) {
  cpu::layer_norm(DType::kF32, in, out, rows, d, w.dtype, w.data, b.data, float(eps));
}

void bind_ln(const WeightFile& f, const std::string& name, int64_t d, const WeightTensor** w,
             const WeightTensor** b) {
  *w = bind(f, name + ".weight", {d});
  *b = bind(f, name + ".bias", {d});
  GC_CHECK((*w)->dtype == (*b)->dtype, TypeError, "'", f.path, "': ", name,
           ".weight and .bias have different dtypes");
}

bool is_directory(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string config_path(const std::string& path) {
  if (is_directory(path)) return path + "/config.json";
  const size_t slash = path.find_last_of('/');
  return (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/config.json";
}

}  // namespace

std::string vision_hook_name(VisionHookPoint p, int64_t layer) {
  return p == VisionHookPoint::kOut ? std::string("vision.hook_out")
                                    : "vision.blocks." + std::to_string(layer) + ".hook_resid_post";
}

std::vector<std::string> vision_hook_names(int64_t n_layers) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n_layers; ++i) out.push_back(vision_hook_name(VisionHookPoint::kResidPost, i));
  out.push_back(vision_hook_name(VisionHookPoint::kOut, -1));
  return out;
}

bool parse_vision_hook_name(const std::string& name, int64_t n_layers, VisionHookPoint* point,
                            int64_t* layer) {
  if (name == "vision.hook_out") {
    *point = VisionHookPoint::kOut;
    *layer = -1;
    return true;
  }
  // vision.blocks.<digits>.hook_resid_post, the number written without leading zeros
  const std::string head = "vision.blocks.", tail = ".hook_resid_post";
  if (name.size() <= head.size() + tail.size() || name.compare(0, head.size(), head) != 0 ||
      name.compare(name.size() - tail.size(), tail.size(), tail) != 0)
    return false;
  const std::string digits = name.substr(head.size(), name.size() - head.size() - tail.size());
  if (digits.size() > 9 || (digits[0] == '0' && digits.size() > 1)) return false;
  for (char ch : digits)
    if (ch < '0' || ch > '9') return false;
  const int64_t l = std::stoll(digits);
  if (l >= n_layers) return false;
  *point = VisionHookPoint::kResidPost;
  *layer = l;
  return true;
}

SiglipModel::SiglipModel(VisionConfig config, std::shared_ptr<const WeightFile> weights,
                         const std::string& prefix)
    : config_(std::move(config)), weights_(std::move(weights)) {
  const VisionConfig& c = config_;
  c.validate();
  const WeightFile& f = *weights_;
  const std::string p = prefix;
  const int64_t d = c.d, F = c.ffn;
  patch_w_ = bind(f, p + "embeddings.patch_embedding.weight", {d, c.channels, c.patch, c.patch});
  patch_b_ = to_f32(*bind(f, p + "embeddings.patch_embedding.bias", {d}));
  pos_ = to_f32(*bind(f, p + "embeddings.position_embedding.weight", {c.n_patches(), d}));
  bind_ln(f, p + "post_layernorm", d, &post_w_, &post_b_);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string l = p + "encoder.layers." + std::to_string(i) + ".";
    SiglipLayerWeights w;
    bind_ln(f, l + "layer_norm1", d, &w.ln1_w, &w.ln1_b);
    bind_ln(f, l + "layer_norm2", d, &w.ln2_w, &w.ln2_b);
    auto lin = [&](const std::string& name, int64_t out_dim, int64_t in_dim, std::vector<float>* bias) {
      *bias = to_f32(*bind(f, l + name + ".bias", {out_dim}));
      return bind(f, l + name + ".weight", {out_dim, in_dim});
    };
    w.q = lin("self_attn.q_proj", d, d, &w.q_b);
    w.k = lin("self_attn.k_proj", d, d, &w.k_b);
    w.v = lin("self_attn.v_proj", d, d, &w.v_b);
    w.o = lin("self_attn.out_proj", d, d, &w.o_b);
    w.fc1 = lin("mlp.fc1", F, d, &w.fc1_b);
    w.fc2 = lin("mlp.fc2", d, F, &w.fc2_b);
    layers_.push_back(std::move(w));
  }
}

void SiglipModel::encode(const float* pixels, int64_t N, float* out, VisionHookSet* hooks) const {
  const VisionConfig& c = config_;
  GC_CHECK(N >= 1, ValueError, "encode_image: no images");
  const int64_t S = c.image_size, ps = c.patch, G = c.patches_per_side(), P = c.n_patches();
  const int64_t C = c.channels, d = c.d, H = c.n_heads, D = c.head_dim, F = c.ffn;
  const int64_t M = N * P, K = C * ps * ps;

  // im2col: one row per patch, columns in the conv weight's (channel, y, x) order.
  std::vector<float> cols(size_t(M * K));
  parallel_for(M, [&](int64_t r, int) {
    const int64_t n = r / P, py = (r % P) / G, px = r % G;
    float* dst = cols.data() + r * K;
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t y = 0; y < ps; ++y) {
        const float* src = pixels + ((n * C + ch) * S + py * ps + y) * S + px * ps;
        std::memcpy(dst + (ch * ps + y) * ps, src, size_t(ps) * sizeof(float));
      }
  });
  float* x = out;  // the residual stream lives in the output
  cpu::linear(cols.data(), K, M, K, patch_w_->dtype, patch_w_->data, K, d, patch_b_.data(), x, d);
  cols = std::vector<float>();
  for (int64_t n = 0; n < N; ++n) add_into(x + n * P * d, pos_.data(), P * d);

  std::vector<float> h(size_t(M * d)), q(size_t(M * d)), k(size_t(M * d)), v(size_t(M * d)),
      o(size_t(M * d)), mid(size_t(M * F));
  for (int64_t li = 0; li < c.n_layers; ++li) {
    const SiglipLayerWeights& w = layers_[size_t(li)];
    layer_norm(x, h.data(), M, d, *w.ln1_w, *w.ln1_b, c.norm_eps);
    model_ops::linear(h.data(), M, *w.q, w.q_b.data(), q.data());
    model_ops::linear(h.data(), M, *w.k, w.k_b.data(), k.data());
    model_ops::linear(h.data(), M, *w.v, w.v_b.data(), v.data());
    // Every patch of an image sees every patch of that image.
    cpu::AttentionArgs a;
    a.dtype = DType::kF32;
    a.q = q.data(); a.k = k.data(); a.v = v.data(); a.out = o.data();
    a.B = N; a.Tq = P; a.Tk = P; a.Hq = H; a.Hkv = H; a.D = D;
    const int64_t st[3] = {P * d, d, D};
    for (int j = 0; j < 3; ++j) a.q_stride[j] = a.k_stride[j] = a.v_stride[j] = a.out_stride[j] = st[j];
    a.causal = false;
    a.scale = float(1.0 / std::sqrt(double(D)));
    cpu::attention(a);
    model_ops::linear(o.data(), M, *w.o, w.o_b.data(), h.data());
    add_into(x, h.data(), M * d);

    layer_norm(x, h.data(), M, d, *w.ln2_w, *w.ln2_b, c.norm_eps);
    model_ops::linear(h.data(), M, *w.fc1, w.fc1_b.data(), mid.data());
    cpu::gelu_tanh(DType::kF32, mid.data(), mid.data(), M * F);
    model_ops::linear(mid.data(), M, *w.fc2, w.fc2_b.data(), h.data());
    add_into(x, h.data(), M * d);
    // x is contiguous [N, P, d]: offered in place, the next layer reads the hook's edits.
    if (hooks && hooks->wants(VisionHookPoint::kResidPost, li))
      hooks->call(VisionHookPoint::kResidPost, li, x, {N, P, d});
  }
  layer_norm(x, x, M, d, *post_w_, *post_b_, c.norm_eps);
  if (hooks && hooks->wants(VisionHookPoint::kOut, -1)) hooks->call(VisionHookPoint::kOut, -1, x, {N, P, d});
}

VisionProjector::VisionProjector(std::string kind, const VisionConfig& vision, int64_t text_d,
                                 int64_t tokens, std::shared_ptr<const WeightFile> weights,
                                 const std::string& prefix)
    : kind_(std::move(kind)), vision_(vision), d_(text_d), tokens_(tokens), weights_(std::move(weights)) {
  const WeightFile& f = *weights_;
  const int64_t dv = vision_.d;
  if (kind_ == "gemma3") {
    const int64_t G = vision_.patches_per_side(), T = int64_t(std::lround(std::sqrt(double(tokens))));
    GC_CHECK(T * T == tokens && T >= 1 && G % T == 0, ValueError, "gemma3 projector: ", tokens,
             " tokens per image are not a square grid that divides the ", G, " x ", G, " patches");
    norm_w_ = bind(f, prefix + "mm_soft_emb_norm.weight", {dv});
    const WeightTensor* w = bind(f, prefix + "mm_input_projection_weight", {dv, d_});
    const std::vector<float> wf = to_f32(*w);  // [dv, d]: x W, stored as our GEMM's W^T
    proj_t_.resize(size_t(d_ * dv));
    for (int64_t i = 0; i < dv; ++i)
      for (int64_t j = 0; j < d_; ++j) proj_t_[size_t(j * dv + i)] = wf[size_t(i * d_ + j)];
  } else {
    GC_CHECK(kind_ == "paligemma", ValueError, "unknown vision projector '", kind_, "'");
    tokens_ = vision_.n_patches();
    linear_w_ = bind(f, prefix + "linear.weight", {d_, dv});
    linear_b_ = to_f32(*bind(f, prefix + "linear.bias", {d_}));
  }
}

void VisionProjector::project(const float* features, int64_t N, float* out) const {
  const int64_t dv = vision_.d, P = vision_.n_patches();
  if (kind_ == "paligemma") {
    cpu::linear(features, dv, N * P, dv, linear_w_->dtype, linear_w_->data, dv, d_, linear_b_.data(),
                out, d_);
    return;
  }
  const int64_t G = vision_.patches_per_side(), T = int64_t(std::lround(std::sqrt(double(tokens_))));
  const int64_t kp = G / T;
  std::vector<float> pooled(size_t(N * tokens_ * dv), 0.0f);
  parallel_for(N * tokens_, [&](int64_t r, int) {
    const int64_t n = r / tokens_, ty = (r % tokens_) / T, tx = r % T;
    float* dst = pooled.data() + r * dv;
    for (int64_t ky = 0; ky < kp; ++ky)
      for (int64_t kx = 0; kx < kp; ++kx) {
        const float* src = features + (n * P + (ty * kp + ky) * G + tx * kp + kx) * dv;
        for (int64_t j = 0; j < dv; ++j) dst[j] += src[j];
      }
    const float inv = 1.0f / float(kp * kp);
    for (int64_t j = 0; j < dv; ++j) dst[j] *= inv;
  });
  cpu::rms_norm(DType::kF32, pooled.data(), pooled.data(), N * tokens_, dv, norm_w_->dtype, norm_w_->data,
                float(vision_.norm_eps), /*unit_offset=*/true);
  cpu::linear(pooled.data(), dv, N * tokens_, dv, DType::kF32, proj_t_.data(), dv, d_, nullptr, out, d_);
}

std::shared_ptr<SiglipModel> load_siglip(const std::string& path) {
  VisionConfig config = vision_config_from_hf_file(config_path(path));
  auto weights = std::make_shared<const WeightFile>(open_weights(path));
  // A bare SiglipVisionModel saves its tensors under "vision_model." in older files, none in newer.
  std::string prefix;
  for (const char* p : {"", "vision_model.", "vision_tower.", "model.vision_tower."}) {
    if (weights->find(std::string(p) + "embeddings.patch_embedding.weight")) { prefix = p; break; }
  }
  return std::make_shared<SiglipModel>(std::move(config), std::move(weights), prefix);
}

}  // namespace gemmacpp
