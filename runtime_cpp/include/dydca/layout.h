// dydca: data-movement kernels (see frontends/ops/layout.py for the ops that use them).
//
// Most layout ops (Transpose, DepthToSpace, SpaceToDepth, Slice, Expand, Tile) are one strided
// gather: the output, contiguous, read from the input through a view (shape, strides, offset) the
// compiler derives from the op. The others (Concat/Split, Gather, Pad, Resize) are row copies.
// Nothing here allocates: index tables live on the stack in fixed-size blocks.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "dydca/runtime.h"

namespace dydca {

constexpr int kMaxLayoutRank = 16;
// Below this many elements a kernel runs on one thread: a parallel region costs more than it saves.
constexpr int64_t kSerialElems = 32768;

inline int layout_threads(int64_t elems, int threads) { return elems < kSerialElems ? 1 : threads; }

// y[0..n) = x[0], x[st], x[2 st], ...; contiguous and broadcast rows become memcpy / fill.
template <class T>
inline void copy_row(T* y, const T* x, int64_t n, int64_t st) {
  if (st == 1) {
    if (n >= 16) std::memcpy(y, x, size_t(n) * sizeof(T));
    else for (int64_t i = 0; i < n; ++i) y[i] = x[i];
  } else if (st == 0) {
    std::fill(y, y + n, *x);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i * st];
  }
}

// Drops size-1 axes and merges axes whose strides chain (a view of a contiguous block reads as one
// axis); returns the new rank. Fewer, longer axes mean longer inner rows.
inline int coalesce_view(int rank, const int64_t* shape, const int64_t* st, int64_t* cs, int64_t* cst) {
  int n = 0;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    if (n > 0 && cst[n - 1] == st[d] * shape[d]) {
      cs[n - 1] *= shape[d];
      cst[n - 1] = st[d];
      continue;
    }
    cs[n] = shape[d];
    cst[n] = st[d];
    ++n;
  }
  return n;
}

// Runs f(begin, end) over [0, n) split into about `threads * 4` contiguous chunks.
template <class F>
inline void parallel_chunks(int64_t n, int threads, F f) {
  int64_t chunks = threads <= 1 ? 1 : std::min<int64_t>(n, int64_t(threads) * 4);
  if (chunks <= 0) return;
  parallel_for(chunks, threads, [&](int64_t c) { f(n * c / chunks, n * (c + 1) / chunks); });
}

