// dydca runtime: single-precision GEMM with a packed-B register-blocked micro-kernel.
//
//   C[M,N] = epi(A[M,K] * B[K,N])      (row-major, leading dimensions lda/ldb/ldc)
//
// B is either packed at compile time by codegen/packing.py::pack_gemm_b (b_packed != nullptr), or
// a run-time matrix (b_packed == nullptr, B/ldb used).  A run-time B is packed into the caller's
// `scratch` (gemm_scratch_bytes() bytes) when that pays off, or read in place otherwise (also when
// scratch == nullptr).  No heap allocation happens inside a call.
//
// Packed-B layout (pack_gemm_b): N is split into panels of 16 columns (last panel zero-padded);
// panel p holds B[k, 16p + j] at offset (p*K + k)*16 + j, i.e. shape [ceil(N/16), K, 16].
//
// Micro-kernel: 6 rows x 16 columns held in 12 AVX2 accumulators (2 B loads + 6 broadcasts per
// 12 FMAs), or 12 x 16 in 16-lane ones with AVX-512, where two adjacent full panels go through a
// 12 x 32 tile (gemm_ukernel_pair).  Parallelism: (row block x column block) tasks shared out by
// the pool (parallel.h).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DYDCA_AVX2 1
#endif

#include "epilogue.h"
#include "parallel.h"

