// dydca: matrix products on top of the shared GEMM (gemm.h): batched, broadcasting MatMul and Gemm
// (frontends/ops/linalg.py lists the ops that use them).
#pragma once
#include <cstdint>

#include "dydca/gemm.h"
#include "dydca/runtime.h"

namespace dydca {

// Batch geometry of a broadcast MatMul: NB batch axes of the output with, per axis, the size and
// the A / B matrix strides (in whole matrices; 0 along broadcast axes). A batch is one
// [M, K] x [K, N] product; the output batches are contiguous [M, N] matrices.
template <int NB>
struct MatmulBatch {
  int64_t n[NB], sa[NB], sb[NB];
};

// out[b] = epi(A[b] @ B[b]) for every output batch b. B is either run-time (B != nullptr, stride
// bstride floats between matrices) or packed at compile time (b_packed, one packed matrix of
// packed_stride floats per B batch). Many small products run one per thread (GEMM reading B in
// place); few large ones run one after another, each using every thread and the scratch to pack B.
// epi(v, batch, row, col) sees the batch index too, for epilogue operands.
template <int NB, class Epi>
void matmul(const MatmulBatch<NB>& g, int64_t M, int64_t N, int64_t K, const float* A, int64_t astride,
            const float* B, int64_t bstride, const float* b_packed, int64_t packed_stride, float* C,
            Epi epi, void* scratch, int threads) {
  int64_t nbatch = 1;
  for (int d = 0; d < NB; ++d) nbatch *= g.n[d];
  auto one = [&](int64_t b, void* scr, int t) {
    int64_t ia = 0, ib = 0, rest = b;
    for (int d = NB - 1; d >= 0; --d) {
      const int64_t i = rest % g.n[d];
      rest /= g.n[d];
      ia += i * g.sa[d];
      ib += i * g.sb[d];
    }
    const float* a = A + ia * astride;
    const float* bp = b_packed ? b_packed + ib * packed_stride : nullptr;
    const float* bm = b_packed ? nullptr : B + ib * bstride;
    gemm(M, N, K, a, K, bm, N, bp, C + b * M * N, N,
         [&](float v, int64_t r, int64_t c) { return epi(v, b, r, c); }, scr, t);
  };
  if (nbatch >= threads && nbatch > 1) {
    parallel_for(nbatch, threads, [&](int64_t b) { one(b, nullptr, 1); });
  } else {
    for (int64_t b = 0; b < nbatch; ++b) one(b, scratch, threads);
  }
}

// dst[c, r] = src[r, c] for a rows x cols row-major matrix (Gemm's transA/transB on run-time data),
// in 8x8 tiles through gemm.h's register transpose.
inline void transpose2d(const float* src, int64_t rows, int64_t cols, float* dst, int threads) {
  const int64_t rb = (rows + 7) / 8;
  parallel_for(rb, rows * cols < 32768 ? 1 : threads, [&](int64_t bi) {
    const int64_t r0 = bi * 8;
    int64_t c0 = 0;
    if (r0 + 8 <= rows)
      for (; c0 + 8 <= cols; c0 += 8) detail::transpose8x8(src + r0 * cols + c0, cols, dst + c0 * rows + r0, rows);
    for (int64_t r = r0; r < std::min(rows, r0 + 8); ++r)
      for (int64_t c = c0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
  });
}

// Carves 64-byte aligned pieces out of one scratch region, in the order linalg.py sized them.
inline float* scratch_take(unsigned char*& p, int64_t floats) {
  float* out = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
  p = reinterpret_cast<unsigned char*>(out + floats);
  return out;
}

}  // namespace dydca
