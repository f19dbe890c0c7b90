// Sparse autoencoder encode and decode (see sae.h).
// Encode: the blocked GEMM of linear (gemm-inl.h: packed panels, the 6-row microkernel) over a
// k-major W_enc, with the bias and the activation applied to each output tile as its epilogue,
// so the pre-activations of a [rows x 64] tile are used while they are in cache and a dense
// [M, d_sae] array exists only when asked for. Decode: per row, the active rows of W_dec scaled
// and summed in registers, a few vectors of output columns at a time.
#include "csrc/cpu/sae.h"

#include <algorithm>
#include <cstring>

#include "csrc/core/threads.h"
#include "csrc/cpu/dtype_dispatch.h"
#include "csrc/cpu/gemm_tiling.h"
#include "hwy/aligned_allocator.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "csrc/cpu/sae.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "csrc/cpu/simd-inl.h"
#include "csrc/cpu/gemm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace gemmacpp::cpu::HWY_NAMESPACE {

// out[r, n] = sum_k x[r, k] W[k, n] (+ bias[n]) for r < mb, n < nb: w points at column 0 of the
// tile in a k-major [K, *] weight (rows ldw apart). K is taken kb_max at a time, as in linear.
void PreTile(DType wdt, const float* x, size_t ldx, size_t mb, size_t K, const void* w,
             size_t ldw, size_t nb, size_t kb_max, const float* bias, float* out, size_t ldo) {
  const size_t NR = GemmNR();
  const size_t strips = (nb + NR - 1) / NR, ldc = strips * NR;
  const size_t kb_cap = std::min(kb_max, std::max<size_t>(K, 1));
  static thread_local hwy::AlignedFreeUniquePtr<float[]> scratch;
  static thread_local size_t capacity = 0;
  float* HWY_RESTRICT c = ScratchFloats(scratch, capacity, mb * ldc + strips * NR * kb_cap);
  float* HWY_RESTRICT panel = c + mb * ldc;
  std::fill(c, c + mb * ldc, 0.0f);
  visit_float(wdt, [&](auto tag) {
    using T = decltype(tag);
    const T* wt = static_cast<const T*>(w);
    for (size_t k0 = 0; k0 < K; k0 += kb_max) {
      const size_t kb = std::min(kb_max, K - k0);
      PackPanelKMajor(wt + k0 * ldw, ldw, nb, kb, panel);
      GemmPanel(x + k0, ldx, mb, panel, kb, strips, c, ldc);
    }
  });
  StoreTile(c, ldc, mb, nb, bias, out, ldo);
}

// Output columns [n0, n0 + nb) of `rows` rows: out[r, n] = sum_j val[j] W[idx[j], n] (+ bias[n])
// over row r's entries off[r] <= j < off[r + 1], in entry order, then the bias. out points at
// row 0, column 0; w at W_dec's row 0, column 0.
void DecodeBlock(const int64_t* off, const int32_t* idx, const float* val, size_t rows, DType wdt,
                 const void* w, size_t ldw, size_t n0, size_t nb, const float* bias, float* out,
                 size_t ldo) {
  const hn::ScalableTag<float> df;
  const size_t L = hn::Lanes(df);
  visit_float(wdt, [&](auto tag) {
    using T = decltype(tag);
    const T* wt = static_cast<const T*>(w) + n0;
    for (size_t r = 0; r < rows; ++r) {
      float* o = out + r * ldo + n0;
      const int64_t j0 = off[r], j1 = off[r + 1];
      size_t c = 0;
      for (; c + 4 * L <= nb; c += 4 * L) {  // four vectors of columns in registers
        auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
        for (int64_t j = j0; j < j1; ++j) {
          const auto v = hn::Set(df, val[j]);
          const T* HWY_RESTRICT row = wt + size_t(idx[j]) * ldw + c;
          a0 = hn::MulAdd(v, LoadF32(df, row), a0);
          a1 = hn::MulAdd(v, LoadF32(df, row + L), a1);
          a2 = hn::MulAdd(v, LoadF32(df, row + 2 * L), a2);
          a3 = hn::MulAdd(v, LoadF32(df, row + 3 * L), a3);
        }
        if (bias) {
          a0 = hn::Add(a0, hn::LoadU(df, bias + n0 + c));
          a1 = hn::Add(a1, hn::LoadU(df, bias + n0 + c + L));
          a2 = hn::Add(a2, hn::LoadU(df, bias + n0 + c + 2 * L));
          a3 = hn::Add(a3, hn::LoadU(df, bias + n0 + c + 3 * L));
        }
        hn::StoreU(a0, df, o + c);
        hn::StoreU(a1, df, o + c + L);
        hn::StoreU(a2, df, o + c + 2 * L);
        hn::StoreU(a3, df, o + c + 3 * L);
      }
      for (; c < nb; c += L) {  // the last columns, one (possibly partial) vector at a time
        const size_t n = std::min(L, nb - c);
        auto a = hn::Zero(df);
        for (int64_t j = j0; j < j1; ++j) {
          const T* HWY_RESTRICT row = wt + size_t(idx[j]) * ldw + c;
          const auto wv = n == L ? LoadF32(df, row) : LoadF32Partial(df, row, n);
          a = hn::MulAdd(hn::Set(df, val[j]), wv, a);
        }
        if (bias) a = hn::Add(a, LoadF32Partial(df, bias + n0 + c, n));
        StoreF32Partial(df, a, o + c, n);
      }
    }
  });
}

}  // namespace gemmacpp::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace gemmacpp::cpu {
HWY_EXPORT(PreTile);
HWY_EXPORT(DecodeBlock);