namespace dydca {
namespace detail {

// ---------------------------------------------------------------------------------------------
// 8-lane float vector abstraction: AVX2/FMA intrinsics, or GCC vector extensions as a portable
// fallback (the compiler lowers them to whatever SIMD the target has).
// ---------------------------------------------------------------------------------------------
#ifdef DYDCA_AVX2
using vf = __m256;
static inline vf vzero() { return _mm256_setzero_ps(); }
static inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vbcast(const float* p) { return _mm256_broadcast_ss(p); }
static inline vf vset1(float x) { return _mm256_set1_ps(x); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline __m256i vmask_n(int n) {
  alignas(32) static const int32_t tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tbl + 8 - n));
}
// loads lanes [0,n) from p (never touches memory beyond p[n-1]); other lanes are 0.
static inline vf vload_n(const float* p, int n) { return _mm256_maskload_ps(p, vmask_n(n)); }
static inline vf vload_m(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
#else
typedef float vf __attribute__((vector_size(32)));
static inline vf vzero() { return vf{0, 0, 0, 0, 0, 0, 0, 0}; }
static inline vf vload(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
static inline void vstore(float* p, vf v) { std::memcpy(p, &v, sizeof(v)); }
static inline vf vset1(float x) { return vf{x, x, x, x, x, x, x, x}; }
static inline vf vbcast(const float* p) { return vset1(*p); }
static inline vf vfma(vf a, vf b, vf c) { return a * b + c; }
static inline vf vload_n(const float* p, int n) {
  vf v = vzero();
  for (int i = 0; i < n; ++i) v[i] = p[i];
  return v;
}
#endif

// The widest float vector of the target (16 lanes with AVX-512, else vf), for loops over lanes
// whose count is free (the Winograd transforms over tiles); on cores with two 512-bit FMA units a
// 16-lane operation costs what an 8-lane one does.
#ifdef __AVX512F__
using vw = __m512;
constexpr int kVW = 16;
static inline vw vwload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vwstore(float* p, vw v) { _mm512_storeu_ps(p, v); }
static inline vw vfma(vw a, vw b, vw c) { return _mm512_fmadd_ps(a, b, c); }
#else
using vw = vf;
constexpr int kVW = 8;
static inline vw vwload(const float* p) { return vload(p); }
static inline void vwstore(float* p, vw v) { vstore(p, v); }
#endif
// x in every lane of a vf or vw (a broadcast: V{} + x would be a real add, as 0 + x is not x for
// x = -0).
template <class V>
static inline V vsplat(float x);
template <>
inline vf vsplat<vf>(float x) {
  return vset1(x);
}
#ifdef __AVX512F__
template <>
inline vw vsplat<vw>(float x) {
  return _mm512_set1_ps(x);
}
#endif

#ifdef __AVX512F__
// Two 8-channel blocks of packed weights as one 16-lane register (lanes 0-7 from lo, 8-15 from
// hi): the channel-vector conv kernels keep the 8-block packing and still run 16-lane FMAs, which
// on cores with two 512-bit FMA units do twice the work of 8-lane ones per cycle.
static inline __m512 vload_pair(const float* lo, const float* hi) {
  const __m512d l = _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(lo)));
  return _mm512_castpd_ps(_mm512_insertf64x4(l, _mm256_castps_pd(_mm256_loadu_ps(hi)), 1));
}
#endif

// Either register type by a compile-time choice: vw where Wide, vf otherwise (the same type
// without AVX-512).
template <bool Wide>
struct VecOf {
  using T = vf;
};
template <>
struct VecOf<true> {
  using T = vw;
};
template <bool Wide>
static inline typename VecOf<Wide>::T vload_as(const float* p) {
  if constexpr (Wide) return vwload(p);
  else return vload(p);
}
template <bool Wide>
static inline void vstore_as(float* p, typename VecOf<Wide>::T v) {
  if constexpr (Wide) vwstore(p, v);
  else vstore(p, v);
}

// The channel-vector kernels' register: kVB 8-channel blocks of packed weights in one vw (a pair,
// vload_pair, with AVX-512; one block otherwise).  Register q holds blocks kVB*q.. from block(i),
// a pointer to block i's 8 floats (the caller clips i to the blocks it has).
constexpr int kVB = kVW / 8;
template <class BlockPtr>
static inline vw vload_blocks(BlockPtr block, int q) {
#ifdef __AVX512F__
  return vload_pair(block(2 * q), block(2 * q + 1));
#else
  return vload(block(q));
#endif
}

// 8x8 transpose: dst[r*lds + c] = src[c*lss + r] for r,c in [0,8).
static inline void transpose8x8(const float* src, int64_t lss, float* dst, int64_t lds) {
#ifdef DYDCA_AVX2
  __m256 r0 = _mm256_loadu_ps(src + 0 * lss), r1 = _mm256_loadu_ps(src + 1 * lss);
  __m256 r2 = _mm256_loadu_ps(src + 2 * lss), r3 = _mm256_loadu_ps(src + 3 * lss);
  __m256 r4 = _mm256_loadu_ps(src + 4 * lss), r5 = _mm256_loadu_ps(src + 5 * lss);
  __m256 r6 = _mm256_loadu_ps(src + 6 * lss), r7 = _mm256_loadu_ps(src + 7 * lss);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  _mm256_storeu_ps(dst + 0 * lds, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + 1 * lds, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * lds, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * lds, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * lds, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * lds, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * lds, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * lds, _mm256_permute2f128_ps(s3, s7, 0x31));
#else
  for (int r = 0; r < 8; ++r)
    for (int c = 0; c < 8; ++c) dst[r * lds + c] = src[c * lss + r];
#endif
}

#ifdef __AVX512F__
constexpr int kGemmMR = 12;
#else
constexpr int kGemmMR = 6;
#endif
constexpr int kGemmNR = 16;

// K steps ahead the micro-kernel prefetches A: conv weights are streamed from memory once per
// call (a model's weights outgrow the caches), and their first read per row block missed the
// hardware prefetchers.  Measured (bench/kernels/bench.cpp `resnet`, 1 thread): 64 steps ahead
// +3..7% on 7x7 and 14x14 maps (largest weights per pixel), +-1% elsewhere; 32 less, 128 and 256
// lost 2..10%.
constexpr int64_t kGemmPrefetchK = 64;

// Where the A rows of a micro-kernel tile live.
//   ARows: one pointer per row, A(r,k) = p[r][k*ak] (row-major A; tiles ABlocks8 does not take).
//   ABlocks8<S>: the 8-row blocks of packed conv weights ([M/8][K][8]): the tile's first S rows at
//   a0 + r, the others at a1 + (r - S), both stepping 8 floats per k.  Two base registers instead
//   of MR: with a pointer per row the 12-row AVX-512 tile needs 17 integer registers, and GCC
//   spilled and reloaded 3-4 of them per K step (/tmp micro-benchmark, one core, operands in L1:
//   60 GFLOP/s with 12 pointers, 123-133 with two; fma_peak 137).
struct ARows {
  const float* const* p;
  int64_t ak;
  const float* row(int r) const { return p[r]; }
};
template <int S>
struct ABlocks8 {
  const float* a0;
  const float* a1;
  static constexpr int64_t ak = 8;
  const float* row(int r) const { return r < S ? a0 + r : a1 + (r - S); }
};

// acc[MR][16] = sum_k A(r,k) * B(k, 0..15) (A: ARows or ABlocks8).  B(k,j) = b[k*bs + j].
// NV < 16 (only used for in-place B): only columns [0,NV) of B are read (masked loads).
#ifdef __AVX512F__
// With AVX-512 a row of the tile is one 16-lane register and A is broadcast from memory into the
// FMA, so each K step loads 1 + MR values for MR FMAs of twice the width.
template <int MR, bool MASKED, class A>
static inline void gemm_ukernel(int64_t K, const A& ar, const float* b, int64_t bs, int nv, float* out,
                                int64_t ldo) {
  __m512 c[MR];
  const float* a[MR];
  const int64_t ak = ar.ak;
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) {
    c[r] = _mm512_setzero_ps();
    a[r] = ar.row(r);
  }
  const __mmask16 m = (__mmask16)((1u << nv) - 1u);
  int64_t ko = 0;
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    const __m512 bv = MASKED ? _mm512_maskz_loadu_ps(m, b) : _mm512_loadu_ps(b);
    b += bs;
    if ((k & 1) == 0) {  // rows 0 and MR-1: both 8-row weight blocks a tile may span
      __builtin_prefetch(a[0] + ko + kGemmPrefetchK * ak);
      __builtin_prefetch(a[MR - 1] + ko + kGemmPrefetchK * ak);
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r][ko]), bv, c[r]);
    ko += ak;
  }
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) _mm512_storeu_ps(out + r * ldo, c[r]);
}
// Two adjacent 16-column panels at once (the second b2 - b on): MR x 32, 2 x MR accumulators.
// Each broadcast of A feeds two FMAs, so a K step loads 2 + MR values for 2 x MR FMAs instead of
// 1 + MR for MR: with the 12 x 16 tile the loads, not the FMAs, set the pace, and every L1 miss
// (B panels and weights stream from L2) stalls it.
template <int MR, class A>
static inline void gemm_ukernel_pair(int64_t K, const A& ar, const float* b, int64_t bs, int64_t b2, float* out,
                                     int64_t ldo) {
  __m512 c[MR], d[MR];
  const float* a[MR];
  const int64_t ak = ar.ak;
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) {
    c[r] = _mm512_setzero_ps();
    d[r] = _mm512_setzero_ps();
    a[r] = ar.row(r);
  }
  int64_t ko = 0;
