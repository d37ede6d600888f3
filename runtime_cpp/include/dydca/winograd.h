// dydca runtime: 3x3 stride-1 dilation-1 convolution by Winograd F(4x4, 3x3) (NCHW, fp32).
//
//   y = A^T [ (G g G^T) (.) (B^T d B) ] A     per 4x4 output tile, 6x6 input tile d (Lavin & Gray)
//
// 2.25 multiplications per output instead of 9; for the 32- and 64-channel bodies of SR nets the
// transforms cost a fraction of what the GEMMs save (frontends/ops/conv.py: conv_variants holds
// the measured crossover against the direct kernel).
//
// Weights: transformed and packed at compile time by codegen/packing.py::pack_conv2d_winograd,
//   [group][36][MBk][Cg][8]   element U[xi = 6*u + v] of (G w[g*Mg + 8*mb + j, c] G^T)[u][v]
// (output channels blocked by 8 and zero-padded, as in conv.h: row r of one position's GEMM A
// operand is (r/8)*Cg*8 + r%8, step 8 along c).
//
// Work: output tiles are numbered flat over the images (image x tile row x tile column) and handed
// out in blocks of 16 (one GEMM panel), so small images and odd widths waste no GEMM columns.
// With fewer blocks than 4 per thread (a batch-1 14x14 map is one block), the two steps below run
// as two parallel loops instead, by channel chunks and then by output row tiles, each block's V in
// a scratch slot of its own: one block per task left all threads but one idle (ResNet-50's
// 256->256 14x14 convs ran no faster on 2 threads than on 1).
// Per block:
//   1. input transform: for each channel, the 6 x (4*len + 2) input strip of each run of tiles in
//      one tile row (read in place, masked loads at the image edges) is transformed along columns
//      with vectors over the strip and gathered per tile by vector transposes; then all 16 tiles
//      along rows, with vectors over the tiles, into V[xi][c][16] (per-worker scratch);
//   2. for each 6-channel row tile of the output: 36 GEMMs M[xi] = U[xi] V[xi] (the 6x16 packed
//      micro-kernel, K = Cg) into a 36 x 6 x 16 stack buffer, then the output transform (vectors
//      over the 16 tiles) and the conv's store / epilogue per output row (conv.h: store_row), so
//      bias, activation, residual and depth-to-space stores work as in the direct kernels.
// Scratch: V is 36*Cg*16 floats per worker; the planner reserves winograd_scratch_bytes (for at
// most kWinogradMaxWorkers workers; more threads are not used) and the generated code passes it.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "conv.h"
#include "gemm.h"
#include "parallel.h"