// out (contiguous, shape `shape`) [i0, .., i_{r-1}] = in[offset + sum_d i_d * st[d]].
// Strides may be 0 (broadcast) or negative (reversed slices).
template <class T>
void strided_copy(T* out, const T* in, int rank, const int64_t* shape, const int64_t* st, int threads) {
  int64_t cs[kMaxLayoutRank], cst[kMaxLayoutRank];
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) total *= shape[d];
  if (total == 0) return;
  int n = coalesce_view(rank, shape, st, cs, cst);
  threads = layout_threads(total, threads);
  if (n == 0) {
    out[0] = in[0];
    return;
  }
  if (n == 1) {  // one long row: split it between threads
    parallel_chunks(cs[0], threads, [&](int64_t b, int64_t e) { copy_row(out + b, in + b * cst[0], e - b, cst[0]); });
    return;
  }
  const int64_t inner = cs[n - 1], ist = cst[n - 1];
  int p = -1;  // an outer axis read contiguously: then rows are strided, and a blocked transpose wins
  if (ist != 1 && ist != 0)
    for (int d = n - 2; d >= 0; --d)
      if (cst[d] == 1) { p = d; break; }
  if (p < 0) {
    int64_t rows = total / inner;
    parallel_chunks(rows, threads, [&](int64_t r0, int64_t r1) {
      int64_t idx[kMaxLayoutRank], off = 0;
      int64_t r = r0;
      for (int d = n - 2; d >= 0; --d) { idx[d] = r % cs[d]; r /= cs[d]; off += idx[d] * cst[d]; }
      for (int64_t row = r0; row < r1; ++row) {
        copy_row(out + row * inner, in + off, inner, ist);
        for (int d = n - 2; d >= 0; --d) {  // odometer step
          off += cst[d];
          if (++idx[d] < cs[d]) break;
          off -= cst[d] * cs[d];
          idx[d] = 0;
        }
      }
    });
    return;
  }
  // Blocked transpose between axis p (input-contiguous) and the last axis (output-contiguous):
  // a B x B tile touches B input and B output cache lines instead of B*B of one of them.
  constexpr int64_t B = 32;
  int64_t ost[kMaxLayoutRank];
  ost[n - 1] = 1;
  for (int d = n - 2; d >= 0; --d) ost[d] = ost[d + 1] * cs[d + 1];
  const int64_t P = cs[p], pb = (P + B - 1) / B, qb = (inner + B - 1) / B;
  const int64_t others = total / (P * inner);
  parallel_for(others * pb * qb, threads, [&](int64_t job) {
    int64_t j = job / (pb * qb), t = job % (pb * qb);
    int64_t p0 = (t / qb) * B, q0 = (t % qb) * B;
    int64_t ioff = 0, ooff = 0;
    for (int d = n - 2; d >= 0; --d) {
      if (d == p) continue;
      int64_t i = j % cs[d];
      j /= cs[d];
      ioff += i * cst[d];
      ooff += i * ost[d];
    }
    const int64_t p1 = std::min(P, p0 + B), q1 = std::min(inner, q0 + B), op = ost[p];
    for (int64_t a = p0; a < p1; ++a) {
      const T* x = in + ioff + a;
      T* y = out + ooff + a * op;
      for (int64_t q = q0; q < q1; ++q) y[q] = x[q * ist];
    }
  });
}

// rows x len block copies: dst[r * dst_pitch + i] = src[r * src_pitch + i] (Concat, Split).
template <class T>
void copy_blocks(T* dst, int64_t dst_pitch, const T* src, int64_t src_pitch, int64_t len, int64_t rows,
                 int threads) {
  if (rows * len == 0) return;
  threads = layout_threads(rows * len, threads);
  if (rows == 1) {
    parallel_chunks(len, threads, [&](int64_t b, int64_t e) { copy_row(dst + b, src + b, e - b, 1); });
    return;
  }
  parallel_chunks(rows, threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) copy_row(dst + r * dst_pitch, src + r * src_pitch, len, 1);
  });
}

// out[o, j, i] = data[o, idx[j], i] with data viewed as [outer, axis, inner]; negative indices
// count from the end. Indices are checked first, outside the parallel region (throwing inside one
// would terminate the process).
template <class T, class I>
void gather(T* out, const T* data, const I* idx, int64_t outer, int64_t axis, int64_t n_idx, int64_t inner,
            int threads) {
  for (int64_t j = 0; j < n_idx; ++j)
    if (idx[j] < -axis || idx[j] >= axis)
      throw InvalidInput("Gather: index " + std::to_string(int64_t(idx[j])) + " is out of range for an axis of size " +
                              std::to_string(axis));
  if (outer * n_idx * inner == 0) return;
  threads = layout_threads(outer * n_idx * inner, threads);
  parallel_chunks(outer * n_idx, threads, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t o = r / n_idx, i = int64_t(idx[r % n_idx]);
      if (i < 0) i += axis;
      copy_row(out + r * inner, data + (o * axis + i) * inner, inner, 1);
    }
  });
}

// ---- Pad ----
enum class PadMode { constant = 0, reflect = 1, edge = 2, wrap = 3 };

