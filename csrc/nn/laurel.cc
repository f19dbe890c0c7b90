#include "csrc/nn/laurel.h"

#include "csrc/ops/dispatch.h"

namespace gemmacpp::nn {

Laurel::Laurel(const Scope& s, int64_t d, int64_t rank, double eps, bool unit_offset)
    : d_(d),
      rank_(rank),
      left_(s.weights, s.name("laurel.left.weight"), rank, d),
      right_(s.weights, s.name("laurel.right.weight"), d, rank),
      post_norm_(s.weights, s.name("laurel.post_norm.weight"), d, eps, unit_offset),
      site_(s.site("laurel.hook_out")) {}

void Laurel::operator()(const Forward& f, const float* h, float* out) const {
  const int64_t M = f.rows();
  Workspace::Frame ws(*f.workspace);
  float* const low = ws.take(M * rank_);
  left_(f.device, h, M, low);
  right_(f.device, low, M, out);
  post_norm_(f.device, out, out, M);
  ops::dispatch::add_into(f.device, out, h, M * d_);
  f.offer(site_, out, {d_});
}

}  // namespace gemmacpp::nn
