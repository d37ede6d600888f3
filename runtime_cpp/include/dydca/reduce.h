// dydca: reductions and normalisations (frontends/ops/reduce.py lists the ops that use them):
// ReduceSum/Mean/Max, Softmax, LayerNormalization, LRN, BatchNormalization (inference), and the
// windowed reductions MaxPool/AveragePool.
//
// Every kernel works on float32, runs its independent outer work through dydca::parallel_for and
// keeps its innermost loop over contiguous memory so that the compiler vectorises it. None of them
// allocates: temporaries are small fixed-size stack arrays.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "dydca/runtime.h"

namespace dydca {

// ---- combine operators of the reductions ----
struct SumOp {
  static constexpr float init() { return 0.f; }
  static inline float f(float a, float b) { return a + b; }
};
struct MaxOp {
  static constexpr float init() { return -std::numeric_limits<float>::infinity(); }
  // written as a select so that it maps onto vmaxps; NaN inputs are not propagated (as onnxruntime's
  // Eigen-based max)
  static inline float f(float a, float b) { return a > b ? a : b; }
};

// Op-reduction of p[0..n): 32 independent accumulators (4 AVX2 registers) hide the add latency and,
// for sums, keep the error growth close to pairwise summation's.
template <class Op>
inline float hreduce(const float* p, int64_t n) {
  constexpr int W = 32;
  float acc[W];
  for (int j = 0; j < W; ++j) acc[j] = Op::init();
  int64_t i = 0;
  for (; i + W <= n; i += W)
    for (int j = 0; j < W; ++j) acc[j] = Op::f(acc[j], p[i + j]);
  float r = Op::init();
  for (; i < n; ++i) r = Op::f(r, p[i]);
  for (int j = 0; j < W; ++j) r = Op::f(r, acc[j]);
  return r;
}

// exp(x) for float in straight-line arithmetic (Cephes' expf: range reduction by ln 2 in two
// parts, degree-5 polynomial, 2^n built in the exponent bits) so that loops calling it vectorise;
// std::exp would stay a scalar libm call. Max relative error ~2 ulp; 0 for x <= -87.3 (and -inf).
// No float comparisons: under GCC's default -ftrapping-math a compare blocks if-conversion and
// with it vectorisation, so the clamp works on the bit pattern with integer min and the rounding
// uses the 1.5 * 2^23 trick.
inline float vexp(float x) {
  int32_t xi;
  std::memcpy(&xi, &x, sizeof(xi));
  const int32_t hi_mag = 0x42B0C0A5;  // 88.3762626647949f
  const int32_t lo_mag = 0x42AEAC50;  // 87.3365447504f (as a magnitude; the bound is negative)
  const int32_t limit = hi_mag ^ ((hi_mag ^ lo_mag) & (xi >> 31));  // per sign
  int32_t mag = xi & 0x7FFFFFFF;
  mag = mag < limit ? mag : limit;
  xi = (xi & INT32_MIN) | mag;
  std::memcpy(&x, &xi, sizeof(x));
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;  // round to nearest
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &e, sizeof(scale));
  return p * scale;
}

// ---- ReduceSum / ReduceMean / ReduceMax ----
//
// The input is described after merging adjacent axes of the same kind, so kept (K) and reduced (R)
// groups alternate. NK kept groups (outermost first) and NR reduced groups, each a size and an
// element stride in the input. `inner` is the size of the last group and `inner_reduced` its kind:
//   inner reduced: every output element is a horizontal reduction of contiguous runs (hreduce);
//   inner kept:    every output row of `inner` contiguous elements accumulates whole input rows,
//                  vectorised across the row (reducing a middle axis, e.g. [B, C, HW] over C).
// `scale` multiplies the result (1/count for the mean).
template <class Op, int NK, int NR>
struct ReduceGeom {
  int64_t kn[NK], ks[NK];  // kept groups other than the inner one: sizes, input strides
  int64_t rn[NR], rs[NR];  // reduced groups other than the inner one
  int64_t inner;
  bool inner_reduced;
  float scale;
};

namespace detail {
template <int N>
inline int64_t offset_of(int64_t flat, const int64_t (&n)[N], const int64_t (&s)[N]) {
  int64_t off = 0;
  for (int d = N - 1; d >= 0; --d) {
    off += (flat % n[d]) * s[d];
    flat /= n[d];
  }
  return off;
}
template <int N>
inline int64_t count_of(const int64_t (&n)[N]) {
  int64_t c = 1;
  for (int d = 0; d < N; ++d) c *= n[d];
  return c;
}
}  // namespace detail

