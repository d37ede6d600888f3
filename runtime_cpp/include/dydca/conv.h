// dydca runtime: 2-D convolution and transposed convolution kernels (NCHW, fp32).
//
// Weights are packed at compile time by codegen/packing.py; layouts (Cg = C/group, Mg = M/group,
// MBk = ceil(Mg/8), output channels of a group blocked by 8 and zero-padded to MBk*8):
//
//   conv2d, general  : [group][MBk][KH][KW][Cg][8]     element w[g*Mg + 8*mb + j, c, kh, kw]
//   conv2d, depthwise: [M][KH][KW]                     (when Cg == 1 and group == M, i.e.
//                                                       group == C == M; plain ONNX layout)
//   conv_transpose2d : [group][MBk][KH][KW][Cg][8]     element w_onnx[g*Cg + c, 8*mb + j, kh, kw]
//
// Kernels (chosen at compile time / by shape):
//   * general conv, Mg >= 8 (or stride_w > 1): register-blocked direct kernel, 16 output channels
//     (2 AVX registers) x 6 output pixels (or 8 channels x 12 pixels) held in 12 accumulators; the
//     input pixel is broadcast, packed weights are loaded as vectors.  Interior columns run without
//     bounds checks; the border columns / rows use range-clipped loops.
//   * general conv, Mg < 8 and stride_w == 1: width-vectorised kernel (up to 4 output channels x
//     up to 32 output pixels in registers) — for the few-output-channel layers (32->3, 8->1...);
//     the border pixels of a row run as masked vector tiles.  On narrow rows with 4-7 channels the
//     channel-vectorised kernel is faster (all Mg channels take one pass), so generated code calls
//     FewChannels or General8 per call from the output width (frontends/ops/conv.py:
//     conv_variants); Auto always takes this one.
//   * general conv, Cg <= 3 input channels per group (the RGB first layers), undilated: FewInputs
//     (fi_row): the input rows of an output row copied once into a zero-padded panel, then a
//     GEMM-like micro-kernel (16 channels x 6 pixels) over K = KH*Cg*KW taps, borders included.
//   * 1x1 / stride 1 / no padding: GEMM micro-kernel (6x16, 12x16 with AVX-512) with weights as A
//     and the input plane read in place as B; the last few pixels past its 16-pixel panels, and
//     whole convs of kCv1x1MinK+ input channels (AVX2 only), go to the channel-vector kernel
//     (gemm1x1_cv).  With AVX-512, 1x1 convs of kCvKbMinK+ input channels on planes of no more
//     pixels than output channels (ResNet's 1024->256 on 14x14, 2048->512 on 7x7) take that tile
//     with K in L1-sized batches over runs of pixels (gemm1x1_cv_kb).
//     Strided 1x1 convs without padding take it too, through conv2d_1x1_strided (their input
//     pixels gathered into scratch first).
//   * general 3x3 convs of 128+ input channels per group on maps Winograd does not take (small
//     maps, strides): conv2d_pixels, a separate entry point with the same register tile over the
//     output plane as one flat run of pixels (tiles span rows) and a zero-padded input copy in
//     scratch, so no border or remainder pixel runs alone (frontends/ops/conv.py: pixels_fits).
//   * depthwise (group == C == M): width-vectorised per-channel kernel.
//   * 3x3 stride-1 convs of 12+ channels on outputs of 12x12 and more: Winograd F(4x4, 3x3), a
//     separate entry point in winograd.h (conv2d_winograd) that generated code calls per call
//     from the dims (frontends/ops/conv.py: conv_variants); its store goes through store_row below.
//   * conv_transpose2d: gather formulation split by output phase (ow mod SW), so every strip of
//     output pixels of one phase reads consecutive input pixels; same 16x6 register tile.  With
//     Mg <= 4 and no dilation (FSRCNN's 56->3 upscale), each stride phase is a stride-1 conv over
//     the input with its ceil((K - r)/S) taps per axis, run through the width-vectorised tiles
//     (ct_wv_row); both read the same packed weights.
// Parallelism: (n, group, output row) tasks, each computing all output-channel blocks of its row
// (its input rows are then reused from L1/L2 for every block), handed out in contiguous guided
// chunks (parallel_for_guided) so a thread that is descheduled or slower does not stall the call;
// convs whose weights outgrow L2 and the rows that use them take (block pair, row) tasks instead
// (for_row_tasks below).
// No heap allocation: all scratch is on the stack (the largest frame, gemm_block's, holds ~67 KiB:
// its copy of B; glibc's, Android's and macOS's default thread stacks, 512 KiB and up, take it;
// musl's 128 KiB default is tight for a thread that calls a model).
//
// Store (optional last argument): where element (n, m, oh, ow) of the conv's own [N, M, OH, OW]
// result lands in y.  IdentityStore (default) is plain NCHW; DepthToSpaceStore<B, DCR> writes the
// pixel-shuffled tensor directly (compiler/passes/fuse_depth_to_space.py), so no separate
// DepthToSpace pass over memory is needed.  The epilogue always sees the conv's own flat index i.
// Weights only known at run time are packed per call with pack_conv2d / pack_conv_transpose2d
// below (same layouts as packing.py) into caller-provided scratch.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "gemm.h"
#include "parallel.h"

