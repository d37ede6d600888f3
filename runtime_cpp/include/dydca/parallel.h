// dydca runtime: minimal OpenMP parallel-for helper used by the kernels.
#pragma once
#include <cstdint>
#include <omp.h>

// Marks a kernel's compute core that does not depend on the node's epilogue or store: kept out of
// line, every node with the same static parameters calls one shared copy instead of compiling its
// own (compile time scales with distinct instantiations; one call per row strip costs nothing).
#define DYDCA_NOINLINE __attribute__((noinline))

namespace dydca {

// Runs f(i) for i in [0, n) with OpenMP static partitioning over `threads`
// threads.  Runs serially (no parallel region) when threads <= 1 or n <= 1.
template <class F>
inline void parallel_for(int64_t n, int threads, F f) {
  if (n <= 0) return;
  if (threads <= 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace dydca