// Source index of output position i - begin along an axis of size n, or -1 (constant padding).
inline int64_t pad_source(PadMode m, int64_t i, int64_t n) {
  if (i >= 0 && i < n) return i;
  switch (m) {
    case PadMode::constant: return -1;
    case PadMode::edge: return i < 0 ? 0 : n - 1;
    case PadMode::wrap: return pymod(i, n);
    case PadMode::reflect: {
      if (n == 1) return 0;
      int64_t period = 2 * (n - 1), k = pymod(i, period);
      return k < n ? k : period - k;
    }
  }
  return -1;
}

// out = pad(in) with per-axis leading pads `begin` (negative pads crop). Each output row is a
// left part, a memcpy of the input row's overlap and a right part.
template <class T>
void pad(T* out, const T* in, int rank, const int64_t* in_shape, const int64_t* out_shape, const int64_t* begin,
         PadMode mode, T value, int threads) {
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) total *= out_shape[d];
  if (total == 0) return;
  for (int d = 0; d < rank; ++d)
    if (in_shape[d] == 0 && mode != PadMode::constant)
      throw std::invalid_argument("Pad: reflect/edge/wrap padding of an empty axis");
  if (rank == 0) { out[0] = in[0]; return; }
  const int64_t Lo = out_shape[rank - 1], Li = in_shape[rank - 1], b = begin[rank - 1];
  const int64_t mid0 = std::clamp<int64_t>(b, 0, Lo), mid1 = std::clamp<int64_t>(b + Li, mid0, Lo);
  int64_t ist[kMaxLayoutRank];
  ist[rank - 1] = 1;
  for (int d = rank - 2; d >= 0; --d) ist[d] = ist[d + 1] * in_shape[d + 1];
  parallel_chunks(total / Lo, layout_threads(total, threads), [&](int64_t r0, int64_t r1) {
    for (int64_t row = r0; row < r1; ++row) {
      T* y = out + row * Lo;
      int64_t off = 0, r = row;
      bool fill = false;
      for (int d = rank - 2; d >= 0; --d) {
        int64_t s = pad_source(mode, r % out_shape[d] - begin[d], in_shape[d]);
        r /= out_shape[d];
        if (s < 0) { fill = true; break; }
        off += s * ist[d];
      }
      if (fill) { std::fill(y, y + Lo, value); continue; }
      const T* x = in + off;
      if (mode == PadMode::constant) {
        std::fill(y, y + mid0, value);
        std::fill(y + mid1, y + Lo, value);
      } else {
        for (int64_t i = 0; i < mid0; ++i) y[i] = x[pad_source(mode, i - b, Li)];
        for (int64_t i = mid1; i < Lo; ++i) y[i] = x[pad_source(mode, i - b, Li)];
      }
      if (mid1 > mid0) copy_row(y + mid0, x + (mid0 - b), mid1 - mid0, 1);
    }
  });
}

// ---- Resize / Upsample ----
enum class Coord { half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn };
enum class Nearest { round_prefer_floor, round_prefer_ceil, floor, ceil, simple };

// Input coordinate of output coordinate x, in float like onnxruntime (so that nearest rounding
// ties fall the same way).
inline float resize_coord(Coord c, float x, float scale, int64_t in, int64_t out) {
  switch (c) {
    case Coord::half_pixel: return (x + 0.5f) / scale - 0.5f;
    case Coord::pytorch_half_pixel: return out > 1 ? (x + 0.5f) / scale - 0.5f : 0.0f;
    case Coord::align_corners: return out == 1 ? 0.0f : x * float(in - 1) / float(out - 1);
    case Coord::asymmetric: return x / scale;
    case Coord::tf_half_pixel_for_nn: return (x + 0.5f) / scale;
  }
  return 0.0f;
}