namespace {

using gemm::ceil_div;

// Columns of W_enc per encode task: its sparse output is one small buffer per task.
constexpr int64_t kEncodeChunk = 512;
// TopK keeps k candidates per row and column block, then merges them: at most this many blocks.
constexpr int64_t kTopKChunks = 8;
// Decode tasks: rows x output columns.
constexpr int64_t kDecodeRows = 16, kDecodeCols = 1024;
// Rows per task when gathering the nonzeros of dense activations.
constexpr int64_t kGatherRows = 32;

// The nonzero activations of a block of consecutive rows, grouped by row in row order.
struct RowsOut {
  std::vector<int64_t> count;  // per row of the block
  std::vector<int32_t> idx;
  std::vector<float> val;
};

struct Candidate {
  float v;
  int32_t i;
};
// TopK's order: the larger value first, ties to the lower feature index.
inline bool better(const Candidate& a, const Candidate& b) {
  return a.v > b.v || (a.v == b.v && a.i < b.i);
}

// Keeps the best k of a stream of candidates (in a buffer of up to 2k, pruned when full).
struct TopKBuffer {
  std::vector<Candidate> c;
  bool has_cutoff = false;
  Candidate cutoff{0.0f, 0};  // the k-th best so far, once the buffer has been pruned

  void offer(Candidate x, size_t k) {
    if (x.v != x.v) return;  // NaN: never selected
    if (has_cutoff && !better(x, cutoff)) return;
    c.push_back(x);
    if (c.size() >= 2 * k) prune(k);
  }
  void prune(size_t k) {
    if (c.size() <= k) return;
    std::nth_element(c.begin(), c.begin() + (k - 1), c.end(), better);
    c.resize(k);
    cutoff = c[k - 1];
    has_cutoff = true;
  }
};

// JumpReLU is SAELens' relu(p) * (p > threshold): p when p > threshold and p > 0, else 0.
inline float activate(SaeActivation act, float p, const float* threshold, int64_t n) {
  switch (act) {
    case SaeActivation::kIdentity: return p;
    case SaeActivation::kJumpReLU: return p > threshold[n] && p > 0.0f ? p : 0.0f;
    default: return p > 0.0f ? p : 0.0f;
  }
}

// CSR arrays from per-block row groups (block b covers rows [b * rows_per_block, ...)).
SparseRows finish_rows(std::vector<RowsOut>& blocks, int64_t M) {
  SparseRows s;
  s.offsets.assign(size_t(M) + 1, 0);
  int64_t m = 0;
  std::vector<int64_t> start(blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    start[b] = s.offsets[size_t(m)];
    for (int64_t n : blocks[b].count) {
      s.offsets[size_t(m) + 1] = s.offsets[size_t(m)] + n;
      ++m;
    }
  }
  const size_t nnz = size_t(s.offsets[size_t(M)]);
  s.indices.resize(nnz);
  s.values.resize(nnz);
  parallel_for(int64_t(blocks.size()), [&](int64_t b, int) {
    RowsOut& r = blocks[size_t(b)];
    std::copy(r.idx.begin(), r.idx.end(), s.indices.begin() + start[size_t(b)]);
    std::copy(r.val.begin(), r.val.end(), s.values.begin() + start[size_t(b)]);
    r = RowsOut();
  });
  return s;
}

}  // namespace