namespace dydca {

struct Conv2dShape {
  int64_t N, C, H, W;    // input NCHW
  int64_t M, OH, OW;     // output channels and spatial size
  int64_t pad_t, pad_l;  // top/left padding (bottom/right padding is implied by OH/OW)
  int64_t group;
};

// The kernel path of a conv2d / conv_transpose2d.  Auto picks it at run time from the shape, so
// every path is compiled; generated code names the path its static facts select
// (frontends/ops/conv.py: conv_path), so each node compiles only that one.  A named path checks
// that the shape allows it.  The general kernel computes output channels in pairs of 8-blocks;
// General8 (Mg <= 8: one block) and General16 (an even number of blocks: always pairs) compile
// only the tile width they use, General both.  conv_transpose2d takes Auto or the General kinds.
// FewInputs: few input channels per group (Cg <= kFewInputsMax), undilated: fi_row.
enum class ConvPath { Auto, Depthwise, Gemm1x1, FewChannels, General, General8, General16, FewInputs };

// Identity store: y is the conv's own NCHW tensor.
struct IdentityStore {
  static constexpr bool kIdentity = true;
  static constexpr bool kFlatPixels = true;  // at() takes a flat pixel index as ow (with oh 0): the 1x1 GEMM path
  static constexpr int64_t kStep = 1;  // destination distance between neighbouring ow
  static constexpr int64_t step() { return kStep; }
  // Destination of (n, m, oh, ow), whose flat NCHW index in the conv's own output is i.
  int64_t at(int64_t i, int64_t, int64_t, int64_t, int64_t) const { return i; }
};

// Pixel-shuffle store: y is DepthToSpace(conv output) with blocksize B, mode DCR or CRD, i.e.
// shape [N, M/B^2, OH*B, OW*B] (index formula: compiler/passes/fuse_depth_to_space.py).
// Neighbouring ow land B apart, so each output row still streams with a constant stride.
template <int B, bool DCR>
struct DepthToSpaceStore {
  static_assert(B >= 1, "bad blocksize");
  static constexpr bool kIdentity = B == 1;
  static constexpr bool kFlatPixels = B == 1;
  static constexpr int64_t kStep = B;
  static constexpr int64_t step() { return kStep; }
  int64_t M, OH, OW;  // the conv's own output channels and spatial size
  int64_t at(int64_t, int64_t n, int64_t m, int64_t oh, int64_t ow) const {
    const int64_t cp = M / (B * B);
    const int64_t c = DCR ? m % cp : m / (B * B);
    const int64_t bi = DCR ? m / (B * cp) : (m / B) % B;
    const int64_t bj = DCR ? (m / cp) % B : m % B;
    return ((n * cp + c) * (OH * B) + oh * B + bi) * (OW * B) + ow * B + bj;
  }
};

// Channels-last store: y is [N][OH][OW][M], for a pixel-tile conv that reads it so
// (conv2d_pixels<..., ChannelsLast>; compiler/passes/channels_last.py pairs them).  A row of a
// channel goes out M floats apart; a kernel's row stores of one pixel block fill its lines
// within the block, while they are in L1.
struct ChannelsLastStore {
  static constexpr bool kIdentity = false;
  static constexpr bool kFlatPixels = true;
  int64_t M, OH, OW;  // the conv's output channels and spatial size
  int64_t step() const { return M; }
  int64_t at(int64_t, int64_t n, int64_t m, int64_t oh, int64_t ow) const { return ((n * OH + oh) * OW + ow) * M + m; }
};

namespace detail {

constexpr int64_t kConvCW = 96;  // output-width chunk processed per row task

constexpr bool is_general(ConvPath p) {
  return p == ConvPath::General || p == ConvPath::General8 || p == ConvPath::General16;
}
// Whether a general kind's static channel blocking fits Mg output channels per group.
inline bool general_fits(ConvPath p, int64_t Mg) {
  const int64_t MBk = (Mg + 7) / 8;
  return p == ConvPath::General8 ? MBk == 1 : p == ConvPath::General16 ? MBk % 2 == 0 : true;
}

static inline int64_t ceil_div_pos(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Range [lo, hi) of kernel taps k in [0, K) with 0 <= base + k*D < L.
static inline void tap_range(int64_t base, int K, int D, int64_t L, int& lo, int& hi) {
  int64_t l = base >= 0 ? 0 : ceil_div_pos(-base, D);
  int64_t h = (L - 1 - base) < 0 ? 0 : (L - 1 - base) / D + 1;
  if (h > K) h = K;
  if (l > h) l = h;
  lo = (int)l;
  hi = (int)h;
}

// Output columns [lo, hi) whose taps are all inside the input row.
static inline void interior_cols(int64_t W, int64_t OW, int64_t pad_l, int64_t SW, int64_t KW,
                                 int64_t DW, int64_t& lo, int64_t& hi) {
  lo = ceil_div_pos(pad_l, SW);
  const int64_t t = W - 1 - (KW - 1) * DW + pad_l;
  hi = t < 0 ? 0 : t / SW + 1;
  lo = std::min(lo, OW);
  hi = std::min(hi, OW);
  if (hi < lo) hi = lo;
}

// Where a strip of cw output pixels goes: batch n, row oh, first column ow0; ibase is the flat
// index (conv's own NCHW space) of its first pixel in channel m0.
struct Strip {
  int64_t n, oh, ow0, ibase;
};

// Stores one channel's strip: y[dst + p*step] = epi(t[p] + b, m, i0 + p).  With the identity
// store step is 1 (a contiguous row the compiler vectorises).
template <class Epi, class Store>
static inline void store_row(const float* t, int64_t cw, float b, int64_t m, int64_t i0, const Strip& st,
                             float* y, const Epi& epi, const Store& store) {
  float* yr = y + store.at(i0, st.n, m, st.oh, st.ow0);
  const int64_t step = store.step();
  for (int64_t p = 0; p < cw; ++p) yr[p * step] = epi(t[p] + b, m, i0 + p);
}

// Writes a pixel-major [cw][LD] tile buffer (channels j < nch <= LD) to the output through epi.
template <int LD = 16, class Epi, class Store>
static inline void flush_pm(const float* buf, int nch, int64_t cw, const float* bias, int64_t m0,
                            float* y, const Strip& st, int64_t OHW, const Epi& epi, const Store& store) {
  alignas(64) float tb[LD * kConvCW];
  const int nb8 = (nch + 7) / 8;
  for (int jb = 0; jb < nb8; ++jb) {
    int64_t p = 0;
    for (; p + 8 <= cw; p += 8) transpose8x8(buf + p * LD + jb * 8, LD, tb + jb * 8 * kConvCW + p, kConvCW);
    for (; p < cw; ++p)
      for (int r = 0; r < 8; ++r) tb[(jb * 8 + r) * kConvCW + p] = buf[p * LD + jb * 8 + r];
  }
  for (int j = 0; j < nch; ++j)
    store_row(tb + j * kConvCW, cw, bias ? bias[m0 + j] : 0.f, m0 + j, st.ibase + j * OHW, st, y, epi, store);
}

// Writes a channel-major [nch][ldb] buffer to the output through epi.
template <class Epi, class Store>
static inline void flush_cm(const float* buf, int64_t ldb, int nch, int64_t cw, const float* bias,
                            int64_t m0, float* y, const Strip& st, int64_t OHW, const Epi& epi,
                            const Store& store) {
  for (int j = 0; j < nch; ++j)
    store_row(buf + j * ldb, cw, bias ? bias[m0 + j] : 0.f, m0 + j, st.ibase + j * OHW, st, y, epi, store);
}

// ---------------------------------------------------------------------------------------------
// Channel-vectorised direct kernel shared by conv2d and conv_transpose2d.
// A row task builds a list of kernel taps; each tap is one (kh,kw) slab of packed weights
// [Cg][8] (x NB blocks, bstride apart) and an input offset.  Output pixel q of the strip reads
// input column q*SX + off of row `row`.  The channel loop is innermost so that every broadcast
// input value is distinct (no cross-tap reuse for the compiler to hoist into extra registers):
// per channel 2 weight loads + NP broadcasts feed 2*NP FMAs (16 channels x 6 pixels = 12 accs).
// ---------------------------------------------------------------------------------------------
struct Tap {
  int64_t woff;  // offset of the (kh,kw) weight slab: (kh*KW+kw)*Cg*8
  int64_t row;   // ih * W
  int64_t off;   // iw = q*SX + off
};

// Pixels per register tile of two 8-channel blocks (tap_tile, fi_tile): 2 x 6 8-lane accumulators,
// or 12 16-lane ones with AVX-512 (both blocks in one register, vload_pair).
#ifdef __AVX512F__
constexpr int kPairTileNP = 12;
#else
constexpr int kPairTileNP = 6;
#endif

template <int NP, int NB, int SX>
static inline void tap_tile(const float* xg, int64_t Cg, int64_t HW, const Tap* taps, int nt, int64_t q0,
                            const float* wb, int64_t bstride, float* out, int64_t ostride) {
#ifdef __AVX512F__
  // Both blocks in one 16-lane register: az[p] holds what a0[p], a1[p] hold otherwise.
  constexpr bool kWide = NB == 2;
  __m512 az[kWide ? NP : 1];
#else
  constexpr bool kWide = false;
#endif
  vf a0[kWide ? 1 : NP], a1[kWide ? 1 : NP];
#pragma GCC unroll 16
  for (int p = 0; p < NP; ++p) {
#ifdef __AVX512F__
    if constexpr (kWide) az[p] = _mm512_setzero_ps();
#endif
    if constexpr (!kWide) a0[p] = a1[p] = vzero();
  }
  auto step = [&](const float* wc, const float* xc) {
#ifdef __AVX512F__
    if constexpr (kWide) {
      const __m512 wv = vload_pair(wc, wc + bstride);
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) az[p] = _mm512_fmadd_ps(wv, _mm512_set1_ps(xc[p * SX]), az[p]);
      return;
    }
#endif
    if constexpr (!kWide) {
      const vf w0 = vload(wc);
      const vf w1 = NB > 1 ? vload(wc + bstride) : w0;
#pragma GCC unroll 16
      for (int p = 0; p < NP; ++p) {
        const vf xb = vbcast(xc + p * SX);
        a0[p] = vfma(w0, xb, a0[p]);
        if (NB > 1) a1[p] = vfma(w1, xb, a1[p]);
      }
    }
  };
  // Channels in blocks of CB, taps inside: NCHW planes are usually 4 KiB-aliased, so all channels
  // of one tap share L1 sets; CB channels x taps keeps the live lines per set within 8 ways.
  constexpr int CB = 8;
  const int64_t qoff = q0 * SX;
  int64_t c0 = 0;
  for (; c0 + CB <= Cg; c0 += CB) {
    for (int t = 0; t < nt; ++t) {
      const float* xc = xg + taps[t].row + taps[t].off + qoff + c0 * HW;
      const float* wc = wb + taps[t].woff + c0 * 8;
#pragma GCC unroll 8
      for (int c = 0; c < CB; ++c) step(wc + c * 8, xc + c * HW);
    }
  }
  if (c0 < Cg) {
    for (int t = 0; t < nt; ++t) {
      const float* xc = xg + taps[t].row + taps[t].off + qoff + c0 * HW;
      const float* wc = wb + taps[t].woff + c0 * 8;
      for (int64_t c = 0; c < Cg - c0; ++c) step(wc + c * 8, xc + c * HW);
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < NP; ++p) {
#ifdef __AVX512F__
    if constexpr (kWide) {
      _mm512_storeu_ps(out + p * ostride, az[p]);
      continue;
    }
#endif
    if constexpr (!kWide) {
      vstore(out + p * ostride, a0[p]);
      if (NB > 1) vstore(out + p * ostride + 8, a1[p]);
    }
  }
}

// One border pixel: taps whose input column falls outside [0, W) are skipped.
template <int NB, int SX>
static inline void tap_pixel(const float* xg, int64_t Cg, int64_t HW, int64_t W, const Tap* taps, int nt,
                             int64_t q, const float* wb, int64_t bstride, float* out) {
  // Two accumulator pairs (even/odd channels) halve the FMA dependency chain.
  vf a0 = vzero(), a1 = vzero(), b0 = vzero(), b1 = vzero();
  for (int t = 0; t < nt; ++t) {
    const int64_t iw = q * SX + taps[t].off;
    if (iw < 0 || iw >= W) continue;
    const float* xt = xg + taps[t].row + iw;
    const float* wt = wb + taps[t].woff;
    int64_t c = 0;
    for (; c + 2 <= Cg; c += 2) {
      const vf xa = vbcast(xt + c * HW), xb = vbcast(xt + (c + 1) * HW);
      a0 = vfma(vload(wt + c * 8), xa, a0);
      b0 = vfma(vload(wt + c * 8 + 8), xb, b0);
      if (NB > 1) {
        a1 = vfma(vload(wt + c * 8 + bstride), xa, a1);
        b1 = vfma(vload(wt + c * 8 + 8 + bstride), xb, b1);
      }
    }
    if (c < Cg) {
      const vf xa = vbcast(xt + c * HW);
      a0 = vfma(vload(wt + c * 8), xa, a0);
      if (NB > 1) a1 = vfma(vload(wt + c * 8 + bstride), xa, a1);
    }
  }
  vstore(out, a0 + b0);
  if (NB > 1) vstore(out + 8, a1 + b1);
}

template <int NPX, int NB, int SX>
static inline void tap_tile_rem(int rem, const float* xg, int64_t Cg, int64_t HW, const Tap* taps, int nt,
                                int64_t q0, const float* wb, int64_t bstride, float* out, int64_t ostride) {
  if constexpr (NPX > 1) {
    if (rem == NPX - 1)
      tap_tile<NPX - 1, NB, SX>(xg, Cg, HW, taps, nt, q0, wb, bstride, out, ostride);
    else
      tap_tile_rem<NPX - 1, NB, SX>(rem, xg, Cg, HW, taps, nt, q0, wb, bstride, out, ostride);
  }
}

// Computes output strip q in [qa, qe) (pixel slot of q: out + (q-qa)*os), interior [qlo, qhi).
// Out of line: the same few copies (NB x SX) serve every conv of a model (strides 1 and 2: of
// every model, prebuilt, tap_strip_prebuilt).
template <int NB, int SX>
static DYDCA_NOINLINE void tap_strip(const float* xg, int64_t Cg, int64_t HW, int64_t W, const Tap* taps, int nt,
                             int64_t qa, int64_t qe, int64_t qlo, int64_t qhi, const float* wb,
                             int64_t bstride, float* out, int64_t os) {
  constexpr int NPX = NB == 2 ? kPairTileNP : 12;
  int64_t q = qa;
  const int64_t lb = std::min(qe, std::max(qa, qlo));
  for (; q < lb; ++q) tap_pixel<NB, SX>(xg, Cg, HW, W, taps, nt, q, wb, bstride, out + (q - qa) * os);
  const int64_t ie = std::max(q, std::min(qe, qhi));
  for (; q + NPX <= ie; q += NPX)
    tap_tile<NPX, NB, SX>(xg, Cg, HW, taps, nt, q, wb, bstride, out + (q - qa) * os, os);
  if (q < ie) {
    tap_tile_rem<NPX, NB, SX>((int)(ie - q), xg, Cg, HW, taps, nt, q, wb, bstride, out + (q - qa) * os, os);
    q = ie;
  }
  for (; q < qe; ++q) tap_pixel<NB, SX>(xg, Cg, HW, W, taps, nt, q, wb, bstride, out + (q - qa) * os);
}

// tap_strip for strides 1 and 2 (nb blocks, sx), prebuilt: nearly every conv's.
DYDCA_LIB void tap_strip_prebuilt(int nb, int sx, const float* xg, int64_t Cg, int64_t HW, int64_t W,
                                  const Tap* taps, int nt, int64_t qa, int64_t qe, int64_t qlo, int64_t qhi,
                                  const float* wb, int64_t bstride, float* out, int64_t os)
#if DYDCA_LIB_BODY
{
  if (sx == 1)
    return nb == 2 ? tap_strip<2, 1>(xg, Cg, HW, W, taps, nt, qa, qe, qlo, qhi, wb, bstride, out, os)
                   : tap_strip<1, 1>(xg, Cg, HW, W, taps, nt, qa, qe, qlo, qhi, wb, bstride, out, os);
  return nb == 2 ? tap_strip<2, 2>(xg, Cg, HW, W, taps, nt, qa, qe, qlo, qhi, wb, bstride, out, os)
                 : tap_strip<1, 2>(xg, Cg, HW, W, taps, nt, qa, qe, qlo, qhi, wb, bstride, out, os);
}
#else
;
#endif

// tap_strip for nch output channels (a block pair: NB = 2 when nch > 8); General8/General16 know
// NB statically.
template <int SX, ConvPath Path>
static inline void tap_strip_n(int nch, const float* xg, int64_t Cg, int64_t HW, int64_t W, const Tap* taps,
                               int nt, int64_t qa, int64_t qe, int64_t qlo, int64_t qhi, const float* wb,
                               int64_t bstride, float* out, int64_t os) {
  constexpr bool kOnly1 = Path == ConvPath::General8, kOnly2 = Path == ConvPath::General16;
#ifdef DYDCA_PREBUILT
  if constexpr (SX <= 2) {
    tap_strip_prebuilt(nch > 8 ? 2 : 1, SX, xg, Cg, HW, W, taps, nt, qa, qe, qlo, qhi, wb, bstride, out, os);
  } else
#endif
  if (kOnly2 || (!kOnly1 && nch > 8)) {
    if constexpr (!kOnly1) tap_strip<2, SX>(xg, Cg, HW, W, taps, nt, qa, qe, qlo, qhi, wb, bstride, out, os);
  } else {
    if constexpr (!kOnly2) tap_strip<1, SX>(xg, Cg, HW, W, taps, nt, qa, qe, qlo, qhi, wb, bstride, out, os);
  }
}

template <int KH, int KW, int SH, int SW, int DH, int DW, ConvPath Path, class Epi, class Store>
static inline void cv_row(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                          float* y, const Epi& epi, const Store& store, int64_t n, int64_t g, int64_t pb, int64_t oh,
                          int64_t ow_lo, int64_t ow_hi) {
  const int64_t Cg = s.C / s.group, Mg = s.M / s.group, MBk = (Mg + 7) / 8;
  const int64_t HW = s.H * s.W, W = s.W, OW = s.OW, OHW = s.OH * s.OW;
  const int64_t bstride = Cg * KH * KW * 8;
  const float* wb = w + (g * MBk + pb * 2) * bstride;
  const int nch = (int)std::min<int64_t>(16, Mg - pb * 16);
  const float* xg = x + (n * s.C + g * Cg) * HW;
  const int64_t ihb = oh * SH - s.pad_t;
  int kh0, kh1;
  tap_range(ihb, KH, DH, s.H, kh0, kh1);
  Tap taps[KH * KW] = {};
  int nt = 0;
  for (int kh = kh0; kh < kh1; ++kh)
    for (int kw = 0; kw < KW; ++kw) {
      taps[nt].woff = (int64_t)(kh * KW + kw) * Cg * 8;
      taps[nt].row = (ihb + kh * DH) * W;
      taps[nt].off = (int64_t)kw * DW - s.pad_l;
      ++nt;
    }
  const int64_t m0 = g * Mg + pb * 16;
  alignas(64) float buf[kConvCW * 16];
  for (int64_t ow0 = 0; ow0 < OW; ow0 += kConvCW) {
    const int64_t cw = std::min(kConvCW, OW - ow0);
    tap_strip_n<SW, Path>(nch, xg, Cg, HW, W, taps, nt, ow0, ow0 + cw, ow_lo, ow_hi, wb, bstride, buf, 16);
    flush_pm(buf, nch, cw, bias, m0, y, Strip{n, oh, ow0, (n * s.M + m0) * OHW + oh * OW + ow0}, OHW, epi,
             store);
  }
}

// Makes the compiler hold v in a register: without it GCC folds a vector load that feeds several
// FMAs into each of them as a memory operand, reloading it per FMA (profiled in wv_tile: 4 loads
// per 3 FMAs instead of 2, the kernel load-bound at ~40% of peak).
template <class V>
static inline void keep_in_register(V& v) {
#if defined(__GNUC__) && defined(DYDCA_AVX2)
  asm("" : "+v"(v));
#else
  (void)v;
#endif
}

// ---------------------------------------------------------------------------------------------
// General conv with few output channels per group (Mg < 8) and unit width stride:
// width-vectorised, MB output channels x V vectors of 8 pixels.
// ---------------------------------------------------------------------------------------------
// Lane l of an edge tile's input vector at column iw0 (+ l) is read when 0 <= iw0 + l < W and l < n;
// other lanes are 0, which is the conv's zero padding (and nothing, past the strip's end).
#ifdef DYDCA_AVX2
static inline __m256i edge_mask(int64_t iw0, int64_t W, int n) {
  const __m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  // valid: l >= -iw0 and l < min(W - iw0, n) (iw0 is within a kernel width of the row)
  const __m256i lo = _mm256_set1_epi32((int)std::max<int64_t>(-iw0, 0));
  const __m256i hi = _mm256_set1_epi32((int)std::min<int64_t>(W - iw0, n));
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(lo, l), _mm256_cmpgt_epi32(hi, l));
}
#endif
static inline vf load_edge(const float* row, int64_t iw0, int64_t W, int n) {
#ifdef DYDCA_AVX2
  return vload_m(row + iw0, edge_mask(iw0, W, n));
#else
  vf v = vzero();
  for (int l = 0; l < n; ++l)
    if (iw0 + l >= 0 && iw0 + l < W) v[l] = row[iw0 + l];
  return v;
#endif
}

// Tiles of MB output channels x V vectors of 8 pixels: channels [c0, c1) of `nt` consecutive
// tiles whose first input column is iwb (+ 8V per tile); accumulates onto `out` unless c0 == 0.
// EDGE (V == 1): one tile of n <= 8 pixels whose taps may fall outside the row: masked loads, so
// the border pixels take the vector path too (a scalar border pixel cost ~8 interior ones; on
// 48-wide patches the two of each row took a third of the time).  Out of line: one copy per
// geometry serves every epilogue and store.  Tap (kh, kw)'s weights of channel c, output channel j
// are at wb[c*8 + kh*wr + kw*ws + j]: a conv passes ws = Cg*8, wr = KW*ws; a transposed conv's
// stride phase walks the taps of the ONNX kernel backwards, 'stride' apart (ct_wv_row).
template <int KH, int KW, int DH, int DW, int MB, int V, bool EDGE>
static DYDCA_NOINLINE void wv_tiles(const float* xg, int64_t c0, int64_t c1, int64_t HW, int64_t W, int64_t ws,
                            int64_t wr, int64_t ihb, int kh0, int kh1, int64_t iwb, int64_t nt, int n,
                            const float* wb, float* out, int64_t ldo) {
  static_assert(!EDGE || V == 1, "edge tiles are one vector wide");
  // Interior tiles hold kVB 8-pixel vectors per register (pairs as 16-lane registers with
  // AVX-512); edge tiles one masked 8-lane vector.
  constexpr bool kWide = !EDGE && V % kVB == 0;
  using VT = typename VecOf<kWide>::T;
  constexpr int L = kWide ? kVW : 8, NV = V * 8 / L;  // lanes per register, registers per row
  // Accumulators per channel: one per register, or for an edge tile NA chains taken by kw in turn
  // (with one or two channels a single chain is FMA-latency bound: edge tiles cost 4-8x an
  // interior vector).
  constexpr int NA = EDGE ? std::min(KW, std::max(1, 6 / MB)) : NV;
  for (int64_t t = 0; t < nt; ++t, iwb += 8 * V, out += 8 * V) {
    VT acc[MB][NA];
#pragma GCC unroll 8
    for (int j = 0; j < MB; ++j)
#pragma GCC unroll 8
      for (int v = 0; v < NA; ++v)
        acc[j][v] = c0 == 0 || (EDGE && v > 0) ? vsplat<VT>(0.f) : vload_as<kWide>(out + j * ldo + L * v);
    for (int64_t c = c0; c < c1; ++c) {
      const float* xc = xg + c * HW;
      const float* wc = wb + c * 8;
      for (int kh = kh0; kh < kh1; ++kh) {
        const float* xr = xc + (ihb + kh * DH) * W;
        const float* wk = wc + kh * wr;
        // Each (channel, row) pair is its own input stream (C x KH of them, more than the hardware
        // prefetchers track), and few FMAs per loaded pixel leave its latency exposed (profiled:
        // the first load of each row dominated): fetch this stream's data two tiles ahead.
        if constexpr (!EDGE) {
          __builtin_prefetch(xr + iwb + 16 * V);
          __builtin_prefetch(xr + iwb + 16 * V + 16);
        }
#pragma GCC unroll 16
        for (int kw = 0; kw < KW; ++kw) {
          VT xv[NV];
#pragma GCC unroll 8
          for (int v = 0; v < NV; ++v) {
            if constexpr (EDGE) xv[v] = load_edge(xr, iwb + kw * DW, W, n);
            else xv[v] = vload_as<kWide>(xr + iwb + kw * DW + L * v);
            if constexpr (MB > 1) keep_in_register(xv[v]);  // one use each at MB == 1: nothing to keep
          }
#pragma GCC unroll 8
          for (int j = 0; j < MB; ++j) {
            const VT wj = vsplat<VT>(wk[kw * ws + j]);
            if constexpr (EDGE) {
              acc[j][kw % NA] = vfma(wj, xv[0], acc[j][kw % NA]);
            } else {
#pragma GCC unroll 8
              for (int v = 0; v < NV; ++v) acc[j][v] = vfma(wj, xv[v], acc[j][v]);
            }
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < MB; ++j) {
      if constexpr (EDGE) {
#pragma GCC unroll 8
        for (int a = 1; a < NA; ++a) acc[j][0] = acc[j][0] + acc[j][a];
      }
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) vstore_as<kWide>(out + j * ldo + L * v, acc[j][v]);
    }
  }
}

// Vectors per tile: MB x V accumulators plus V inputs and a weight within the 16 registers.  One
// channel takes 4, not 6: 6 measured 20-35% slower on a 270x480 frame (32->1, load-latency bound).
// With AVX-512 (32 registers, pairs of vectors as 16-lane ones): 4 for every MB.
template <int MB>
struct WvCfg {
#ifdef __AVX512F__
  static constexpr int V = 4;
#else
  static constexpr int V = MB <= 2 ? 4 : 3;
#endif
};

constexpr int64_t kWvLDB = kConvCW + 8;  // row stride of the width-vectorised strip buffer

// Output columns [ow0, owe) of channels j0..j0+MB-1 of one row (ihb: first input row, taps
// [kh0, kh1) inside) into buf [MB][kWvLDB]; interior columns [ow_lo, ow_hi); ws / wr: weight
// strides between taps and kernel rows (wv_tiles).
// Left inline: out of line it measured ~5% slower when Mg needs two channel groups.
template <int KH, int KW, int DH, int DW, int MB>
static inline void wv_strip(const float* xg, int64_t Cg, int64_t HW, int64_t W, int64_t ihb,
                                    int kh0, int kh1, int64_t pad_l, int64_t ow0, int64_t owe,
                                    int64_t ow_lo, int64_t ow_hi, const float* wb, int64_t ws, int64_t wr,
                                    float* buf) {
  constexpr int V = WvCfg<MB>::V;
  // Column split: edge tiles of 8 from ow0 until the interior starts, full V-tiles, single
  // vectors, edge tiles over the rest (the right border and a partial last vector).
  const int64_t ie = std::max(ow0, std::min(owe, ow_hi));
  const int64_t nle = ow0 < ow_lo ? (std::min(owe, ow_lo) - ow0 + 7) / 8 : 0;
  const int64_t ib = std::min(owe, ow0 + 8 * nle);
  const int64_t nfull = ie > ib ? (ie - ib) / (8 * V) : 0;
  const int64_t i1 = ib + 8 * V * nfull;
  const int64_t nsingle = ie > i1 ? (ie - i1) / 8 : 0;
  const int64_t re = i1 + 8 * nsingle;
  // Interior in blocks of CB channels over the whole strip, partial sums kept in buf: NCHW planes
  // are usually 4 KiB-aliased, so the rows of all channels compete for the same L1 sets; CB
  // channels x KH rows of one strip stay within the 8 ways.
  constexpr int64_t CB = 4;
  for (int64_t c0 = 0; c0 < Cg; c0 += CB) {
    const int64_t c1 = std::min(Cg, c0 + CB);
    for (int64_t ow = ow0; ow < ib; ow += 8)
      wv_tiles<KH, KW, DH, DW, MB, 1, true>(xg, c0, c1, HW, W, ws, wr, ihb, kh0, kh1, ow - pad_l, 1,
                                            (int)std::min<int64_t>(8, owe - ow), wb, buf + (ow - ow0), kWvLDB);
    wv_tiles<KH, KW, DH, DW, MB, V, false>(xg, c0, c1, HW, W, ws, wr, ihb, kh0, kh1, ib - pad_l, nfull, 8, wb,
                                           buf + (ib - ow0), kWvLDB);
    wv_tiles<KH, KW, DH, DW, MB, 1, false>(xg, c0, c1, HW, W, ws, wr, ihb, kh0, kh1, i1 - pad_l, nsingle, 8, wb,
                                           buf + (i1 - ow0), kWvLDB);
    for (int64_t ow = std::max(ib, re); ow < owe; ow += 8)
      wv_tiles<KH, KW, DH, DW, MB, 1, true>(xg, c0, c1, HW, W, ws, wr, ihb, kh0, kh1, ow - pad_l, 1,
                                            (int)std::min<int64_t>(8, owe - ow), wb, buf + (ow - ow0), kWvLDB);
  }
}

// wv_strip for mb (1..4) channels.
template <int KH, int KW, int DH, int DW>
static inline void wv_strip_mb(int mb, const float* xg, int64_t Cg, int64_t HW, int64_t W, int64_t ihb, int kh0,
                               int kh1, int64_t pad_l, int64_t ow0, int64_t owe, int64_t ow_lo, int64_t ow_hi,
                               const float* wb, int64_t ws, int64_t wr, float* buf) {
  switch (mb) {
    case 1: wv_strip<KH, KW, DH, DW, 1>(xg, Cg, HW, W, ihb, kh0, kh1, pad_l, ow0, owe, ow_lo, ow_hi, wb, ws, wr, buf); break;
    case 2: wv_strip<KH, KW, DH, DW, 2>(xg, Cg, HW, W, ihb, kh0, kh1, pad_l, ow0, owe, ow_lo, ow_hi, wb, ws, wr, buf); break;
    case 3: wv_strip<KH, KW, DH, DW, 3>(xg, Cg, HW, W, ihb, kh0, kh1, pad_l, ow0, owe, ow_lo, ow_hi, wb, ws, wr, buf); break;
    default: wv_strip<KH, KW, DH, DW, 4>(xg, Cg, HW, W, ihb, kh0, kh1, pad_l, ow0, owe, ow_lo, ow_hi, wb, ws, wr, buf); break;
  }
}

// One output row of channels [j0, j0 + min(4, Mg - j0)) of group g.
template <int KH, int KW, int SH, int DH, int DW, class Epi, class Store>
static inline void wv_row(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                          float* y, const Epi& epi, const Store& store, int64_t n, int64_t g, int64_t j0, int64_t oh,
                          int64_t ow_lo, int64_t ow_hi) {
  const int64_t Cg = s.C / s.group, Mg = s.M / s.group;
  const int64_t HW = s.H * s.W, W = s.W, OW = s.OW, OHW = s.OH * s.OW;
  const int mb = (int)std::min<int64_t>(4, Mg - j0);
  const float* wb = w + g * Cg * KH * KW * 8 + j0;  // MBk == 1 because Mg < 8
  const float* xg = x + (n * s.C + g * Cg) * HW;
  const int64_t ihb = oh * SH - s.pad_t;
  int kh0, kh1;
  tap_range(ihb, KH, DH, s.H, kh0, kh1);
  const int64_t m0 = g * Mg + j0;
  alignas(64) float buf[4 * kWvLDB];
  for (int64_t ow0 = 0; ow0 < OW; ow0 += kConvCW) {
    const int64_t cw = std::min(kConvCW, OW - ow0), owe = ow0 + cw;
    wv_strip_mb<KH, KW, DH, DW>(mb, xg, Cg, HW, W, ihb, kh0, kh1, s.pad_l, ow0, owe, ow_lo, ow_hi, wb, Cg * 8,
                                KW * Cg * 8, buf);
    flush_cm(buf, kWvLDB, mb, cw, bias, m0, y, Strip{n, oh, ow0, (n * s.M + m0) * OHW + oh * OW + ow0}, OHW,
             epi, store);
  }
}

// ---------------------------------------------------------------------------------------------
// Depthwise conv (group == C == M): per-channel width-vectorised kernel.
// ---------------------------------------------------------------------------------------------
template <int KH, int KW, int DH, int DW, int V, bool PARTIAL>
static inline void dw_tile_s1(const float* xp, int64_t W, int64_t ihb, int kh0, int kh1, int64_t iwb,
                              const float* wc, int nlast, float* out) {
  vf acc[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) acc[v] = vzero();
#ifdef DYDCA_AVX2
  const __m256i lm = vmask_n(PARTIAL ? nlast : 8);
#endif
  for (int kh = kh0; kh < kh1; ++kh) {
    const float* xr = xp + (ihb + kh * DH) * W + iwb;
#pragma GCC unroll 16
    for (int kw = 0; kw < KW; ++kw) {
      const vf wv = vbcast(wc + kh * KW + kw);
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        vf xv;
        if (PARTIAL && v == V - 1) {
#ifdef DYDCA_AVX2
          xv = vload_m(xr + kw * DW + 8 * v, lm);
#else
          xv = vload_n(xr + kw * DW + 8 * v, nlast);
#endif
        } else {
          xv = vload(xr + kw * DW + 8 * v);
        }
        acc[v] = vfma(wv, xv, acc[v]);
      }
    }
  }
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) vstore(out + 8 * v, acc[v]);
}

// Strided interior strip of 8 pixels (portable; the compiler vectorises the pixel loop).
template <int KH, int KW, int SW, int DH, int DW>
static inline void dw_tile_strided(const float* xp, int64_t W, int64_t ihb, int kh0, int kh1,
                                   int64_t iwb, const float* wc, int np, float* out) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int kh = kh0; kh < kh1; ++kh) {
    const float* xr = xp + (ihb + kh * DH) * W + iwb;
    for (int kw = 0; kw < KW; ++kw) {
      const float wv = wc[kh * KW + kw];
      const float* xk = xr + kw * DW;
      if (np == 8) {
        for (int p = 0; p < 8; ++p) acc[p] += wv * xk[p * SW];
      } else {
        for (int p = 0; p < np; ++p) acc[p] += wv * xk[p * SW];
      }
    }
  }
  for (int p = 0; p < np; ++p) out[p] = acc[p];
}