#pragma GCC unroll 2
  for (int64_t k = 0; k < K; ++k) {
    const __m512 bv = _mm512_loadu_ps(b), bw = _mm512_loadu_ps(b + b2);
    b += bs;
    if ((k & 1) == 0) {
      __builtin_prefetch(a[0] + ko + kGemmPrefetchK * ak);
      __builtin_prefetch(a[MR - 1] + ko + kGemmPrefetchK * ak);
    }
#pragma GCC unroll 12
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r][ko]);
      c[r] = _mm512_fmadd_ps(av, bv, c[r]);
      d[r] = _mm512_fmadd_ps(av, bw, d[r]);
    }
    ko += ak;
  }
#pragma GCC unroll 12
  for (int r = 0; r < MR; ++r) {
    _mm512_storeu_ps(out + r * ldo, c[r]);
    _mm512_storeu_ps(out + r * ldo + 16, d[r]);
  }
}
constexpr bool kGemmPair = true;
#else
constexpr bool kGemmPair = false;
template <int MR, bool MASKED, class A>
static inline void gemm_ukernel(int64_t K, const A& ar, const float* b, int64_t bs, int nv, float* out,
                                int64_t ldo) {
  vf c0[MR], c1[MR];
  const float* a[MR];
  const int64_t ak = ar.ak;
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    c0[r] = vzero();
    c1[r] = vzero();
    a[r] = ar.row(r);
  }
#ifdef DYDCA_AVX2
  __m256i m0 = vmask_n(nv < 8 ? nv : 8), m1 = vmask_n(nv > 8 ? nv - 8 : 0);
#endif
  int64_t ko = 0;
