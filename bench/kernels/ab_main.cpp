// Interleaved A/B of the conv kernels of two runtime-header revisions (bench/kernels/ab.sh builds
// it): per row, a and b take turns call by call on the same buffers, so the host's load phases hit
// both alike.  Prints each side's best GFLOP/s and b's speed-up over a (median and best call).
//   ab THREADS [REPS [SUBSTRING [cold|coldw|coldx]]]   (rows whose name contains SUBSTRING only)
// cold: before each call the weights are flushed from the caches (coldw) and the input is
// rewritten by two threads in alternating 4 KiB pieces (coldx), as in a model: there the weights
// come from memory and the previous kernel's threads just wrote the input, half of it dirty in
// the other core's L2.  Warm calls flatter the kernels that stream weights or a large input.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ab_geometry.h"

#define DECLARE(p)                                                                                            \
  extern "C" void p##conv(int, const float*, const float*, const float*, float*, const float*, int64_t, int64_t, \
                          int64_t, int64_t, int64_t, void*, int);                                               \
  extern "C" int64_t p##scratch(int64_t, int64_t, int64_t, int64_t);
DECLARE(a_)
DECLARE(b_)

namespace {
struct Row {
  const char* name;
  int kind;  // ab_kernels.cpp: AB(conv)
  int64_t n, c, h, w, m;
  bool residual;
};

// ResNet-50's convs (batch 1, 224x224 input) and the SR models' (patch batches and frames).
const Row kRows[] = {
    {"resnet 1x1 64->256 56 +res", 1, 1, 64, 56, 56, 256, true},
    {"resnet 1x1 256->64 56", 1, 1, 256, 56, 56, 64, false},
    {"resnet 1x1 256->128 56", 1, 1, 256, 56, 56, 128, false},
    {"resnet 1x1 128->512 28 +res", 1, 1, 128, 28, 28, 512, true},
    {"resnet 1x1 512->128 28", 1, 1, 512, 28, 28, 128, false},
    {"resnet 1x1 256->1024 14 +res", 1, 1, 256, 14, 14, 1024, true},
    {"resnet 1x1 1024->256 14", 1, 1, 1024, 14, 14, 256, false},
    {"resnet 1x1 512->2048 7 +res", 1, 1, 512, 7, 7, 2048, true},
    {"resnet 1x1 2048->512 7", 1, 1, 2048, 7, 7, 512, false},
    {"resnet 1x1 channels-last out 256->128 56", 10, 1, 256, 56, 56, 128, false},
    {"resnet 1x1 channels-last out 512->256 28", 10, 1, 512, 28, 28, 256, false},
    {"resnet 1x1 channels-last out 1024->512 14", 10, 1, 1024, 14, 14, 512, false},
    {"resnet 1x1 channels-last out 2048->512 7", 10, 1, 2048, 7, 7, 512, false},
    {"resnet 1x1/2 256->512 56", 2, 1, 256, 56, 56, 512, false},
    {"resnet 1x1/2 1024->2048 14", 2, 1, 1024, 14, 14, 2048, false},
    {"resnet pixels 3x3 512->512 7", 3, 1, 512, 7, 7, 512, false},
    {"resnet pixels 3x3/2 128->128 56", 4, 1, 128, 56, 56, 128, false},
    {"resnet pixels 3x3/2 256->256 28", 4, 1, 256, 28, 28, 256, false},
    {"resnet pixels 3x3/2 512->512 14", 4, 1, 512, 14, 14, 512, false},
    {"resnet winograd 3x3 64->64 56", 0, 1, 64, 56, 56, 64, false},
    {"resnet winograd 3x3 256->256 14", 0, 1, 256, 14, 14, 256, true},
    {"sr winograd 3x3 32->32 64x48x48", 0, 64, 32, 48, 48, 32, false},
    {"sr winograd 3x3 64->32 64x48x48", 0, 64, 64, 48, 48, 32, false},
    {"sr winograd 3x3 32->128 16x96x96", 0, 16, 32, 96, 96, 128, false},
    {"sr winograd 3x3 128->32 16x96x96 +res", 0, 16, 128, 96, 96, 32, true},
    {"sr winograd 3x3 32->32 270x480", 0, 1, 32, 270, 480, 32, false},
    {"sr row 3x3 16->12 64x48x48", 5, 64, 16, 48, 48, 12, false},
    {"sr row 3x3 32->32 64x8x8", 5, 64, 32, 8, 8, 32, false},
    {"sr first 5x5 3->64 16x96x96", 6, 16, 3, 96, 96, 64, false},
    {"resnet first 7x7/2 3->64 224", 7, 1, 3, 224, 224, 64, false},
    {"sr upscale convT 9x9/2 56->3 64x48x48", 8, 64, 56, 48, 48, 3, false},
    {"sr few-channel 3x3 32->3 64x48x48", 9, 64, 32, 48, 48, 3, false},
    {"sr few-channel 3x3 32->4 1x270x480", 9, 1, 32, 270, 480, 4, false},
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::vector<float> random(size_t n, float scale) {
  std::mt19937 g(7);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2, reps = argc > 2 ? std::atoi(argv[2]) : 30;
  const std::string only = argc > 3 ? argv[3] : "";
  const std::string mode = argc > 4 ? argv[4] : "";
  const bool cold_w = mode == "cold" || mode == "coldw", cold_x = mode == "cold" || mode == "coldx";
  std::printf("%-40s %9s %9s %9s %9s   (GFLOP/s, best call; b vs a)\n", "row", "a", "b", "median", "best");
  for (const Row& r : kRows) {
    if (!only.empty() && std::string(r.name).find(only) == std::string::npos) continue;
    int64_t k, s;
    ab_geometry(r.kind, k, s);
    const int64_t up = r.kind == 8 ? 2 : 1;  // ConvTranspose: output 2h x 2w, FLOPs per input pixel
    const int64_t oh = up * ((r.h - 1) / s + 1), ow = up * ((r.w - 1) / s + 1), mp = (r.m + 7) / 8 * 8;
    const auto x = random(r.n * r.c * r.h * r.w, 1.f), w = random(std::max<int64_t>(36, k * k) * mp * r.c, 0.05f);
    const auto b = random(r.m, 0.1f);
    std::vector<float> xs = x;  // the input each call reads (cold: rewritten before it)
    const auto res = random(r.n * r.m * oh * ow, 1.f);
    std::vector<float> ya(res.size()), yb(res.size());
    std::vector<char> sa(a_scratch(r.n, r.c, r.h, r.w)), sb(b_scratch(r.n, r.c, r.h, r.w));
    auto call = [&](bool second) {
      (second ? b_conv : a_conv)(r.kind, xs.data(), w.data(), b.data(), second ? yb.data() : ya.data(),
                                 r.residual ? res.data() : nullptr, r.n, r.c, r.h, r.w, r.m,
                                 second ? sb.data() : sa.data(), threads);
    };
    call(false);
    call(true);
    std::vector<double> t[2];
    auto chill = [&] {
#if defined(__x86_64__)
      if (cold_w) {  // the weights the kind reads (w is sized for the largest kind)
        for (size_t i = 0; i < (size_t)(k * k * mp * r.c); i += 16) _mm_clflush(&w[i]);
        _mm_mfence();
      }
#endif
      if (!cold_x) return;
      auto write = [&](int part) {
        for (size_t i = (size_t)part * 1024; i < xs.size(); i += 2048)
          for (size_t j = i; j < std::min(xs.size(), i + 1024); ++j) xs[j] = x[j];
      };
      std::thread other(write, 1);
      write(0);
      other.join();
    };
    for (int i = 0; i < reps; ++i)
      for (int v = 0; v < 2; ++v) {
        chill();
        const double t0 = now();
        call(v == 1);
        t[v].push_back(now() - t0);
      }
    for (auto& tv : t) std::sort(tv.begin(), tv.end());
    const double flops = 2.0 * r.n * r.m * r.c * k * k * (oh / up) * (ow / up);
    std::printf("%-40s %9.1f %9.1f %+8.1f%% %+8.1f%%\n", r.name, flops / t[0][0] * 1e-9, flops / t[1][0] * 1e-9,
                100 * (t[0][reps / 2] / t[1][reps / 2] - 1), 100 * (t[0][0] / t[1][0] - 1));
  }
}