namespace dydca {

// Workers one call uses at most; bounds the scratch (frontends/ops/conv.py: WINOGRAD_MAX_WORKERS).
constexpr int kWinogradMaxWorkers = 16;

// Bytes of scratch conv2d_winograd needs for Cg input channels per group (+64 for alignment).
inline size_t winograd_scratch_bytes(int64_t Cg) {
  return (size_t)(kWinogradMaxWorkers * 36 * Cg * detail::kGemmNR) * sizeof(float) + 64;
}

namespace detail {

constexpr int kWinoT = kGemmNR;  // tiles per block: one GEMM panel
constexpr int kWinoStrip = 4 * kWinoT + kVW;  // transformed strip columns (4*16 + 2, in whole vectors)

// o = B^T d (6 -> 6), the input transform along one axis (V: vf or vw).
template <class V>
static inline void wino_bt(const V d[6], V o[6]) {
  const V m4 = vsplat<V>(-4.f), m5 = vsplat<V>(-5.f), p4 = vsplat<V>(4.f), two = vsplat<V>(2.f);
  const V a = vfma(m4, d[2], d[4]), b = vfma(m4, d[1], d[3]);
  const V c = d[4] - d[2], e = two * (d[3] - d[1]);
  o[0] = vfma(p4, d[0], vfma(m5, d[2], d[4]));
  o[1] = a + b;
  o[2] = a - b;
  o[3] = c + e;
  o[4] = c - e;
  o[5] = vfma(p4, d[1], vfma(m5, d[3], d[5]));
}

// o = A^T m (6 -> 4), the output transform along one axis.
template <class V>
static inline void wino_at(const V m[6], V o[4]) {
  const V a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], e = m[3] - m[4];
  o[0] = m[0] + a + c;
  o[1] = vfma(vsplat<V>(2.f), e, b);
  o[2] = vfma(vsplat<V>(4.f), c, a);
  o[3] = vfma(vsplat<V>(8.f), e, b) + m[5];
}

// A run of `len` consecutive tiles of one tile row: image n, tile row tr, first tile column tc,
// first column j of the block's panel.
struct WinoSeg {
  int64_t n, tr, tc;
  int j, len;
};

// Splits the block of tiles [t0, t0 + nt) (flat over N x TH x TW) into runs within tile rows.
static inline int wino_segments(int64_t t0, int nt, int64_t TH, int64_t TW, WinoSeg* seg) {
  int ns = 0;
  for (int j = 0; j < nt;) {
    const int64_t t = t0 + j, tc = t % TW, r = t / TW;
    const int len = (int)std::min<int64_t>(nt - j, TW - tc);
    seg[ns++] = WinoSeg{r / TH, r % TH, tc, j, len};
    j += len;
  }
  return ns;
}

// 8 tiles' columns 0..3 (of a row of 4-column tiles, t[4*j + k]): e[k][j] = t[4*j + k].
static inline void wino_deinterleave(const float* t, vf e[4]) {
#ifdef DYDCA_AVX2
  const vf v0 = vload(t), v1 = vload(t + 8), v2 = vload(t + 16), v3 = vload(t + 24);
  const vf q0 = _mm256_permute2f128_ps(v0, v2, 0x20), q1 = _mm256_permute2f128_ps(v0, v2, 0x31);
  const vf q2 = _mm256_permute2f128_ps(v1, v3, 0x20), q3 = _mm256_permute2f128_ps(v1, v3, 0x31);
  const vf p0 = _mm256_unpacklo_ps(q0, q1), p1 = _mm256_unpackhi_ps(q0, q1);
  const vf p2 = _mm256_unpacklo_ps(q2, q3), p3 = _mm256_unpackhi_ps(q2, q3);
  e[0] = _mm256_shuffle_ps(p0, p2, _MM_SHUFFLE(1, 0, 1, 0));
  e[1] = _mm256_shuffle_ps(p0, p2, _MM_SHUFFLE(3, 2, 3, 2));
  e[2] = _mm256_shuffle_ps(p1, p3, _MM_SHUFFLE(1, 0, 1, 0));
  e[3] = _mm256_shuffle_ps(p1, p3, _MM_SHUFFLE(3, 2, 3, 2));
#else
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 8; ++j) e[k][j] = t[4 * j + k];
#endif
}

// The inverse: out[4*j + k] = c[k][j] for 8 tiles.
static inline void wino_interleave(const vf c[4], float* out) {
#ifdef DYDCA_AVX2
  const vf p0 = _mm256_unpacklo_ps(c[0], c[1]), p1 = _mm256_unpackhi_ps(c[0], c[1]);
  const vf p2 = _mm256_unpacklo_ps(c[2], c[3]), p3 = _mm256_unpackhi_ps(c[2], c[3]);
  const vf q0 = _mm256_shuffle_ps(p0, p2, _MM_SHUFFLE(1, 0, 1, 0)), q1 = _mm256_shuffle_ps(p0, p2, _MM_SHUFFLE(3, 2, 3, 2));
  const vf q2 = _mm256_shuffle_ps(p1, p3, _MM_SHUFFLE(1, 0, 1, 0)), q3 = _mm256_shuffle_ps(p1, p3, _MM_SHUFFLE(3, 2, 3, 2));
  vstore(out, _mm256_permute2f128_ps(q0, q1, 0x20));
  vstore(out + 8, _mm256_permute2f128_ps(q2, q3, 0x20));
  vstore(out + 16, _mm256_permute2f128_ps(q0, q1, 0x31));
  vstore(out + 24, _mm256_permute2f128_ps(q2, q3, 0x31));
#else
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 8; ++j) out[4 * j + k] = c[k][j];
#endif
}

// Columns [u, u + kVW) of one strip row (xr: its column 0), zero outside the image's columns
// [ua, ub) and for rows outside it (in == false).
static inline vw wino_strip_load(const float* xr, bool in, int u, int ua, int ub) {
  if (!in) return vw{};
  if (u >= ua && u + kVW <= ub) return vwload(xr + u);
  const int lo = std::clamp(ua - u, 0, kVW), hi = std::clamp(ub - u, 0, kVW);
  if (hi <= lo) return vw{};
#if defined(__AVX512F__)  // masked lanes are not read, wherever they point
  return _mm512_maskz_loadu_ps((__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u)), xr + u);