inline int64_t nearest_index(Coord c, Nearest m, int64_t x, float scale, int64_t in, int64_t out) {
  if (scale == 1.0f) return std::min(x, in - 1);  // onnxruntime leaves unscaled axes alone in every mode
  float v = resize_coord(c, float(x), scale, in, out);
  int64_t i;
  switch (m) {
    case Nearest::round_prefer_floor:
      i = (v == float(int64_t(v)) + 0.5f) ? int64_t(std::floor(v)) : int64_t(std::round(v));
      break;
    case Nearest::round_prefer_ceil: i = int64_t(std::round(v)); break;
    case Nearest::floor: i = int64_t(std::floor(v)); break;
    case Nearest::ceil: i = int64_t(std::ceil(v)); break;
    default: i = scale < 1.0f ? int64_t(std::ceil(v)) : int64_t(v); break;  // opset < 11 Upsample
  }
  return std::clamp<int64_t>(i, 0, in - 1);
}

// Columns per stack-resident index/weight table block.
constexpr int64_t kResizeBlock = 256;

// Nearest resize of any rank. `fast_x`/`fast_y` say the compiler proved that an integer factor k
// maps output x to input x / k on the last / second-last axis (for the actual factor at run time);
// then, with the other axes unscaled, each input row is widened once and copied k_y times.
template <class T>
void resize_nearest(T* out, const T* in, int rank, const int64_t* in_shape, const int64_t* out_shape,
                    const float* scales, Coord coord, Nearest mode, unsigned fast_x, unsigned fast_y, int threads) {
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) total *= out_shape[d];
  if (total == 0) return;
  threads = layout_threads(total, threads);
  if (rank == 0) { out[0] = in[0]; return; }
  const int64_t Wo = out_shape[rank - 1], Wi = in_shape[rank - 1];
  const int64_t Ho = rank > 1 ? out_shape[rank - 2] : 1, Hi = rank > 1 ? in_shape[rank - 2] : 1;
  bool outer_same = true;
  for (int d = 0; d < rank - 2; ++d) outer_same = outer_same && in_shape[d] == out_shape[d];
  auto factor_ok = [](int64_t o, int64_t i, unsigned mask) {
    if (o == i) return true;
    int64_t k = i > 0 ? o / i : 0;
    return o == k * i && k < 32 && ((mask >> k) & 1u);
  };
  if (outer_same && factor_ok(Wo, Wi, fast_x) && factor_ok(Ho, Hi, fast_y)) {
    const int64_t kx = Wo / Wi, ky = Ho / Hi, rows = total / Wo / ky;  // input rows
    parallel_chunks(rows, threads, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* x = in + r * Wi;
        T* y = out + r * ky * Wo;
        if (kx == 1) copy_row(y, x, Wi, 1);
        else if (kx == 2) for (int64_t i = 0; i < Wi; ++i) { y[2 * i] = x[i]; y[2 * i + 1] = x[i]; }
        else for (int64_t i = 0; i < Wo; ++i) y[i] = x[i / kx];
        for (int64_t k = 1; k < ky; ++k) copy_row(y + k * Wo, y, Wo, 1);
      }
    });
    return;
  }
  int64_t ist[kMaxLayoutRank];
  ist[rank - 1] = 1;
  for (int d = rank - 2; d >= 0; --d) ist[d] = ist[d + 1] * in_shape[d + 1];
  parallel_chunks(total / Wo, threads, [&](int64_t r0, int64_t r1) {
    int32_t tab[kResizeBlock];
    for (int64_t x0 = 0; x0 < Wo; x0 += kResizeBlock) {
      const int64_t nb = std::min(kResizeBlock, Wo - x0);
      for (int64_t j = 0; j < nb; ++j)
        tab[j] = int32_t(nearest_index(coord, mode, x0 + j, scales[rank - 1], Wi, Wo));
      for (int64_t row = r0; row < r1; ++row) {
        int64_t off = 0, r = row;
        for (int d = rank - 2; d >= 0; --d) {
          off += nearest_index(coord, mode, r % out_shape[d], scales[d], in_shape[d], out_shape[d]) * ist[d];
          r /= out_shape[d];
        }
        const T* x = in + off;
        T* y = out + row * Wo + x0;
        for (int64_t j = 0; j < nb; ++j) y[j] = x[tab[j]];
      }
    }
  });
}