#pragma GCC unroll 4
  for (int64_t k = 0; k < K; ++k) {
    vf b0, b1;
    if (MASKED) {
#ifdef DYDCA_AVX2
      b0 = vload_m(b, m0);
      b1 = vload_m(b + 8, m1);
#else
      b0 = vload_n(b, nv < 8 ? nv : 8);
      b1 = vload_n(b + 8, nv > 8 ? nv - 8 : 0);
#endif
    } else {
      b0 = vload(b);
      b1 = vload(b + 8);
    }
    b += bs;
    if ((k & 1) == 0) {  // rows 0 and MR-1: both 8-row weight blocks a tile may span
      __builtin_prefetch(a[0] + ko + kGemmPrefetchK * ak);
      __builtin_prefetch(a[MR - 1] + ko + kGemmPrefetchK * ak);
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      vf av = vbcast(a[r] + ko);
      c0[r] = vfma(av, b0, c0[r]);
      c1[r] = vfma(av, b1, c1[r]);
    }
    ko += ak;
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    vstore(out + r * ldo, c0[r]);
    vstore(out + r * ldo + 8, c1[r]);
  }
}
#endif

// Out of line: a few copies serve every GEMM and 1x1 conv of a model, whatever their epilogues.
// Any tile with a pointer per row:
template <bool MASKED>
static DYDCA_NOINLINE void gemm_ukernel_rows(int mr, int64_t K, const ARows& a, const float* b, int64_t bs,
                                             int nv, float* out, int64_t ldo) {
  switch (mr) {
    case 1: gemm_ukernel<1, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 2: gemm_ukernel<2, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 3: gemm_ukernel<3, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 4: gemm_ukernel<4, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 5: gemm_ukernel<5, MASKED>(K, a, b, bs, nv, out, ldo); break;
#ifdef __AVX512F__
    case 6: gemm_ukernel<6, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 7: gemm_ukernel<7, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 8: gemm_ukernel<8, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 9: gemm_ukernel<9, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 10: gemm_ukernel<10, MASKED>(K, a, b, bs, nv, out, ldo); break;
    case 11: gemm_ukernel<11, MASKED>(K, a, b, bs, nv, out, ldo); break;
#endif
    default: gemm_ukernel<kGemmMR, MASKED>(K, a, b, bs, nv, out, ldo); break;
  }
}

// A tile of MR rows (kGemmMR, or 8: gemm_rows' shared remainders) of 8-row blocked A whose first
// block holds S of its rows: S even and the rest within the next block, MR - S <= 8 (gemm_tile
// checks; so the 12-row tile never comes with S = 2).
template <int MR, bool MASKED>
static DYDCA_NOINLINE void gemm_ukernel_blocks8(int S, int64_t K, const float* a0, const float* a1, const float* b,
                                                int64_t bs, int nv, float* out, int64_t ldo) {
  switch (S) {
    case 2:
      if constexpr (MR - 2 <= 8) gemm_ukernel<MR, MASKED>(K, ABlocks8<2>{a0, a1}, b, bs, nv, out, ldo);
      break;
    case 4: gemm_ukernel<MR, MASKED>(K, ABlocks8<4>{a0, a1}, b, bs, nv, out, ldo); break;
    case 6: gemm_ukernel<MR, MASKED>(K, ABlocks8<6>{a0, a1}, b, bs, nv, out, ldo); break;
    default: gemm_ukernel<MR, MASKED>(K, ABlocks8<8>{a0, a1}, b, bs, nv, out, ldo); break;
  }
}

// Rows of the tile at i0 of a row block ending at m1: kGemmMR, except that a short remainder is
// shared with the tile before, as each B load feeds only mr FMAs (a 4-row tile runs at a third of
// the 12-row rate).  AVX-512 (12 rows): remainders of 1-4 make an 8-row tile and one of 5-8 (64 =
// 5 x 12 + 8 + 8); AVX2 (6 rows): remainders of 1-2 split the last two tiles evenly (32 = 6 x 4 +
// 4 + 4; a 2-row tile keeps too few accumulators to hide the FMA latency).
static inline int gemm_rows(int64_t i0, int64_t m1) {
  const int64_t left = m1 - i0;
  if (left <= kGemmMR) return (int)left;
  if (kGemmMR > 8 && left <= kGemmMR + 4) return 8;
  if (kGemmMR <= 8 && left <= kGemmMR + 2) return (int)(left / 2);
  return kGemmMR;
}

