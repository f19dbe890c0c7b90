#include "csrc/nn/config.h"

#include <cmath>

#include "csrc/core/error.h"

namespace gemmacpp::nn {

float ModelConfig::attn_scale() const {
  return float(1.0 / std::sqrt(query_pre_attn_scalar));
}

void ModelConfig::validate() const {
  auto pos = [&](int64_t v, const char* name) {
    GC_CHECK(v >= 1, ValueError, "model config: ", name, " must be >= 1, got ", v);
  };
  pos(vocab, "vocab_size"); pos(d, "hidden_size"); pos(n_layers, "num_hidden_layers");
  pos(n_heads, "num_attention_heads"); pos(n_kv_heads, "num_key_value_heads");
  pos(head_dim, "head_dim"); pos(ffn, "intermediate_size");
  GC_CHECK(n_heads % n_kv_heads == 0, ValueError, "model config: num_attention_heads (", n_heads,
           ") is not a multiple of num_key_value_heads (", n_kv_heads, ")");
  GC_CHECK(head_dim % 2 == 0, ValueError, "model config: head_dim must be even for RoPE, got ", head_dim);
  GC_CHECK(int64_t(layers.size()) == n_layers, ValueError, "model config: ", layers.size(),
           " layer types for ", n_layers, " layers");
  GC_CHECK(query_pre_attn_scalar > 0, ValueError, "model config: query_pre_attn_scalar must be > 0");
  GC_CHECK(per_layer_input >= 0 && token_projection >= 0, ValueError,
           "model config: hidden_size_per_layer_input and embedding_dim must be >= 0");
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerConfig& l = layers[i];
    GC_CHECK(!l.local || l.window >= 1, ValueError, "model config: layer ", i,
             " is local but its window is ", l.window);
    GC_CHECK(l.rope_base > 0 && l.rope_scale > 0, ValueError, "model config: layer ", i,
             " has RoPE base ", l.rope_base, " and scale ", l.rope_scale);
    const int64_t hd = layer_head_dim(int64_t(i)), kv = layer_kv_heads(int64_t(i));
    GC_CHECK(hd >= 2 && hd % 2 == 0, ValueError, "model config: layer ", i, " has head_dim ", hd,
             "; it must be even and >= 2");
    GC_CHECK(kv >= 1 && n_heads % kv == 0, ValueError, "model config: layer ", i, " has ", kv,
             " key/value heads for ", n_heads, " query heads");
    GC_CHECK(l.rotated_pairs <= hd / 2, ValueError, "model config: layer ", i, " turns ", l.rotated_pairs,
             " RoPE pairs of a head of ", hd);
    GC_CHECK(layer_ffn(int64_t(i)) >= 1, ValueError, "model config: layer ", i, " has MLP size ",
             layer_ffn(int64_t(i)));
    if (l.kv_source >= 0) {
      const int64_t s = l.kv_source;
      GC_CHECK(s < int64_t(i) && layers[size_t(s)].kv_source < 0, ValueError, "model config: layer ", i,
               " reads the keys and values of layer ", s, ", which is not an earlier layer with its own");
      const LayerConfig& src = layers[size_t(s)];
      GC_CHECK(src.local == l.local && src.window == l.window && layer_head_dim(s) == hd &&
                   layer_kv_heads(s) == kv && src.rope_base == l.rope_base && src.rope_scale == l.rope_scale &&
                   src.rotated_pairs == l.rotated_pairs,
               ValueError, "model config: layer ", i, " reads the keys and values of layer ", s,
               ", which is not of the same attention type (window, head shape, RoPE)");
    }
  }
  GC_CHECK(altup_streams == 0 || (altup_streams >= 2 && altup_active >= 0 && altup_active < altup_streams),
           ValueError, "model config: altup_num_inputs (", altup_streams, ") must be >= 2 and altup_active_idx (",
           altup_active, ") one of them");
  GC_CHECK(laurel_rank >= 0, ValueError, "model config: laurel_rank must be >= 0, got ", laurel_rank);
  GC_CHECK(per_layer_vocab >= 0, ValueError, "model config: vocab_size_per_layer_input must be >= 0");
  if (n_experts > 0 || top_k > 0 || expert_ffn > 0) {
    GC_CHECK(n_experts >= 1 && expert_ffn >= 1, ValueError, "model config: num_experts (", n_experts,
             ") and moe_intermediate_size (", expert_ffn, ") must be >= 1 with experts");
    GC_CHECK(top_k >= 1 && top_k <= n_experts, ValueError, "model config: top_k_experts (", top_k,
             ") must be in [1, num_experts = ", n_experts, "]");
  }
}

void VisionConfig::validate() const {
  auto pos = [&](int64_t v, const char* name) {
    GC_CHECK(v >= 1, ValueError, "vision config: ", name, " must be >= 1, got ", v);
  };
  pos(d, "hidden_size"); pos(n_layers, "num_hidden_layers"); pos(n_heads, "num_attention_heads");
  pos(ffn, "intermediate_size"); pos(image_size, "image_size"); pos(patch, "patch_size");
  pos(channels, "num_channels");
  GC_CHECK(d % n_heads == 0, ValueError, "vision config: hidden_size (", d,
           ") is not a multiple of num_attention_heads (", n_heads, ")");
  GC_CHECK(image_size % patch == 0, ValueError, "vision config: image_size (", image_size,
           ") is not a multiple of patch_size (", patch, ")");
}

}  // namespace gemmacpp::nn
