#include "csrc/nn/hooks.h"

#include <cstring>

namespace gemmacpp {
namespace {

struct PointName {
  HookPoint point;
  const char* suffix;  // after "blocks.{i}." for per-layer points, the whole name otherwise
  bool per_layer;
  bool gemma = true;  // a point of the Gemma forward (listed by hook_names)
};

// In forward order; hook_embed comes before the blocks, the last two after them.
constexpr PointName kPoints[] = {
    {HookPoint::kEmbed, "hook_embed", false},
    {HookPoint::kResidPre, "hook_resid_pre", true},
    {HookPoint::kQ, "attn.hook_q", true},
    {HookPoint::kK, "attn.hook_k", true},
    {HookPoint::kV, "attn.hook_v", true},
    {HookPoint::kScores, "attn.hook_scores", true},
    {HookPoint::kPattern, "attn.hook_pattern", true},
    {HookPoint::kZ, "attn.hook_z", true},
    {HookPoint::kAttnOut, "hook_attn_out", true},
    {HookPoint::kResidMid, "hook_resid_mid", true},
    {HookPoint::kMlpPre, "mlp.hook_pre", true},
    {HookPoint::kMlpPreLinear, "mlp.hook_pre_linear", true},
    {HookPoint::kMlpPost, "mlp.hook_post", true},
    {HookPoint::kMlpOut, "hook_mlp_out", true},
    {HookPoint::kResidPost, "hook_resid_post", true},
    {HookPoint::kFinalNorm, "ln_final.hook_normalized", false},
    {HookPoint::kLogits, "hook_logits", false},
    {HookPoint::kConvOut, "conv.hook_out", true, false},
    {HookPoint::kRgLruA, "rglru.hook_a", true, false},
    {HookPoint::kRgLruH, "rglru.hook_h", true, false},
};
static_assert(sizeof(kPoints) / sizeof(kPoints[0]) == size_t(HookPoint::kCount));

const PointName& info(HookPoint p) { return kPoints[int(p)]; }

}  // namespace

bool hook_point_per_layer(HookPoint p) { return info(p).per_layer; }

std::string hook_name(HookPoint p, int64_t layer) {
  const PointName& n = info(p);
  return n.per_layer ? "blocks." + std::to_string(layer) + "." + n.suffix : std::string(n.suffix);
}

std::vector<std::string> hook_names(int64_t n_layers) {
  std::vector<std::string> out;
  out.push_back(hook_name(HookPoint::kEmbed, -1));
  for (int64_t i = 0; i < n_layers; ++i) {
    for (const PointName& n : kPoints) {
      if (n.per_layer && n.gemma) out.push_back(hook_name(n.point, i));
    }
  }
  out.push_back(hook_name(HookPoint::kFinalNorm, -1));
  out.push_back(hook_name(HookPoint::kLogits, -1));
  return out;
}

bool parse_hook_name(const std::string& name, int64_t n_layers, HookPoint* point, int64_t* layer) {
  const std::string blocks = "blocks.";
  if (name.compare(0, blocks.size(), blocks) != 0) {
    for (const PointName& n : kPoints) {
      if (!n.per_layer && name == n.suffix) {
        *point = n.point;
        *layer = -1;
        return true;
      }
    }
    return false;
  }
  // blocks.<digits>.<suffix>, the number written without leading zeros
  size_t i = blocks.size(), digits_end = i;
  while (digits_end < name.size() && name[digits_end] >= '0' && name[digits_end] <= '9') ++digits_end;
  if (digits_end == i || digits_end - i > 9 || digits_end >= name.size() || name[digits_end] != '.') return false;
  if (name[i] == '0' && digits_end - i > 1) return false;
  const int64_t l = std::stoll(name.substr(i, digits_end - i));
  if (l >= n_layers) return false;
  const std::string suffix = name.substr(digits_end + 1);
  for (const PointName& n : kPoints) {
    if (n.per_layer && suffix == n.suffix) {
      *point = n.point;
      *layer = l;
      return true;
    }
  }
  return false;
}

void offer_packed_rows(HookSet& hooks, HookPoint point, int64_t layer, float* rows,
                       const std::vector<int64_t>& count, const std::vector<int64_t>& offset,
                       int64_t T, const std::vector<int64_t>& inner) {
  const int64_t B = int64_t(count.size());
  int64_t row_elems = 1;
  for (int64_t n : inner) row_elems *= n;
  std::vector<int64_t> shape = {B, T};
  shape.insert(shape.end(), inner.begin(), inner.end());
  bool full = true;
  for (int64_t n : count) full = full && n == T;
  if (full) {  // packed rows are exactly [B, T, ...]
    hooks.call(point, layer, rows, shape);
    return;
  }
  std::vector<float> padded(size_t(B * T * row_elems), 0.0f);
  const size_t row_bytes = size_t(row_elems) * sizeof(float);
  for (int64_t b = 0; b < B; ++b) {
    if (count[size_t(b)] > 0) {
      std::memcpy(padded.data() + b * T * row_elems, rows + offset[size_t(b)] * row_elems,
                  size_t(count[size_t(b)]) * row_bytes);
    }
  }
  hooks.call(point, layer, padded.data(), shape);
  for (int64_t b = 0; b < B; ++b) {
    if (count[size_t(b)] > 0) {
      std::memcpy(rows + offset[size_t(b)] * row_elems, padded.data() + b * T * row_elems,
                  size_t(count[size_t(b)]) * row_bytes);
    }
  }
}

}  // namespace gemmacpp
