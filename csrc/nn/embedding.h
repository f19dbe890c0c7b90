// The token embedding: rows of the table (read in place, dense or GGML blocks) times a scale
// (Gemma's sqrt(d)), with the rows of image soft tokens replaced by the caller's embeddings, which
// are not scaled. Offers hook_embed (or the site it is given; none for "").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/core/qtype.h"
#include "csrc/nn/forward.h"
#include "csrc/nn/forward_args.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

class TokenEmbedding {
 public:
  TokenEmbedding(const Scope& s, const std::string& name, int64_t vocab, int64_t d, float scale,
                 const std::string& site = "hook_embed");
  const WeightTensor& table() const { return *table_; }

  // out [M, d] = the table's rows ids[0 .. M) times the scale.
  void lookup(Device device, const int64_t* ids, int64_t M, float* out) const;

  // x [M, d] for the packed ids; rows where args.embed_mask is set come from args.embeds.
  void operator()(const Forward& f, const std::vector<int64_t>& ids, const ForwardArgs& args, float* x) const;

 private:
  const WeightTensor* table_;
  QType qtype_ = QType::kQ8_0;
  float scale_;
  int site_;
};

}  // namespace gemmacpp::nn
