// Micro-benchmark for the dydca kernels.
// Build: g++ -O3 -march=native -fopenmp -std=c++17 -Iruntime_cpp/include bench/kernels/bench.cpp -o /tmp/kbench
// Run:   /tmp/kbench [threads [quick|full|variants|winograd|sr|resnet|pixels|first [reps]]]   (default: 2 threads, full, 15 reps)
//        (variants: the per-call kernel variants' measurements, see bench_variants; winograd: the
//        direct kernel against Winograd F(4x4, 3x3), see bench_winograd_all)
//        DYDCA_BENCH_ONLY=substring runs only the conv rows whose name contains it (for perf).
// Reports GFLOP/s (1 FMA = 2 flops) against a measured fp32 FMA peak (tight register-only FMA loop
// run on the same number of threads).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <random>
#include <string>
#include <omp.h>
#include <time.h>

#include "dydca/conv.h"
#include "dydca/gemm.h"
#include "dydca/winograd.h"

using clk = std::chrono::steady_clock;
static int g_reps = 15;  // best-of repetitions (the 2-vCPU test VM is noisy)
static const char* g_only = nullptr;  // DYDCA_BENCH_ONLY=substring: run only the conv rows naming it

static double peak_gflops(int threads) {
  // 12 independent FMA chains per thread (enough to cover FMA latency x 2 pipes); warmed-up
  // threads, best of 5 runs.
  const long iters = 20000000 / 12;
  double best = 0;
#pragma omp parallel num_threads(threads)
  {}
  for (int rep = 0; rep < 15; ++rep) {
    auto t0 = clk::now();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      dydca::detail::vf a[12];
      for (int i = 0; i < 12; ++i) a[i] = dydca::detail::vset1(0.1f + 0.01f * (float)i + (float)omp_get_thread_num());
      const dydca::detail::vf m = dydca::detail::vset1(0.9999f), c = dydca::detail::vset1(1e-7f);
      for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; ++i) a[i] = dydca::detail::vfma(a[i], m, c);
      }
      float t[8];
      for (int i = 1; i < 12; ++i) a[0] = a[0] + a[i];
      dydca::detail::vstore(t, a[0]);
      sink += t[0];
    }
    const double s = std::chrono::duration<double>(clk::now() - t0).count();
    const double flops = (double)threads * iters * 12 * 8 * 2;
    best = std::max(best, flops / s * 1e-9);
    if (sink == 12345.f) std::printf("!");
  }
  return best;
}

// Wall time, or (DYDCA_BENCH_CPUTIME=1) process CPU time divided by the thread count: the latter is
// robust to other processes time-sharing the machine (use it for A/B comparisons on a busy box).
static int g_threads = 1;
static double now_s() {
  static const bool cpu = std::getenv("DYDCA_BENCH_CPUTIME") != nullptr;
  if (cpu) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (ts.tv_sec + 1e-9 * ts.tv_nsec) / g_threads;
  }
  return std::chrono::duration<double>(clk::now().time_since_epoch()).count();
}

