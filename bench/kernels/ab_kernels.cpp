// The kernel entry points bench/kernels/ab.sh compares across two revisions of the runtime headers.
// Compiled once per revision into one program (ab_main.cpp), each copy with its own namespace
// (-Ddydca=dydca_a / dydca_b) and its own extern "C" names (AB(x): a_x / b_x), so the two builds'
// calls can alternate call by call: on a shared host, sequential runs of two binaries differ by more
// than most kernel changes do.
#include <cstdint>

#include "ab_geometry.h"
#include "dydca/conv.h"
#include "dydca/winograd.h"

using dydca::Conv2dShape;

namespace {
// ReLU, and ReLU after a residual add (ResNet's block ends), as fused epilogues.
struct Epi {
  const float* res;
  float operator()(float v, int64_t, int64_t i) const {
    const float t = res ? v + res[i] : v;
    return t > 0.f ? t : 0.f;
  }
  void prefetch(int64_t i) const {  // as dydca::ReadsAt (epilogue.h)
    if (res) __builtin_prefetch(res + i);
  }
};
}  // namespace

// kind: 0 Winograd 3x3 (pads 1), 1 1x1 (conv2d's own choice: GEMM or gemm1x1_cv), 2 strided 1x1
// (stride 2, gathered), 3 pixel tiles 3x3 stride 1, 4 pixel tiles 3x3 stride 2, 5 row kernel 3x3
// stride 1, 6 few-input kernel 5x5 stride 1 (ESPCN's first layer), 7 few-input kernel 7x7 stride 2
// (ResNet's stem), 8 ConvTranspose 9x9 stride 2 by stride phases (FSRCNN's upscale), 9 few-channel
// (width-vectorised) kernel 3x3 stride 1, 10 1x1 storing channels last; pads (k - 1) / 2
// (ab_geometry).  w: weights in the layout the kind reads; scratch: ab_scratch bytes.
extern "C" void AB(conv)(int kind, const float* x, const float* w, const float* b, float* y, const float* res,
                         int64_t n, int64_t c, int64_t h, int64_t wd, int64_t m, void* scratch, int threads) {
  int64_t k, s;
  ab_geometry(kind, k, s);
  const int64_t p = (k - 1) / 2;
  const Conv2dShape sh{n, c, h, wd, m, (h + 2 * p - k) / s + 1, (wd + 2 * p - k) / s + 1, p, p, 1};
  const Epi epi{res};
  switch (kind) {
    case 0: return dydca::conv2d_winograd(sh, x, w, b, y, epi, threads, scratch);
    case 1: return dydca::conv2d<1, 1, 1, 1, 1, 1, dydca::ConvPath::Gemm1x1>(sh, x, w, b, y, epi, threads);
    case 2: return dydca::conv2d_1x1_strided<2, 2>(sh, x, w, b, y, epi, threads, scratch);
    case 3: return dydca::conv2d_pixels<3, 3, 1, 1, 1, 1>(sh, x, w, b, y, epi, threads, scratch);
    case 4: return dydca::conv2d_pixels<3, 3, 2, 2, 1, 1>(sh, x, w, b, y, epi, threads, scratch);
    case 6: return dydca::conv2d<5, 5, 1, 1, 1, 1, dydca::ConvPath::FewInputs>(sh, x, w, b, y, epi, threads);
    case 7: return dydca::conv2d<7, 7, 2, 2, 1, 1, dydca::ConvPath::FewInputs>(sh, x, w, b, y, epi, threads);
    case 8: {  // FSRCNN's upscale: output 2h x 2w (pads 4, output padding 1)
      const Conv2dShape st{n, c, h, wd, m, 2 * h, 2 * wd, 4, 4, 1};
      return dydca::conv_transpose2d<9, 9, 2, 2, 1, 1, dydca::ConvPath::FewChannels>(st, x, w, b, y, epi, threads);
    }
    case 9: return dydca::conv2d<3, 3, 1, 1, 1, 1, dydca::ConvPath::FewChannels>(sh, x, w, b, y, epi, threads);
    case 10:  // 1x1 storing channels last (the producer of a channels-last pair)
      return dydca::conv2d<1, 1, 1, 1, 1, 1, dydca::ConvPath::Gemm1x1>(sh, x, w, b, y, epi, threads,
                                                                       dydca::ChannelsLastStore{m, h, wd});
    default: return dydca::conv2d<3, 3, 1, 1, 1, 1, dydca::ConvPath::General>(sh, x, w, b, y, epi, threads);
  }
}

// Scratch bytes any kind may take at this shape (the largest of them).
extern "C" int64_t AB(scratch)(int64_t n, int64_t c, int64_t h, int64_t wd) {
  return (int64_t)dydca::winograd_scratch_bytes(c) + n * c * (h + 2) * (wd + 2) * 4 + 4096;
}