// A as the micro-kernel tiles see it: row-major (lda), or 8-row blocks of K (packed conv weights).
struct AMatrix {
  const float* a;
  int64_t ld;     // row-major: row stride; blocked: K
  bool blocks8;
  const float* row(int64_t r) const { return blocks8 ? a + (r >> 3) * ld * 8 + (r & 7) : a + r * ld; }
};

// One micro-kernel call for rows [i0, i0 + mr) of A; row r of the tile goes to out + r * ldo;
// masked: only nv (< 16) columns of b are readable.
DYDCA_LIB void gemm_tile(bool masked, const AMatrix& A, int64_t i0, int mr, int64_t K, const float* b, int64_t bs,
                         int nv, float* out, int64_t ldo)
#if DYDCA_LIB_BODY
{
  const int S = 8 - (int)(i0 & 7);  // rows of the tile in its first 8-row block
  if (A.blocks8 && (mr == kGemmMR || mr == 8) && S % 2 == 0 && mr - S <= 8) {
    const float* a0 = A.row(i0);
    const float* a1 = a0 - (i0 & 7) + 8 * A.ld;
    if (mr == kGemmMR)
      return masked ? gemm_ukernel_blocks8<kGemmMR, true>(S, K, a0, a1, b, bs, nv, out, ldo)
                    : gemm_ukernel_blocks8<kGemmMR, false>(S, K, a0, a1, b, bs, nv, out, ldo);
    if constexpr (kGemmMR > 8)
      return masked ? gemm_ukernel_blocks8<8, true>(S, K, a0, a1, b, bs, nv, out, ldo)
                    : gemm_ukernel_blocks8<8, false>(S, K, a0, a1, b, bs, nv, out, ldo);
  }
  const float* arow[kGemmMR];
  for (int r = 0; r < mr; ++r) arow[r] = A.row(i0 + r);
  const ARows rows{arow, A.blocks8 ? 8 : 1};
  masked ? gemm_ukernel_rows<true>(mr, K, rows, b, bs, nv, out, ldo)
         : gemm_ukernel_rows<false>(mr, K, rows, b, bs, nv, out, ldo);
}
#else
;
#endif

// gemm_tile over two full 16-column panels (b and b + b2; AVX-512): rows [i0, i0 + mr) to out and
// out + 16.  Only full 12-row tiles of blocked A whose rows lie in two 8-row blocks.
DYDCA_LIB bool gemm_tile_pair(const AMatrix& A, int64_t i0, int mr, int64_t K, const float* b, int64_t bs,
                              int64_t b2, float* out, int64_t ldo)
#if DYDCA_LIB_BODY
{
#ifdef __AVX512F__
  const int S = 8 - (int)(i0 & 7);
  if (!A.blocks8 || mr != kGemmMR || S % 2 != 0 || mr - S > 8) return false;
  const float* a0 = A.row(i0);
  const float* a1 = a0 - (i0 & 7) + 8 * A.ld;
  switch (S) {
    case 4: gemm_ukernel_pair<kGemmMR>(K, ABlocks8<4>{a0, a1}, b, bs, b2, out, ldo); break;
    case 6: gemm_ukernel_pair<kGemmMR>(K, ABlocks8<6>{a0, a1}, b, bs, b2, out, ldo); break;
    default: gemm_ukernel_pair<kGemmMR>(K, ABlocks8<8>{a0, a1}, b, bs, b2, out, ldo); break;
  }
  return true;
#else
  (void)A, (void)i0, (void)mr, (void)K, (void)b, (void)bs, (void)b2, (void)out, (void)ldo;
  return false;
#endif
}
#else
;
#endif

// Packs columns [j0, j0 + nv) (nv <= 16) of a row-major B into one 16-column panel [K][16] at out,
// zero-padded past nv.
static inline void pack_b_columns(const float* B, int64_t ldb, int64_t K, int64_t j0, int nv, float* out) {
  for (int64_t k = 0; k < K; ++k) {
    const float* src = B + k * ldb + j0;
    float* d = out + k * kGemmNR;
    if (nv == kGemmNR) {
#pragma GCC unroll 16
      for (int j = 0; j < kGemmNR; ++j) d[j] = src[j];
    } else {
      int j = 0;
      for (; j < nv; ++j) d[j] = src[j];
      for (; j < kGemmNR; ++j) d[j] = 0.f;
    }
  }
}