// Source indices and weights of one output coordinate of a linear resize (onnxruntime's formula:
// the coordinate is clamped into the input, the weights are distances to the two neighbours).
struct LinearTap {
  int64_t i0, i1;
  float w0, w1;
};

inline LinearTap linear_tap(Coord c, int64_t x, float scale, int64_t in, int64_t out) {
  float v = scale == 1.0f ? float(x) : resize_coord(c, float(x), scale, in, out);
  v = std::max(0.0f, std::min(v, float(in - 1)));
  LinearTap t;
  t.i0 = std::min<int64_t>(int64_t(v), in - 1);
  t.i1 = std::min<int64_t>(t.i0 + 1, in - 1);
  t.w1 = std::fabs(v - float(t.i0));
  t.w0 = std::fabs(v - float(t.i1));
  if (t.i0 == t.i1) t.w0 = t.w1 = 0.5f;
  return t;
}

// Bilinear resize of the last two axes of [planes, Hi, Wi] into [planes, Ho, Wo]. Column taps are
// tabulated per block of kResizeBlock columns, row taps once per row: the inner loop is four
// gathers and multiply-adds.
template <class T>
void resize_bilinear(T* out, const T* in, int64_t planes, int64_t Hi, int64_t Wi, int64_t Ho, int64_t Wo,
                     float sy, float sx, Coord coord, int threads) {
  const int64_t total = planes * Ho * Wo;
  if (total == 0) return;
  threads = layout_threads(total, threads);
  // enough jobs for every thread even with a single plane: split each plane into row bands
  const int64_t bands = std::max<int64_t>(1, std::min<int64_t>(Ho, (int64_t(threads) * 4 + planes - 1) / planes));
  parallel_for(planes * bands, threads, [&](int64_t job) {
    const int64_t p = job / bands, band = job % bands;
    const int64_t y0 = Ho * band / bands, y1 = Ho * (band + 1) / bands;
    const T* x = in + p * Hi * Wi;
    T* o = out + p * Ho * Wo;
    int32_t c0[kResizeBlock], c1[kResizeBlock];
    float w0[kResizeBlock], w1[kResizeBlock];
    for (int64_t xb = 0; xb < Wo; xb += kResizeBlock) {
      const int64_t nb = std::min(kResizeBlock, Wo - xb);
      for (int64_t j = 0; j < nb; ++j) {
        LinearTap t = linear_tap(coord, xb + j, sx, Wi, Wo);
        c0[j] = int32_t(t.i0); c1[j] = int32_t(t.i1); w0[j] = t.w0; w1[j] = t.w1;
      }
      for (int64_t y = y0; y < y1; ++y) {
        LinearTap ty = linear_tap(coord, y, sy, Hi, Ho);
        const T* ra = x + ty.i0 * Wi;
        const T* rb = x + ty.i1 * Wi;
        T* yo = o + y * Wo + xb;
        const float a = ty.w0, b = ty.w1;
        for (int64_t j = 0; j < nb; ++j)
          yo[j] = T(a * (w0[j] * ra[c0[j]] + w1[j] * ra[c1[j]]) + b * (w0[j] * rb[c0[j]] + w1[j] * rb[c1[j]]));
      }
    }
  });
}

// ---- generators ----
template <class T>
void fill(T* out, int64_t n, T value, int threads) {
  parallel_chunks(n, layout_threads(n, threads), [&](int64_t b, int64_t e) { std::fill(out + b, out + e, value); });
}

// Range: floats accumulate like onnxruntime (value += delta), integers are exact either way.
template <class T>
void range(T* out, int64_t n, T start, T delta) {
  T v = start;
  for (int64_t i = 0; i < n; ++i) { out[i] = v; v += delta; }
}

}  // namespace dydca
