// dydca selection kernels: operators whose output extent depends on the data (NonZero). Each
// returns the extent it found; the generated code stores it as the execution-determined dim that
// later shape expressions read. The output buffer is planned at the extent's bound.
#pragma once
#include <algorithm>
#include <cstdint>

#include "dydca/parallel.h"

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

}  // namespace dydca
