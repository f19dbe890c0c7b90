// The schema of a model's configuration, whatever file it came from: sizes, and every choice that
// varies per layer (the mixer, local or global attention, window, RoPE base and scale), spelled
// out so that a forward never re-derives them from a family name. Each family's config reader
// (csrc/models/<family>/config.cc) fills it from a Hugging Face config.json or GGUF metadata.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gemmacpp::nn {

// What mixes information across positions in a layer: attention, or Griffin's recurrent block
// (conv + RG-LRU). A family's layer recipe holds the matching block for each layer.
enum class Mixer : uint8_t { kAttention, kRecurrent };

struct LayerConfig {
  Mixer mixer = Mixer::kAttention;
  bool local = false;        // sliding-window attention
  // Causal models: keys with q - k < window. Bidirectional ones: keys with |q - k| <= window (a
  // radius; Gemma 3's config states the width, whose half the reader stores). 0 on global layers.
  int64_t window = 0;
  double rope_base = 10000;  // theta
  double rope_scale = 1;     // linear scaling: positions are divided by it
  // The layer's attention shape where it differs from the model's (EmbeddingGemma 2's and Gemma
  // 4's global layers); 0: the model's head_dim / n_kv_heads.
  int64_t head_dim = 0, kv_heads = 0;
  // Of the head's head_dim / 2 RoPE frequency pairs, how many turn (Gemma 4's "proportional" RoPE
  // on global layers); -1: all.
  int64_t rotated_pairs = -1;
  // Keys double as values (Gemma 4's attention_k_eq_v global layers): no v projection; v is the
  // k projection's output before the k norm and RoPE, through the v norm.
  bool k_eq_v = false;
  // The earlier layer whose keys and values this one attends over instead of its own (Gemma 4's
  // and Gemma 3n's KV sharing): it has no k/v projections and no cache slot; -1: its own.
  int64_t kv_source = -1;
  int64_t ffn = 0;  // the MLP's hidden size where it differs (Gemma 4 E2B's double-wide MLPs); 0: the model's
  // Gemma 3n's activation sparsity: the MLP's gate keeps only what exceeds its row's mean plus
  // gate_cutoff_z standard deviations (z = the normal quantile of the configured sparsity).
  bool sparse_gate = false;
  float gate_cutoff_z = 0;
  // A MatFormer slice (Gemma 3n): the stored layer whose weights this one runs (-1: its own
  // index), the stored MLP width of which it uses the first `ffn` (0: as stored), and which of the
  // stored per-layer input slices it reads (-1: its own index).
  int64_t source = -1, ffn_stored = 0, per_layer_slot = -1;
};

struct ModelConfig {
  std::string family;  // "gemma", "gemma2", "gemma3", "recurrent_gemma"
  int64_t vocab = 0, d = 0, n_layers = 0;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn = 0;
  double norm_eps = 1e-6;
  float attn_softcap = 0;   // 0: none
  float final_softcap = 0;  // 0: none
  double query_pre_attn_scalar = 0;  // attention scale is its -1/2 power
  bool qk_norm = false;     // RMSNorm of q and k per head (Gemma 3)
  bool sandwich_norms = false;  // post-attention and post-ffw norms (Gemma 2, 3)
  float embed_scale = 1;    // sqrt(d), applied to the embedding rows
  bool tied_head = true;    // logits = h E^T
  // RMSNorm scales by 1 + w with w as HF stores it; llama.cpp's GGUF files store 1 + w.
  bool norm_unit_offset = true;
  // Every token sees the tokens after it too (an encoder: EmbeddingGemma); local layers then see
  // a symmetric window.
  bool bidirectional = false;
  // The newer families' blocks (EmbeddingGemma 2, and Gemma 3n / Gemma 4 when they come):
  bool v_norm = false;             // a weightless RMSNorm of v per head, after the q/k norms
  int64_t per_layer_input = 0;     // P: width of the per-layer inputs (PLE) each layer is gated with; 0: none
  bool layer_scalar = false;       // each layer's output is scaled by its own stored scalar
  int64_t token_projection = 0;    // an encoder's per-token output projection to this width; 0: none
  // Per-layer inputs also read a token table of this many rows (Gemma 4 E2B/E4B, Gemma 3n; ids
  // past it read row 0); 0: the projection of the embedding alone (EmbeddingGemma 2).
  int64_t per_layer_vocab = 0;
  float per_layer_embed_scale = 1;  // sqrt(P), in float32 (transformers loaded in float32 does not round it)
  // Slices in the per-layer inputs' table and projection where they differ from n_layers (a
  // MatFormer slice that skips layers keeps the stored table); 0: n_layers.
  int64_t per_layer_slots = 0;
  int64_t layer_ple_slots() const { return per_layer_slots ? per_layer_slots : n_layers; }
  int64_t layer_ple_slot(int64_t i) const {
    return layers[size_t(i)].per_layer_slot >= 0 ? layers[size_t(i)].per_layer_slot : i;
  }
  // Mixture of experts beside each layer's dense MLP (Gemma 4 26B-A4B): n_experts gated MLPs of
  // hidden size expert_ffn, top_k of them per token; 0: none.
  int64_t n_experts = 0, top_k = 0, expert_ffn = 0;
  // Gemma 3n: AltUp's parallel residual streams (altup_num_inputs; 0: one stream, no AltUp), the
  // active one the layer's blocks run on, whether the corrected active stream is scaled before it
  // gates the per-layer input; and LAuReL's low-rank residual beside attention (0: none).
  int64_t altup_streams = 0, altup_active = 0;
  bool altup_correct_scale = true;
  int64_t laurel_rank = 0;
  std::vector<LayerConfig> layers;
  // RecurrentGemma (Griffin) only; ffn above is the MLP's real hidden size there (half of HF's
  // intermediate_size), and every projection has a bias except q, k, v without attention_bias.
  int64_t lru_width = 0;      // width of the recurrent branch
  int64_t conv1d_width = 0;   // taps of the temporal conv
  int64_t rotary_dim = 0;     // RoPE turns the first rotary_dim dims of each head; 0: head_dim
  bool attn_bias = false;     // q, k, v projections have biases

  float attn_scale() const;
  int64_t layer_head_dim(int64_t i) const { return layers[size_t(i)].head_dim ? layers[size_t(i)].head_dim : head_dim; }
  int64_t layer_kv_heads(int64_t i) const { return layers[size_t(i)].kv_heads ? layers[size_t(i)].kv_heads : n_kv_heads; }
  bool shares_kv() const {
    for (const LayerConfig& l : layers) if (l.kv_source >= 0) return true;
    return false;
  }
  int64_t layer_ffn(int64_t i) const { return layers[size_t(i)].ffn ? layers[size_t(i)].ffn : ffn; }
  // ValueError naming the first inconsistent field.
  void validate() const;
};

// A SigLIP vision tower (HF SiglipVisionConfig): a ViT with patch size `patch` on square images of
// image_size pixels, pre-LN layers with biases, MLP with gelu_tanh, and a final LayerNorm.
struct VisionConfig {
  int64_t d = 0, n_layers = 0, n_heads = 0, head_dim = 0, ffn = 0;
  int64_t image_size = 0, patch = 0, channels = 3;
  double norm_eps = 1e-6;
  int64_t patches_per_side() const { return patch > 0 ? image_size / patch : 0; }
  int64_t n_patches() const { return patches_per_side() * patches_per_side(); }
  void validate() const;
};

}  // namespace gemmacpp::nn