template <class Op, int NK, int NR>
void reduce(const ReduceGeom<Op, NK, NR>& g, const float* x, float* y, int threads) {
  const int64_t nout = detail::count_of(g.kn), nred = detail::count_of(g.rn);
  const int64_t I = g.inner;
  if (g.inner_reduced) {
    const int64_t work = nout * nred * I;
    parallel_for(nout, work < 32768 ? 1 : threads, [&](int64_t o) {
      const float* base = x + detail::offset_of(o, g.kn, g.ks);
      float acc = Op::init();
      for (int64_t r = 0; r < nred; ++r) acc = Op::f(acc, hreduce<Op>(base + detail::offset_of(r, g.rn, g.rs), I));
      y[o] = acc * g.scale;
    });
    return;
  }
  // inner kept: split long rows into column chunks so that a single output row still uses all threads
  const int64_t chunk = nout >= threads ? I : std::max<int64_t>(256, (I + threads - 1) / threads);
  const int64_t nchunks = (I + chunk - 1) / chunk;
  const int64_t work = nout * nred * I;
  parallel_for(nout * nchunks, work < 32768 ? 1 : threads, [&](int64_t job) {
    const int64_t o = job / nchunks, c0 = (job % nchunks) * chunk, c1 = std::min(I, c0 + chunk);
    const float* base = x + detail::offset_of(o, g.kn, g.ks);
    float* yr = y + o * I;
    for (int64_t c = c0; c < c1; ++c) yr[c] = Op::init();
    for (int64_t r = 0; r < nred; ++r) {
      const float* xr = base + detail::offset_of(r, g.rn, g.rs);
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) yr[c] = Op::f(yr[c], xr[c]);
    }
    if (g.scale != 1.f) {
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) yr[c] *= g.scale;
    }
  });
}

// ---- Softmax ----
// Softmax over L elements of stride `inner`, for `outer` x `inner` independent vectors, with the
// maximum subtracted before exp. inner == 1 (the usual last-axis case) runs row by row; otherwise
// blocks of up to 64 neighbouring vectors are processed together, vectorised across them.
inline void softmax(const float* x, float* y, int64_t outer, int64_t L, int64_t inner, int threads) {
  const int64_t work = outer * L * inner;
  const int t = work < 16384 ? 1 : threads;
  if (inner == 1) {
    parallel_for(outer, t, [&](int64_t o) {
      const float* xr = x + o * L;
      float* yr = y + o * L;
      const float m = hreduce<MaxOp>(xr, L);
#pragma omp simd
      for (int64_t i = 0; i < L; ++i) yr[i] = vexp(xr[i] - m);
      const float inv = 1.f / hreduce<SumOp>(yr, L);
#pragma omp simd
      for (int64_t i = 0; i < L; ++i) yr[i] *= inv;
    });
    return;
  }
  constexpr int64_t B = 64;
  const int64_t nb = (inner + B - 1) / B;
  parallel_for(outer * nb, t, [&](int64_t job) {
    const int64_t o = job / nb, j0 = (job % nb) * B, n = std::min(B, inner - j0);
    const float* xb = x + o * L * inner + j0;
    float* yb = y + o * L * inner + j0;
    float m[B], s[B];
    for (int64_t j = 0; j < n; ++j) { m[j] = MaxOp::init(); s[j] = 0.f; }
    for (int64_t l = 0; l < L; ++l) {
      const float* xr = xb + l * inner;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) m[j] = MaxOp::f(m[j], xr[j]);
    }
    for (int64_t l = 0; l < L; ++l) {
      const float* xr = xb + l * inner;
      float* yr = yb + l * inner;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) { yr[j] = vexp(xr[j] - m[j]); s[j] += yr[j]; }
    }
    for (int64_t j = 0; j < n; ++j) s[j] = 1.f / s[j];
    for (int64_t l = 0; l < L; ++l) {
      float* yr = yb + l * inner;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) yr[j] *= s[j];
    }
  });
}