template <int KH, int KW, int DH, int DW>
static inline float dw_pixel(const float* xp, int64_t W, int64_t ihb, int kh0, int kh1, int64_t iw,
                             const float* wc) {
  int kw0, kw1;
  tap_range(iw, KW, DW, W, kw0, kw1);
  float acc = 0.f;
  for (int kh = kh0; kh < kh1; ++kh) {
    const float* xr = xp + (ihb + kh * DH) * W + iw;
    for (int kw = kw0; kw < kw1; ++kw) acc += wc[kh * KW + kw] * xr[kw * DW];
  }
  return acc;
}

// Output columns [ow0, owe) of one channel row into buf (interior columns [ow_lo, ow_hi)).
// Out of line: shared by every depthwise conv with the same kernel geometry.
template <int KH, int KW, int SW, int DH, int DW>
static DYDCA_NOINLINE void dw_strip(const float* xp, int64_t W, int64_t ihb, int kh0, int kh1, int64_t pad_l,
                                    int64_t ow0, int64_t owe, int64_t ow_lo, int64_t ow_hi, const float* wc,
                                    float* buf) {
  int64_t ow = ow0;
  const int64_t lb = std::min(owe, ow_lo);
  for (; ow < lb; ++ow) buf[ow - ow0] = dw_pixel<KH, KW, DH, DW>(xp, W, ihb, kh0, kh1, ow * SW - pad_l, wc);
  const int64_t ie = std::max(ow, std::min(owe, ow_hi));
  if constexpr (SW == 1) {
    for (; ow + 32 <= ie; ow += 32)
      dw_tile_s1<KH, KW, DH, DW, 4, false>(xp, W, ihb, kh0, kh1, ow - pad_l, wc, 8, buf + (ow - ow0));
    for (; ow + 8 <= ie; ow += 8)
      dw_tile_s1<KH, KW, DH, DW, 1, false>(xp, W, ihb, kh0, kh1, ow - pad_l, wc, 8, buf + (ow - ow0));
    if (ow < ie) {
      dw_tile_s1<KH, KW, DH, DW, 1, true>(xp, W, ihb, kh0, kh1, ow - pad_l, wc, (int)(ie - ow),
                                          buf + (ow - ow0));
      ow = ie;
    }
  } else {
    for (; ow < ie; ow += 8) {
      const int np = (int)std::min<int64_t>(8, ie - ow);
      dw_tile_strided<KH, KW, SW, DH, DW>(xp, W, ihb, kh0, kh1, ow * SW - pad_l, wc, np, buf + (ow - ow0));
    }
    ow = ie;
  }
  for (; ow < owe; ++ow) buf[ow - ow0] = dw_pixel<KH, KW, DH, DW>(xp, W, ihb, kh0, kh1, ow * SW - pad_l, wc);
}

