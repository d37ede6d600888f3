// dydca runtime: the thread pool behind every kernel's parallel loop.
//
// Why not `#pragma omp parallel for`: an OpenMP region ends at a barrier that waits for every
// thread of the team, so when the OS takes a core away (a phone's other apps, a shared 2-vCPU
// machine) each of the model's ~100 regions per call stalls until the descheduled thread runs
// again: whole calls ran 3-7x slower under load. Here the caller and the workers take chunks of
// the index range from one atomic counter, and the caller does every chunk no worker has taken:
// a worker that has not woken up yet holds nothing back. Workers spin briefly for the next loop
// (consecutive kernels follow each other within microseconds), then sleep on a condition
// variable, so an idle model costs no CPU. Threads start once, when the library loads.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DYDCA_CPU_RELAX() _mm_pause()
#else
#define DYDCA_CPU_RELAX() std::this_thread::yield()
#endif

// Marks a kernel's compute core that does not depend on the node's epilogue or store: kept out of
// line, every node with the same static parameters calls one shared copy instead of compiling its
// own (compile time scales with distinct instantiations; one call per row strip costs nothing).
#define DYDCA_NOINLINE __attribute__((noinline))

// Prebuilt kernels.  The epilogue-independent cores (register tiles in every width, the GEMM
// micro-kernels, Winograd's transforms) are most of a model library's machine code and of its
// build time, and every model has the same ones; so a model build compiles them once per target
// into an object it links (codegen/build.py: prebuilt_object) and builds the model source with
// DYDCA_PREBUILT, where they are only declared.  DYDCA_LIB marks such a function: `inline` in a
// source that includes these headers alone (tests, benchmarks, a model built on its own), an
// ordinary external function when prebuilt; DYDCA_LIB_BODY says whether this source defines it
// (the object's own source defines DYDCA_PREBUILT_IMPL).
#if defined(DYDCA_PREBUILT) || defined(DYDCA_PREBUILT_IMPL)
#define DYDCA_LIB
#else
#define DYDCA_LIB inline
#endif
#if defined(DYDCA_PREBUILT) && !defined(DYDCA_PREBUILT_IMPL)
#define DYDCA_LIB_BODY 0
#else
#define DYDCA_LIB_BODY 1
#endif

// A program may define this to see each loop the pool shares out (`threads`: how many take part);
// the zero-allocation test counts them to show the multi-threaded paths ran. Weak: undefined in
// every other program, where the check below is one predictable branch.
extern "C" __attribute__((weak, visibility("default"))) void dydca_parallel_loop(int threads);

namespace dydca {

namespace detail {

// 0 on the calling thread, 1.. on the workers taking part in the current loop: an index into
// per-thread scratch sized for the loop's thread count.
inline thread_local int tl_thread_index = 0;
inline thread_local bool tl_in_loop = false;  // nested loops run serially inside their chunk

class ThreadPool {
 public:
  static ThreadPool& get();

  // Starts one worker per further core up front (at library load, see `pool` below): a call then
  // never allocates, not even on its first parallel loop.
  // Waits until each has started, so that their own start-up allocations are behind us too.
  ThreadPool() {
    grow((int)std::thread::hardware_concurrency() - 1);
    wait_until([&] { return started_.load() == (int)workers_.size(); });
  }