// ---- LayerNormalization ----
// Normalises each of `outer` rows of L contiguous elements: two passes (mean, then the centred
// sum of squares) in float, which avoids the cancellation of E[x^2] - E[x]^2. scale/bias hold L
// values (bias may be null); mean/inv_std (optional outputs) get one value per row.
inline void layer_norm(const float* x, const float* scale, const float* bias, float* y, float* mean_out,
                       float* inv_std_out, int64_t outer, int64_t L, float eps, int threads) {
  parallel_for(outer, outer * L < 16384 ? 1 : threads, [&](int64_t o) {
    const float* xr = x + o * L;
    float* yr = y + o * L;
    const float mean = hreduce<SumOp>(xr, L) / float(L);
    float acc[32] = {};
    int64_t i = 0;
    for (; i + 32 <= L; i += 32)
      for (int j = 0; j < 32; ++j) { const float d = xr[i + j] - mean; acc[j] += d * d; }
    float var = 0.f;
    for (; i < L; ++i) { const float d = xr[i] - mean; var += d * d; }
    for (int j = 0; j < 32; ++j) var += acc[j];
    const float rstd = 1.f / std::sqrt(var / float(L) + eps);
    if (bias) {
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) yr[k] = (xr[k] - mean) * rstd * scale[k] + bias[k];
    } else {
#pragma omp simd
      for (int64_t k = 0; k < L; ++k) yr[k] = (xr[k] - mean) * rstd * scale[k];
    }
    if (mean_out) mean_out[o] = mean;
    if (inv_std_out) inv_std_out[o] = rstd;
  });
}

// ---- per-channel affine over [N, C, S] (BatchNormalization in inference mode) ----
// coef(c, a, b) gives y = x * a + b for channel c. S == 1 (a [N, C] input) vectorises across C.
template <class Coef>
void channel_affine(const float* x, float* y, int64_t N, int64_t C, int64_t S, Coef coef, int threads) {
  const int t = N * C * S < 32768 ? 1 : threads;
  if (S == 1) {
    parallel_for(N, t, [&](int64_t n) {
      const float* xr = x + n * C;
      float* yr = y + n * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        float a, b;
        coef(c, a, b);
        yr[c] = xr[c] * a + b;
      }
    });
    return;
  }
  parallel_for(N * C, t, [&](int64_t nc) {
    float a, b;
    coef(nc % C, a, b);
    const float* xr = x + nc * S;
    float* yr = y + nc * S;
#pragma omp simd
    for (int64_t s = 0; s < S; ++s) yr[s] = xr[s] * a + b;
  });
}

// ---- LRN (across channels of [N, C, S]) ----
// y = x / (bias + alpha/size * sum_{c' in window(c)} x[c']^2)^beta, window [c - lo, c + hi].
inline void lrn(const float* x, float* y, int64_t N, int64_t C, int64_t S, int64_t lo, int64_t hi, float alpha_n,
                float beta, float bias, int threads) {
  constexpr int64_t B = 256;
  const int64_t nb = (S + B - 1) / B;
  parallel_for(N * C * nb, N * C * S < 16384 ? 1 : threads, [&](int64_t job) {
    const int64_t nc = job / nb, s0 = (job % nb) * B, n = std::min(B, S - s0);
    const int64_t b = nc / C, c = nc % C;
    const int64_t c0 = std::max<int64_t>(0, c - lo), c1 = std::min<int64_t>(C - 1, c + hi);
    float sq[B];
    for (int64_t j = 0; j < n; ++j) sq[j] = 0.f;
    for (int64_t cc = c0; cc <= c1; ++cc) {
      const float* xr = x + (b * C + cc) * S + s0;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) sq[j] += xr[j] * xr[j];
    }
    const float* xr = x + nc * S + s0;
    float* yr = y + nc * S + s0;
    for (int64_t j = 0; j < n; ++j) yr[j] = xr[j] / std::pow(bias + alpha_n * sq[j], beta);
  });
}

// ---- MaxPool / AveragePool over [N*C planes, H, W] (1-D pools run with H = KH = 1) ----
struct Pool2dShape {
  int64_t planes, h, w, oh, ow;
  int64_t pad_t, pad_l, pad_b, pad_r;  // begin/end pads (end pads matter for count_include_pad)
};

namespace detail {
// Taps k in [0, K) of output position o whose input index o*S - P + k*D lies in [lo, hi).
inline void tap_range(int64_t o, int64_t S, int64_t P, int64_t D, int64_t K, int64_t lo, int64_t hi,
                      int64_t& k0, int64_t& k1) {
  const int64_t start = o * S - P;
  k0 = start >= lo ? 0 : (lo - start + D - 1) / D;
  k1 = start + (K - 1) * D < hi ? K : (hi - start + D - 1) / D;
  if (k1 < k0) k1 = k0;
}
}  // namespace detail