template <int KH, int KW, int SH, int SW, int DH, int DW, class Epi, class Store>
static inline void dw_row(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                          float* y, const Epi& epi, const Store& store, int64_t n, int64_t c, int64_t oh, int64_t ow_lo,
                          int64_t ow_hi) {
  const int64_t HW = s.H * s.W, W = s.W, OW = s.OW, OHW = s.OH * s.OW;
  const float* xp = x + (n * s.C + c) * HW;
  const float* wc = w + c * KH * KW;
  const int64_t ihb = oh * SH - s.pad_t;
  int kh0, kh1;
  tap_range(ihb, KH, DH, s.H, kh0, kh1);
  alignas(64) float buf[kConvCW + 8];
  for (int64_t ow0 = 0; ow0 < OW; ow0 += kConvCW) {
    const int64_t cw = std::min(kConvCW, OW - ow0);
    dw_strip<KH, KW, SW, DH, DW>(xp, W, ihb, kh0, kh1, s.pad_l, ow0, ow0 + cw, ow_lo, ow_hi, wc, buf);
    flush_cm(buf, 0, 1, cw, bias, c, y, Strip{n, oh, ow0, (n * s.M + c) * OHW + oh * OW + ow0}, OHW, epi,
             store);
  }
}

// ---------------------------------------------------------------------------------------------
// Few input channels per group (Cg <= kFewInputsMax: the RGB first layers, 5x5 3->64, 3x3 3->16..64):
// the general kernel's inner loop over input channels is 3 long there, so its per-tap overhead and
// its scalar border pixels (tap_pixel: 4 of a 48-wide patch row with a 5x5 kernel) weigh heavily.
// Instead, per output row and width chunk, the KH input rows it reads are copied once into a
// zero-padded panel [row][channel][column] (a few contiguous copies), and a tile is a GEMM
// micro-kernel with K = KH*Cg*KW taps read straight from shifted panel rows: output channels in the
// lanes, pixels broadcast, KW unrolled, no tap table, and every pixel, border included, in a full
// tile.  Undilated kernels only.
// ---------------------------------------------------------------------------------------------
constexpr int64_t kFewInputsMax = 3;  // frontends/ops/conv.py: FEW_INPUTS_MAX

// NP pixels x NB 8-channel blocks: panel rows [0, nr) (prs apart; channel c at c*pcs), pixel p's
// tap kw at column p*SX + kw; packed weights wb [r][KW][Cg][8], the second block bstride on.
template <int NP, int NB, int KW, int SX, int Cg>
static DYDCA_NOINLINE void fi_tile(const float* pan, int64_t prs, int64_t pcs, int nr, const float* wb,
                                   int64_t bstride, float* out) {
  constexpr int64_t ws = Cg * 8;  // weights of consecutive kw
  // Registers of kVB blocks, as px_tile: with AVX-512 both blocks share one 16-lane register (one
  // block: repeated, out has 16 floats per pixel).
  constexpr int NQ = (NB + kVB - 1) / kVB;
  vw a[NQ][NP];
#pragma GCC unroll 16
  for (int q = 0; q < NQ; ++q)
#pragma GCC unroll 16
    for (int p = 0; p < NP; ++p) a[q][p] = vsplat<vw>(0.f);
  for (int r = 0; r < nr; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < Cg; ++c) {
      const float* xc = pan + r * prs + c * pcs;
      const float* wc = wb + (r * KW * Cg + c) * 8;
#pragma GCC unroll 8
      for (int kw = 0; kw < KW; ++kw) {
        vw wv[NQ];
#pragma GCC unroll 2
        for (int q = 0; q < NQ; ++q) {
          wv[q] = vload_blocks([&](int i) { return wc + kw * ws + std::min(i, NB - 1) * bstride; }, q);
          keep_in_register(wv[q]);
        }
#pragma GCC unroll 16
        for (int p = 0; p < NP; ++p) {
          const vw xb = vsplat<vw>(xc[p * SX + kw]);
#pragma GCC unroll 2
          for (int q = 0; q < NQ; ++q) a[q][p] = vfma(wv[q], xb, a[q][p]);
        }
      }
    }
#pragma GCC unroll 16
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 2
    for (int q = 0; q < NQ; ++q) vwstore(out + p * 16 + q * kVW, a[q][p]);
}

template <int NPX, int NB, int KW, int SX, int Cg>
static inline void fi_tile_rem(int rem, const float* pan, int64_t prs, int64_t pcs, int nr, const float* wb,
                               int64_t bstride, float* out) {
  if constexpr (NPX > 1) {
    if (rem == NPX - 1)
      fi_tile<NPX - 1, NB, KW, SX, Cg>(pan, prs, pcs, nr, wb, bstride, out);
    else
      fi_tile_rem<NPX - 1, NB, KW, SX, Cg>(rem, pan, prs, pcs, nr, wb, bstride, out);
  }
}

// cw pixels of one channel block pair into the pixel-major buffer out [cw][16].
// Cg is a template argument: the tile's (c, kw) loops unroll completely (with Cg at run time a
// 3x3 kernel's 3-step kw loop per channel left 3x3 3->32 at the general kernel's speed).
template <int NB, int KW, int SX, int Cg>
static DYDCA_NOINLINE void fi_strip(const float* pan, int64_t prs, int64_t pcs, int nr, int64_t cw, const float* wb,
                                    int64_t bstride, float* out) {
  constexpr int NPX = NB == 2 ? kPairTileNP : 12;
  int64_t q = 0;
  for (; q + NPX <= cw; q += NPX) fi_tile<NPX, NB, KW, SX, Cg>(pan + q * SX, prs, pcs, nr, wb, bstride, out + q * 16);
  if (q < cw) fi_tile_rem<NPX, NB, KW, SX, Cg>((int)(cw - q), pan + q * SX, prs, pcs, nr, wb, bstride, out + q * 16);
}

template <int NB, int KW, int SX>
static inline void fi_strip_cg(int64_t Cg, const float* pan, int64_t prs, int64_t pcs, int nr, int64_t cw,
                               const float* wb, int64_t bstride, float* out) {
  static_assert(kFewInputsMax == 3, "fi_strip_cg dispatches Cg 1..3");
  if (Cg == 3)
    fi_strip<NB, KW, SX, 3>(pan, prs, pcs, nr, cw, wb, bstride, out);
  else if (Cg == 2)
    fi_strip<NB, KW, SX, 2>(pan, prs, pcs, nr, cw, wb, bstride, out);
  else
    fi_strip<NB, KW, SX, 1>(pan, prs, pcs, nr, cw, wb, bstride, out);
}

