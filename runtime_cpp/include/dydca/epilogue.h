// dydca runtime: the epilogue types of conv/gemm/matmul kernels.  An epilogue maps a kernel's raw
// dot product v of output channel m at the output's flat index i to the stored value; generated
// code passes a lambda (the fused element-wise program), or one of the types below.
#pragma once
#include <cstdint>
#include <type_traits>
#include <utility>

namespace dydca {

// The no-op epilogue as a named type: nodes with equal static parameters and no fused epilogue
// then share one kernel instantiation (each lambda is a type of its own, so each would compile its
// own copy).
struct IdentityEpi {
  template <class... Idx>
  float operator()(float v, Idx...) const { return v; }
};

// An epilogue F that also reads N tensors at the output's flat index (a fused residual Add).
// Kernels that store an output row a plane away from the last one prefetch the lines they will
// write next, and through prefetch(i) the lines of these tensors they will read with them.
template <class F, int N>
struct ReadsAt {
  F f;
  const float* src[N];
  template <class... Idx>
  float operator()(float v, Idx... idx) const { return f(v, idx...); }
  void prefetch(int64_t i) const {
    for (int k = 0; k < N; ++k) __builtin_prefetch(src[k] + i);
  }
};
template <class F, class... P>
ReadsAt<F, sizeof...(P)> reads_at(F f, P... p) {
  return {f, {p...}};
}

namespace detail {
template <class E, class = void>
struct HasPrefetch : std::false_type {};
template <class E>
struct HasPrefetch<E, std::void_t<decltype(std::declval<const E&>().prefetch(int64_t{}))>> : std::true_type {};

// Prefetches (for writing) n floats of y from y[i] and, through epi, what the epilogue reads there.
template <class Epi>
static inline void prefetch_out(float* y, int64_t i, int64_t n, const Epi& epi) {
  for (int64_t q = 0; q < n; q += 16) {
    __builtin_prefetch(y + i + q, 1);
    if constexpr (HasPrefetch<Epi>::value) epi.prefetch(i + q);
  }
}
}  // namespace detail

}  // namespace dydca