template <class F>
static double time_best(F f, int reps) {
  f();  // warm-up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    f();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

// Best times of a and b over reps calls each, interleaved call by call (after one warm-up each), so
// load from other processes hits both alike.
template <class A, class B>
static void time_best_pair(A a, B b, int reps, double& ta, double& tb) {
  a();
  b();
  ta = tb = 1e30;
  for (int r = 0; r < reps; ++r) {
    double t0 = now_s();
    a();
    ta = std::min(ta, now_s() - t0);
    t0 = now_s();
    b();
    tb = std::min(tb, now_s() - t0);
  }
}

static std::vector<float> rnd(size_t n) {
  std::mt19937 g(42);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Weights are random in packed layout directly (values do not matter for speed).
template <int K, int S>
static double bench_conv(const char* name, int64_t N, int64_t C, int64_t H, int64_t W, int64_t M, int64_t group,
                         int threads, double peak) {
  if (g_only && !std::strstr(name, g_only)) return 0;
  constexpr int P = K / 2;
  dydca::Conv2dShape s{N, C, H, W, M, (H + 2 * P - K) / S + 1, (W + 2 * P - K) / S + 1, P, P, group};
  const int64_t Cg = C / group, Mg = M / group;
  const size_t wsize = (Cg == 1 && group == M) ? (size_t)(M * K * K) : (size_t)(group * ((Mg + 7) / 8) * 8 * Cg * K * K);
  auto x = rnd((size_t)(N * C * H * W)), w = rnd(wsize), b = rnd((size_t)M);
  std::vector<float> y((size_t)(N * M * s.OH * s.OW));
  auto epi = [](float v, int64_t, int64_t) { return v; };
  const double t = time_best([&] { dydca::conv2d<K, K, S, S, 1, 1>(s, x.data(), w.data(), b.data(), y.data(), epi, threads); }, g_reps);
  const double flops = 2.0 * N * M * s.OH * s.OW * Cg * K * K;
  const double gf = flops / t * 1e-9;
  std::printf("%-44s %8.3f ms %8.1f GFLOP/s  %5.1f%% of peak\n", name, t * 1e3, gf, 100 * gf / peak);
  return gf;
}

// One conv shape run through each named kernel path (forced: ConvPath::X), for choosing the
// per-call variants (frontends/ops/conv.py: conv_variants).  Prints one row per path.
using dydca::ConvPath;
static const char* path_name(ConvPath p) {
  switch (p) {
    case ConvPath::Auto: return "Auto";
    case ConvPath::Depthwise: return "Depthwise";
    case ConvPath::Gemm1x1: return "Gemm1x1";
    case ConvPath::FewChannels: return "FewChannels";
    case ConvPath::General: return "General";
    case ConvPath::General8: return "General8";
    case ConvPath::General16: return "General16";
    case ConvPath::FewInputs: return "FewInputs";
  }
  return "?";
}

template <int K, ConvPath... Paths>
static void bench_paths(const char* name, int64_t N, int64_t C, int64_t H, int64_t W, int64_t M, int threads) {
  if (g_only && !std::strstr(name, g_only)) return;
  constexpr int P = K / 2;
  dydca::Conv2dShape s{N, C, H, W, M, H, W, P, P, 1};
  auto x = rnd((size_t)(N * C * H * W)), w = rnd((size_t)(((M + 7) / 8) * 8 * C * K * K)), b = rnd((size_t)M);
  std::vector<float> y((size_t)(N * M * H * W));
  const double flops = 2.0 * N * M * H * W * C * K * K;
  // Paths interleaved rep by rep (best of g_reps each): load from other processes then hits every
  // path alike instead of whichever ran during a busy spell.
  constexpr int NP = sizeof...(Paths);
  const ConvPath paths[NP] = {Paths...};
  void (*const run[NP])(const dydca::Conv2dShape&, const float*, const float*, const float*, float*, int) = {
      [](const dydca::Conv2dShape& s, const float* x, const float* w, const float* b, float* y, int th) {
        dydca::conv2d<K, K, 1, 1, 1, 1, Paths>(s, x, w, b, y, [](float v, int64_t, int64_t) { return v; }, th);
      }...};
  double best[NP];
  for (int i = 0; i < NP; ++i) {
    run[i](s, x.data(), w.data(), b.data(), y.data(), threads);  // warm-up
    best[i] = 1e30;
  }
  for (int r = 0; r < g_reps; ++r)
    for (int i = 0; i < NP; ++i) {
      const double t0 = now_s();
      run[i](s, x.data(), w.data(), b.data(), y.data(), threads);
      best[i] = std::min(best[i], now_s() - t0);
    }
  for (int i = 0; i < NP; ++i)
    std::printf("%-40s %-12s %8.3f ms %7.1f GFLOP/s  %+6.1f%% vs %s\n", name, path_name(paths[i]), best[i] * 1e3,
                flops / best[i] * 1e-9, 100 * (best[0] / best[i] - 1), path_name(paths[0]));
}

// 3x3 stride-1 conv C->M on N x C x H x W: the direct kernel (the path conv_path names for wide
// rows) against
// Winograd F(4x4, 3x3), interleaved rep by rep.  GFLOP/s count the direct conv's flops (2*9*C per
// output), so Winograd's figure is the effective rate.  Weights are random in each layout.
static void bench_winograd(const char* name, int64_t N, int64_t C, int64_t H, int64_t W, int64_t M, int threads,
                           double peak) {
  if (g_only && !std::strstr(name, g_only)) return;
  dydca::Conv2dShape s{N, C, H, W, M, H, W, 1, 1, 1};
  auto x = rnd((size_t)(N * C * H * W)), w = rnd((size_t)(((M + 7) / 8) * 8 * C * 9)),
       u = rnd((size_t)(36 * ((M + 7) / 8) * 8 * C)), b = rnd((size_t)M);
  std::vector<float> y((size_t)(N * M * H * W));
  std::vector<char> scratch(dydca::winograd_scratch_bytes(C));
  auto epi = [](float v, int64_t, int64_t) { return v; };
  auto direct = [&] {
    if (M < 8)
      dydca::conv2d<3, 3, 1, 1, 1, 1, ConvPath::FewChannels>(s, x.data(), w.data(), b.data(), y.data(), epi, threads);
    else if ((M + 7) / 8 % 2 == 0)
      dydca::conv2d<3, 3, 1, 1, 1, 1, ConvPath::General16>(s, x.data(), w.data(), b.data(), y.data(), epi, threads);
    else
      dydca::conv2d<3, 3, 1, 1, 1, 1, ConvPath::General>(s, x.data(), w.data(), b.data(), y.data(), epi, threads);
  };
  auto wino = [&] { dydca::conv2d_winograd(s, x.data(), u.data(), b.data(), y.data(), epi, threads, scratch.data()); };
  double td, tw;
  time_best_pair(direct, wino, g_reps, td, tw);
  const double flops = 2.0 * N * M * H * W * C * 9;
  std::printf("%-34s direct %8.3f ms %6.1f GFLOP/s %5.1f%%  winograd %8.3f ms %6.1f GFLOP/s %5.1f%%  %+6.1f%%\n", name,
              td * 1e3, flops / td * 1e-9, 100 * flops / td * 1e-9 / peak, tw * 1e3, flops / tw * 1e-9,
              100 * flops / tw * 1e-9 / peak, 100 * (td / tw - 1));
}

// `kbench THREADS winograd [reps]`: the shapes of the Winograd variant (SR bodies: a frame, patch
// batches) and small planes for its crossover (frontends/ops/conv.py: WINOGRAD_MIN_PIXELS).
static void bench_winograd_all(int threads, double peak) {
  struct Row { int64_t n, c, h, w, m; };
  const Row rows[] = {{1, 32, 270, 480, 32}, {16, 32, 48, 48, 32}, {64, 32, 32, 32, 32}, {1, 64, 270, 480, 64},
                      {16, 64, 48, 48, 64},  {64, 64, 32, 32, 64}, {1, 32, 256, 256, 32}, {64, 32, 16, 16, 32},
                      {64, 32, 12, 12, 32},  {64, 32, 8, 8, 32},   {64, 32, 6, 6, 32},    {64, 32, 4, 4, 32},
                      {64, 64, 8, 8, 64},    {64, 64, 4, 4, 64},   {64, 16, 32, 32, 16},  {64, 16, 8, 8, 16},
                      {64, 32, 32, 32, 16},  {64, 16, 32, 32, 32}, {64, 24, 24, 24, 24},  {1, 32, 2, 600, 32},
                      // few output channels (the last conv of an SR net)
                      {1, 32, 540, 960, 3},  {1, 32, 270, 480, 3},  {16, 32, 96, 96, 3},   {64, 32, 48, 48, 3},
                      {64, 32, 24, 24, 3},   {64, 32, 12, 12, 3},   {1, 32, 270, 480, 1},  {1, 32, 270, 480, 6},
                      {1, 16, 270, 480, 3},  {1, 64, 270, 480, 3},  {64, 32, 16, 16, 3},   {64, 32, 8, 8, 3},
                      // fewer than 16 channels in or out (FSRCNN's 12->12 mapping layers)
                      {1, 12, 270, 480, 12}, {64, 12, 48, 48, 12},  {1, 8, 270, 480, 32},  {1, 12, 270, 480, 32},
                      {1, 32, 270, 480, 12}, {1, 8, 270, 480, 8},   {64, 12, 16, 16, 12},
                      // full 540x960 frames (the input of x2 SR to 1080p): the small-channel convs
                      {1, 32, 540, 960, 32}, {1, 16, 540, 960, 12}, {1, 32, 540, 960, 12}, {1, 12, 540, 960, 12},
                      {1, 24, 540, 960, 16}, {1, 16, 540, 960, 16}, {1, 8, 540, 960, 32},
                      // small maps of wide convs (ResNet-50's last stages: 7x7 and 14x14 maps, batch 1)
                      {1, 512, 7, 7, 512},   {1, 256, 7, 7, 256},   {1, 128, 7, 7, 128},   {1, 64, 7, 7, 64},
                      {1, 512, 6, 6, 512},   {1, 256, 6, 6, 256},   {1, 512, 4, 4, 512},   {1, 256, 14, 14, 256},
                      {1, 128, 10, 10, 128}, {1, 64, 10, 10, 64},   {1, 32, 10, 10, 32},   {1, 64, 8, 8, 64},
                      {1, 256, 3, 3, 256},   {4, 512, 7, 7, 512}};
  char name[96];
  for (const Row& r : rows) {
    std::snprintf(name, sizeof name, "conv3x3 %ld->%ld %ldx%ldx%ldx%ld", (long)r.c, (long)r.m, (long)r.n, (long)r.c,
                  (long)r.h, (long)r.w);
    bench_winograd(name, r.n, r.c, r.h, r.w, r.m, threads, peak);
  }
}

// Kernel variants across dims (`kbench THREADS variants [reps]`): each shape through FewChannels (the
// one kernel a few-output-channel conv compiled before variants) and General8 (its narrow-row
// variant), or the families DYDCA_BENCH_SWEEP names:
//   fc    3x3 32->M (M = DYDCA_BENCH_M, default 3), output widths 6..48     (default)
//   k5    the same with a 5x5 kernel
//   wide  fc at widths 64..512
//   frame 3x3 32->1..7 on one 360x640 frame
//   table the shapes of the variants report (patch batches and a frame; M and K per row)
//   gemm  1x1 32->32, Gemm1x1 vs General16; g16  3x3 32->32 General16 alone (no variant gained)
//   few   3x3 32->M at the SR shapes of the end-to-end figures (the last conv of an SR net: frames
//         of 270x480 and 540x960, patch batches 64x48x48, 16x96x96, 16x38x38)
// Sweep shapes hold ~64K output pixels: N x H x W with H = 64, or H = W with DYDCA_BENCH_SQUARE=1.
static void bench_variants(int threads) {
  constexpr ConvPath G8 = ConvPath::General8, G16 = ConvPath::General16, FC = ConvPath::FewChannels,
                     GM = ConvPath::Gemm1x1;
  const char* sweep = std::getenv("DYDCA_BENCH_SWEEP");
  const bool square = std::getenv("DYDCA_BENCH_SQUARE") != nullptr;
  const int64_t fcm = std::getenv("DYDCA_BENCH_M") ? std::atoi(std::getenv("DYDCA_BENCH_M")) : 3;
  auto has = [&](const char* f) { return std::strstr(sweep ? sweep : "fc", f) != nullptr; };
  char name[96];
  for (int64_t W = 6; W <= 48; W += (W < 24 ? 1 : 4)) {
    const int64_t H = square ? W : 64, N = std::max<int64_t>(1, 65536 / (H * W));
    std::snprintf(name, sizeof name, "conv3x3 32->%ld %ldx32x%ldx%ld", (long)fcm, (long)N, (long)H, (long)W);
    if (has("fc")) bench_paths<3, FC, G8>(name, N, 32, H, W, fcm, threads);
    std::snprintf(name, sizeof name, "conv5x5 32->%ld %ldx32x%ldx%ld", (long)fcm, (long)N, (long)H, (long)W);
    if (has("k5")) bench_paths<5, FC, G8>(name, N, 32, H, W, fcm, threads);
    std::snprintf(name, sizeof name, "conv3x3 32->32 %ldx32x%ldx%ld", (long)N, (long)H, (long)W);
    if (has("g16")) bench_paths<3, G16>(name, N, 32, H, W, 32, threads);
    std::snprintf(name, sizeof name, "conv1x1 32->32 %ldx32x%ldx%ld", (long)N, (long)H, (long)W);
    if (has("gemm")) bench_paths<1, GM, G16>(name, N, 32, H, W, 32, threads);
  }
  for (int64_t W = 64; W <= 640 && has("wide"); W *= 2) {  // wide rows, DYDCA_BENCH_M channels
    const int64_t H = square ? W : 64, N = std::max<int64_t>(1, 262144 / (H * W));
    std::snprintf(name, sizeof name, "conv3x3 32->%ld %ldx32x%ldx%ld", (long)fcm, (long)N, (long)H, (long)W);
    bench_paths<3, FC, G8>(name, N, 32, H, W, fcm, threads);
  }
  for (int64_t M = 1; M < 8 && has("frame"); ++M) {  // one full frame, each few-channel count
    std::snprintf(name, sizeof name, "conv3x3 32->%ld 1x32x360x640", (long)M);
    bench_paths<3, FC, G8>(name, 1, 32, 360, 640, M, threads);
  }
  struct Row { int k; int64_t n, h, w, m; };
  const Row few[] = {{3, 1, 270, 480, 3}, {3, 1, 540, 960, 3}, {3, 64, 48, 48, 3}, {3, 16, 96, 96, 3},
                     {3, 16, 38, 38, 3},  {3, 1, 270, 480, 1}, {3, 64, 48, 48, 1}, {3, 1, 540, 960, 4},
                     {3, 1, 540, 960, 5}, {3, 1, 540, 960, 6}, {3, 1, 540, 960, 7}};
  for (const Row& r : few) {
    if (!has("few")) break;
    std::snprintf(name, sizeof name, "conv3x3 32->%ld %ldx32x%ldx%ld", (long)r.m, (long)r.n, (long)r.h, (long)r.w);
    bench_paths<3, FC, G8>(name, r.n, 32, r.h, r.w, r.m, threads);
  }
  const Row table[] = {{3, 64, 8, 8, 3},    {3, 64, 12, 12, 3},  {3, 64, 16, 16, 3},    {3, 64, 32, 32, 3},
                       {3, 1, 360, 640, 3}, {3, 64, 6, 6, 1},    {3, 64, 32, 32, 1},     {5, 64, 16, 16, 3},
                       {5, 64, 32, 32, 3},  {3, 64, 32, 32, 6},  {3, 64, 48, 48, 6},    {3, 1, 360, 640, 6}};
  for (const Row& r : table) {
    if (!has("table")) break;
    std::snprintf(name, sizeof name, "conv%dx%d 32->%ld %ldx32x%ldx%ld", r.k, r.k, (long)r.m, (long)r.n,
                  (long)r.h, (long)r.w);
    if (r.k == 3) bench_paths<3, FC, G8>(name, r.n, 32, r.h, r.w, r.m, threads);
    else bench_paths<5, FC, G8>(name, r.n, 32, r.h, r.w, r.m, threads);
  }
}

// `kbench THREADS sr [reps]`: the convs of the zoo's SR models (espcn, wdsr x2, multipath 2-path)
// at the shapes of the end-to-end figures (patch batches 64x48x48 and 16x38x38, a 270x480 frame),
// through the kernel the generated code calls there: Winograd where conv_variants picks it (3x3,
// 12+ channels in and out, sides of 12+), else the general kernel (every row has 8+ output
// channels).  DYDCA_BENCH_ONLY filters rows.
template <int K>
static void bench_sr_row(int64_t n, int64_t c, int64_t h, int64_t w, int64_t m, int threads, double peak) {
  char name[96];
  std::snprintf(name, sizeof name, "conv%dx%d %ld->%ld %ldx%ldx%ld", K, K, (long)c, (long)m, (long)n, (long)h, (long)w);
  if (g_only && !std::strstr(name, g_only)) return;
  constexpr int P = K / 2;
  dydca::Conv2dShape s{n, c, h, w, m, h, w, P, P, 1};
  const int64_t MBk = (m + 7) / 8;
  auto x = rnd((size_t)(n * c * h * w)), wt = rnd((size_t)(MBk * 8 * c * K * K)),
       u = rnd((size_t)(36 * MBk * 8 * c)), b = rnd((size_t)m);
  std::vector<float> y((size_t)(n * m * h * w));
  std::vector<char> scratch(dydca::winograd_scratch_bytes(c));
  auto epi = [](float v, int64_t, int64_t) { return v > 0.f ? v : 0.f; };  // the ReLU most of them fuse
  const bool wino = K == 3 && c >= 12 && m >= 12 && h >= 12 && w >= 12;
  auto run = [&] {
    if (wino) {
      if constexpr (K == 3)
        dydca::conv2d_winograd(s, x.data(), u.data(), b.data(), y.data(), epi, threads, scratch.data());
    } else {
      dydca::conv2d<K, K, 1, 1, 1, 1, ConvPath::General>(s, x.data(), wt.data(), b.data(), y.data(), epi, threads);
    }
  };
  const double t = time_best(run, g_reps);
  const double gf = 2.0 * n * m * h * w * c * K * K / t * 1e-9;
  std::printf("%-34s %-9s %8.3f ms %7.1f GFLOP/s %5.1f%% of peak\n", name, wino ? "Winograd" : "General", t * 1e3, gf,
              100 * gf / peak);
}

static void bench_sr(int threads, double peak) {
  struct Row { int k; int64_t c, m; };
  // espcn (3->64 5x5, 64->32, 32->27), wdsr x2 (3->32, 32->128, 128->32, 32->12, 3->12 5x5),
  // multipath (3->16, 16->12; 3->24, 24->16)
  const Row convs[] = {{5, 3, 64}, {3, 64, 32}, {3, 32, 27}, {3, 3, 32}, {3, 32, 128}, {3, 128, 32}, {3, 32, 12},
                       {5, 3, 12}, {3, 3, 16}, {3, 16, 12}, {3, 3, 24}, {3, 24, 16}};
  struct Shape { int64_t n, h, w; };
  const Shape shapes[] = {{64, 48, 48}, {16, 38, 38}, {1, 270, 480}};
  for (const Shape& sh : shapes)
    for (const Row& r : convs) {
      if (r.k == 5) bench_sr_row<5>(sh.n, r.c, sh.h, sh.w, r.m, threads, peak);
      else bench_sr_row<3>(sh.n, r.c, sh.h, sh.w, r.m, threads, peak);
    }
}

// `kbench THREADS resnet [reps]`: ResNet-50's 1x1 convs (batch 1, 224x224 input) as the model runs
// them: stride 1 on the 1x1 GEMM, the strided projections through the direct kernel (the general
// path) and through conv2d_1x1_strided (the GEMM over the gathered input), interleaved.  Weights
// rotate through copies filling 48 MiB, so each call reads them from memory as in a model whose
// weights outgrow the caches.  Reports GFLOP/s per row (best of reps, CPU time with
// DYDCA_BENCH_CPUTIME=1).
static void bench_resnet(int threads) {
  struct Row { int64_t c, m, h, s; };
  const Row rows[] = {{64, 256, 56, 1},  {256, 64, 56, 1},   {128, 512, 28, 1},  {512, 128, 28, 1},
                      {256, 1024, 14, 1}, {1024, 256, 14, 1}, {512, 2048, 7, 1},  {2048, 512, 7, 1},
                      {256, 512, 56, 2},  {512, 1024, 28, 2}, {1024, 2048, 14, 2}, {256, 512, 8, 2}};
  auto epi = [](float v, int64_t, int64_t) { return v > 0.f ? v : 0.f; };
  for (const Row& r : rows) {
    const int64_t oh = (r.h - 1) / r.s + 1, wn = ((r.m + 7) / 8) * 8 * r.c;
    const int64_t copies = std::max<int64_t>(2, (int64_t(48) << 20) / (wn * 4));
    auto x = rnd((size_t)(r.c * r.h * r.h)), w = rnd((size_t)(wn * copies)), b = rnd((size_t)r.m);
    std::vector<float> y((size_t)(r.m * oh * oh)), scratch((size_t)(r.c * oh * oh + 16));
    const dydca::Conv2dShape s{1, r.c, r.h, r.h, r.m, oh, oh, 0, 0, 1};
    int64_t next = 0;
    auto wq = [&] { return w.data() + (next++ % copies) * wn; };
    auto gemm = [&] {
      if (r.s == 1) dydca::conv2d<1, 1, 1, 1, 1, 1, ConvPath::Gemm1x1>(s, x.data(), wq(), b.data(), y.data(), epi, threads);
      else dydca::conv2d_1x1_strided<2, 2>(s, x.data(), wq(), b.data(), y.data(), epi, threads, scratch.data());
    };
    auto direct = [&] { dydca::conv2d<1, 1, 2, 2, 1, 1, ConvPath::General>(s, x.data(), wq(), b.data(), y.data(), epi, threads); };
    double tg = 1e30, td = 1e30;
    gemm();
    if (r.s > 1) direct();
    for (int i = 0; i < g_reps; ++i) {
      double t0 = now_s();
      gemm();
      tg = std::min(tg, now_s() - t0);
      if (r.s == 1) continue;
      t0 = now_s();
      direct();
      td = std::min(td, now_s() - t0);
    }
    const double flops = 2.0 * r.m * r.c * oh * oh;
    std::printf("conv1x1/%ld %4ld->%-4ld %3ldx%-3ld  GEMM %7.3f ms %6.1f GFLOP/s", (long)r.s, (long)r.c, (long)r.m,
                (long)oh, (long)oh, tg * 1e3, flops / tg * 1e-9);
    if (r.s > 1) std::printf("   direct %7.3f ms %6.1f GFLOP/s  GEMM %+5.1f%%", td * 1e3, flops / td * 1e-9, 100 * (td / tg - 1));
    std::printf("\n");
  }
}

// `kbench THREADS pixels [reps]`: the pixel-tile kernel (conv2d_pixels) against the row kernel
// (General) on 3x3 convs of ResNet-50 (small maps, stride 2) and of small channel counts, where
// the crossover is (frontends/ops/conv.py: PIXELS_MIN_CHANNELS); interleaved rep by rep, best of.
template <int S>
static void bench_pixels_row(int64_t n, int64_t c, int64_t h, int64_t m, int threads) {
  const int64_t oh = (h - 1) / S + 1;
  const dydca::Conv2dShape s{n, c, h, h, m, oh, oh, 1, 1, 1};
  auto x = rnd((size_t)(n * c * h * h)), w = rnd((size_t)(((m + 7) / 8) * 8 * c * 9)), b = rnd((size_t)m);
  std::vector<float> y((size_t)(n * m * oh * oh));
  std::vector<char> scratch((size_t)dydca::conv2d_pixels_scratch_bytes(s, 3, 3, S, S, 1, 1));
  auto epi = [](float v, int64_t, int64_t) { return v > 0.f ? v : 0.f; };
  auto row = [&] { dydca::conv2d<3, 3, S, S, 1, 1, ConvPath::General>(s, x.data(), w.data(), b.data(), y.data(), epi, threads); };
  auto pix = [&] { dydca::conv2d_pixels<3, 3, S, S, 1, 1>(s, x.data(), w.data(), b.data(), y.data(), epi, threads, scratch.data()); };
  double tr, tp;
  time_best_pair(row, pix, g_reps, tr, tp);
  const double flops = 2.0 * n * m * oh * oh * c * 9;
  std::printf("conv3x3/%d %2ldx%4ld->%-4ld %2ldx%-2ld  row %7.3f ms %6.1f GFLOP/s  pixels %7.3f ms %6.1f GFLOP/s  %+5.1f%%\n",
              S, (long)n, (long)c, (long)m, (long)h, (long)h, tr * 1e3, flops / tr * 1e-9, tp * 1e3, flops / tp * 1e-9,
              100 * (tr / tp - 1));
}

static void bench_pixels(int threads) {
  bench_pixels_row<1>(1, 512, 7, 512, threads);
  bench_pixels_row<1>(4, 512, 7, 512, threads);
  bench_pixels_row<1>(1, 256, 14, 256, threads);
  bench_pixels_row<1>(1, 128, 28, 128, threads);
  bench_pixels_row<2>(1, 128, 56, 128, threads);
  bench_pixels_row<2>(1, 256, 28, 256, threads);
  bench_pixels_row<2>(1, 512, 14, 512, threads);
  bench_pixels_row<1>(1, 128, 10, 128, threads);
  bench_pixels_row<1>(1, 64, 10, 64, threads);
  bench_pixels_row<1>(1, 32, 8, 32, threads);
  bench_pixels_row<1>(64, 32, 8, 32, threads);
}

// `kbench THREADS first [reps]`: the RGB first layers of the SR zoo (3 input channels), the general
// kernel conv_path named before FewInputs against FewInputs, interleaved rep by rep.
static void bench_first(int threads) {
  bench_paths<5, ConvPath::General16, ConvPath::FewInputs>("espcn 5x5 3->64 64x3x48x48", 64, 3, 48, 48, 64, threads);
  bench_paths<5, ConvPath::General, ConvPath::FewInputs>("fsrcnn 5x5 3->56 16x3x96x96", 16, 3, 96, 96, 56, threads);
  bench_paths<3, ConvPath::General16, ConvPath::FewInputs>("wdsr 3x3 3->32 16x3x96x96", 16, 3, 96, 96, 32, threads);
  bench_paths<3, ConvPath::General16, ConvPath::FewInputs>("edsr 3x3 3->64 64x3x48x48", 64, 3, 48, 48, 64, threads);
  bench_paths<3, ConvPath::General16, ConvPath::FewInputs>("npath 3x3 3->16 16x3x96x96", 16, 3, 96, 96, 16, threads);
  bench_paths<5, ConvPath::General16, ConvPath::FewInputs>("sr 5x5 3->12 16x3x96x96", 16, 3, 96, 96, 12, threads);
  bench_paths<5, ConvPath::General16, ConvPath::FewInputs>("espcn 5x5 3->64 1x3x270x480", 1, 3, 270, 480, 64, threads);
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const bool quick = argc > 2 && std::string(argv[2]) == "quick";
  if (argc > 3) g_reps = std::atoi(argv[3]);
  g_threads = threads;
  g_only = std::getenv("DYDCA_BENCH_ONLY");
  const double peak = peak_gflops(threads);
  if (argc > 2 && std::string(argv[2]) == "variants") return bench_variants(threads), 0;
  if (argc > 2 && std::string(argv[2]) == "resnet") return bench_resnet(threads), 0;
  if (argc > 2 && std::string(argv[2]) == "pixels") return bench_pixels(threads), 0;
  if (argc > 2 && std::string(argv[2]) == "first") {
    std::printf("measured fp32 FMA peak: %.1f GFLOP/s on %d threads\n", peak, threads);
    return bench_first(threads), 0;
  }
  if (argc > 2 && std::string(argv[2]) == "sr") {
    std::printf("measured fp32 FMA peak: %.1f GFLOP/s on %d threads\n", peak, threads);
    return bench_sr(threads, peak), 0;
  }
  if (argc > 2 && std::string(argv[2]) == "winograd") {
    std::printf("measured fp32 FMA peak: %.1f GFLOP/s on %d threads\n", peak, threads);
    return bench_winograd_all(threads, peak), 0;
  }
  const double peak1 = peak_gflops(1);
  std::printf("measured fp32 FMA peak: %.1f GFLOP/s on %d threads (%.1f on 1 thread)\n", peak, threads, peak1);

  bench_conv<3, 1>("conv3x3 32->32 1x32x256x256", 1, 32, 256, 256, 32, 1, threads, peak);
  // Frame- and patch-shaped planes from the SR benchmark: 256x256 / 128x128 planes are 2^k bytes
  // apart, so every channel of one pixel maps to the same L1/L2 set (see conv.h); these are not.
  bench_conv<3, 1>("conv3x3 32->32 1x32x270x480 (frame)", 1, 32, 270, 480, 32, 1, threads, peak);
  bench_conv<3, 1>("conv3x3 32->32 batch64 x 32x48x48", 64, 32, 48, 48, 32, 1, threads, peak);
  if (quick) return 0;
  bench_conv<3, 1>("conv3x3 64->64 1x64x128x128", 1, 64, 128, 128, 64, 1, threads, peak);
  bench_conv<3, 1>("conv3x3 32->32 batch64 x 32x32", 64, 32, 32, 32, 32, 1, threads, peak);
  bench_conv<3, 1>("conv3x3 3->32 1x3x256x256", 1, 3, 256, 256, 32, 1, threads, peak);
  bench_conv<3, 1>("conv3x3 32->3 1x32x256x256", 1, 32, 256, 256, 3, 1, threads, peak);
  bench_conv<3, 1>("conv3x3 32->3 1x32x270x480 (frame)", 1, 32, 270, 480, 3, 1, threads, peak);
  bench_conv<3, 1>("conv3x3 12->12 1x12x256x256", 1, 12, 256, 256, 12, 1, threads, peak);
  bench_conv<5, 1>("conv5x5 1->56 1x1x256x256 (FSRCNN)", 1, 1, 256, 256, 56, 1, threads, peak);
  bench_conv<3, 2>("conv3x3/s2 32->64 1x32x256x256", 1, 32, 256, 256, 64, 1, threads, peak);
  bench_conv<1, 1>("conv1x1 64->64 1x64x128x128 (gemm path)", 1, 64, 128, 128, 64, 1, threads, peak);
  bench_conv<3, 1>("dwconv3x3 64 1x64x128x128", 1, 64, 128, 128, 64, 64, threads, peak);

  {  // transposed conv 3x3 s2, 32->32, 128x128 -> 255x255
    dydca::Conv2dShape s{1, 32, 128, 128, 32, 255, 255, 1, 1, 1};
    auto x = rnd(32 * 128 * 128), w = rnd(32 * 32 * 9), b = rnd(32);
    std::vector<float> y(32 * 255 * 255);
    auto epi = [](float v, int64_t, int64_t) { return v; };
    const double t = time_best([&] { dydca::conv_transpose2d<3, 3, 2, 2, 1, 1>(s, x.data(), w.data(), b.data(), y.data(), epi, threads); }, 10);
    const double gf = 2.0 * 32 * 32 * 9 * 128 * 128 / t * 1e-9;
    std::printf("%-44s %8.3f ms %8.1f GFLOP/s  %5.1f%% of peak\n", "convT3x3/s2 32->32 1x32x128x128", t * 1e3, gf, 100 * gf / peak);
  }
  for (int packed = 1; packed >= 0; --packed) {
    const int64_t n = 512;
    auto A = rnd(n * n), B = rnd(n * n);
    std::vector<float> Bp(((n + 15) / 16) * 16 * n), C(n * n);
    dydca::detail::pack_b_panel(B.data(), n, n, n, 0, Bp.data());
    for (int64_t p = 0; p < (n + 15) / 16; ++p) dydca::detail::pack_b_panel(B.data(), n, n, n, p, Bp.data());
    std::vector<char> scratch(dydca::gemm_scratch_bytes(n, n, n, threads));
    auto epi = [](float v, int64_t, int64_t) { return v; };
    const double t = time_best([&] {
      dydca::gemm(n, n, n, A.data(), n, B.data(), n, packed ? Bp.data() : nullptr, C.data(), n, epi, scratch.data(), threads);
    }, 20);
    const double gf = 2.0 * n * n * n / t * 1e-9;
    std::printf("%-44s %8.3f ms %8.1f GFLOP/s  %5.1f%% of peak\n", packed ? "gemm 512^3 (packed B)" : "gemm 512^3 (run-time B)", t * 1e3, gf, 100 * gf / peak);
  }
  return 0;
}