// One output row of group g, all its output channels (the panel is built once for all of them).
template <int KH, int KW, int SH, int SW, class Epi, class Store>
static inline void fi_row(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                          const Epi& epi, const Store& store, int64_t n, int64_t g, int64_t oh) {
  // Output pixels per chunk: kConvCW at any stride (chunks of 48 ran the 48..96-wide rows of the
  // SR patches 5-12% slower: per-chunk panel and flush overhead).  Chunks of 36 at stride 2 kept
  // the panel small (KH x Cg x PC floats: 17 KiB for ResNet's 7x7/2 stem at 96), but each flushed
  // output row is then a 144-byte run a plane from the next: the stem ran 9-15% faster with 96
  // (ab.sh, 2 threads, 60 calls).
  constexpr int64_t CW = kConvCW;
  constexpr int64_t PC = (CW - 1) * SW + KW + 1, PRS = PC * kFewInputsMax;
  const int64_t Cg = s.C / s.group, Mg = s.M / s.group, MBk = (Mg + 7) / 8;
  const int64_t HW = s.H * s.W, W = s.W, OW = s.OW, OHW = s.OH * s.OW;
  const int64_t bstride = Cg * KH * KW * 8;
  const float* xg = x + (n * s.C + g * Cg) * HW;
  const int64_t ihb = oh * SH - s.pad_t;
  int kh0, kh1;
  tap_range(ihb, KH, 1, s.H, kh0, kh1);
  const int nr = kh1 - kh0;
  alignas(64) float pan[KH * PRS];
  alignas(64) float buf[CW * 16];
  for (int64_t ow0 = 0; ow0 < OW; ow0 += CW) {
    const int64_t cw = std::min(CW, OW - ow0), iw0 = ow0 * SW - s.pad_l, ncol = (cw - 1) * SW + KW;
    // Input columns [clo, chi) of the chunk are inside the row; the rest is zero padding.
    const int64_t clo = std::min(ncol, std::max<int64_t>(0, -iw0)), chi = std::max(clo, std::min(ncol, W - iw0));
    for (int r = 0; r < nr; ++r)
      for (int64_t c = 0; c < Cg; ++c) {
        const float* xc = xg + c * HW + (ihb + kh0 + r) * W + iw0;
        float* pc = pan + r * PRS + c * PC;
        std::fill(pc, pc + clo, 0.f);
        std::copy(xc + clo, xc + chi, pc + clo);
        std::fill(pc + chi, pc + ncol, 0.f);
      }
    for (int64_t pb = 0; pb * 16 < Mg; ++pb) {
      const int nch = (int)std::min<int64_t>(16, Mg - pb * 16);
      const float* wb = w + (g * MBk + pb * 2) * bstride + (int64_t)kh0 * KW * Cg * 8;
      if (nch > 8)
        fi_strip_cg<2, KW, SW>(Cg, pan, PRS, PC, nr, cw, wb, bstride, buf);
      else
        fi_strip_cg<1, KW, SW>(Cg, pan, PRS, PC, nr, cw, wb, bstride, buf);
      const int64_t m0 = g * Mg + pb * 16;
      flush_pm(buf, nch, cw, bias, m0, y, Strip{n, oh, ow0, (n * s.M + m0) * OHW + oh * OW + ow0}, OHW, epi,
               store);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Transposed conv: gather form, one output phase (ow mod SW) at a time.
// ---------------------------------------------------------------------------------------------
static inline int64_t floor_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return r < 0 ? r + b : r;
}

template <int KH, int KW, int SH, int SW, int DH, int DW, ConvPath Path, class Epi, class Store>
static inline void ct_row(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                          const Epi& epi, const Store& store, int64_t n, int64_t g, int64_t pb, int64_t oh) {
  const int64_t Cg = s.C / s.group, Mg = s.M / s.group, MBk = (Mg + 7) / 8;
  const int64_t HW = s.H * s.W, W = s.W, OW = s.OW, OHW = s.OH * s.OW;
  const int64_t bstride = Cg * KH * KW * 8;
  const float* wb = w + (g * MBk + pb * 2) * bstride;
  const int nch = (int)std::min<int64_t>(16, Mg - pb * 16);
  const float* xg = x + (n * s.C + g * Cg) * HW;
  const int64_t m0 = g * Mg + pb * 16;
  // Valid kernel rows for this output row.
  int khv[KH];
  int64_t ihv[KH];
  int nkh = 0;
  for (int kh = 0; kh < KH; ++kh) {
    const int64_t t = oh + s.pad_t - kh * DH;
    if (t < 0 || t % SH != 0) continue;
    const int64_t ih = t / SH;
    if (ih >= s.H) continue;
    khv[nkh] = kh;
    ihv[nkh] = ih;
    ++nkh;
  }
  alignas(64) float buf[kConvCW * 16];
  Tap taps[KH * KW] = {};
  for (int64_t ow0 = 0; ow0 < OW; ow0 += kConvCW) {
    const int64_t cw = std::min(kConvCW, OW - ow0), owe = ow0 + cw;
    for (int64_t r = 0; r < SW && r < cw; ++r) {
      const int64_t owf = ow0 + r;  // first output column of this phase in the chunk
      const int64_t ph = owf % SW;
      const int64_t nq = (owe - 1 - owf) / SW + 1;
      const int64_t qa = owf / SW;  // ow = ph + SW*q, since owf = ph + SW*(owf/SW)
      // Valid kernel columns for this phase.
      int nt = 0;
      int64_t qlo = 0, qhi = INT64_MAX;  // interior q range [qlo, qhi)
      for (int kw = 0; kw < KW; ++kw) {
        const int64_t u = ph + s.pad_l - kw * DW;
        if (floor_mod(u, SW) != 0) continue;
        const int64_t off = (u - floor_mod(u, SW)) / SW;
        qlo = std::max(qlo, -off);
        qhi = std::min(qhi, W - off);
        for (int i = 0; i < nkh; ++i) {
          taps[nt].woff = (int64_t)(khv[i] * KW + kw) * Cg * 8;
          taps[nt].row = ihv[i] * W;
          taps[nt].off = off;
          ++nt;
        }
      }
      if (nt == 0) {
        qlo = qa;
        qhi = qa + nq;
      }
      tap_strip_n<1, Path>(nch, xg, Cg, HW, W, taps, nt, qa, qa + nq, qlo, qhi, wb, bstride, buf + (owf - ow0) * 16,
                     SW * 16);
    }
    flush_pm(buf, nch, cw, bias, m0, y, Strip{n, oh, ow0, (n * s.M + m0) * OHW + oh * OW + ow0}, OHW, epi,
             store);
  }
}

// ---------------------------------------------------------------------------------------------
// Transposed conv with few output channels per group (Mg <= 4), unit dilation: stride phases.
// Output (oh, ow) gathers the taps kh = rh + SH*i (rh = (oh + pad_t) mod SH) from input rows
// qh - i (qh = floor((oh + pad_t) / SH)), and likewise along the width.  So the outputs of one
// phase (rh, rw) are an ordinary stride-1 conv over the input with the kernel taps rh + SH*i,
// rw + SW*j taken backwards: ceil((K - r) / S) taps per axis (5x5, 5x4, 4x5, 4x4 for FSRCNN's 9x9
// stride 2), none wasted on the zeros between upsampled pixels, and no 8-lane channel block
// padded from 3 channels (the general kernel, ct_row, used 3 of its 8 lanes).  Each phase runs
// through the width-vectorised conv kernel (wv_strip) with negative weight strides that walk
// the general packed layout [KH][KW][Cg][8] backwards (one packing for every path), and its
// pixels are interleaved into the row buffer, SW apart, before the store.
// ---------------------------------------------------------------------------------------------
static inline int64_t floor_div(int64_t a, int64_t b) { return (a - floor_mod(a, b)) / b; }

// Output channels per group up to which conv_transpose2d's Auto takes the stride phases: one pass
// of the width-vectorised tiles (frontends/ops/conv.py: CT_FEW_CHANNELS_MAX, where it is measured).
constexpr int64_t kCtFewChannelsMax = 4;

// Taps of a stride phase: kernel positions r, r + S, ... below K.
static inline int phase_taps(int K, int S, int64_t r) { return r >= K ? 0 : (int)((K - r + S - 1) / S); }

// One output row of group g's Mg <= kCtFewChannelsMax channels.
template <int KH, int KW, int SH, int SW, class Epi, class Store>
static inline void ct_wv_row(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                             const Epi& epi, const Store& store, int64_t n, int64_t g, int64_t oh) {
  constexpr int KH1 = (KH + SH - 1) / SH, KW1 = (KW + SW - 1) / SW, KW0 = KW / SW;  // a phase's taps: KW1 or KW0
  constexpr int64_t CW = kConvCW * SW;  // output columns per chunk: kConvCW of each phase
  constexpr int64_t LDB = CW + 8;
  const int64_t Cg = s.C / s.group, Mg = s.M / s.group;
  const int64_t HW = s.H * s.W, W = s.W, OW = s.OW, OHW = s.OH * s.OW;
  const int mb = (int)Mg;
  const int64_t ws = Cg * 8, wr = KW * ws;     // packed weight strides: kernel column, row
  const float* wg = w + g * Cg * KH * KW * 8;  // Mg <= 4: one block (MBk == 1)
  const float* xg = x + (n * s.C + g * Cg) * HW;
  const int64_t m0 = g * Mg;
  // The row phase: taps i < ni read input rows ihb + (ni - 1 - i), kernel rows from khb down.
  const int64_t rh = floor_mod(oh + s.pad_t, SH);
  const int ni = phase_taps(KH, SH, rh);
  const int64_t ihb = floor_div(oh + s.pad_t, SH) - (ni - 1), khb = rh + SH * (ni - 1);
  int kh0 = 0, kh1 = 0;
  if (ni > 0) tap_range(ihb, ni, 1, s.H, kh0, kh1);
  alignas(64) float ph[4 * kWvLDB];
  alignas(64) float buf[4 * LDB];
  for (int64_t ow0 = 0; ow0 < OW; ow0 += CW) {
    const int64_t cw = std::min(CW, OW - ow0), owe = ow0 + cw;
    for (int64_t owf = ow0; owf < ow0 + SW && owf < owe; ++owf) {  // the chunk's first column of each phase
      const int64_t rw = floor_mod(owf + s.pad_l, SW), qa = floor_div(owf + s.pad_l, SW);
      const int64_t nq = (owe - 1 - owf) / SW + 1;
      const int nj = phase_taps(KW, SW, rw);
      if (nj == 0 || kh1 <= kh0) {  // no tap reaches these pixels: the bias alone
        for (int j = 0; j < mb; ++j) std::fill(ph + j * kWvLDB, ph + j * kWvLDB + nq, 0.f);
      } else {
        // as a stride-1 conv: output q reads input columns q - (nj - 1) + t, t < nj
        const float* wb = wg + khb * wr + (rw + SW * (nj - 1)) * ws;
        const int64_t lo = nj - 1, hi = std::max(lo, W);
        if (nj == KW1)
          wv_strip_mb<KH1, KW1, 1, 1>(mb, xg, Cg, HW, W, ihb, kh0, kh1, nj - 1, qa, qa + nq, lo, hi, wb, -SW * ws,
                                      -SH * wr, ph);
        else if constexpr (KW0 > 0 && KW0 != KW1)
          wv_strip_mb<KH1, KW0, 1, 1>(mb, xg, Cg, HW, W, ihb, kh0, kh1, nj - 1, qa, qa + nq, lo, hi, wb, -SW * ws,
                                      -SH * wr, ph);
      }
      for (int j = 0; j < mb; ++j)
        for (int64_t q = 0; q < nq; ++q) buf[j * LDB + (owf - ow0) + q * SW] = ph[j * kWvLDB + q];
    }
    flush_cm(buf, LDB, mb, cw, bias, m0, y, Strip{n, oh, ow0, (n * s.M + m0) * OHW + oh * OW + ow0}, OHW, epi,
             store);
  }
}

}  // namespace detail

namespace detail {
// Channel-vector 1x1 kernel: the output channels in the vector lanes (kCvNB 8-channel blocks of
// the packed weights [MBk][K][8]) and up to kCvNP pixels broadcast, so a plane of any size costs
// no partial vectors.  Per K step it loads kCvNB + NP values for kCvNB x NP FMAs: with AVX-512VL's
// 32 registers 4 blocks x 6 pixels (10 loads per 24 FMAs; the 6 x 16 GEMM tile loads 8 per 12).
// It runs the 1x1 convs with long dot products (conv2d: kCv1x1MinK) and the GEMM path's last few
// pixels.  Measured against the 6 x 16 GEMM (`bench/kernels/ab.sh 062bcda -- 2 40`: 2 threads,
// best of 40 interleaved calls, 8 lanes): 2048->512 7x7 +23%, 1024->256 14x14 +10%, 512->2048
// 7x7 +7%, 512->128 28x28 +7%, strided 1024->2048 +13%; at K = 256 it lost on 256->1024 14x14
// (-7.5%) and strided 256->512 (-18%).  With AVX-512 the tile is 2 16-lane registers (each a pair
// of 8-channel blocks, vload_pair) x 8 pixels: +8..46% over the 8-lane tile on a host with two
// 512-bit FMA units (139 GFLOP/s per core against 78 with 8 lanes; `ab.sh 00c15ab -- 2 30
// resnet`).  There, against the 16-lane 12 x 16 GEMM (`ab.sh` with kCv1x1MinK at 256, 512 and
// past every K): K = 256 lost 30-44% on 256->64 56x56 and strided 256->512 (each of its tiles
// reads 256 input rows a plane apart; the GEMM reuses a 16-pixel panel for all its rows),
// K = 512 on 28x28 tied, and K >= 1024 won 12-19% (7x7 and 14x14 planes).  With 2 blocks (AVX2's
// 16 registers) it lost on most rows.  Once the GEMM tile read its weights through two base
// pointers (gemm.h: ABlocks8) and stored 64 columns per row, the GEMM won at every K with AVX-512
// (`ab.sh` against kCv1x1MinK = 512, 2 threads: 512->128 28x28 +26..33%, 2048->512 7x7 +6..14%,
// 512->2048 7x7 +0..11%, strided 1024->2048 +5..12%, 1024->256 14x14 tied), so there it runs
// only the GEMM path's last few pixels.
#if defined(__AVX512VL__)
constexpr int kCvNB = 4;
#else
constexpr int kCvNB = 2;
#endif
#ifdef __AVX512F__
constexpr int kCvNP = 8;  // 2 x 8 16-lane accumulators
#else
constexpr int kCvNP = 6;
#endif
#ifdef __AVX512F__
constexpr int64_t kCv1x1MinK = INT64_MAX;
#else
constexpr int64_t kCv1x1MinK = 512;
#endif

// out[p][kCvNB * 8] = sum_k W(block i, k) * b[k * ldb + p] for NP pixels (ACC: added to what out
// holds); blocks i >= nb (past the weights' end) repeat block nb - 1, whose results the caller
// does not store.
template <int NP, bool ACC = false>
static DYDCA_NOINLINE void cv1x1_tile(const float* w, int64_t bstride, int64_t nb, int64_t K, const float* b,
                                      int64_t ldb, float* out) {
  constexpr int NQ = kCvNB / kVB;  // registers of kVB blocks
  vw a[NQ][NP];
  const float* wp[kCvNB];
#pragma GCC unroll 8
  for (int i = 0; i < kCvNB; ++i) wp[i] = w + std::min<int64_t>(i, nb - 1) * bstride;
#pragma GCC unroll 4
  for (int q = 0; q < NQ; ++q)
#pragma GCC unroll 16
    for (int p = 0; p < NP; ++p) a[q][p] = ACC ? vwload(out + p * kCvNB * 8 + q * kVW) : vsplat<vw>(0.f);
#pragma GCC unroll 2
  for (int64_t k = 0; k < K; ++k) {
    vw wv[NQ];
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) wv[q] = vload_blocks([&](int i) { return wp[i] + k * 8; }, q);
    const float* bk = b + k * ldb;
#pragma GCC unroll 16
    for (int p = 0; p < NP; ++p) {
      const vw xb = vsplat<vw>(bk[p]);
#pragma GCC unroll 4
      for (int q = 0; q < NQ; ++q) a[q][p] = vfma(wv[q], xb, a[q][p]);
    }
  }
#pragma GCC unroll 16
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int q = 0; q < NQ; ++q) vwstore(out + p * kCvNB * 8 + q * kVW, a[q][p]);
}

// cv1x1_tile for np (1..kCvNP) pixels.
DYDCA_LIB void cv1x1_tile_n(int np, const float* w, int64_t bstride, int64_t nb, int64_t K, const float* b,
                            int64_t ldb, float* out)
#if DYDCA_LIB_BODY
{
  switch (np) {
    case 1: return cv1x1_tile<1>(w, bstride, nb, K, b, ldb, out);
    case 2: return cv1x1_tile<2>(w, bstride, nb, K, b, ldb, out);
    case 3: return cv1x1_tile<3>(w, bstride, nb, K, b, ldb, out);
    case 4: return cv1x1_tile<4>(w, bstride, nb, K, b, ldb, out);
    case 5: return cv1x1_tile<5>(w, bstride, nb, K, b, ldb, out);
#ifdef __AVX512F__
    case 6: return cv1x1_tile<6>(w, bstride, nb, K, b, ldb, out);
    case 7: return cv1x1_tile<7>(w, bstride, nb, K, b, ldb, out);
#endif
    default: return cv1x1_tile<kCvNP>(w, bstride, nb, K, b, ldb, out);
  }
}
#else
;
#endif