// Computes the C block rows [m0,m1) x cols [n0,n1) (n0 multiple of 16).
//   B: packed (panel layout above, bpanel_stride = K*16) or in place (B + k*ldb + j).
//   row_store(t, nv, r, c0): stores the raw dot products t[j] of C(r, c0 + j), j < nv (<= 64),
//   once per element, with one plain loop over j that the compiler vectorises (a per-element
//   callback, fully unrolled, stayed scalar: the 1x1 conv path measured 6-39% faster with rows).
// Columns go in groups of up to kGemmGroup panels: each row tile runs the group's panels before
// its rows are stored, so a C row (an output plane of a 1x1 conv, a plane apart from the next)
// is written 64 columns at a time.  Stored 16 at a time, every store and residual read of the
// epilogue touched a new page, beyond what the hardware prefetchers track (/tmp test, one
// thread, 256 rows x 3136 columns of y = max(t + r, 0): 1.29 ms by 16 columns, 0.73 by 64,
// 0.33 in one sequential pass).
constexpr int kGemmGroup = 4;
template <class RowStore>
static inline void gemm_block(int64_t K, int64_t m0, int64_t m1, int64_t n0, int64_t n1, const AMatrix& A,
                              const float* B, int64_t ldb, bool packed, RowStore row_store) {
  alignas(64) float tile[kGemmMR * kGemmNR * kGemmGroup];
  // In-place B with several row tiles: the group's 16-column panels are copied to the stack first
  // (B rows that are 4 KiB apart would otherwise all fall into the same L1 sets, and the
  // prefetchers do not follow a run of rows a plane apart); K past kLocalFloats / 16 reads B in
  // place, one panel at a time.  A group's panels stay within kGroupFloats (24 KiB, half of L1).
  // Measured (ab.sh, 2 threads): copying up to K = 1024 rather than 384 gained 512->128 28x28
  // +22..34% and 512->2048 7x7 +7..13%; groups of 64 KiB at K = 256 lost 4-12%.
  constexpr int64_t kLocalFloats = 16384, kGroupFloats = 6144;
  alignas(64) float bl[kLocalFloats];
  const bool local = !packed && K * kGemmNR <= kLocalFloats && m1 - m0 > kGemmMR;
  // (The pair tile needs two panels: they may take all of bl.)
  const int64_t least = kGemmPair && 2 * K * kGemmNR <= kLocalFloats ? 2 : 1;
  const int64_t fit = std::max<int64_t>(least, kGroupFloats / (K * kGemmNR));
  const int64_t group = packed ? kGemmGroup : local ? std::min<int64_t>(kGemmGroup, fit) : 1;
  for (int64_t g0 = n0; g0 < n1; g0 += group * kGemmNR) {
    const int gw = (int)std::min<int64_t>(group * kGemmNR, n1 - g0), np = (gw + kGemmNR - 1) / kGemmNR;
    const int64_t ldo = np * kGemmNR;
    if (local)
      for (int p = 0; p < np; ++p)
        pack_b_columns(B, ldb, K, g0 + p * kGemmNR, std::min(kGemmNR, gw - p * kGemmNR), bl + p * K * kGemmNR);
    for (int64_t i0 = m0, mr; i0 < m1; i0 += mr) {
      mr = gemm_rows(i0, m1);
      for (int p = 0; p < np; ++p) {
        const int64_t j0 = g0 + p * kGemmNR;
        const int nv = std::min(kGemmNR, gw - p * kGemmNR);
        float* out = tile + p * kGemmNR;
        // Panel p of B: its first row, the step between rows and the offset of panel p + 1.
        const bool panels = packed || local;
        const float* b = packed ? B + (j0 / kGemmNR) * K * kGemmNR : local ? bl + p * K * kGemmNR : B + j0;
        const int64_t bs = panels ? kGemmNR : ldb, b2 = panels ? K * kGemmNR : kGemmNR;
        const bool two_full = p + 1 < np && gw - p * kGemmNR >= 2 * kGemmNR;
        if (kGemmPair && two_full && gemm_tile_pair(A, i0, mr, K, b, bs, b2, out, ldo)) {
          ++p;
          continue;
        }
        gemm_tile(!panels && nv < kGemmNR, A, i0, mr, K, b, bs, nv, out, ldo);
      }
      for (int r = 0; r < mr; ++r) row_store(tile + r * ldo, gw, i0 + r, g0);
    }
  }
}

