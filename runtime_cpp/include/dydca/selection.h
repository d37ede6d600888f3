// dydca selection kernels: operators whose output extent depends on the data (NonZero) or on a
// run-time input (TopK's k). NonZero returns the extent it found, topk_check_k the k it checked; the
// generated code stores it as the execution-determined dim that later shape expressions read. The
// output buffers are planned at the extent's bound.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <type_traits>

#include "dydca/parallel.h"
#include "dydca/runtime.h"

namespace dydca {

// NonZero: out is [R, count] row-major, indices in row-major element order (as ONNX). Two passes
// over the same chunks: count per chunk, then each chunk writes from its prefix offset.
template <class T, int R>
int64_t nonzero(const T* x, const int64_t (&shape)[R], int64_t* out, int threads) {
  int64_t n = 1;
  for (int d = 0; d < R; ++d) n *= shape[d];
  constexpr int kMaxChunks = 64;
  const int chunks = int(std::clamp<int64_t>(n / 32768, 1, std::clamp(threads, 1, kMaxChunks)));
  const int64_t per = (n + chunks - 1) / chunks;
  int64_t start[kMaxChunks + 1] = {};
  parallel_for(chunks, chunks, [&](int64_t c) {
    const int64_t lo = c * per, hi = std::min(n, lo + per);
    int64_t cnt = 0;
    for (int64_t i = lo; i < hi; ++i) cnt += x[i] != T(0);
    start[c + 1] = cnt;
  });
  for (int c = 0; c < chunks; ++c) start[c + 1] += start[c];
  const int64_t count = start[chunks];
  parallel_for(chunks, chunks, [&](int64_t c) {
    const int64_t lo = c * per, hi = std::min(n, lo + per);
    int64_t idx[R], pos = start[c];
    for (int d = R - 1, r = lo; d >= 0; --d) { idx[d] = r % shape[d]; r /= shape[d]; }
    for (int64_t i = lo; i < hi; ++i) {
      if (x[i] != T(0)) {
        for (int d = 0; d < R; ++d) out[d * count + pos] = idx[d];
        ++pos;
      }
      for (int d = R - 1; d >= 0 && ++idx[d] == shape[d]; --d) idx[d] = 0;
    }
  });
  return count;
}

// ---- TopK ----
// x viewed as [outer, n, inner]: each of the outer x inner rows (stride inner along the axis) keeps
// its k best elements, written as [outer, k, inner]. The results equal onnxruntime's, including
// sorted=0, whose order is whatever its selection leaves: the same three strategies are used (a
// running best for k = 1; a bounded heap when k is small next to n; nth_element otherwise) with
// the same comparisons, so each leaves the same permutation (for nth_element, as long as both use
// the same standard library's: libstdc++ here and in onnxruntime's Linux wheels, tested).

// Threads one call uses at most: the planner sizes the scratch for min(rows, this) x n positions
// (frontends/ops/selection.py, TOPK_MAX_WORKERS).
constexpr int kTopKMaxWorkers = 64;

// k checked against the axis size (a run-time k before it becomes the output's extent); returns k.
inline int64_t topk_check_k(int64_t k, int64_t n, const char* what) {
  if (k < 0 || k > n)
    throw InvalidInput(std::string(what) + ": k = " + std::to_string(k) + " is out of range for an axis of size " +
                       std::to_string(n) + " (0 <= k <= " + std::to_string(n) + ")");
  return k;
}

namespace detail {

// Output order of two positions along a row: `a` goes first when its value ranks higher (lower
// for smallest), equal values by position. NaN ranks above every number and NaNs equal each other
// (as onnxruntime: first for largest, last for smallest); this is a strict weak order, which
// nth_element and sort need.
template <class T, bool Largest>
struct TopKBefore {
  const T* x;
  int64_t stride;

  static bool above(T a, T b) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a)) return !std::isnan(b);
      if (std::isnan(b)) return false;
    }
    return a > b;
  }
  bool operator()(int32_t a, int32_t b) const {
    const T va = x[a * stride], vb = x[b * stride];
    const bool first = Largest ? above(va, vb) : above(vb, va);
    return first || (a < b && !above(va, vb) && !above(vb, va));
  }
};