// 1x1 convs with long dot products on small planes, with AVX-512: the channel-vector tile over a
// run of up to kCvKbPixels pixels with K in batches of kCvKC, partial sums kept pixel-major on
// the stack.  A batch's weights for the tile's channels (kCvNB x 8 x kCvKC floats, 16 KiB) then
// stay in L1 over all the run's tiles, and each input value is broadcast once for kCvNB x 8
// channels.  The GEMM tile streams both operands from L2 over the whole K (a 12 x 16 tile at K =
// 1024 reads 48 KiB of weights and a 64 KiB panel), and lost most to onnxruntime in the model,
// where the weights come from memory and half the input from the other core.  conv2d takes this
// for K >= kCvKbMinK and no more pixels than output channels: on 28x28 and 56x56 planes each tile
// reads its kCvKC input rows a plane apart, and it lost 9-35% there (ab.sh, warm and cold).
#ifdef __AVX512F__
constexpr bool kCvKb = kCvNB == 4;
#else
constexpr bool kCvKb = false;
#endif
constexpr int64_t kCvKbMinK = 512;
constexpr int64_t kCvKC = 128;
constexpr int kCvKbNP = 12;             // pixels per tile: 2 x 12 16-lane accumulators
constexpr int64_t kCvKbPixels = 192;    // pixels per run at most (the partial sums: 24 KiB)

DYDCA_LIB void cv1x1_tile_kb(bool acc, const float* w, int64_t bstride, int64_t nb, int64_t K, const float* b,
                             int64_t ldb, float* out)
#if DYDCA_LIB_BODY
{
  if constexpr (kCvKb) {
    if (acc) return cv1x1_tile<kCvKbNP, true>(w, bstride, nb, K, b, ldb, out);
    return cv1x1_tile<kCvKbNP, false>(w, bstride, nb, K, b, ldb, out);
  }
}
#else
;
#endif

// Rows [m0, m1) (one block of kCvNB x 8 channels; m0 a multiple of 8) for the np <= kCvKbPixels
// pixels c0.. of B, handed to row_store a whole run per channel.
template <class RowStore>
static inline void gemm1x1_cv_kb(const float* wg, int64_t K, int64_t MBk, int64_t m0, int64_t m1, const float* B,
                                 int64_t ldb, int64_t c0, int64_t np, RowStore row_store) {
  constexpr int kW = kCvNB * 8;
  alignas(64) float acc[(kCvKbPixels + 8) * kW];
  alignas(64) float t[kW * (kCvKbPixels + 8)];
  const int64_t blk = m0 >> 3, nb = std::min<int64_t>(kCvNB, MBk - blk);
  const float* w0 = wg + blk * K * 8;
  const int64_t full = np / kCvKbNP * kCvKbNP;
  for (int64_t k0 = 0; k0 < K; k0 += kCvKC) {
    const int64_t kc = std::min(kCvKC, K - k0);
    for (int64_t p = 0; p < full; p += kCvKbNP)
      cv1x1_tile_kb(k0 > 0, w0 + k0 * 8, K * 8, nb, kc, B + k0 * ldb + c0 + p, ldb, acc + p * kW);
  }
  for (int64_t p = full; p < np; p += kCvNP)  // the last few pixels: all of K in one tile
    cv1x1_tile_n((int)std::min<int64_t>(kCvNP, np - p), w0, K * 8, nb, K, B + c0 + p, ldb, acc + p * kW);
  // Pixel-major partial sums to one row per channel (the pixels past np of the last 8 are zeros).
  const int64_t np8 = (np + 7) / 8 * 8;
  std::fill(acc + np * kW, acc + np8 * kW, 0.f);
  for (int64_t p = 0; p < np; p += 8)
#pragma GCC unroll 4
    for (int i = 0; i < kCvNB; ++i) transpose8x8(acc + p * kW + i * 8, kW, t + i * 8 * np8 + p, np8);
  for (int64_t r = m0; r < m1; ++r) row_store(t + (r - blk * 8) * np8, (int)np, r, c0);
}

// Rows [m0, m1) of the 1x1 GEMM (output channels of one group; weights wg [MBk][K][8]) for the np
// (<= kCvNP) pixels c0.. of B (row stride ldb), handed to row_store like gemm_block's rows.  A
// block group straddling m0 or m1 is computed whole and stored in part.
template <class RowStore>
static inline void gemm1x1_cv(const float* wg, int64_t K, int64_t MBk, int64_t m0, int64_t m1, const float* B,
                              int64_t ldb, int64_t c0, int np, RowStore row_store) {
  constexpr int kW = kCvNB * 8;
  const float* b = B + c0;
  // The tile is pixel-major; 8x8 transposes turn it into one 8-pixel row per channel for
  // row_store (pixel rows np..7 of `out` are don't-care).
  alignas(64) float out[8 * kW] = {};
  alignas(64) float t[kW * 8];
  for (int64_t blk = m0 >> 3; blk * 8 < m1; blk += kCvNB) {
    const float* w0 = wg + blk * K * 8;
    const int64_t nb = std::min<int64_t>(kCvNB, MBk - blk);
    cv1x1_tile_n(np, w0, K * 8, nb, K, b, ldb, out);
#pragma GCC unroll 4
    for (int i = 0; i < kCvNB; ++i) transpose8x8(out + i * 8, kW, t + i * 64, 8);
    for (int64_t r = std::max(m0, blk * 8); r < std::min(m1, blk * 8 + kW); ++r)
      row_store(t + (r - blk * 8) * 8, np, r, c0);
  }
}
}  // namespace detail

namespace detail {
// The general kernels' work split: f(n, g, pb, oh) for every image, group, pair of 8-channel output
// blocks (pb) and output row, in one of two orders:
//   row-major (default): a task is one (n, g, oh) row with all its block pairs, so the input rows
//     it reads are used for every output channel while hot in L1/L2 (splitting threads by block
//     pair made both threads stream the whole input);
//   weight-major: a task is one (g, pb, n, oh), block pairs outermost, so each block pair's weights
//     stay in L2 over all its rows.  For wide convs on small maps (ResNet's 512->512 3x3 on 7x7)
//     the weights are many times the input and a row task streamed all of them per output row.
// Tasks go out in contiguous guided chunks (parallel_for_guided: neighbouring tasks share input
// rows or weights, and a descheduled thread's tasks are taken over instead of stalling the call).
template <class F>
inline void for_row_tasks(int64_t N, int64_t G, int64_t Mg, int64_t OH, bool weight_major, int threads, F f) {
  const int64_t MBk = (Mg + 7) / 8, NPB = (MBk + 1) / 2;
  if (weight_major) {
    parallel_for_guided(G * NPB * N * OH, threads, [&](int64_t t) {
      const int64_t oh = t % OH, n = (t / OH) % N, gp = t / (OH * N);
      f(n, gp / NPB, gp % NPB, oh);
    });
    return;
  }
  parallel_for_guided(N * G * OH, threads, [&](int64_t t) {
    const int64_t oh = t % OH, ng = t / OH;
    for (int64_t pb = 0; pb < NPB; ++pb) f(ng / G, ng % G, pb, oh);
  });
}

// Whether the weight-major order moves less data: a group's packed weights (wfloats) outgrow L2
// and re-reading them for every output row costs more than re-reading the input (xfloats per
// image and group) once per block pair.  Below ~256 KiB the weights stay in L2 across row tasks.
inline bool weight_major(int64_t N, int64_t Mg, int64_t OH, int64_t wfloats, int64_t xfloats) {
  const int64_t NPB = ((Mg + 7) / 8 + 1) / 2;
  return wfloats * 4 > (256 << 10) && N * OH * wfloats > NPB * N * xfloats;
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------------------------
template <int KH, int KW, int SH, int SW, int DH, int DW, ConvPath Path = ConvPath::Auto, class Epi,
          class Store = IdentityStore>
void conv2d(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, Epi epi,
            int threads, Store store = Store{}) {
  static_assert(KH >= 1 && KW >= 1 && SH >= 1 && SW >= 1 && DH >= 1 && DW >= 1, "bad conv params");
  constexpr bool kAuto = Path == ConvPath::Auto;
  // The GEMM path knows only flat pixel indices, so it takes the stores that need no more
  // (kFlatPixels: the identity, channels last); others take the direct kernels (whole rows).
  constexpr bool kGemmable = KH == 1 && KW == 1 && SH == 1 && SW == 1 && Store::kFlatPixels;
  static_assert(Path != ConvPath::Gemm1x1 || kGemmable, "the 1x1 GEMM path needs a 1x1/s1 conv, plain store");
  static_assert(Path != ConvPath::FewChannels || SW == 1, "the few-channel path needs unit width stride");
  constexpr bool kUndilated = DH == 1 && DW == 1;
  static_assert(Path != ConvPath::FewInputs || kUndilated, "the few-input path needs an undilated kernel");
  const int64_t N = s.N, G = s.group, OH = s.OH, OW = s.OW;
  if (N <= 0 || s.M <= 0 || OH <= 0 || OW <= 0) return;
  const int64_t Cg = s.C / G, Mg = s.M / G;
  const bool depthwise = Cg == 1 && G == s.M;  // also fixes the weight layout (packing.py)
  const bool unpadded = s.pad_t == 0 && s.pad_l == 0 && OH == s.H && OW == s.W;
  if constexpr (!kAuto) {
    const bool ok = Path == ConvPath::Depthwise ? depthwise
                    : Path == ConvPath::Gemm1x1 ? !depthwise && unpadded
                    : Path == ConvPath::FewChannels ? !depthwise && Mg < 8
                    : Path == ConvPath::FewInputs   ? !depthwise && Cg <= detail::kFewInputsMax
                                                    : !depthwise && detail::general_fits(Path, Mg);
    if (!ok) throw std::logic_error("dydca::conv2d: the compiled kernel path does not fit this shape");
  }
  int64_t ow_lo, ow_hi;
  detail::interior_cols(s.W, OW, s.pad_l, SW, KW, DW, ow_lo, ow_hi);

  // (c) depthwise
  if constexpr (kAuto || Path == ConvPath::Depthwise) {
    if (depthwise) {
      parallel_for_guided(N * s.M * OH, threads, [&](int64_t t) {
        const int64_t oh = t % OH, c = (t / OH) % s.M, n = t / (OH * s.M);
        detail::dw_row<KH, KW, SH, SW, DH, DW>(s, x, w, bias, y, epi, store, n, c, oh, ow_lo, ow_hi);
      });
      return;
    }
  }

  // (b) 1x1, stride 1, no padding: GEMM with the packed weights as A and the input plane as B.
  if constexpr (kGemmable && (kAuto || Path == ConvPath::Gemm1x1)) {
    if (unpadded) {
      const int64_t P = OH * OW, MBk = (Mg + 7) / 8;
      auto weights = [&](int64_t g) { return w + g * MBk * Cg * 8; };
      auto input = [&](int64_t n, int64_t g) { return x + (n * s.C + g * Cg) * P; };
      // Output channel r of image n, group g, pixels c0..: C rows are contiguous output rows, one
      // vectorisable loop per row.
      auto row_store_of = [&](int64_t n, int64_t g) {
        const int64_t ybase = (n * s.M + g * Mg) * P;
        return [&, n, g, ybase](const float* t, int nv, int64_t r, int64_t c0) {
          const int64_t m = g * Mg + r, i0 = ybase + r * P + c0;
          detail::store_row(t, nv, bias ? bias[m] : 0.f, m, i0, detail::Strip{n, 0, c0, i0}, y, epi, store);
          // This row's next columns come after the other rows of the block, a plane apart each:
          // the hardware prefetchers lose them (/tmp test, 1x1 64->256 on 56x56 with a residual
          // add, one thread: 3.5 ms without, 2.0 with this prefetch).
          if constexpr (Store::kIdentity) detail::prefetch_out(y, i0 + nv, std::min<int64_t>(nv, P - c0 - nv), epi);
        };
      };
      if (detail::kCvKb && Cg >= detail::kCvKbMinK && Mg >= P) {
        // Tasks: (image, group, pixel run, block of kCvNB x 8 channels), blocks innermost: a
        // thread's run of tasks reads one run of input pixels from its L2.
        constexpr int64_t kRB = detail::kCvNB * 8, kNP = detail::kCvKbNP;
        const int64_t nrb = (Mg + kRB - 1) / kRB, nruns = (P + detail::kCvKbPixels - 1) / detail::kCvKbPixels;
        const int64_t run = std::min(detail::kCvKbPixels, ((P + nruns - 1) / nruns + kNP - 1) / kNP * kNP);
        const int64_t nrun = (P + run - 1) / run;
        parallel_for(N * G * nrun * nrb, threads, [&](int64_t task) {
          const int64_t rb = task % nrb, ru = task / nrb % nrun, ng = task / (nrb * nrun);
          const int64_t n = ng / G, g = ng % G, c0 = ru * run;
          detail::gemm1x1_cv_kb(weights(g), Cg, MBk, rb * kRB, std::min(Mg, rb * kRB + kRB), input(n, g), P, c0,
                                std::min(run, P - c0), row_store_of(n, g));
        });
        return;
      }
      if (Cg >= detail::kCv1x1MinK) {
        // One task per (image, group, row block of kCvNB x 8 channels, pixel tile), tiles innermost:
        // a thread's run of tasks reuses one row block's weights from L2.
        constexpr int64_t kRB = detail::kCvNB * 8, kNP = detail::kCvNP;
        const int64_t nrb = (Mg + kRB - 1) / kRB, ntl = (P + kNP - 1) / kNP;
        parallel_for(N * G * nrb * ntl, threads, [&](int64_t task) {
          const int64_t tl = task % ntl, rb = task / ntl % nrb, ng = task / (ntl * nrb);
          const int64_t n = ng / G, g = ng % G, c0 = tl * kNP;
          detail::gemm1x1_cv(weights(g), Cg, MBk, rb * kRB, std::min(Mg, rb * kRB + kRB), input(n, g), P, c0,
                             (int)std::min(kNP, P - c0), row_store_of(n, g));
        });
        return;
      }
      const detail::GemmTiling tl = detail::gemm_tiling(Mg, P, Cg, threads, N * G);
      const int64_t per = tl.nmb * tl.nnb;
      // The last few pixels of the plane, when they would fill a 16-pixel panel to kCvNP or less,
      // take gemm1x1_cv (28x28 = 784 pixels: 49 panels; 14x14: 12 panels and 4 pixels).
      const int64_t tail = P % detail::kGemmNR <= detail::kCvNP ? P % detail::kGemmNR : 0;
      const int64_t pm = P - tail;  // pixels the panels take
      parallel_for(N * G * per, threads, [&](int64_t task) {
        const int64_t ng = task / per, rem = task % per;
        const int64_t n = ng / G, g = ng % G;
        // Pixel blocks outermost: a thread's run of tasks covers all output channels of its pixels,
        // so it reads only those pixels' input (and the next 1x1 conv, split the same way, finds its
        // input in that thread's cache).  Channel blocks outermost had both threads read the whole
        // input: ResNet-50 at 2 threads ran 0.84-0.86x of onnxruntime, 0.90-0.92x with this order
        // (interleaved runs, three rounds of 40).
        const int64_t nb = rem / tl.nmb, mb = rem % tl.nmb;
        const float* wg = weights(g);
        const float* B = input(n, g);
        auto row_store = row_store_of(n, g);
        const int64_t m0 = mb * tl.mc, m1 = std::min(Mg, m0 + tl.mc);
        const int64_t n0 = nb * tl.nc, n1 = std::min(P, n0 + tl.nc);
        if (n0 < pm)
          detail::gemm_block(Cg, m0, m1, n0, std::min(n1, pm), detail::AMatrix{wg, Cg, true}, B, P, false, row_store);
        if (n1 > pm) detail::gemm1x1_cv(wg, Cg, MBk, m0, m1, B, P, pm, (int)(n1 - pm), row_store);
      });
      return;
    }
  }

  // Few output channels per group with unit width stride: width-vectorised kernel.
  if constexpr (SW == 1 && (kAuto || Path == ConvPath::FewChannels)) {
    if (Mg < 8) {
      parallel_for_guided(N * G * OH, threads, [&](int64_t t) {
        const int64_t oh = t % OH, g = (t / OH) % G, n = t / (OH * G);
        for (int64_t j0 = 0; j0 < Mg; j0 += 4)
          detail::wv_row<KH, KW, SH, DH, DW>(s, x, w, bias, y, epi, store, n, g, j0, oh, ow_lo, ow_hi);
      });
      return;
    }
  }

  // Few input channels per group: panel micro-kernel, one (n, g, oh) row task at a time.
  if constexpr (kUndilated && (kAuto || Path == ConvPath::FewInputs)) {
    if (Cg <= detail::kFewInputsMax)
      return parallel_for_guided(N * G * OH, threads, [&](int64_t t) {
        detail::fi_row<KH, KW, SH, SW>(s, x, w, bias, y, epi, store, t / (OH * G), (t / OH) % G, t % OH);
      });
  }

  // (a) general: channel-vectorised register-blocked direct kernel.
  if constexpr (kAuto || detail::is_general(Path)) {
    const bool wm = detail::weight_major(N, Mg, OH, (Mg + 7) / 8 * 8 * Cg * KH * KW, Cg * s.H * s.W);
    detail::for_row_tasks(N, G, Mg, OH, wm, threads, [&](int64_t n, int64_t g, int64_t pb, int64_t oh) {
      detail::cv_row<KH, KW, SH, SW, DH, DW, Path>(s, x, w, bias, y, epi, store, n, g, pb, oh, ow_lo, ow_hi);
    });
  }
}

// Bytes of scratch conv2d_1x1_strided takes: the strided input pixels, N x C x OH x OW floats
// (+64 for alignment; frontends/ops/conv.py: strided_1x1_scratch_bytes).
inline int64_t conv2d_1x1_strided_scratch_bytes(const Conv2dShape& s) {
  return s.N * s.C * s.OH * s.OW * (int64_t)sizeof(float) + 64;
}

// A 1x1 conv with strides and no padding through the 1x1 GEMM path: its input pixels
// (oh*SH, ow*SW) are gathered into `scratch` (conv2d_1x1_strided_scratch_bytes) as a dense
// N x C x OH x OW tensor first, once per call, which the GEMM then reads as its B.  The direct
// kernel it replaces ran these (ResNet's projection shortcuts) 20-40% slower (frontends/ops/conv.py
// has the figures); gathering inside the GEMM, per column panel, repeated the gather for every row
// block.  (A general im2col of 3x3 convs the same way lost 4-34% to the direct kernel on ResNet's
// maps.)
template <int SH, int SW, class Epi>
void conv2d_1x1_strided(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                        Epi epi, int threads, void* scratch) {
  static_assert(SH >= 1 && SW >= 1, "bad conv strides");
  const int64_t N = s.N, C = s.C, OH = s.OH, OW = s.OW, H = s.H, W = s.W;
  if (N <= 0 || s.M <= 0 || OH <= 0 || OW <= 0) return;
  if (s.pad_t != 0 || s.pad_l != 0 || (OH - 1) * SH >= H || (OW - 1) * SW >= W)
    throw std::logic_error("dydca::conv2d_1x1_strided: the conv reads padding");
  float* xs = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t(63));
  // One task per (n, c) plane: C x OH x OW floats in all, a small share of the GEMM's time.
  parallel_for(N * C, threads, [&](int64_t t) {
    const float* src = x + t * H * W;
    float* dst = xs + t * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const float* sr = src + oh * SH * W;
      float* dr = dst + oh * OW;
      for (int64_t ow = 0; ow < OW; ++ow) dr[ow] = sr[ow * SW];
    }
  });
  const Conv2dShape d{N, C, OH, OW, s.M, OH, OW, 0, 0, s.group};
  conv2d<1, 1, 1, 1, 1, 1, ConvPath::Gemm1x1>(d, xs, w, bias, y, epi, threads);
}