// Task decomposition for one GEMM: row blocks of mc rows x column blocks of nc columns.
struct GemmTiling {
  int64_t mc, nc, nmb, nnb;
};
static inline GemmTiling gemm_tiling(int64_t M, int64_t N, int64_t K, int threads, int64_t outer) {
  GemmTiling t;
  // Rows: A block (mc x K) should stay in L2 (~192 KiB).
  int64_t mc = (192 * 1024 / 4) / std::max<int64_t>(K, 1);
  mc = std::max<int64_t>(kGemmMR, std::min<int64_t>(mc, 16 * kGemmMR));
  mc = (mc / kGemmMR) * kGemmMR;
  if (mc >= M) mc = M;
  int64_t nc = 8 * kGemmNR;
  // Make sure there are enough tasks for all threads.
  const int64_t want = 4 * (int64_t)std::max(threads, 1);
  auto ntasks = [&](int64_t a, int64_t b) { return outer * ((M + a - 1) / a) * ((N + b - 1) / b); };
  while (nc > kGemmNR && ntasks(mc, nc) < want) nc -= kGemmNR;
  while (mc > kGemmMR && ntasks(mc, nc) < want) mc -= kGemmMR;
  t.mc = std::max<int64_t>(mc, 1);
  t.nc = nc;
  t.nmb = (M + t.mc - 1) / t.mc;
  t.nnb = (N + t.nc - 1) / t.nc;
  return t;
}

// Packs panel p of a row-major B[K, N] into the panel layout (see top of file).
static inline void pack_b_panel(const float* B, int64_t ldb, int64_t K, int64_t N, int64_t p, float* out) {
  pack_b_columns(B, ldb, K, p * kGemmNR, (int)std::min<int64_t>(kGemmNR, N - p * kGemmNR), out + p * K * kGemmNR);
}

}  // namespace detail

// Bytes of scratch a run-time-B gemm call may use (B packed into 16-column panels + alignment).
inline size_t gemm_scratch_bytes(int64_t M, int64_t N, int64_t K, int threads) {
  (void)M;
  (void)threads;
  const int64_t np = (N + detail::kGemmNR - 1) / detail::kGemmNR;
  return (size_t)(np * K * detail::kGemmNR) * sizeof(float) + 64;
}

template <class Epi>
void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          const float* b_packed, float* C, int64_t ldc, Epi epi, void* scratch, int threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    parallel_for(M, threads, [&](int64_t i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = epi(0.f, i, j);
    });
    return;
  }
  const float* Bm = b_packed;
  bool packed = b_packed != nullptr;
  if (!packed) {
    Bm = B;
    // Packing costs one pass over B; it pays off when B is reused by enough row blocks.
    if (scratch != nullptr && M > 2 * detail::kGemmMR && N >= detail::kGemmNR) {
      float* sp = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch) + 63) & ~uintptr_t(63));
      const int64_t np = (N + detail::kGemmNR - 1) / detail::kGemmNR;
      parallel_for(np, threads, [&](int64_t p) { detail::pack_b_panel(B, ldb, K, N, p, sp); });
      Bm = sp;
      packed = true;
    }
  }
  const detail::GemmTiling t = detail::gemm_tiling(M, N, K, threads, 1);
  auto store = [&](const float* t, int nv, int64_t r, int64_t c0) {
    float* cr = C + r * ldc + c0;
    for (int j = 0; j < nv; ++j) cr[j] = epi(t[j], r, c0 + j);
  };
  parallel_for(t.nmb * t.nnb, threads, [&](int64_t task) {
    const int64_t mb = task / t.nnb, nb = task % t.nnb;
    const int64_t m0 = mb * t.mc, m1 = std::min(M, m0 + t.mc);
    const int64_t n0 = nb * t.nc, n1 = std::min(N, n0 + t.nc);
    detail::gemm_block(K, m0, m1, n0, n1, detail::AMatrix{A, lda, false}, Bm, ldb, packed, store);
  });
}

}  // namespace dydca