  // Runs body(ctx, begin, end) over [0, n) in chunks of `chunk`, on the caller and up to
  // threads - 1 workers (at most one per further core). Returns false (nothing run) when another thread is using the pool.
  bool run(int64_t n, int threads, int64_t chunk, void (*body)(void*, int64_t, int64_t), void* ctx) {
    std::unique_lock<std::mutex> busy(submit_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    // More threads than cores would only take turns on them: the pool has one per core.
    Job job{body, ctx, n, chunk, std::min(threads - 1, (int)workers_.size())};
    job.left.store(n, std::memory_order_relaxed);
    if (dydca_parallel_loop) dydca_parallel_loop(job.max_workers + 1);
    job_.store(&job, std::memory_order_seq_cst);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(m_);
      cv_.notify_all();
    }
    work(job);
    // Chunks taken by workers are still running: wait for them (the only wait there is).
    wait_until([&] { return job.left.load(std::memory_order_acquire) == 0; });
    job_.store(nullptr, std::memory_order_seq_cst);
    // A worker that read the job pointer may still touch `job`: it lives on this stack.
    wait_until([&] { return inside_.load(std::memory_order_seq_cst) == 0; });
    return true;
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_.store(true);
      epoch_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  struct Job {
    void (*body)(void*, int64_t, int64_t);
    void* ctx;
    int64_t n, chunk;
    int max_workers;
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> left{0};
    std::atomic<int> slots{0};
  };

  static constexpr int kSpins = 1 << 14;  // ~50-100 us of polling before a worker sleeps

  template <class Pred>
  static void wait_until(Pred done) {
    for (int i = 0; !done(); ++i) {
      if (i < kSpins) DYDCA_CPU_RELAX();
      else std::this_thread::yield();  // let a descheduled worker finish its chunk
    }
  }

  static void work(Job& job) {
    const bool outer = tl_in_loop;
    tl_in_loop = true;
    // Guided: a chunk is job.chunk or 1/(2 x threads) of the indices left, whichever is smaller
    // (at least one). ResNet-50 at 2 threads: 2-4% faster than fixed chunks (interleaved runs).
    const int64_t spread = 2 * (int64_t)(job.max_workers + 1);
    for (;;) {
      int64_t b = job.next.load(std::memory_order_relaxed), c;
      do {
        if (b >= job.n) break;
        c = std::max<int64_t>(1, std::min(job.chunk, (job.n - b) / spread));
      } while (!job.next.compare_exchange_weak(b, b + c, std::memory_order_relaxed));
      if (b >= job.n) break;
      const int64_t e = std::min(b + c, job.n);
      job.body(job.ctx, b, e);
      job.left.fetch_sub(e - b, std::memory_order_release);
    }
    tl_in_loop = outer;
  }

  void grow(int want) {
    while ((int)workers_.size() < want) workers_.emplace_back([this] { worker(); });
  }

  void worker() {
    // A dlopen'ed library's thread_locals are allocated on a thread's first touch: do it now, at
    // load, rather than inside the first loop this worker joins (a call must not allocate).
    tl_thread_index = 0;
    tl_in_loop = false;
    started_.fetch_add(1);
    uint64_t seen = epoch_.load(std::memory_order_acquire);
    for (;;) {
      int i = 0;
      // stop_ is part of the condition too: a worker first scheduled after the destructor's bump
      // took that bump as its starting point and would wait for another
      auto woken = [&] { return epoch_.load(std::memory_order_seq_cst) != seen || stop_.load(std::memory_order_seq_cst); };
      while (!woken() && i < kSpins) { DYDCA_CPU_RELAX(); ++i; }
      if (!woken()) {
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, woken);
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
      seen = epoch_.load(std::memory_order_seq_cst);
      if (stop_.load(std::memory_order_seq_cst)) return;
      inside_.fetch_add(1, std::memory_order_seq_cst);
      Job* job = job_.load(std::memory_order_seq_cst);
      if (job != nullptr) {
        const int slot = job->slots.fetch_add(1, std::memory_order_relaxed);
        if (slot < job->max_workers) {
          tl_thread_index = slot + 1;
          work(*job);
          tl_thread_index = 0;
        }
      }
      inside_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex submit_, m_;
  std::condition_variable cv_;
  std::atomic<Job*> job_{nullptr};
  std::atomic<uint64_t> epoch_{0};
  std::atomic<int> inside_{0}, sleepers_{0}, started_{0};
  std::atomic<bool> stop_{false};
};

// The library's pool, built when the library loads (each model library has its own).
inline ThreadPool pool;
inline ThreadPool& ThreadPool::get() { return pool; }

// Runs f(i) for i in [0, n) with chunks of `chunk` indices shared out by the pool; serially when
// there is nothing to share, inside another parallel loop, or while another thread holds the pool.
template <class F>
inline void run_chunks(int64_t n, int threads, int64_t chunk, F& f) {
  if (n <= 0) return;
  auto body = [](void* ctx, int64_t b, int64_t e) {
    F& g = *static_cast<F*>(ctx);
    for (int64_t i = b; i < e; ++i) g(i);
  };
  if (threads > 1 && n > 1 && !tl_in_loop &&
      ThreadPool::get().run(n, std::min<int64_t>(threads, n), std::max<int64_t>(1, chunk), body, &f))
    return;
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace detail

// This thread's index in the running parallel loop (0: the caller), below the loop's thread count.
inline int thread_index() { return detail::tl_thread_index; }

// Runs f(i) for i in [0, n) over `threads` threads. Chunks are at most a quarter of an even share,
// so neighbouring indices (rows sharing input rows) mostly stay on one thread and its cache, while
// a thread that starts late or is descheduled leaves its share to the others. Near the end they
// shrink (work(): at most 1/(2 x threads) of what is left, down to one index), so the threads
// finish together instead of one waiting out the other's last whole chunk.
template <class F>
inline void parallel_for(int64_t n, int threads, F f) {
  const int64_t t = std::max(1, threads);
  detail::run_chunks(n, threads, (n + 4 * t - 1) / (4 * t), f);
}

// Like parallel_for, for kernels whose tasks are many and cheap (conv output rows): smaller chunks,
// so the threads finish together even when one of them is slower.
template <class F>
inline void parallel_for_guided(int64_t n, int threads, F f) {
  const int64_t t = std::max(1, threads);
  detail::run_chunks(n, threads, (n + 8 * t - 1) / (8 * t), f);
}

}  // namespace dydca