// ---------------------------------------------------------------------------------------------
// Pixel-tile direct kernel (conv2d_pixels) for convs on small maps and strided convs: the output
// plane is one flat run of pixels, cut into tiles of 6 that may span output rows, so a 7-wide row
// costs no 1-pixel remainder tile and no border pixel runs alone (the row kernel above runs a
// 7x7 map as 5 + 1 + 1 pixels per row).  Every pixel of a tile has its own input pointer, which a
// zero-padded copy of the input (scratch) makes valid for every tap, so all KH*KW taps read at
// constant offsets.  The packed weights of the row kernel, the register tile of the 1x1 kernel
// (gemm1x1_cv): kCvNB 8-channel blocks x 6 pixels, the input pixel broadcast.  Tasks: (group,
// block group) outermost, so one thread's consecutive tasks reuse the group's weights from L2,
// then chunks of pixels.  4 blocks (AVX-512VL) against 2 (bench/kernels/bench.cpp `pixels`, 2
// threads, best of 40): 512->512 7x7 192 -> 204 GFLOP/s, 128->128 28x28 178 -> 210, stride 2 on
// 128 at 56x56 161 -> 200, on 256 at 28x28 153 -> 188, on 512 at 14x14 162 -> 160.  Software
// prefetch of the tile's input lines 8 channels ahead (bench/kernels/ab.sh, 2 threads, median of
// 40 and 60 interleaved calls): stride 2 128@56 +11..14%, 256@28 +5..8%, 512@14 +5%; 512@7 +-3%.
// Tried and slower: the strided input split into stride-phase planes (so a tile reads consecutive
// floats): stride 2 128@56 -19%, 256@28 -14%, 512@14 -10% (more lines per channel: 6 (plane, row)
// pairs against 3 rows).
// ---------------------------------------------------------------------------------------------
namespace detail {

#ifdef __AVX512F__
constexpr int kPxTile = 8;  // 2 x 8 16-lane accumulators: 12 pixels (one input pointer each) measured 10-22% slower
#else
constexpr int kPxTile = 6;
#endif
constexpr int kPxAhead = 8;  // channels px_tile prefetches ahead

// Tile of NP pixels (input pointers xb, tap offsets toff) x NR registers of kVW output channels
// (weights wb in 16-channel blocks [tap][Cg][16], block i at i * bstride; kPxBlock): out[p * kW +
// j], pixel-major (kW = kCvNB * 8 channels per pixel).  With AVX-512VL 2 registers x 8 pixels.
// 16-channel blocks, not the 8-channel ones of the other direct kernels: a 16-lane register of
// weights is then one load, where two 8-channel halves took a load and an insert, which runs on
// one of the two ports of the 512-bit FMAs (2 of every 18 uops there).
constexpr int kPxBlock = 16;  // frontends/ops/conv.py: PIXELS_BLOCK
template <int NP, int NR>
static DYDCA_NOINLINE void px_tile(const float* const* xb, const int64_t* toff, int nt, int64_t Cg, int64_t cs,
                                   const float* wb, int64_t bstride, float* out) {
  vw a[NR][NP];
#pragma GCC unroll 8
  for (int q = 0; q < NR; ++q)
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) a[q][p] = vsplat<vw>(0.f);
  // register q: lanes q * kVW.. of the tile, in block q * kVW / 16 at offset q * kVW % 16
  int64_t woff[NR];
#pragma GCC unroll 4
  for (int q = 0; q < NR; ++q) woff[q] = (q * kVW / kPxBlock) * bstride + q * kVW % kPxBlock;
  for (int t = 0; t < nt; ++t) {
    const float* xt[NP];
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) xt[p] = xb[p] + toff[t];
    const float* wc = wb + t * Cg * kPxBlock;
    int64_t oc = 0;
#pragma GCC unroll 4
    for (int64_t c = 0; c < Cg; ++c) {
      // The lines this tile reads kPxAhead channels on: its first and last pixel's (8 pixels span
      // at most 2 lines per row even at stride 2); the hardware does not see the channel stride.
      __builtin_prefetch(xt[0] + oc + kPxAhead * cs);
      if constexpr (NP > 1) __builtin_prefetch(xt[NP - 1] + oc + kPxAhead * cs);
      vw wv[NR];
#pragma GCC unroll 4
      for (int q = 0; q < NR; ++q) wv[q] = vwload(wc + c * kPxBlock + woff[q]);
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) {
        const vw v = vsplat<vw>(xt[p][oc]);
#pragma GCC unroll 4
        for (int q = 0; q < NR; ++q) a[q][p] = vfma(wv[q], v, a[q][p]);
      }
      oc += cs;
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
    for (int q = 0; q < NR; ++q) vwstore(out + p * kCvNB * 8 + q * kVW, a[q][p]);
}

template <int NR>
static inline void px_tile_n(int np, const float* const* xb, const int64_t* toff, int nt, int64_t Cg, int64_t cs,
                             const float* wb, int64_t bstride, float* out) {
  switch (np) {
    case 1: px_tile<1, NR>(xb, toff, nt, Cg, cs, wb, bstride, out); break;
    case 2: px_tile<2, NR>(xb, toff, nt, Cg, cs, wb, bstride, out); break;
    case 3: px_tile<3, NR>(xb, toff, nt, Cg, cs, wb, bstride, out); break;
    case 4: px_tile<4, NR>(xb, toff, nt, Cg, cs, wb, bstride, out); break;
    case 5: px_tile<5, NR>(xb, toff, nt, Cg, cs, wb, bstride, out); break;
#ifdef __AVX512F__
    case 6: px_tile<6, NR>(xb, toff, nt, Cg, cs, wb, bstride, out); break;
    case 7: px_tile<7, NR>(xb, toff, nt, Cg, cs, wb, bstride, out); break;
#endif
    default: px_tile<kPxTile, NR>(xb, toff, nt, Cg, cs, wb, bstride, out); break;
  }
}

// px_tile_n for nr (1..kCvNB * 8 / kVW) registers.
DYDCA_LIB void px_tile_nr(int nr, int np, const float* const* xb, const int64_t* toff, int nt, int64_t Cg,
                          int64_t cs, const float* wb, int64_t bstride, float* out)
#if DYDCA_LIB_BODY
{
  static_assert(kCvNB * 8 == 2 * kVW || kCvNB * 8 == kVW, "a tile is one or two registers wide");
  if (nr == 1) return px_tile_n<1>(np, xb, toff, nt, Cg, cs, wb, bstride, out);
  return px_tile_n<kCvNB * 8 / kVW>(np, xb, toff, nt, Cg, cs, wb, bstride, out);
}
#else
;
#endif

// Whether conv2d_pixels reads the input in place: no padding, and every tap inside it.
inline bool pixels_in_place(const Conv2dShape& s, int64_t KH, int64_t KW, int64_t SH, int64_t SW, int64_t DH,
                            int64_t DW) {
  return s.pad_t == 0 && s.pad_l == 0 && (s.OH - 1) * SH + (KH - 1) * DH < s.H &&
         (s.OW - 1) * SW + (KW - 1) * DW < s.W;
}
}  // namespace detail

