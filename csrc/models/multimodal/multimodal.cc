#include "csrc/models/multimodal/multimodal.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "csrc/core/error.h"
#include "csrc/io/json_reader.h"

namespace gemmacpp {

MultimodalModel load_multimodal(const std::string& path, int64_t tokens_per_image) {
  struct stat st;
  const bool folder = ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  const size_t slash = path.find_last_of('/');
  const std::string cfg = folder ? path + "/config.json"
                                 : (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/config.json";
  std::ifstream in(cfg, std::ios::binary);
  GC_CHECK(in, ValueError, "cannot open '", cfg, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str(), what = "'" + cfg + "'";
  json::Value root = json::parse(text.data(), text.size(), what);
  const json::Value* type = root.kind == json::Value::Kind::kObject ? root.get("model_type") : nullptr;
  MultimodalModel m;
  m.kind = type && type->kind == json::Value::Kind::kString ? type->str : "";
  GC_CHECK(m.kind == "gemma3" || m.kind == "paligemma", ValueError, what, ": model_type '", m.kind,
           "' is not a Gemma 3 or PaliGemma vision-language model");
  ModelConfig tc = config_from_hf_json(text, what);
  VisionConfig vc = vision_config_from_hf_json(text, what);
  auto weights = std::make_shared<const WeightFile>(open_weights(path));
  // transformers 5 saves these at the top level; other writers under "model.".
  std::string vp, pp;
  for (const char* p : {"vision_tower.", "model.vision_tower."})
    if (weights->find(std::string(p) + "embeddings.patch_embedding.weight")) { vp = p; break; }
  for (const char* p : {"multi_modal_projector.", "model.multi_modal_projector."}) {
    const std::string name = std::string(p) + (m.kind == "gemma3" ? "mm_soft_emb_norm.weight" : "linear.weight");
    if (weights->find(name)) { pp = p; break; }
  }
  GC_CHECK(!vp.empty(), ValueError, "'", weights->path,
           "' has no vision tower (vision_tower.embeddings.patch_embedding.weight)");
  GC_CHECK(!pp.empty(), ValueError, "'", weights->path, "' has no multimodal projector (multi_modal_projector.*)");
  m.text = std::make_shared<GemmaModel>(tc, weights);
  m.projector = std::make_shared<VisionProjector>(m.kind, vc, tc.d, tokens_per_image, weights, pp);
  m.vision = std::make_shared<SiglipModel>(std::move(vc), weights, vp);
  return m;
}

}  // namespace gemmacpp
