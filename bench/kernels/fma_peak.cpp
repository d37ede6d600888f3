// FMA throughput of one core with 8-lane (AVX2) and 16-lane (AVX-512) vectors: whether this CPU
// gains from the kernels' 16-lane code (two 512-bit FMA units) or not (one, or a lower clock).
//   g++ -O2 -march=native bench/kernels/fma_peak.cpp -o /tmp/fma_peak && /tmp/fma_peak
#include <immintrin.h>

#include <chrono>
#include <cstdio>

namespace {
// 12 independent chains (more than FMA latency x units) of n steps; GFLOP/s.
template <class V, class F>
double rate(F fma, V init, int lanes) {
  V a[12];
  for (auto& v : a) v = init;
  V b = init;
  const long n = 100000000;
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (auto& v : a) v = fma(v, b, b);
    asm volatile("" : "+x"(b));  // b stays opaque, so nothing folds
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float sink = 0;
  for (auto& v : a) sink += reinterpret_cast<float*>(&v)[0];
  std::fprintf(stderr, "%g\r", sink);
  return n * 12.0 * lanes * 2 / s * 1e-9;
}
}  // namespace

int main() {
  std::printf("8 lanes:  %.1f GFLOP/s per core\n",
              rate<__m256>([](__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); },
                           _mm256_set1_ps(0.999f), 8));
#ifdef __AVX512F__
  std::printf("16 lanes: %.1f GFLOP/s per core\n",
              rate<__m512>([](__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); },
                           _mm512_set1_ps(0.999f), 16));
#else
  std::printf("16 lanes: no AVX-512 on this CPU (or compiler flags)\n");
#endif
}
