// Mixture of experts (see moe.h). The experts' work, for M tokens with k experts each:
// 1. a counting sort of the M * k (token, slot) pairs by expert id: expert e's pairs become the
//    rows [first_e, first_e + rows_e) of a grouped order, in token order;
// 2. gather: each expert's token rows of x copied next to each other (an expert with a single row
//    reads it from x in place: all of decode);
// 3. gate_up: one parallel region over every chosen expert's blocks of weight rows; a task runs a
//    block of gate rows and the same block of up rows (cpu::linear or cpu::linear_quantized on the
//    expert's matrix in place, nested, so single-threaded inside the task) and applies geglu to the
//    block while it is in cache;
// 4. down: one parallel region over every chosen expert's blocks of down rows, into one output row
//    per (token, slot) pair;
// 5. each token's k rows, weighted, added in slot order.
// Tasks own disjoint outputs and their splits depend on the routing and the shapes only, so the
// result is the same for any thread count. Experts are scheduled largest group first.
#include "csrc/cpu/moe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "csrc/core/threads.h"
#include "csrc/cpu/activation.h"
#include "csrc/cpu/gemm_tiling.h"
#include "csrc/cpu/linear.h"
#include "csrc/cpu/quant.h"
#include "hwy/aligned_allocator.h"

namespace gemmacpp::cpu {
namespace {

using gemm::ceil_div;

constexpr int64_t kRouteRowsPerTask = 16;
constexpr int64_t kCopyFloatsPerTask = 16 << 10;

int64_t round_up_16(int64_t n) { return (n + 15) / 16 * 16; }

// Up to this many token rows of an expert share a task's block of weight rows (about
// kMatvecTaskBytes, as linear's own tasks); bigger groups split into kCols-row blocks.
constexpr int64_t kSmallGroupRows = 16;

// Rows [n0, n0 + rows) of expert e's matrix in s against the m rows of x (ldx apart), into the
// first `rows` columns of out (ldo apart). A token's row does not depend on m or on the other
// rows (linear's invariance), so a token's output does not depend on who else was routed there.
void expert_rows(const ExpertStack& s, int64_t e, int64_t n0, int64_t rows, const float* x,
                 int64_t ldx, int64_t m, float* out, int64_t ldo) {
  const uint8_t* w = s.row(e, n0);
  if (s.quantized) {
    linear_quantized(x, ldx, m, s.K, s.qtype, w, rows, nullptr, out, ldo);
  } else {
    linear(x, ldx, m, s.K, s.dtype, w, s.K, rows, nullptr, out, ldo);
  }
}

// Weight rows per task for an expert with m token rows.
int64_t rows_per_task(int64_t m, int64_t row_bytes) {
  if (m > kSmallGroupRows) return gemm::kCols;
  const int64_t rows = gemm::kMatvecTaskBytes / std::max<int64_t>(row_bytes, 1);
  return std::max<int64_t>(4, ceil_div(rows, 4) * 4);
}

struct Group {
  int32_t e;
  int64_t first, rows;  // its rows in the grouped order
  const float* x;       // its token rows: the gathered copy, or x itself for a single row
  int64_t ldx;
};

struct Task {
  int64_t group, n0, nb;
};

std::vector<Task> split(const std::vector<Group>& groups, int64_t N, int64_t row_bytes) {
  std::vector<Task> tasks;
  for (int64_t g = 0; g < int64_t(groups.size()); ++g) {
    const int64_t nb = rows_per_task(groups[g].rows, row_bytes);
    for (int64_t n0 = 0; n0 < N; n0 += nb) tasks.push_back({g, n0, std::min(nb, N - n0)});
  }
  return tasks;
}

}  // namespace

void moe_route(const float* logits, int64_t M, int64_t E, int64_t k, const float* per_expert_scale,
               int32_t* ids, float* weights) {
  if (M <= 0 || k <= 0) return;
  parallel_chunks(M, kRouteRowsPerTask, [&](int64_t begin, int64_t len) {
    std::vector<float> p(static_cast<size_t>(E));
    std::vector<int32_t> order(static_cast<size_t>(E));
    // Larger p first, NaN above every number, equal p by lower index: a strict weak order.
    const auto before = [&](int32_t a, int32_t b) {
      const float pa = p[a], pb = p[b];
      const bool na = std::isnan(pa), nb = std::isnan(pb);
      if (na != nb) return na;
      if (!na && pa != pb) return pa > pb;
      return a < b;
    };
    for (int64_t m = begin; m < begin + len; ++m) {
      const float* l = logits + m * E;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t e = 0; e < E; ++e) mx = std::max(mx, l[e]);
      float sum = 0.0f;
      for (int64_t e = 0; e < E; ++e) {
        p[e] = std::exp(l[e] - mx);
        sum += p[e];
      }
      for (int64_t e = 0; e < E; ++e) p[e] = p[e] / sum;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
      float top = 0.0f;
      for (int64_t j = 0; j < k; ++j) top += p[order[j]];
      for (int64_t j = 0; j < k; ++j) {
        const int32_t e = order[j];
        float w = p[e] / top;
        if (per_expert_scale) w = w * per_expert_scale[e];
        ids[m * k + j] = e;
        weights[m * k + j] = w;
      }
    }
  });
}