#elif defined(DYDCA_AVX2)
  return _mm256_maskload_ps(xr + u, _mm256_andnot_si256(vmask_n(lo), vmask_n(hi)));
#else
  vf v = vzero();
  for (int l = lo; l < hi; ++l) v[l] = xr[u + l];
  return v;
#endif
}

// Input transform of one channel (xc: its plane), first half, for one run of tiles: the strip
// transformed along columns, gathered per tile into e[i][k][sg.j + j] (row i, column k of tile j).
static inline void wino_input_run(const float* xc, int64_t H, int64_t W, int64_t pad_t, int64_t pad_l,
                                  const WinoSeg& sg, float (*e)[6][kWinoT]) {
  alignas(64) float t[6][kWinoStrip];
  const int ncol = kVW * ((4 * sg.len + 2 + kVW - 1) / kVW);
  const int64_t ih0 = 4 * sg.tr - pad_t, iw0 = 4 * sg.tc - pad_l;
  const int ua = (int)std::clamp<int64_t>(-iw0, 0, ncol), ub = (int)std::clamp<int64_t>(W - iw0, ua, ncol);
  const float* rows[6];
  bool in[6];
  for (int i = 0; i < 6; ++i) {
    const int64_t ih = ih0 + i;
    in[i] = ih >= 0 && ih < H;
    rows[i] = in[i] ? xc + ih * W + iw0 : xc;
  }
  for (int u = 0; u < ncol; u += kVW) {  // along columns: vectors over the strip
    vw d[6], o[6];
    for (int k = 0; k < 6; ++k) d[k] = wino_strip_load(rows[k], in[k], u, ua, ub);
    wino_bt(d, o);
    for (int k = 0; k < 6; ++k) vwstore(t[k] + u, o[k]);
  }
  for (int i = 0; i < 6; ++i) {
    int j = 0;
    for (; j + 8 <= sg.len; j += 8) {  // 8 tiles at a time by vector transposes
      vf q[4], r[4];
      wino_deinterleave(t[i] + 4 * j, q);
      wino_deinterleave(t[i] + 4 * j + 4, r);  // columns 4 and 5 are the next tile's 0 and 1
      float* ei = &e[i][0][sg.j + j];
      for (int k = 0; k < 4; ++k) vstore(ei + k * kWinoT, q[k]);
      vstore(ei + 4 * kWinoT, r[0]);
      vstore(ei + 5 * kWinoT, r[1]);
    }
    for (; j < sg.len; ++j)
      for (int k = 0; k < 6; ++k) e[i][k][sg.j + j] = t[i][4 * j + k];
  }
}

// Second half, once per block: e transformed along rows, vectors over the 16 tiles, into
// V[xi*ldv + j].  Columns of no tile (a short last block) hold zeros (e was zeroed).
static inline void wino_input_rows(float (*e)[6][kWinoT], float* v, int64_t ldv) {
  for (int i = 0; i < 6; ++i)
    for (int h = 0; h < kWinoT; h += kVW) {
      vw in[6], o[6];
      for (int k = 0; k < 6; ++k) in[k] = vwload(e[i][k] + h);
      wino_bt(in, o);
      for (int k = 0; k < 6; ++k) vwstore(v + (i * 6 + k) * ldv + h, o[k]);
    }
}