// Bytes of scratch conv2d_pixels takes: 0 where it reads the input in place, else the zero-padded
// input, N x C x Hp x Wp floats (Hp, Wp: the rows and columns the taps reach) + 64.
inline int64_t conv2d_pixels_scratch_bytes(const Conv2dShape& s, int64_t KH, int64_t KW, int64_t SH, int64_t SW,
                                           int64_t DH, int64_t DW) {
  if (detail::pixels_in_place(s, KH, KW, SH, SW, DH, DW)) return 0;
  const int64_t hp = (s.OH - 1) * SH + (KH - 1) * DH + 1, wp = (s.OW - 1) * SW + (KW - 1) * DW + 1;
  return s.N * s.C * hp * wp * 4 + 64;
}

// ChannelsLast: x is [N][H][W][C] (group 1), stored so by its producer (ChannelsLastStore): a
// tile's broadcasts then walk consecutive floats across channels, 16 to a cache line, where in
// NCHW each channel of each pixel is a line of its own, a plane apart (the tiles alone, 2 threads,
// ResNet's 3x3 convs: stride 2 128@56 +21%, 256@28 +9%, 512@14 +10%, 512@7 +5%).  The padded copy
// is then channels last too: [N][Hp][Wp][C], whole rows of W * C floats.
template <int KH, int KW, int SH, int SW, int DH, int DW, bool ChannelsLast = false, class Epi,
          class Store = IdentityStore>
void conv2d_pixels(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y, Epi epi,
                   int threads, void* scratch, Store store = Store{}) {
  static_assert(KH >= 1 && KW >= 1 && SH >= 1 && SW >= 1 && DH >= 1 && DW >= 1, "bad conv params");
  if (ChannelsLast && s.group != 1) throw std::logic_error("dydca::conv2d_pixels: channels-last input needs group 1");
  const int64_t N = s.N, C = s.C, G = s.group, OH = s.OH, OW = s.OW;
  if (N <= 0 || s.M <= 0 || OH <= 0 || OW <= 0) return;
  constexpr int kW = detail::kCvNB * 8;  // output channels per task
  constexpr int64_t B = detail::kPxBlock;
  const int64_t Cg = C / G, Mg = s.M / G, MB = (Mg + B - 1) / B, NPB = (Mg + kW - 1) / kW;
  const int64_t P = OH * OW;
  if (Cg == 1 && G == s.M) throw std::logic_error("dydca::conv2d_pixels: depthwise weights are not packed for it");
  const bool in_place = detail::pixels_in_place(s, KH, KW, SH, SW, DH, DW);
  if (!in_place && scratch == nullptr) throw std::logic_error("dydca::conv2d_pixels: padded input needs scratch");
  const int64_t Hp = in_place ? s.H : (OH - 1) * SH + (KH - 1) * DH + 1;
  const int64_t Wp = in_place ? s.W : (OW - 1) * SW + (KW - 1) * DW + 1, cs = Hp * Wp;
  const float* xs = x;
  if (ChannelsLast && !in_place) {
    float* xp = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t(63));
    const int64_t j0 = std::min(Wp, s.pad_l), j1 = std::max(j0, std::min(Wp, s.W + s.pad_l));
    parallel_for(N * Hp, threads, [&](int64_t t) {
      const int64_t n = t / Hp, i = t % Hp, ih = i - s.pad_t;
      float* d = xp + t * Wp * C;
      if (ih < 0 || ih >= s.H) {
        std::fill(d, d + Wp * C, 0.f);
        return;
      }
      const float* src = x + ((n * s.H + ih) * s.W + (j0 - s.pad_l)) * C;
      std::fill(d, d + j0 * C, 0.f);
      std::copy(src, src + (j1 - j0) * C, d + j0 * C);
      std::fill(d + j1 * C, d + Wp * C, 0.f);
    });
    xs = xp;
  } else if (!in_place) {
    float* xp = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t(63));
    parallel_for(N * C, threads, [&](int64_t t) {
      const float* src = x + t * s.H * s.W;
      float* dst = xp + t * cs;
      const int64_t j0 = std::min(Wp, s.pad_l), j1 = std::max(j0, std::min(Wp, s.W + s.pad_l));
      for (int64_t i = 0; i < Hp; ++i) {
        const int64_t ih = i - s.pad_t;
        float* d = dst + i * Wp;
        if (ih < 0 || ih >= s.H) {
          std::fill(d, d + Wp, 0.f);
          continue;
        }
        std::fill(d, d + j0, 0.f);
        std::copy(src + ih * s.W + (j0 - s.pad_l), src + ih * s.W + (j1 - s.pad_l), d + j0);
        std::fill(d + j1, d + Wp, 0.f);
      }
    });
    xs = xp;
  }
  // channels last: a pixel's channels are consecutive (channel stride 1), pixels C floats apart
  const int64_t pix = ChannelsLast ? C : 1, chan = ChannelsLast ? 1 : cs;
  int64_t toff[KH * KW];
  for (int kh = 0; kh < KH; ++kh)
    for (int kw = 0; kw < KW; ++kw) toff[kh * KW + kw] = (kh * DH * Wp + kw * DW) * pix;
  // Pixel chunks of whole tiles, up to one flush buffer, and enough tasks for every thread.
  int64_t cq = std::min<int64_t>(detail::kConvCW, (P + detail::kPxTile - 1) / detail::kPxTile * detail::kPxTile);
  while (cq > detail::kPxTile && G * NPB * N * ((P + cq - 1) / cq) < 4 * std::max(threads, 1)) cq -= detail::kPxTile;
  const int64_t nq = (P + cq - 1) / cq, bstride = Cg * KH * KW * B, OHW = P;
  parallel_for_guided(G * NPB * N * nq, threads, [&](int64_t task) {
    const int64_t q0 = (task % nq) * cq, q1 = std::min(P, q0 + cq);
    const int64_t n = (task / nq) % N, gp = task / (nq * N), g = gp / NPB, pb = gp % NPB;
    const int nch = (int)std::min<int64_t>(kW, Mg - pb * kW);
    const float* wb = w + (g * MB + pb * (kW / B)) * bstride;
    const float* xg = xs + (n * C + g * Cg) * cs;
    alignas(64) float buf[detail::kConvCW * kW];
    // A chunk's tiles split it evenly (sizes one apart at most): a 7 x 7 plane made six 8-pixel
    // tiles and one of a single pixel, whose accumulators wait on the FMA latency (ab.sh, 2
    // threads, two rounds of 60 calls: 3x3 512@7 +1..2%, 3x3/2 512@14 +3..5%; making the chunks
    // even too cost 3x3/2 128@56 5%).
    const int64_t nt = (q1 - q0 + detail::kPxTile - 1) / detail::kPxTile;
    for (int64_t t = 0; t < nt; ++t) {
      const int64_t q = q0 + t * (q1 - q0) / nt;
      const int np = (int)(q0 + (t + 1) * (q1 - q0) / nt - q);
      const float* xb[detail::kPxTile];
      for (int p = 0; p < np; ++p) xb[p] = xg + (((q + p) / OW) * SH * Wp + ((q + p) % OW) * SW) * pix;
      detail::px_tile_nr((nch + detail::kVW - 1) / detail::kVW, np, xb, toff, KH * KW, Cg, chan, wb, bstride,
                         buf + (q - q0) * kW);
    }
    // Stored one output row segment at a time (a store knows rows).
    const int64_t m0 = g * Mg + pb * kW;
    for (int64_t q = q0; q < q1;) {
      const int64_t oh = q / OW, ow = q % OW, len = std::min(q1 - q, OW - ow);
      detail::flush_pm<kW>(buf + (q - q0) * kW, nch, len, bias, m0, y,
                       detail::Strip{n, oh, ow, (n * s.M + m0) * OHW + q}, OHW, epi, store);
      q += len;
    }
  });
}

template <int KH, int KW, int SH, int SW, int DH, int DW, ConvPath Path = ConvPath::Auto, class Epi,
          class Store = IdentityStore>
void conv_transpose2d(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y,
                      Epi epi, int threads, Store store = Store{}) {
  static_assert(KH >= 1 && KW >= 1 && SH >= 1 && SW >= 1 && DH >= 1 && DW >= 1, "bad conv params");
  constexpr bool kAuto = Path == ConvPath::Auto;
  constexpr bool kPhases = DH == 1 && DW == 1;  // the stride-phase kernel takes undilated kernels
  static_assert(kAuto || detail::is_general(Path) || (Path == ConvPath::FewChannels && kPhases),
                "conv_transpose2d has the general kernel and, for undilated kernels, FewChannels (Mg <= 4)");
  const int64_t N = s.N, G = s.group, OH = s.OH, OW = s.OW;
  if (N <= 0 || s.M <= 0 || OH <= 0 || OW <= 0) return;
  const int64_t Mg = s.M / G;
  if (Path == ConvPath::FewChannels ? Mg > detail::kCtFewChannelsMax : !detail::general_fits(Path, Mg))
    throw std::logic_error("dydca::conv_transpose2d: the compiled kernel path does not fit this shape");
  const int64_t Cg = s.C / G;
  // Few output channels per group: stride phases through the width-vectorised kernel (ct_wv_row).
  if constexpr (kPhases && (kAuto || Path == ConvPath::FewChannels)) {
    if (Mg <= detail::kCtFewChannelsMax) {
      parallel_for_guided(N * G * OH, threads, [&](int64_t t) {
        const int64_t oh = t % OH, g = (t / OH) % G, n = t / (OH * G);
        detail::ct_wv_row<KH, KW, SH, SW>(s, x, w, bias, y, epi, store, n, g, oh);
      });
      return;
    }
  }
  if constexpr (kAuto || detail::is_general(Path)) {
    const bool wm = detail::weight_major(N, Mg, OH, (Mg + 7) / 8 * 8 * Cg * KH * KW, Cg * s.H * s.W);
    detail::for_row_tasks(N, G, Mg, OH, wm, threads, [&](int64_t n, int64_t g, int64_t pb, int64_t oh) {
      detail::ct_row<KH, KW, SH, SW, DH, DW, Path>(s, x, w, bias, y, epi, store, n, g, pb, oh);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Run-time weight packing (weights that are graph inputs or computed): exactly the layouts of
// codegen/packing.py, written into caller-provided memory (the planner's per-node scratch).
// ---------------------------------------------------------------------------------------------
namespace detail {
// Fills blocks [group][MBk][KK][Cg][B] with lane value src(g, c, m, k) for m < Mg, 0 beyond
// (B: 8, or conv2d_pixels' kPxBlock).
template <class Src>
inline void pack_conv_blocks(int64_t group, int64_t Mg, int64_t Cg, int64_t KK, float* out, int threads, Src src,
                             int64_t B = 8) {
  const int64_t MBk = (Mg + B - 1) / B;
  // A pass over a few KiB of weights is shorter than waking the thread team.
  const int th = group * MBk * KK * Cg * B < (int64_t)1 << 16 ? 1 : threads;
  parallel_for(group * MBk, th, [&](int64_t t) {
    const int64_t g = t / MBk, b = t % MBk;
    float* o = out + t * KK * Cg * B;
    for (int64_t k = 0; k < KK; ++k)
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t j = 0; j < B; ++j) {
          const int64_t m = B * b + j;
          o[(k * Cg + c) * B + j] = m < Mg ? src(g, c, m, k) : 0.f;
        }
  });
}
}  // namespace detail

// Floats pack_conv2d_weights writes for ONNX Conv weights [M, Cg, KH, KW] in blocks of `block`
// output channels (8; conv2d_pixels: detail::kPxBlock) (0: depthwise, whose kernel reads the ONNX
// layout in place).
inline int64_t conv2d_packed_floats(int64_t M, int64_t Cg, int64_t KH, int64_t KW, int64_t group,
                                    int64_t block = 8) {
  if (Cg == 1 && group == M) return 0;
  return group * ((M / group + block - 1) / block) * block * Cg * KH * KW;
}

// Packs ONNX Conv weights w[M, Cg, KH, KW] into `out` (conv2d_packed_floats floats); returns the
// pointer conv2d takes (w itself for depthwise).
inline const float* pack_conv2d_weights(const float* w, int64_t M, int64_t Cg, int64_t KH, int64_t KW,
                                        int64_t group, float* out, int threads, int64_t block = 8) {
  if (Cg == 1 && group == M) return w;
  const int64_t Mg = M / group, KK = KH * KW;
  detail::pack_conv_blocks(
      group, Mg, Cg, KK, out, threads,
      [&](int64_t g, int64_t c, int64_t m, int64_t k) { return w[((g * Mg + m) * Cg + c) * KK + k]; }, block);
  return out;
}

// Floats pack_conv_transpose2d_weights writes for ONNX ConvTranspose weights [C, Mg, KH, KW].
inline int64_t conv_transpose2d_packed_floats(int64_t C, int64_t Mg, int64_t KH, int64_t KW, int64_t group) {
  return group * ((Mg + 7) / 8) * 8 * (C / group) * KH * KW;
}

// Packs ONNX ConvTranspose weights w[C, Mg, KH, KW] into `out`; returns out.
inline const float* pack_conv_transpose2d_weights(const float* w, int64_t C, int64_t Mg, int64_t KH, int64_t KW,
                                                  int64_t group, float* out, int threads) {
  const int64_t Cg = C / group, KK = KH * KW;
  detail::pack_conv_blocks(group, Mg, Cg, KK, out, threads, [&](int64_t g, int64_t c, int64_t m, int64_t k) {
    return w[((g * Cg + c) * Mg + m) * KK + k];
  });
  return out;
}

}  // namespace dydca
