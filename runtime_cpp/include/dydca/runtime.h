// dydca runtime support for generated model sources: integer helpers for shape expressions and
// the element-wise map over broadcast operands. Header-only; kernels live beside it.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "dydca/epilogue.h"
#include "dydca/parallel.h"

namespace dydca {

// A run refused because of the inputs' values (an index out of range, a trip count above its
// bound): the library returns DYDCA_INVALID_INPUT, which Python raises as ValueError.
struct InvalidInput : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Python/ONNX-style integer division for shape expressions (floor towards -inf).
inline int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
inline int64_t ceildiv(int64_t a, int64_t b) { return -floordiv(-a, b); }
inline int64_t pymod(int64_t a, int64_t b) { return a - floordiv(a, b) * b; }

// Element-wise scalar semantics shared by every target's expressions.
template <class T>
inline T div(T a, T b) {
  if constexpr (std::is_integral_v<T>) return b == 0 ? T(0) : a / b;  // ONNX: truncation
  else return a / b;
}
template <bool FMOD, class T>
inline T mod(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if constexpr (FMOD) return std::fmod(a, b);
    T r = std::fmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  } else {
    if (b == 0) return T(0);
    if constexpr (FMOD) return a % b;
    T r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  }
}
// Pow's result has the base's type; the exponent may have another (ONNX T1 vs T2).
template <class A, class B>
inline A pow(A a, B b) {
  if constexpr (std::is_integral_v<A>) {
    return A(std::pow(double(a), double(b)));
  } else {
    if (b == B(2)) return a * a;
    return std::pow(a, A(b));
  }
}

// One operand of an element-wise map: a pointer and its strides over the output's index space
// (stride 0 along broadcast axes).
template <class T, int R>
struct Operand {
  const T* p;
  int64_t st[R];
};

// out[idx] = f(in0[...], in1[...], ...) over an R-dimensional output of shape `shape`.
// The innermost axis runs as a plain loop the compiler vectorises when every operand has stride 0
// or 1 there; outer axes are split across threads.
template <int R, class O, class F, class... Ops>
void map(const int64_t (&shape)[R], O* out, int threads, F f, const Ops&... ops) {
  int64_t inner = shape[R - 1];
  int64_t outer = 1;
  for (int d = 0; d < R - 1; ++d) outer *= shape[d];
  if (outer * inner == 0) return;
  bool contiguous = ((ops.st[R - 1] == 1) && ...);
  // split long inner rows too, so that a 1-D tensor still uses every thread
  int64_t chunks = outer == 1 ? std::max<int64_t>(1, std::min<int64_t>(inner / 4096, threads * 4)) : 1;
  int64_t chunk = (inner + chunks - 1) / chunks;
  parallel_for(outer * chunks, (outer * inner < 32768) ? 1 : threads, [&](int64_t job) {
    int64_t row = job / chunks, c0 = (job % chunks) * chunk, c1 = std::min(inner, c0 + chunk);
    int64_t idx[R] = {};
    for (int d = R - 2, r = row; d >= 0; --d) { idx[d] = r % shape[d]; r /= shape[d]; }
    auto base = [&](const auto& op) {
      int64_t o = 0;
      for (int d = 0; d < R - 1; ++d) o += idx[d] * op.st[d];
      return op.p + o;
    };
    O* y = out + row * inner;
    if (contiguous) {
      auto run = [&](auto... ptrs) {
#pragma omp simd
        for (int64_t i = c0; i < c1; ++i) y[i] = f(ptrs[i]...);
      };
      run(base(ops)...);
    } else {
      auto run = [&](auto... ptrs) {
        for (int64_t i = c0; i < c1; ++i) y[i] = f(ptrs[i * ops.st[R - 1]]...);
      };
      run(base(ops)...);
    }
  });
}

}  // namespace dydca