// AVG: true for AveragePool (sum / count), false for MaxPool. INCLUDE_PAD: count the taps inside the
// padded extent [-pad, n + pad_end) rather than only the real input.
template <bool AVG, bool INCLUDE_PAD, int KH, int KW, int SH, int SW, int DH, int DW>
void pool2d(const Pool2dShape& s, const float* x, float* y, int threads) {
  using Op = std::conditional_t<AVG, SumOp, MaxOp>;
  // output columns whose window lies inside the input: no bounds checks, vectorised across ow
  const int64_t ow_lo = std::min(s.ow, (s.pad_l + SW - 1) / SW);
  const int64_t last = s.w - 1 - (KW - 1) * DW + s.pad_l;
  const int64_t ow_hi = std::max(ow_lo, std::min(s.ow, last < 0 ? 0 : last / SW + 1));
  parallel_for(s.planes * s.oh, s.planes * s.oh * s.ow * KH * KW < 32768 ? 1 : threads, [&](int64_t job) {
    const int64_t p = job / s.oh, oh = job % s.oh;
    const float* xp = x + p * s.h * s.w;
    float* yr = y + (p * s.oh + oh) * s.ow;
    int64_t kh0, kh1;
    detail::tap_range(oh, SH, s.pad_t, DH, KH, 0, s.h, kh0, kh1);
    int64_t ch = kh1 - kh0;
    if (AVG && INCLUDE_PAD) {
      int64_t a, b;
      detail::tap_range(oh, SH, s.pad_t, DH, KH, -s.pad_t, s.h + s.pad_b, a, b);
      ch = b - a;
    }
    auto column = [&](int64_t ow) {
      int64_t kw0, kw1;
      detail::tap_range(ow, SW, s.pad_l, DW, KW, 0, s.w, kw0, kw1);
      float acc = Op::init();
      for (int64_t kh = kh0; kh < kh1; ++kh) {
        const float* xr = xp + (oh * SH - s.pad_t + kh * DH) * s.w + ow * SW - s.pad_l;
        for (int64_t kw = kw0; kw < kw1; ++kw) acc = Op::f(acc, xr[kw * DW]);
      }
      if (AVG) {
        int64_t cw = kw1 - kw0;
        if (INCLUDE_PAD) {
          int64_t a, b;
          detail::tap_range(ow, SW, s.pad_l, DW, KW, -s.pad_l, s.w + s.pad_r, a, b);
          cw = b - a;
        }
        const int64_t cnt = ch * cw;
        acc = cnt > 0 ? acc / float(cnt) : 0.f;
      }
      yr[ow] = acc;
    };
    for (int64_t ow = 0; ow < ow_lo; ++ow) column(ow);
    // Interior columns: the window's rows are first reduced into one (contiguous, vectorised),
    // then each output takes its KW taps from that row.  Strided reads of every input row cost
    // KH times as much (ResNet's 3x3/2 MaxPool ran at ~1.6x onnxruntime's time).
    constexpr int64_t B = 64, kSpan = (B - 1) * SW + (KW - 1) * DW + 1;
    for (int64_t b0 = ow_lo; b0 < ow_hi; b0 += B) {
      const int64_t n = std::min(B, ow_hi - b0), span = (n - 1) * SW + (KW - 1) * DW + 1;
      const int64_t c0 = b0 * SW - s.pad_l;
      float col[kSpan];
      if (kh1 > kh0) {
        std::memcpy(col, xp + (oh * SH - s.pad_t + kh0 * DH) * s.w + c0, sizeof(float) * span);
        for (int64_t kh = kh0 + 1; kh < kh1; ++kh) {
          const float* xr = xp + (oh * SH - s.pad_t + kh * DH) * s.w + c0;
#pragma omp simd
          for (int64_t i = 0; i < span; ++i) col[i] = Op::f(col[i], xr[i]);
        }
      } else {
        std::fill(col, col + span, Op::init());
      }
      const float inv = AVG && ch > 0 ? 1.f / float(ch * KW) : 0.f;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        float acc = col[j * SW];
        for (int kw = 1; kw < KW; ++kw) acc = Op::f(acc, col[j * SW + kw * DW]);
        yr[b0 + j] = AVG ? acc * inv : acc;
      }
    }
    for (int64_t ow = ow_hi; ow < s.ow; ++ow) column(ow);
  });
}

}  // namespace dydca
