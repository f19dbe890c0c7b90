// The head of a sentence encoder, as a sentence-transformers pipeline has it after its Transformer
// module: mean pooling of the last hidden state over each sequence's tokens (Pooling), dense layers
// (Dense, each with its activation), unit L2 norm (Normalize). Hook sites hook_pooled [B, d],
// dense.{i}.hook_out [B, out_i], hook_embedding [B, out] (the final vector, after the norm).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "csrc/io/weights.h"
#include "csrc/nn/forward.h"
#include "csrc/nn/linear.h"
#include "csrc/nn/scope.h"

namespace gemmacpp::nn {

struct DenseSpec {
  std::shared_ptr<const WeightFile> file;  // holds weight_name (and bias_name)
  std::string weight_name, bias_name;      // bias_name empty: no bias
  int64_t in = 0, out = 0;
  bool tanh = false;                       // activation: tanh, else the identity
};

struct SentenceHeadSpec {
  // Whether the mean runs over a prompt's tokens too (sentence-transformers' include_prompt); the
  // caller passes each row's prompt length as pool_skip when it does not.
  bool pool_includes_prompt = true;
  std::vector<DenseSpec> dense;
  bool normalize = false;
};

class SentenceHead {
 public:
  SentenceHead(const Scope& s, int64_t d, SentenceHeadSpec spec);
  int64_t out_dim() const { return out_dim_; }
  const SentenceHeadSpec& spec() const { return spec_; }

  // x [M, d]: the packed last hidden state; skip (null: none): per sequence, leading tokens left
  // out of the mean (a prompt); out [B, out_dim].
  void operator()(const Forward& f, const float* x, const int64_t* skip, float* out) const;

 private:
  struct Dense {
    Linear linear;
    bool tanh;
    int site;
  };
  SentenceHeadSpec spec_;
  int64_t d_, out_dim_;
  int pooled_site_;
  std::vector<Dense> dense_;
  int embedding_site_;
};

}  // namespace gemmacpp::nn
