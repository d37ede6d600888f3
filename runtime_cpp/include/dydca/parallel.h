// dydca runtime: minimal OpenMP parallel-for helper used by the kernels.
#pragma once
#include <cstdint>
#include <omp.h>

// Marks a kernel's compute core that does not depend on the node's epilogue or store: kept out of
// line, every node with the same static parameters calls one shared copy instead of compiling its
// own (compile time scales with distinct instantiations; one call per row strip costs nothing).
#define DYDCA_NOINLINE __attribute__((noinline))

namespace dydca {

namespace detail {
// Runs f(i) for i in [0, n) serially when there is nothing to share out; returns whether it did.
template <class F>
inline bool run_serial(int64_t n, int threads, F& f) {
  if (n > 0 && threads > 1 && n > 1) return false;
  for (int64_t i = 0; i < n; ++i) f(i);
  return true;
}
}  // namespace detail

// Runs f(i) for i in [0, n) with OpenMP static partitioning over `threads`
// threads.  Runs serially (no parallel region) when threads <= 1 or n <= 1.
template <class F>
inline void parallel_for(int64_t n, int threads, F f) {
  if (detail::run_serial(n, threads, f)) return;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// Like parallel_for, but hands out contiguous index ranges on demand (OpenMP guided schedule:
// large chunks first, shrinking towards the end).  For kernels whose tasks are many and cheap
// (conv output rows): a static split stalls the whole call when one thread is descheduled or
// slower (the 2-vCPU machine is time-shared), while guided chunks let the other thread take over
// the remaining rows; neighbouring indices still land on one thread, so rows sharing input rows
// stay in that thread's cache.
template <class F>
inline void parallel_for_guided(int64_t n, int threads, F f) {
  if (detail::run_serial(n, threads, f)) return;
#pragma omp parallel for num_threads(threads) schedule(guided)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace dydca