// Restores the heap below slot i: every parent goes after both its children, so the root is the
// weakest kept element. Which child a sinking element trades places with follows onnxruntime's
// HeapifyIthPosition, so that an unsorted result lists the heap in the same order.
template <class Before>
inline void topk_sift(int32_t* h, int64_t i, int64_t size, const Before& before) {
  for (;;) {
    const int64_t l = 2 * i + 1, r = l + 1;
    int64_t to;
    if (r < size) {
      const bool beats_left = before(h[i], h[l]);
      if (beats_left && before(h[r], h[l])) to = l;  // left goes after both: it moves up
      else if (beats_left || before(h[i], h[r])) to = r;
      else return;
    } else if (l < size && before(h[i], h[l])) {
      to = l;
    } else {
      return;
    }
    std::swap(h[i], h[to]);
    i = to;
  }
}

// onnxruntime's choice between the heap and nth_element (it decides the unsorted order).
inline bool topk_use_heap(int64_t k, int64_t n) {
  return k < 4 || std::log2(double(k)) / std::log2(double(n)) < 0.725;
}

// One row: 1 <= k <= n; pos holds n positions (k for the heap).
template <class T, bool Largest>
void topk_row(const T* x, int64_t n, int64_t stride, int64_t k, bool sorted, int32_t* pos,
              T* values, int64_t* indices) {
  const TopKBefore<T, Largest> before{x, stride};
  auto put = [&](int64_t j, int32_t p) {
    if (values) values[j * stride] = x[p * stride];
    if (indices) indices[j * stride] = p;
  };
  if (k == 1) {
    int32_t best = 0;
    for (int32_t p = 1; p < n; ++p)
      if (before(p, best)) best = p;
    put(0, best);
  } else if (topk_use_heap(k, n)) {
    for (int64_t l = 0; l < k; ++l) {  // the first k, filled from the last slot up
      pos[k - 1 - l] = int32_t(l);
      topk_sift(pos, k - 1 - l, k, before);
    }
    for (int32_t p = int32_t(k); p < n; ++p) {
      if (before(p, pos[0])) {  // beats the weakest kept: replaces it
        pos[0] = p;
        topk_sift(pos, 0, k, before);
      }
    }
    if (sorted) {
      for (int64_t m = k; m > 0; --m) {  // pop the weakest into the last free output slot
        put(m - 1, pos[0]);
        pos[0] = pos[m - 1];
        topk_sift(pos, 0, m - 1, before);
      }
    } else {
      for (int64_t j = 0; j < k; ++j) put(j, pos[j]);
    }
  } else {
    std::iota(pos, pos + n, int32_t(0));
    std::nth_element(pos, pos + (k - 1), pos + n, before);
    if (sorted) std::sort(pos, pos + k, before);
    for (int64_t j = 0; j < k; ++j) put(j, pos[j]);
  }
}

template <class T, bool Largest>
void topk_rows(const T* x, int64_t outer, int64_t n, int64_t k, int64_t inner, bool sorted, T* values,
               int64_t* indices, int32_t* scratch, int threads) {
  const int64_t rows = outer * inner;
  // a worker per chunk of rows, each with its own n positions of scratch; small calls stay serial
  const int64_t most = std::min<int64_t>({rows, kTopKMaxWorkers, std::max(threads, 1)});
  const int64_t workers = std::clamp<int64_t>(rows * n / 16384, 1, most);
  const int64_t per = (rows + workers - 1) / workers;
  parallel_for(workers, int(workers), [&](int64_t c) {
    int32_t* pos = scratch + c * n;
    for (int64_t r = c * per, end = std::min(rows, r + per); r < end; ++r) {
      const int64_t o = r / inner, i = r % inner;
      topk_row<T, Largest>(x + o * n * inner + i, n, inner, k, sorted, pos,
                           values ? values + o * k * inner + i : nullptr,
                           indices ? indices + o * k * inner + i : nullptr);
    }
  });
}

}  // namespace detail

// TopK over the axis of x viewed as [outer, n, inner]; 0 <= k <= n (checked by the caller).
// values/indices: [outer, k, inner], either may be null (an absent output). scratch: at least
// min(outer * inner, kTopKMaxWorkers) * n int32 slots when k > 1.
template <class T>
void topk(const T* x, int64_t outer, int64_t n, int64_t k, int64_t inner, bool largest, bool sorted,
          T* values, int64_t* indices, void* scratch, int threads) {
  if (k == 0 || outer * inner == 0) return;
  int32_t* pos = static_cast<int32_t*>(scratch);
  if (largest) detail::topk_rows<T, true>(x, outer, n, k, inner, sorted, values, indices, pos, threads);
  else detail::topk_rows<T, false>(x, outer, n, k, inner, sorted, values, indices, pos, threads);
}

}  // namespace dydca
