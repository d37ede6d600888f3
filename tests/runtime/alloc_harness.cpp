// Counts heap allocations made while a dydca model library runs, after a warm-up pass.
//
// The executable defines the malloc family itself, so every allocation in the process (the model
// library, libstdc++'s operator new, the thread pool's workers) resolves here (link with
// -rdynamic so the definitions are exported). The definitions forward to glibc's __libc_* entry
// points rather than dlsym(RTLD_NEXT): dlsym itself may call calloc, which would recurse.
//
// usage: alloc_harness LIB THREADS ROUNDS CASE...
//   CASE = one spec per model input, comma-separated; a spec is "d0xd1x...[:value]" ("" for a
//   rank-0 input, so ":1" is a scalar 1). Float inputs get seeded pseudo-random values; integer
//   and bool inputs are filled with `value` (0 when omitted).
// Every case is run once to warm up, then ROUNDS times over all cases with counting on.
// Prints "setup_allocations=S" (create + warm-up), "measured_runs=R allocations=A frees=F
// parallel_regions=P" and "finite=1|0"; exit 0 unless something failed (the caller judges the counts).
#include <dlfcn.h>
#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dydca/api.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {

std::atomic<bool> g_counting{false};
std::atomic<long> g_allocs{0}, g_frees{0};
// The first few counted allocations, with their callers, for locating an offender.
constexpr int kKeep = 16;
std::atomic<int> g_kept{0};
struct Hit { const char* fn; size_t size; void* caller; } g_hits[kKeep];

inline void note_alloc(const char* fn, size_t size, void* caller) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  g_allocs.fetch_add(1, std::memory_order_relaxed);
  int i = g_kept.fetch_add(1, std::memory_order_relaxed);
  if (i < kKeep) g_hits[i] = {fn, size, caller};
}

}  // namespace