SparseRows sae_encode(const SaeEncodeArgs& a) {
  const int64_t M = a.M, N = a.N;
  const bool topk = a.act == SaeActivation::kTopK;
  // Row blocks as linear's GEMM cuts them; column blocks of kEncodeChunk (TopK: at most
  // kTopKChunks of them, so that the candidates to merge stay few).
  const int64_t m_blocks0 = std::max<int64_t>(1, ceil_div(M, gemm::kMaxRows));
  const int64_t mb_size = ceil_div(ceil_div(std::max<int64_t>(M, 1), m_blocks0), gemm::kRowGroup) *
                          gemm::kRowGroup;
  const int64_t m_blocks = ceil_div(M, mb_size);
  const int64_t chunk =
      topk ? std::max(kEncodeChunk, ceil_div(ceil_div(N, kTopKChunks), gemm::kCols) * gemm::kCols)
           : kEncodeChunk;
  const int64_t n_chunks = ceil_div(N, chunk);
  const bool emit = a.sparse || topk;
  // Per task: sparse entries (row-local index, feature, value) or TopK candidates per row.
  std::vector<RowsOut> task_out(emit ? size_t(m_blocks * n_chunks) : 0);
  const size_t es = size_t(dtype_size(a.wdt));
  const char* wb = static_cast<const char*>(a.w);

  parallel_for(m_blocks * n_chunks, [&](int64_t t, int) {
    const int64_t rb = t / n_chunks, cc = t % n_chunks;
    const int64_t m0 = rb * mb_size, mb = std::min(mb_size, M - m0);
    const int64_t c0 = cc * chunk, cn = std::min(chunk, N - c0);
    static thread_local std::vector<float> tile;
    std::vector<int32_t> rows, cols;  // sparse entries in tile order, sorted by row at the end
    std::vector<float> vals;
    std::vector<TopKBuffer> best(topk ? size_t(mb) : 0);
    for (int64_t n0 = c0; n0 < c0 + cn; n0 += gemm::kCols) {
      const int64_t nb = std::min(gemm::kCols, c0 + cn - n0);
      float* p;
      int64_t ldp;
      if (a.pre) {
        p = a.pre + m0 * a.ldp + n0;
        ldp = a.ldp;
      } else {
        tile.resize(size_t(mb * gemm::kCols));
        p = tile.data();
        ldp = gemm::kCols;
      }
      HWY_DYNAMIC_DISPATCH(PreTile)(a.wdt, a.x + m0 * a.ldx, size_t(a.ldx), size_t(mb),
                                    size_t(a.K), wb + size_t(n0) * es, size_t(a.ldw), size_t(nb),
                                    size_t(gemm::kK), a.bias ? a.bias + n0 : nullptr, p,
                                    size_t(ldp));
      for (int64_t r = 0; r < mb; ++r) {
        const float* pr = p + r * ldp;
        if (topk) {
          for (int64_t n = 0; n < nb; ++n) best[size_t(r)].offer({pr[n], int32_t(n0 + n)}, size_t(a.k));
          continue;
        }
        float* dr = a.dense ? a.dense + (m0 + r) * a.ldd + n0 : nullptr;
        for (int64_t n = 0; n < nb; ++n) {
          const float v = activate(a.act, pr[n], a.threshold, n0 + n);
          if (dr) dr[n] = v;
          if (emit && v != 0.0f) {
            rows.push_back(int32_t(r));
            cols.push_back(int32_t(n0 + n));
            vals.push_back(v);
          }
        }
      }
    }
    if (!emit) return;
    RowsOut& out = task_out[size_t(t)];
    out.count.assign(size_t(mb), 0);
    if (topk) {
      for (int64_t r = 0; r < mb; ++r) {
        TopKBuffer& b = best[size_t(r)];
        b.prune(size_t(a.k));
        out.count[size_t(r)] = int64_t(b.c.size());
        for (const Candidate& c : b.c) {
          out.idx.push_back(c.i);
          out.val.push_back(c.v);
        }
      }
      return;
    }
    // Group the entries by row (a stable counting sort keeps each row's features increasing).
    for (int32_t r : rows) ++out.count[size_t(r)];
    std::vector<int64_t> at(size_t(mb) + 1, 0);
    for (int64_t r = 0; r < mb; ++r) at[size_t(r) + 1] = at[size_t(r)] + out.count[size_t(r)];
    out.idx.resize(rows.size());
    out.val.resize(rows.size());
    for (size_t e = 0; e < rows.size(); ++e) {
      const size_t d = size_t(at[size_t(rows[e])]++);
      out.idx[d] = cols[e];
      out.val[d] = vals[e];
    }
  });
  if (!emit) return {};

  // Per row block: each row's entries from the column blocks in order (TopK: the best k of the
  // candidates, in feature order, after the ReLU).
  std::vector<RowsOut> blocks(static_cast<size_t>(m_blocks));
  parallel_for(m_blocks, [&](int64_t rb, int) {
    const int64_t m0 = rb * mb_size, mb = std::min(mb_size, M - m0);
    RowsOut& out = blocks[size_t(rb)];
    out.count.assign(size_t(mb), 0);
    std::vector<size_t> cursor(size_t(n_chunks), 0);
    std::vector<Candidate> cand;
    for (int64_t r = 0; r < mb; ++r) {
      cand.clear();
      for (int64_t cc = 0; cc < n_chunks; ++cc) {
        const RowsOut& t = task_out[size_t(rb * n_chunks + cc)];
        const size_t n = size_t(t.count[size_t(r)]);
        size_t& at = cursor[size_t(cc)];
        for (size_t e = at; e < at + n; ++e) cand.push_back({t.val[e], t.idx[e]});
        at += n;
      }
      if (topk) {
        if (cand.size() > size_t(a.k)) {
          std::nth_element(cand.begin(), cand.begin() + (a.k - 1), cand.end(), better);
          cand.resize(size_t(a.k));
        }
        std::sort(cand.begin(), cand.end(),
                  [](const Candidate& x, const Candidate& y) { return x.i < y.i; });
        float* dr = a.dense ? a.dense + (m0 + r) * a.ldd : nullptr;
        if (dr) std::fill(dr, dr + N, 0.0f);
        for (const Candidate& c : cand) {
          if (!(c.v > 0.0f)) continue;  // the ReLU after the selection
          if (dr) dr[c.i] = c.v;
          if (a.sparse) {
            out.idx.push_back(c.i);
            out.val.push_back(c.v);
            ++out.count[size_t(r)];
          }
        }
      } else {
        for (const Candidate& c : cand) {
          out.idx.push_back(c.i);
          out.val.push_back(c.v);
        }
        out.count[size_t(r)] = int64_t(cand.size());
      }
    }
    for (int64_t cc = 0; cc < n_chunks; ++cc) task_out[size_t(rb * n_chunks + cc)] = RowsOut();
  });
  if (!a.sparse) return {};
  return finish_rows(blocks, M);
}