// Output transform of one channel (mt: its [36][kGemmMR*16] slice of the GEMM results, row stride
// kGemmMR*16)
// and its store through the epilogue, one output row of each run of tiles at a time.
template <class Epi, class Store>
static inline void wino_output(const Conv2dShape& s, const float* mt, const WinoSeg* seg, int ns, int64_t m,
                               const float* bias, float* y, const Epi& epi, const Store& store) {
  alignas(64) float ob[4][4][kWinoT];  // [row a][column b][tile]
  for (int h = 0; h < kWinoT; h += kVW) {
    vw sa[4][6];
    for (int jj = 0; jj < 6; ++jj) {
      vw in[6], o[4];
      for (int i = 0; i < 6; ++i) in[i] = vwload(mt + (i * 6 + jj) * kGemmMR * kWinoT + h);
      wino_at(in, o);
      for (int a = 0; a < 4; ++a) sa[a][jj] = o[a];
    }
    for (int a = 0; a < 4; ++a) {
      vw o[4];
      wino_at(sa[a], o);
      for (int b = 0; b < 4; ++b) vwstore(ob[a][b] + h, o[b]);
    }
  }
  const float bm = bias ? bias[m] : 0.f;
  alignas(32) float row[4 * kWinoT];
  for (int q = 0; q < ns; ++q) {
    const WinoSeg& sg = seg[q];
    const int64_t ow0 = 4 * sg.tc, cw = std::min<int64_t>(4 * sg.len, s.OW - ow0);
    for (int a = 0; a < 4 && 4 * sg.tr + a < s.OH; ++a) {
      const int64_t oh = 4 * sg.tr + a;
      int j = 0;
      for (; j + 8 <= sg.len; j += 8) {  // 8 tiles at a time by vector transposes
        const int jb = sg.j + j;
        const vf c[4] = {vload(ob[a][0] + jb), vload(ob[a][1] + jb), vload(ob[a][2] + jb), vload(ob[a][3] + jb)};
        wino_interleave(c, row + 4 * j);
      }
      for (; j < sg.len; ++j)
        for (int b = 0; b < 4; ++b) row[4 * j + b] = ob[a][b][sg.j + j];
      const int64_t i0 = ((sg.n * s.M + m) * s.OH + oh) * s.OW + ow0;
      store_row(row, cw, bm, m, i0, Strip{sg.n, oh, ow0, i0}, y, epi, store);
    }
  }
}

// The GEMMs of one block for output channels [i0, i0 + mr) (mr <= kGemmMR) of group g: mt[xi][r][16].
DYDCA_LIB DYDCA_NOINLINE void wino_gemm(const float* u, int64_t Cg, int64_t MBk, int64_t i0, int mr,
                                        const float* v, float* mt)
#if DYDCA_LIB_BODY
{
  for (int xi = 0; xi < 36; ++xi)
    gemm_tile(false, AMatrix{u + xi * MBk * Cg * 8, Cg, true}, i0, mr, Cg, v + xi * Cg * kWinoT, kWinoT, kWinoT,
              mt + xi * kGemmMR * kWinoT, kWinoT);
}
#else
;
#endif

// Input transform of channels [c0, c1) of one block of tiles [t0, t0 + nt) (flat over images and
// tiles) of group g into v (V[xi][c][16], the block's scratch).
DYDCA_LIB void wino_transform_in(const Conv2dShape& s, const float* x, int64_t g, int64_t t0, int nt,
                                 int64_t TH, int64_t TW, int64_t c0, int64_t c1, float* v)
#if DYDCA_LIB_BODY
{
  const int64_t Cg = s.C / s.group, HW = s.H * s.W;
  WinoSeg seg[kWinoT];
  const int ns = wino_segments(t0, nt, TH, TW, seg);
  alignas(64) float e[6][6][kWinoT];
  if (nt < kWinoT)  // columns of no tile: zero, so the GEMM never meets stale (denormal) data
    for (int i = 0; i < 6; ++i)
      for (int k = 0; k < 6; ++k)
        for (int j = nt; j < kWinoT; ++j) e[i][k][j] = 0.f;
  for (int64_t c = c0; c < c1; ++c) {
    for (int q = 0; q < ns; ++q)
      wino_input_run(x + (seg[q].n * s.C + g * Cg + c) * HW, s.H, s.W, s.pad_t, s.pad_l, seg[q], e);
    wino_input_rows(e, v + c * kWinoT, Cg * kWinoT);
  }
}
#else
;
#endif