extern "C" {
void* malloc(size_t n) {
  note_alloc("malloc", n, __builtin_return_address(0));
  return __libc_malloc(n);
}
void* calloc(size_t a, size_t b) {
  note_alloc("calloc", a * b, __builtin_return_address(0));
  return __libc_calloc(a, b);
}
void* realloc(void* p, size_t n) {
  note_alloc("realloc", n, __builtin_return_address(0));
  return __libc_realloc(p, n);
}
void* memalign(size_t al, size_t n) {
  note_alloc("memalign", n, __builtin_return_address(0));
  return __libc_memalign(al, n);
}
void* aligned_alloc(size_t al, size_t n) {
  note_alloc("aligned_alloc", n, __builtin_return_address(0));
  return __libc_memalign(al, n);
}
int posix_memalign(void** out, size_t al, size_t n) {
  note_alloc("posix_memalign", n, __builtin_return_address(0));
  void* p = __libc_memalign(al, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(size_t n) {
  note_alloc("valloc", n, __builtin_return_address(0));
  return __libc_memalign(4096, n);
}
void free(void* p) {
  if (p && g_counting.load(std::memory_order_relaxed)) g_frees.fetch_add(1, std::memory_order_relaxed);
  __libc_free(p);
}
}

// Parallel loops shared out in the measured phase: the count shows that the kernels' multi-
// threaded paths (the runtime's thread pool) ran, not only their serial fallbacks. The pool calls
// this hook, weak in the library, bound to this exported definition.
namespace {
std::atomic<long> g_regions{0};
}  // namespace
extern "C" void dydca_parallel_loop(int threads) {
  if (threads > 1 && g_counting.load(std::memory_order_relaxed)) g_regions.fetch_add(1, std::memory_order_relaxed);
}

// operator new/delete go through malloc/free in libstdc++, but a library may bring its own
// definitions; defining them here routes every form through the counted functions above.
void* operator new(size_t n) {
  void* p = malloc(n ? n : 1);
  if (!p) std::abort();
  return p;
}
void* operator new[](size_t n) { return operator new(n); }
void* operator new(size_t n, std::align_val_t al) {
  void* p = aligned_alloc(size_t(al), (n + size_t(al) - 1) / size_t(al) * size_t(al));
  if (!p) std::abort();
  return p;
}
void* operator new[](size_t n, std::align_val_t al) { return operator new(n, al); }
void operator delete(void* p) noexcept { free(p); }
void operator delete[](void* p) noexcept { free(p); }
void operator delete(void* p, size_t) noexcept { free(p); }
void operator delete[](void* p, size_t) noexcept { free(p); }
void operator delete(void* p, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { free(p); }

namespace {

size_t dtype_size(int t) {
  switch (t) {
    case 1: case 6: case 12: return 4;   // float, int32, uint32
    case 7: case 11: case 13: return 8;  // int64, double, uint64
    case 2: case 3: case 9: return 1;    // uint8, int8, bool
    case 4: case 5: case 10: case 16: return 2;
    default: return 0;
  }
}

struct Case {
  std::vector<std::vector<int64_t>> in_shapes, out_shapes;
  std::vector<const int64_t*> in_shape_ptrs;
  std::vector<int64_t*> out_shape_ptrs;
  std::vector<std::vector<unsigned char>> in_data, out_data;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) { parts.push_back(s.substr(start, i - start)); start = i + 1; }
  return parts;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Parses one case and fills its inputs; false (with a message) on a malformed spec.
bool make_case(const dydca_api* api, const std::string& spec, uint64_t seed, Case& c) {
  std::vector<std::string> specs = split(spec, ',');
  if (int(specs.size()) != api->num_inputs) {
    std::fprintf(stderr, "case '%s': %zu input specs, the model takes %d\n", spec.c_str(), specs.size(), api->num_inputs);
    return false;
  }
  for (int i = 0; i < api->num_inputs; ++i) {
    std::vector<std::string> dv = split(specs[i], ':');
    std::vector<int64_t> shape;
    if (!dv[0].empty())
      for (const std::string& d : split(dv[0], 'x')) shape.push_back(std::strtoll(d.c_str(), nullptr, 10));
    if (int(shape.size()) != api->input_ranks[i]) {
      std::fprintf(stderr, "case '%s': input %d has rank %d\n", spec.c_str(), i, api->input_ranks[i]);
      return false;
    }
    const int dt = api->input_dtypes[i];
    const int64_t n = numel(shape);
    std::vector<unsigned char> data(size_t(n) * dtype_size(dt));
    const long value = dv.size() > 1 ? std::strtol(dv[1].c_str(), nullptr, 10) : 0;
    for (int64_t e = 0; e < n; ++e) {
      if (dt == 1) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;  // LCG: reproducible inputs
        float v = float(seed >> 40) / float(1 << 24) * 2.0f - 1.0f;
        std::memcpy(&data[size_t(e) * 4], &v, 4);
      } else if (dt == 7) {
        int64_t v = value;
        std::memcpy(&data[size_t(e) * 8], &v, 8);
      } else if (dt == 6) {
        int32_t v = int32_t(value);
        std::memcpy(&data[size_t(e) * 4], &v, 4);
      } else if (dt == 9 || dt == 2 || dt == 3) {
        data[size_t(e)] = static_cast<unsigned char>(value);
      } else {
        std::fprintf(stderr, "input %d: dtype %d not supported by the harness\n", i, dt);
        return false;
      }
    }
    c.in_shapes.push_back(std::move(shape));
    c.in_data.push_back(std::move(data));
  }
  for (int i = 0; i < api->num_inputs; ++i) {
    c.in_shape_ptrs.push_back(c.in_shapes[i].data());
    c.in_ptrs.push_back(c.in_data[i].data());
  }
  return true;
}

// Sizes the outputs from the library's own shape rule; done once per case, before counting.
bool size_outputs(const dydca_api* api, void* model, Case& c) {
  c.out_shapes.assign(api->num_outputs, {});
  for (int j = 0; j < api->num_outputs; ++j) {
    c.out_shapes[j].assign(size_t(api->output_ranks[j]) + 1, 0);
    c.out_shape_ptrs.push_back(c.out_shapes[j].data());
  }
  if (api->output_shapes(model, c.in_shape_ptrs.data(), c.out_shape_ptrs.data()) != DYDCA_OK) {
    std::fprintf(stderr, "output_shapes failed: %s\n", api->last_error(model));
    return false;
  }
  for (int j = 0; j < api->num_outputs; ++j) {
    c.out_shapes[j].resize(size_t(api->output_ranks[j]));
    c.out_data.emplace_back(size_t(numel(c.out_shapes[j])) * dtype_size(api->output_dtypes[j]) + 1);
    c.out_ptrs.push_back(c.out_data[j].data());
  }
  return true;
}

bool outputs_finite(const dydca_api* api, const Case& c) {
  for (int j = 0; j < api->num_outputs; ++j) {
    if (api->output_dtypes[j] != 1) continue;
    const float* p = reinterpret_cast<const float*>(c.out_data[j].data());
    for (int64_t e = 0, n = numel(c.out_shapes[j]); e < n; ++e)
      if (!std::isfinite(p[e])) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s LIB THREADS ROUNDS CASE...\n", argv[0]);
    return 2;
  }
  void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!lib) { std::fprintf(stderr, "dlopen: %s\n", dlerror()); return 2; }
  auto get_api = reinterpret_cast<const dydca_api* (*)(void)>(dlsym(lib, "dydca_get_api"));
  if (!get_api) { std::fprintf(stderr, "no dydca_get_api in %s\n", argv[1]); return 2; }
  const dydca_api* api = get_api();
  if (api->abi_version != DYDCA_ABI_VERSION) { std::fprintf(stderr, "ABI %d\n", api->abi_version); return 2; }
  // create and the warm-up are counted too, apart, to show the hook sees the library's and
  // the runtime's allocations (the arena, the thread pool) when they do happen
  g_counting.store(true);
  void* model = api->create();
  g_counting.store(false);
  if (!model) { std::fprintf(stderr, "create failed\n"); return 2; }
  const int threads = std::atoi(argv[2]), rounds = std::atoi(argv[3]);
  api->set_threads(model, threads);

  std::vector<Case> cases(size_t(argc - 4));
  for (int i = 4; i < argc; ++i)
    if (!make_case(api, argv[i], 0x9E3779B97F4A7C15ULL + uint64_t(i), cases[size_t(i - 4)]) ||
        !size_outputs(api, model, cases[size_t(i - 4)]))
      return 2;

  // Warm-up: one run per case, so one-time costs (OpenMP's thread pool and team, lazily bound
  // symbols) are paid before counting.
  g_counting.store(true);
  for (Case& c : cases)
    if (api->run(model, c.in_ptrs.data(), c.in_shape_ptrs.data(), c.out_ptrs.data()) != DYDCA_OK) {
      std::fprintf(stderr, "warm-up run failed: %s\n", api->last_error(model));
      return 2;
    }
  g_counting.store(false);
  const long setup_allocs = g_allocs.exchange(0);
  g_frees.store(0);
  g_kept.store(0);
  g_regions.store(0);
  std::printf("setup_allocations=%ld\n", setup_allocs);

  // Measured: every case again, in order, ROUNDS times; shapes and paths change on every call.
  // output_shapes is counted too: a caller sizing its buffers per call uses it on the hot path.
  long runs = 0;
  int failed = DYDCA_OK;
  g_counting.store(true);
  for (int r = 0; r < rounds && failed == DYDCA_OK; ++r)
    for (Case& c : cases) {
      failed = api->output_shapes(model, c.in_shape_ptrs.data(), c.out_shape_ptrs.data());
      if (failed == DYDCA_OK) failed = api->run(model, c.in_ptrs.data(), c.in_shape_ptrs.data(), c.out_ptrs.data());
      if (failed != DYDCA_OK) break;
      ++runs;
    }
  g_counting.store(false);
  if (failed != DYDCA_OK) { std::fprintf(stderr, "measured run failed: %s\n", api->last_error(model)); return 2; }

  std::printf("measured_runs=%ld allocations=%ld frees=%ld parallel_regions=%ld\n", runs, g_allocs.load(),
              g_frees.load(), g_regions.load());
  for (int i = 0, n = std::min(g_kept.load(), kKeep); i < n; ++i) {
    Dl_info info{};
    const char* where = dladdr(g_hits[i].caller, &info) && info.dli_sname ? info.dli_sname : "?";
    std::printf("  %s(%zu) from %s (%s)\n", g_hits[i].fn, g_hits[i].size, where,
                info.dli_fname ? info.dli_fname : "?");
  }
  bool finite = true;
  for (const Case& c : cases) finite = finite && outputs_finite(api, c);
  std::printf("finite=%d\n", finite ? 1 : 0);
  api->destroy(model);
  return 0;
}