void sae_decode(const int64_t* offsets, const int32_t* indices, const float* values, int64_t M,
                DType wdt, const void* w, int64_t ldw, int64_t N, const float* bias, float* out,
                int64_t ldo) {
  if (M <= 0 || N <= 0) return;
  const int64_t row_tasks = ceil_div(M, kDecodeRows), col_tasks = ceil_div(N, kDecodeCols);
  parallel_for(row_tasks * col_tasks, [&](int64_t t, int) {
    const int64_t m0 = (t / col_tasks) * kDecodeRows, n0 = (t % col_tasks) * kDecodeCols;
    HWY_DYNAMIC_DISPATCH(DecodeBlock)(offsets + m0, indices, values,
                                      size_t(std::min(kDecodeRows, M - m0)), wdt, w, size_t(ldw),
                                      size_t(n0), size_t(std::min(kDecodeCols, N - n0)), bias,
                                      out + m0 * ldo, size_t(ldo));
  });
}

SparseRows sparse_rows(const float* acts, int64_t lda, int64_t M, int64_t S) {
  std::vector<RowsOut> blocks(static_cast<size_t>(ceil_div(M, kGatherRows)));
  parallel_for(int64_t(blocks.size()), [&](int64_t b, int) {
    const int64_t m0 = b * kGatherRows, mb = std::min(kGatherRows, M - m0);
    RowsOut& out = blocks[size_t(b)];
    out.count.assign(size_t(mb), 0);
    for (int64_t r = 0; r < mb; ++r) {
      const float* row = acts + (m0 + r) * lda;
      for (int64_t s = 0; s < S; ++s) {
        if (row[s] != 0.0f) {
          out.idx.push_back(int32_t(s));
          out.val.push_back(row[s]);
          ++out.count[size_t(r)];
        }
      }
    }
  });
  return finish_rows(blocks, M);
}

}  // namespace gemmacpp::cpu
#endif