// GEMMs, output transform and store of output-channel row tiles [r0, r1) (numbered as gemm_rows
// walks Mg) of one block whose V is in v.
template <class Epi, class Store>
static inline void wino_transform_out(const Conv2dShape& s, const float* u, const float* bias, float* y,
                                      const Epi& epi, const Store& store, int64_t g, int64_t t0, int nt,
                                      int64_t TH, int64_t TW, int64_t r0, int64_t r1, const float* v) {
  const int64_t Cg = s.C / s.group, Mg = s.M / s.group, MBk = (Mg + 7) / 8;
  WinoSeg seg[kWinoT];
  const int ns = wino_segments(t0, nt, TH, TW, seg);
  const float* ug = u + g * 36 * MBk * Cg * 8;
  alignas(64) float mt[36 * kGemmMR * kWinoT];
  int64_t i0 = 0, r = 0;
  for (; r < r0 && i0 < Mg; ++r) i0 += gemm_rows(i0, Mg);
  for (; r < r1 && i0 < Mg; ++r) {
    const int mr = gemm_rows(i0, Mg);
    wino_gemm(ug, Cg, MBk, i0, mr, v, mt);
    for (int j = 0; j < mr; ++j) wino_output(s, mt + j * kWinoT, seg, ns, g * Mg + i0 + j, bias, y, epi, store);
    i0 += mr;
  }
}

// Row tiles gemm_rows cuts Mg into.
static inline int64_t wino_row_tiles(int64_t Mg) {
  int64_t n = 0;
  for (int64_t i0 = 0; i0 < Mg; ++n) i0 += gemm_rows(i0, Mg);
  return n;
}

}  // namespace detail

// 3x3, stride 1, dilation 1 conv2d by F(4x4, 3x3); u: pack_conv2d_winograd weights; scratch:
// winograd_scratch_bytes(Cg) bytes.
template <class Epi, class Store = IdentityStore>
void conv2d_winograd(const Conv2dShape& s, const float* x, const float* u, const float* bias, float* y, Epi epi,
                     int threads, void* scratch, Store store = Store{}) {
  const int64_t N = s.N, G = s.group, OH = s.OH, OW = s.OW;
  if (N <= 0 || s.M <= 0 || OH <= 0 || OW <= 0) return;
  // Tiles are numbered over all images, so a batch of small patches fills whole panels.
  const int64_t Cg = s.C / G, TH = (OH + 3) / 4, TW = (OW + 3) / 4, T = N * TH * TW;
  const int64_t nb = (T + detail::kWinoT - 1) / detail::kWinoT;
  float* base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t(63));
  const int64_t per = 36 * Cg * detail::kWinoT, Mg = s.M / G;
  const int workers = std::min(threads, kWinogradMaxWorkers);
  auto block = [&](int64_t b, int64_t& g, int64_t& t0, int& nt) {
    g = b / nb;
    t0 = (b % nb) * detail::kWinoT;
    nt = (int)std::min<int64_t>(detail::kWinoT, T - t0);
  };
  if (G * nb >= 4 * workers || G * nb > kWinogradMaxWorkers) {
    // Many blocks: a task is one whole block, its V in the worker's own scratch.
    parallel_for_guided(G * nb, workers, [&](int64_t b) {
      int64_t g, t0;
      int nt;
      block(b, g, t0, nt);
      float* v = base + thread_index() * per;
      detail::wino_transform_in(s, x, g, t0, nt, TH, TW, 0, Cg, v);
      detail::wino_transform_out(s, u, bias, y, epi, store, g, t0, nt, TH, TW, 0, Mg, v);
    });
    return;
  }
  // Few blocks (one 14x14 map is a single block of 16 tiles): blocks alone would leave threads
  // idle, so the input transforms of every block are shared out by channel chunks first, each
  // block's V in a scratch slot of its own, then the GEMMs and output transforms by row tiles.
  const int64_t cc = std::max<int64_t>(8, Cg / (8 * workers)), ncc = (Cg + cc - 1) / cc;
  parallel_for_guided(G * nb * ncc, workers, [&](int64_t task) {
    int64_t g, t0;
    int nt;
    block(task / ncc, g, t0, nt);
    const int64_t c0 = (task % ncc) * cc;
    detail::wino_transform_in(s, x, g, t0, nt, TH, TW, c0, std::min(Cg, c0 + cc), base + (task / ncc) * per);
  });
  const int64_t nr = detail::wino_row_tiles(Mg);
  parallel_for_guided(G * nb * nr, workers, [&](int64_t task) {
    int64_t g, t0;
    int nt;
    block(task / nr, g, t0, nt);
    const int64_t r = task % nr;
    detail::wino_transform_out(s, u, bias, y, epi, store, g, t0, nt, TH, TW, r, r + 1, base + (task / nr) * per);
  });
}

}  // namespace dydca
