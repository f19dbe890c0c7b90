// Models for Python: _core.load(path) (the registry's one lookup), the text model every decoder
// family is (forward on an int64 [B, T] array, new_cache, config, hook names), its cache, and the
// text encoder every embedding family is (encode to one vector per row).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "csrc/bindings/hooks.h"
#include "csrc/bindings/registry.h"
#include "csrc/bindings/without_gil.h"
#include "csrc/core/error.h"
#include "csrc/core/mmap.h"
#include "csrc/models/registry.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/text_encoder.h"
#include "csrc/nn/text_model.h"
#include "csrc/ops/linear.h"

namespace gemmacpp::bindings {
namespace {

namespace py = pybind11;
using nn::Cache;
using nn::TextModel;

// A C-contiguous NumPy array of T, converted from whatever array-like the caller passed.
template <class T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

py::object positive_or_none(double x) { return x > 0 ? py::object(py::float_(x)) : py::none(); }

// The config as a dict: every field of the schema (nn/config.h), the same keys for every family,
// None where a field does not apply.
py::dict config_to_py(const nn::ModelConfig& c) {
  py::dict out;
  out["family"] = c.family;
  out["vocab_size"] = c.vocab;
  out["hidden_size"] = c.d;
  out["num_layers"] = c.n_layers;
  out["num_heads"] = c.n_heads;
  out["num_kv_heads"] = c.n_kv_heads;
  out["head_dim"] = c.head_dim;
  out["intermediate_size"] = c.ffn;  // the MLP's real hidden size
  out["norm_eps"] = c.norm_eps;
  out["attn_softcap"] = positive_or_none(c.attn_softcap);
  out["final_softcap"] = positive_or_none(c.final_softcap);
  out["query_pre_attn_scalar"] = c.query_pre_attn_scalar;
  out["qk_norm"] = c.qk_norm;
  out["sandwich_norms"] = c.sandwich_norms;
  out["embed_scale"] = c.embed_scale;
  out["tied_head"] = c.tied_head;
  out["rotary_dim"] = c.rotary_dim > 0 ? c.rotary_dim : c.head_dim;
  out["attention_bias"] = c.attn_bias;
  const bool recurrent = c.lru_width > 0;
  out["bidirectional"] = c.bidirectional;
  out["v_norm"] = c.v_norm;
  out["per_layer_input"] = c.per_layer_input > 0 ? py::object(py::int_(c.per_layer_input)) : py::none();
  out["layer_scalar"] = c.layer_scalar;
  out["token_projection"] = c.token_projection > 0 ? py::object(py::int_(c.token_projection)) : py::none();
  out["per_layer_vocab"] = c.per_layer_vocab > 0 ? py::object(py::int_(c.per_layer_vocab)) : py::none();
  const bool moe = c.n_experts > 0;
  out["num_experts"] = moe ? py::object(py::int_(c.n_experts)) : py::none();
  out["top_k_experts"] = moe ? py::object(py::int_(c.top_k)) : py::none();
  out["expert_intermediate_size"] = moe ? py::object(py::int_(c.expert_ffn)) : py::none();
  const bool altup = c.altup_streams > 0;
  out["altup_streams"] = altup ? py::object(py::int_(c.altup_streams)) : py::none();
  out["altup_active"] = altup ? py::object(py::int_(c.altup_active)) : py::none();
  out["altup_correct_scale"] = altup ? py::object(py::bool_(c.altup_correct_scale)) : py::none();
  out["laurel_rank"] = c.laurel_rank > 0 ? py::object(py::int_(c.laurel_rank)) : py::none();
  out["lru_width"] = recurrent ? py::object(py::int_(c.lru_width)) : py::none();
  out["conv1d_width"] = recurrent ? py::object(py::int_(c.conv1d_width)) : py::none();
  py::list layers;
  for (const nn::LayerConfig& l : c.layers) {
    py::dict ld;
    const bool attention = l.mixer == nn::Mixer::kAttention;
    ld["type"] = !attention ? "recurrent" : l.local ? "local" : "global";
    ld["window"] = attention && l.local ? py::object(py::int_(l.window)) : py::none();
    ld["rope_base"] = attention ? py::object(py::float_(l.rope_base)) : py::none();
    ld["rope_scale"] = attention ? py::object(py::float_(l.rope_scale)) : py::none();
    ld["head_dim"] = attention ? py::object(py::int_(l.head_dim ? l.head_dim : c.head_dim)) : py::none();
    ld["num_kv_heads"] = attention ? py::object(py::int_(l.kv_heads ? l.kv_heads : c.n_kv_heads)) : py::none();
    const int64_t hd = l.head_dim ? l.head_dim : c.head_dim;
    const int64_t all_pairs = (c.rotary_dim > 0 ? c.rotary_dim : hd) / 2;
    ld["rotated_pairs"] = attention ? py::object(py::int_(l.rotated_pairs >= 0 ? l.rotated_pairs : all_pairs))
                                    : py::none();
    ld["k_eq_v"] = l.k_eq_v;
    ld["kv_source"] = l.kv_source >= 0 ? py::object(py::int_(l.kv_source)) : py::none();
    ld["intermediate_size"] = l.ffn ? l.ffn : c.ffn;
    ld["gate_cutoff_z"] = l.sparse_gate ? py::object(py::float_(l.gate_cutoff_z)) : py::none();
    layers.append(ld);
  }
  out["layers"] = layers;
  return out;
}

py::array_t<float> forward(const TextModel& m, const CArray<int64_t>& tokens, Cache* cache,
                           const std::optional<std::vector<int64_t>>& lengths, bool last_only,
                           const std::optional<CArray<float>>& embeds,
                           const std::optional<CArray<uint8_t>>& embed_mask,
                           const std::optional<CArray<int64_t>>& spans, bool span_in_window,
                           int64_t position_offset, const py::object& hooks) {
  const nn::ModelConfig& c = m.config();
  nn::ForwardArgs a;
  GC_CHECK(tokens.ndim() == 2, ValueError, "forward: tokens must be [B, T], got rank ", tokens.ndim());
  a.B = tokens.shape(0);
  a.T = tokens.shape(1);
  GC_CHECK(!lengths || int64_t(lengths->size()) == a.B, ValueError, "forward: ", a.B,
           " rows of tokens but ", lengths ? lengths->size() : 0, " lengths");
  py::array_t<float> logits({a.B, last_only ? int64_t(1) : a.T, c.vocab});
  a.tokens = tokens.data();
  a.lengths = lengths ? lengths->data() : nullptr;
  a.logits = logits.mutable_data();
  a.last_only = last_only;
  a.cache = cache;
  // Vision-language inputs: soft-token rows, bidirectional spans, RoPE position offset.
  GC_CHECK(!embeds == !embed_mask, ValueError, "forward: embeds and embed_mask go together");
  if (embeds) {
    GC_CHECK(embeds->ndim() == 3 && embeds->shape(0) == a.B && embeds->shape(1) == a.T &&
                 embeds->shape(2) == c.d,
             ValueError, "forward: embeds must be [B, T, ", c.d, "] for tokens [", a.B, ", ", a.T, "]");
    GC_CHECK(embed_mask->ndim() == 2 && embed_mask->shape(0) == a.B && embed_mask->shape(1) == a.T,
             ValueError, "forward: embed_mask must be [B, T] like tokens");
    a.embeds = embeds->data();
    a.embed_mask = embed_mask->data();
  }
  if (spans) {
    GC_CHECK(spans->ndim() == 2 && spans->shape(1) == 3, ValueError,
             "forward: spans must be [n, 3] rows of (row, start, end)");
    a.spans = spans->data();
    a.n_spans = spans->shape(0);
  }
  a.span_in_window = span_in_window;
  a.position_offset = position_offset;
  std::unique_ptr<PyHookSet> hook_set;  // made and destroyed with the GIL held
  if (!hooks.is_none()) hook_set = std::make_unique<PyHookSet>(hooks, m.hook_sites());
  a.hooks = hook_set.get();
  without_gil([&] { m.forward(a); });
  return logits;
}

py::array_t<float> encode(const nn::TextEncoder& m, const CArray<int64_t>& tokens,
                          const std::optional<std::vector<int64_t>>& lengths,
                          const std::optional<std::vector<int64_t>>& pool_skip, const py::object& hooks) {
  nn::EncodeArgs a;
  GC_CHECK(tokens.ndim() == 2, ValueError, "encode: tokens must be [B, T], got rank ", tokens.ndim());
  a.B = tokens.shape(0);
  a.T = tokens.shape(1);
  GC_CHECK(!lengths || int64_t(lengths->size()) == a.B, ValueError, "encode: ", a.B, " rows of tokens but ",
           lengths ? lengths->size() : 0, " lengths");
  GC_CHECK(!pool_skip || int64_t(pool_skip->size()) == a.B, ValueError, "encode: ", a.B,
           " rows of tokens but ", pool_skip ? pool_skip->size() : 0, " pool_skip values");
  py::array_t<float> out({a.B, m.out_dim()});
  a.tokens = tokens.data();
  a.lengths = lengths ? lengths->data() : nullptr;
  a.pool_skip = pool_skip ? pool_skip->data() : nullptr;
  a.out = out.mutable_data();
  std::unique_ptr<PyHookSet> hook_set;  // made and destroyed with the GIL held
  if (!hooks.is_none()) hook_set = std::make_unique<PyHookSet>(hooks, m.hook_sites());
  a.hooks = hook_set.get();
  without_gil([&] { m.encode(a); });
  return out;
}

}  // namespace

GEMMACPP_BINDING(model) {
  py::class_<Cache, std::shared_ptr<Cache>>(m, "Cache",
                                            "What a text model keeps between forwards, per sequence and layer")
      .def_property_readonly("batch", &Cache::batch)
      .def_property_readonly("max_len", &Cache::max_len)
      .def_property_readonly("lengths", &Cache::lengths, "positions held, per sequence")
      .def_property_readonly("length", [](const Cache& c) {
        const auto& n = c.lengths();
        for (int64_t x : n) {
          GC_CHECK(x == n[0], ValueError, "cache.length: its sequences have different lengths ",
                   "(use cache.lengths)");
        }
        return n[0];
      }, "positions held by every sequence (they must all have the same length)")
      .def_property_readonly("nbytes", &Cache::nbytes)
      .def("layer_nbytes", &Cache::layer_nbytes)
      .def("reset", &Cache::reset)
      .def("select", [](const Cache& c, const std::vector<int64_t>& sequences) {
        return std::make_shared<Cache>(c.select(sequences));
      }, py::arg("sequences"), "a new cache with copies of these sequences, in this order (repeats allowed)")
      .def("copy", [](const Cache& c) {
        std::vector<int64_t> all(size_t(c.batch()));
        for (size_t i = 0; i < all.size(); ++i) all[i] = int64_t(i);
        return std::make_shared<Cache>(c.select(all));
      });

  py::class_<TextModel, std::shared_ptr<TextModel>>(m, "TextModel", "A text model (use gemmacpp.load)")
      .def("config", [](const TextModel& t) { return config_to_py(t.config()); })
      .def_property_readonly("path", [](const TextModel& t) { return t.weights().path; })
      .def("new_cache", &TextModel::new_cache, py::arg("batch"), py::arg("max_len"))
      .def("forward", &forward, py::arg("tokens"), py::arg("cache") = py::none(), py::arg("lengths") = py::none(),
           py::arg("last_only") = false, py::arg("embeds") = py::none(), py::arg("embed_mask") = py::none(),
           py::arg("spans") = py::none(), py::arg("span_in_window") = true, py::arg("position_offset") = 0,
           py::arg("hooks") = py::none(),
           "logits [B, T, V] (or [B, 1, V] with last_only) float32 for int64 tokens [B, T], rows "
           "right-padded past lengths[b]; hooks: an object with .names that is called as "
           "hooks(name, activation) for each of those hook points (see gemmacpp.hooks)")
      .def("hook_names", [](const TextModel& t) { return t.hook_sites().names(); },
           "every hook point's name, in the order a forward reaches them");

  py::class_<nn::TextEncoder, std::shared_ptr<nn::TextEncoder>>(m, "TextEncoder",
                                                                "A text encoder: an embedding model (use gemmacpp.load)")
      .def("config", [](const nn::TextEncoder& t) { return config_to_py(t.config()); })
      .def_property_readonly("path", [](const nn::TextEncoder& t) { return t.weights().path; })
      .def_property_readonly("out_dim", &nn::TextEncoder::out_dim)
      .def_property_readonly("pool_includes_prompt",
                             [](const nn::TextEncoder& t) { return t.head().pool_includes_prompt; })
      .def_property_readonly("normalizes", [](const nn::TextEncoder& t) { return t.head().normalize; })
      .def("encode", &encode, py::arg("tokens"), py::arg("lengths") = py::none(), py::arg("pool_skip") = py::none(),
           py::arg("hooks") = py::none(),
           "one vector [B, out_dim] float32 per row of int64 tokens [B, T], rows right-padded past "
           "lengths[b]; pool_skip: per row, leading tokens the mean pooling leaves out")
      .def("hook_names", [](const nn::TextEncoder& t) { return t.hook_sites().names(); },
           "every hook point's name, in the order encode reaches them");

  py::class_<models::Loaded>(m, "Loaded", "What a checkpoint holds (see gemmacpp.load)")
      .def_readonly("family", &models::Loaded::family)
      .def_readonly("kind", &models::Loaded::kind)
      .def_readonly("text", &models::Loaded::text)
      .def_readonly("encoder", &models::Loaded::encoder)
      .def_readonly("vision", &models::Loaded::vision)
      .def_readonly("projector", &models::Loaded::projector);

  m.def("load",
        [](const std::string& path, const std::vector<int64_t>& ffn,
           const std::vector<int64_t>& skip_layers, bool mmap, const std::string& activations) {
          const Activations act = ops::activations_mode(activations, "load");
          return without_gil([&] {
            std::optional<MappedFile::ReadIntoMemory> in_memory;
            if (!mmap) in_memory.emplace();
            nn::LinearActivationsScope linear_activations(act);
            return models::load(path, {ffn, skip_layers});
          });
        },
        py::arg("path"), py::arg("matformer_ffn") = std::vector<int64_t>(),
        py::arg("matformer_skip_layers") = std::vector<int64_t>(), py::arg("mmap") = true,
        py::arg("activations") = "float32",
        "The model a checkpoint holds: a HF checkpoint folder, a .safetensors file next to its "
        "config.json, or a .gguf file; mmap=False reads the weight files into memory");
  m.def("families", &models::families, "the model families gemmacpp reads, and from which formats");
}

}  // namespace gemmacpp::bindings
