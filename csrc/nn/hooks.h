// Hook points of the Gemma forward: where a caller may read or edit an intermediate activation.
// The forward asks a HookSet whether it wants a point (once per point and layer) and only then
// offers the activation, so a forward with no hooks (or none at a point) does no extra work.
//
// Names follow TransformerLens (see docs/hooks.md for the table). Activations are offered as
// float32 row-major arrays shaped like TransformerLens's: [B, T, ...] for per-token points (rows
// past a sequence's length are zero padding; edits there are ignored), [B, H, Tq, Tk] for
// attention scores and patterns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gemmacpp {

// In forward order within a block. kEmbed, kFinalNorm and kLogits have no layer (layer -1).
enum class HookPoint : int {
  kEmbed,          // hook_embed                     [B, T, d]  scaled token embeddings
  kResidPre,       // blocks.{i}.hook_resid_pre       [B, T, d]
  kQ,              // blocks.{i}.attn.hook_q          [B, T, H, D]    after QK-norm, before RoPE
  kK,              // blocks.{i}.attn.hook_k          [B, T, Hkv, D]  after QK-norm, before RoPE
  kV,              // blocks.{i}.attn.hook_v          [B, T, Hkv, D]
  kScores,         // blocks.{i}.attn.hook_scores     [B, H, T, Tk]   softcapped, masked = -inf
  kPattern,        // blocks.{i}.attn.hook_pattern    [B, H, T, Tk]   softmax of the scores
  kZ,              // blocks.{i}.attn.hook_z          [B, T, H, D]    per-head output before o_proj
  kAttnOut,        // blocks.{i}.hook_attn_out        [B, T, d]  added to the residual
  kResidMid,       // blocks.{i}.hook_resid_mid       [B, T, d]
  kMlpPre,         // blocks.{i}.mlp.hook_pre         [B, T, F]  gate projection, before GELU
  kMlpPreLinear,   // blocks.{i}.mlp.hook_pre_linear  [B, T, F]  up projection
  kMlpPost,        // blocks.{i}.mlp.hook_post        [B, T, F]  gelu(pre) * pre_linear
  kMlpOut,         // blocks.{i}.hook_mlp_out         [B, T, d]  added to the residual
  kResidPost,      // blocks.{i}.hook_resid_post      [B, T, d]
  kFinalNorm,      // ln_final.hook_normalized        [B, T, d]  after the final norm (with weight)
  kLogits,         // hook_logits                     [B, T, V]  after the final softcap
  // RecurrentGemma (Griffin) recurrent blocks only; not in hook_names(n_layers), which lists a
  // Gemma model's points.
  kConvOut,        // blocks.{i}.conv.hook_out        [B, T, L]  temporal conv1d output
  kRgLruA,         // blocks.{i}.rglru.hook_a         [B, T, L]  recurrence weights a_t
  kRgLruH,         // blocks.{i}.rglru.hook_h         [B, T, L]  RG-LRU output (every h_t)
  kCount
};

bool hook_point_per_layer(HookPoint p);
// The name of a point: "blocks.3.attn.hook_q" (layer 3) or "hook_embed" (layer ignored).
std::string hook_name(HookPoint p, int64_t layer);
// Every hook name of a model with n_layers blocks, in the order a forward offers them.
std::vector<std::string> hook_names(int64_t n_layers);
// Parses a name of a model with n_layers blocks; false if it names no hook point.
bool parse_hook_name(const std::string& name, int64_t n_layers, HookPoint* point, int64_t* layer);

class HookSet {
 public:
  virtual ~HookSet() = default;
  // Whether call() should be made for this point and layer. Cheap; asked once per forward each.
  virtual bool wants(HookPoint point, int64_t layer) const = 0;
  // Offers a contiguous float32 array of this shape; the hook may change it in place, and the
  // forward continues with what it finds there. Exceptions propagate out of the forward.
  virtual void call(HookPoint point, int64_t layer, float* data, const std::vector<int64_t>& shape) = 0;
};

// Offers packed rows (sequence b's count[b] rows of row_elems floats at packed rows
// [offset[b], offset[b] + count[b])) as [B, T, inner...]. Zero-copy when every sequence fills all
// T rows; otherwise through a zero-padded copy whose real rows are copied back afterwards.
void offer_packed_rows(HookSet& hooks, HookPoint point, int64_t layer, float* rows,
                       const std::vector<int64_t>& count, const std::vector<int64_t>& offset,
                       int64_t T, const std::vector<int64_t>& inner);

}  // namespace gemmacpp