int64_t moe_workspace_floats(int64_t M, int64_t k, int64_t D, int64_t F) {
  const int64_t P = M * k;
  return round_up_16(P * D) + round_up_16(P * 2 * F);
}

void moe_experts(const float* x, int64_t ldx, int64_t M, const int32_t* ids, const float* weights,
                 int64_t k, const ExpertStack& gate_up, const ExpertStack& down, float* out,
                 int64_t ldo, float* workspace) {
  const int64_t E = gate_up.E, D = gate_up.K, F = down.K, P = M * k;
  if (M <= 0 || D <= 0) return;
  if (F <= 0 || k <= 0) {  // every expert's output is an empty sum
    for (int64_t m = 0; m < M; ++m) std::fill(out + m * ldo, out + m * ldo + D, 0.0f);
    return;
  }

  // 1. Counting sort of the pairs p = m * k + j by expert: pair p becomes grouped row pos[p].
  std::vector<int64_t> first(size_t(E) + 1, 0);
  for (int64_t p = 0; p < P; ++p) ++first[size_t(ids[p]) + 1];
  for (int64_t e = 0; e < E; ++e) first[e + 1] += first[e];
  std::vector<int64_t> pos(static_cast<size_t>(P)), pair(static_cast<size_t>(P));  // pair[pos[p]] == p
  {
    std::vector<int64_t> next(first.begin(), first.end() - 1);
    for (int64_t p = 0; p < P; ++p) {
      pos[p] = next[ids[p]]++;
      pair[pos[p]] = p;
    }
  }

  hwy::AlignedFreeUniquePtr<float[]> owned;
  if (!workspace) {
    owned = hwy::AllocateAligned<float>(size_t(moe_workspace_floats(M, k, D, F)));
    workspace = owned.get();
  }
  float* rows_d = workspace;                   // [P, D]: gathered x, later the experts' outputs
  float* h = workspace + round_up_16(P * D);  // [P, 2F]: gate | up, geglu written over gate

  std::vector<Group> groups;
  bool gather = false;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t rows = first[e + 1] - first[e];
    if (rows == 0) continue;
    const bool single = rows == 1;
    gather |= !single;
    groups.push_back({int32_t(e), first[e], rows,
                      single ? x + pair[first[e]] / k * ldx : rows_d + first[e] * D,
                      single ? ldx : D});
  }
  // Largest groups first, so that the threads finish together (the order of writes to disjoint
  // outputs does not change any value).
  std::stable_sort(groups.begin(), groups.end(),
                   [](const Group& a, const Group& b) { return a.rows > b.rows; });

  // 2. Gather.
  if (gather) {
    parallel_chunks(P, std::max<int64_t>(1, kCopyFloatsPerTask / D), [&](int64_t r0, int64_t n) {
      for (int64_t r = r0; r < r0 + n; ++r) {
        const int32_t e = ids[pair[r]];
        if (first[e + 1] - first[e] == 1) continue;  // read in place
        std::memcpy(rows_d + r * D, x + pair[r] / k * ldx, size_t(D) * sizeof(float));
      }
    });
  }

  // 3. gate_up and geglu, all experts in one region.
  const std::vector<Task> up_tasks = split(groups, F, gate_up.row_bytes());
  const int64_t ldh = 2 * F;
  parallel_for(int64_t(up_tasks.size()), [&](int64_t t, int) {
    const Task& task = up_tasks[t];
    const Group& g = groups[task.group];
    float* hg = h + g.first * ldh;
    expert_rows(gate_up, g.e, task.n0, task.nb, g.x, g.ldx, g.rows, hg + task.n0, ldh);
    expert_rows(gate_up, g.e, F + task.n0, task.nb, g.x, g.ldx, g.rows, hg + F + task.n0, ldh);
    for (int64_t r = 0; r < g.rows; ++r) {
      float* gate = hg + r * ldh + task.n0;
      geglu(DType::kF32, gate, gate + F, gate, task.nb);
    }
  });

  // 4. down, all experts in one region: one output row per pair, over the gathered rows.
  const std::vector<Task> down_tasks = split(groups, D, down.row_bytes());
  parallel_for(int64_t(down_tasks.size()), [&](int64_t t, int) {
    const Task& task = down_tasks[t];
    const Group& g = groups[task.group];
    expert_rows(down, g.e, task.n0, task.nb, h + g.first * ldh, ldh, g.rows,
                rows_d + g.first * D + task.n0, D);
  });

  // 5. out[m] = sum_j weights[m, j] * row(pos[m * k + j]), in slot order (plain C++: one rounding
  // per multiply and add on every target).
  parallel_chunks(M, std::max<int64_t>(1, kCopyFloatsPerTask / (k * D)), [&](int64_t m0, int64_t n) {
    for (int64_t m = m0; m < m0 + n; ++m) {
      float* o = out + m * ldo;
      const float w0 = weights[m * k];
      const float* y0 = rows_d + pos[m * k] * D;
      for (int64_t d = 0; d < D; ++d) o[d] = w0 * y0[d];
      for (int64_t j = 1; j < k; ++j) {
        const float w = weights[m * k + j];
        const float* y = rows_d + pos[m * k + j] * D;
        for (int64_t d = 0; d < D; ++d) o[d] += w * y[d];
      }
    }
  });
}

}  // namespace gemmacpp::cpu
