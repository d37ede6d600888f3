// dydca runtime: branch-free float tanh, sigmoid and prelu for element-wise expressions and fused
// epilogues (frontends/ops/elementwise.py: Tanh, Sigmoid, PRelu, LeakyRelu; sigmoid on reduce.h's
// vexp).
//
// std::tanh / std::exp are library calls, so a loop applying them (a conv's store_row, map's
// inner loop) runs one element at a time.  These are plain arithmetic with integer clamps and no
// branches: inlined into such a loop, the compiler vectorises it (8 lanes with AVX2).
// Accuracy (against double-precision libm at the same float inputs, over a dense sweep of
// [-20, 20], tiny |x| and, for sigmoid, [-86, 88]; tests/codegen/test_conv_fast_paths.py):
// tanh within 3e-7 absolute and relative, sigmoid within 2e-7 relative.  NaN propagates (ONNX
// semantics), +-inf saturate.
#pragma once
#include <cstdint>
#include <cstring>

#include "dydca/reduce.h"  // vexp

namespace dydca {

namespace detail {
inline int32_t f2i(float x) {
  int32_t i;
  std::memcpy(&i, &x, sizeof i);
  return i;
}
inline float i2f(int32_t i) {
  float x;
  std::memcpy(&x, &i, sizeof x);
  return x;
}
// Float compares are avoided: under GCC's default -ftrapping-math they block if-conversion and
// with it vectorisation (see vexp), so clamps and NaN tests work on the bit patterns.
// x with its magnitude clamped to at most `lim` (a positive float's bits), the sign kept.
inline float clamp_mag(float x, int32_t lim) {
  const int32_t xi = f2i(x), mag = xi & 0x7FFFFFFF;
  return i2f((xi & INT32_MIN) | (mag < lim ? mag : lim));
}
// r, or x itself where x is NaN (the clamps above would turn a NaN into a finite value).
inline float nan_through(float x, float r) {
  // Selected by a mask (all ones where NaN: its magnitude exceeds inf's bits), since any select
  // here, integer or float, stays a branch under -ftrapping-math.
  const int32_t xi = f2i(x), nan = (0x7F800000 - (xi & 0x7FFFFFFF)) >> 31;
  return i2f((xi & nan) | (f2i(r) & ~nan));
}
}  // namespace detail

// tanh(x) as a 13/6 rational function in x (odd numerator, even denominator; the approximation
// Eigen's ptanh uses).  Beyond |x| = 7.9053 tanh is within 3e-7 of +-1 and the rational function
// leaves its fitted range, so x is clamped there.
inline float tanh(float x0) {
  const float x = detail::clamp_mag(x0, 0x40FCF84F);  // 7.90531110763549805f
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * x;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return detail::nan_through(x0, p / q);
}

// 1 / (1 + e^-x).  Below x = -87 the result is denormal, and from -88.4 down it is held at ~4e-39
// (vexp clamps its argument) instead of going smaller.
inline float sigmoid(float x) { return detail::nan_through(x, 1.f / (1.f + vexp(-x))); }

// PRelu / LeakyRelu: x where x >= 0, slope * x below, picked by x's sign bit with integer masks.
// Written as a compare and select (`x >= 0 ? x : slope * x`) it stayed a branch (-ftrapping-math
// keeps the product from being computed speculatively) that mispredicts on half the elements of
// a conv's output and keeps its store loop scalar: a conv with PRelu fused ran 3.5-8x slower than
// with none (5x5 3->56 and 1x1 12->56, FSRCNN's first and expanding layers).  -0 gives slope * -0,
// a zero as ONNX's -0 is; NaN propagates.
inline float prelu(float x, float slope) {
  const int32_t xi = detail::f2i(x), neg = xi >> 31;  // all ones where the sign bit is set
  return detail::i2f((detail::f2i(slope * x) & neg) | (xi & ~neg));
}

}  // namespace dydca
