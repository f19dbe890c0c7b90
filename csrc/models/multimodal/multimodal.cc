#include "csrc/models/multimodal/multimodal.h"

#include "csrc/core/error.h"
#include "csrc/models/gemma/config.h"
#include "csrc/models/gemma/gemma.h"
#include "csrc/models/siglip/config.h"

namespace gemmacpp::multimodal {

Parts load(const std::string& path, const json::Value& config, const std::string& what) {
  const json::Reader r{config, what};
  Parts m;
  m.kind = r.string_or("model_type", "");
  GC_CHECK(m.kind == "gemma3" || m.kind == "paligemma", ValueError, what, ": model_type '", m.kind,
           "' is not a Gemma 3 or PaliGemma vision-language model");
  nn::ModelConfig tc = gemma::config_from_hf(config, what);
  nn::VisionConfig vc = siglip::config_from_hf(config, what);
  const int64_t tokens_per_image = r.integer_or("mm_tokens_per_image", 256);
  auto weights = std::make_shared<const WeightFile>(open_weights(path));
  // transformers 5 saves these at the top level; other writers under "model.".
  std::string vp, pp;
  for (const char* p : {"vision_tower.", "model.vision_tower."}) {
    if (weights->find(std::string(p) + "embeddings.patch_embedding.weight")) {
      vp = p;
      break;
    }
  }
  for (const char* p : {"multi_modal_projector.", "model.multi_modal_projector."}) {
    const std::string name = std::string(p) + (m.kind == "gemma3" ? "mm_soft_emb_norm.weight" : "linear.weight");
    if (weights->find(name)) {
      pp = p;
      break;
    }
  }
  GC_CHECK(!vp.empty(), ValueError, "'", weights->path,
           "' has no vision tower (vision_tower.embeddings.patch_embedding.weight)");
  GC_CHECK(!pp.empty(), ValueError, "'", weights->path, "' has no multimodal projector (multi_modal_projector.*)");
  const int64_t text_d = tc.d;
  m.text = gemma::make_model(std::move(tc), weights);
  m.projector = std::make_shared<siglip::Projector>(m.kind, vc, text_d, tokens_per_image, weights, pp);
  m.vision = std::make_shared<siglip::VisionTower>(std::move(vc), weights, vp);
  return m;
}

}  // namespace gemmacpp::multimodal
