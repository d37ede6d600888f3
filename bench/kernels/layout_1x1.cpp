// 1x1 convs on a channels-last input: dydca::conv2d's NCHW path (the GEMM or the channel-vector
// kernel, with its row stores) against px_tile with one tap over channels-last rows, and against
// the generic packed-B GEMM over them; ResNet-50's 1x1 convs, interleaved, medians.
//   g++ -O3 -march=native -std=c++17 -fopenmp-simd -Iruntime_cpp/include bench/kernels/layout_1x1.cpp -o /tmp/layout_1x1 -lpthread
//   /tmp/layout_1x1 THREADS CALLS           (e.g. 2 60)
#include <dydca/conv.h>
#include <dydca/gemm.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>
using namespace dydca;
void run_cl(int C, int M, int H, const float* x, const float* w, float* y, int th) {
  const int64_t P = (int64_t)H * H;
  constexpr int kW = detail::kCvNB * 8;
  const int64_t cs = 1, toff[1] = {0};
  const int64_t NPB = M / kW, cq = 48, nq = (P + cq - 1) / cq, bstride = (int64_t)C * 16;
  parallel_for_guided(NPB * nq, th, [&](int64_t task) {
    const int64_t q0 = (task % nq) * cq, q1 = std::min<int64_t>(P, q0 + cq), pb = task / nq;
    alignas(64) float buf[64 * kW];
    for (int64_t q = q0; q < q1; q += detail::kPxTile) {
      const int np = (int)std::min<int64_t>(detail::kPxTile, q1 - q);
      const float* xb[detail::kPxTile];
      for (int p = 0; p < np; ++p) xb[p] = x + (q + p) * C;
      detail::px_tile_nr(2, np, xb, toff, 1, C, cs, w + pb * 2 * bstride, bstride, buf + (q - q0) * kW);
    }
    for (int64_t q = q0; q < q1; ++q) {
      float* d = y + q * M + pb * kW;
      const float* s = buf + (q - q0) * kW;
#pragma omp simd
      for (int j = 0; j < kW; ++j) d[j] = std::max(s[j], 0.f);
    }
  });
}
int main(int argc, char** argv) {
  int th = atoi(argv[1]), reps = atoi(argv[2]);
  int cfg[][3] = {{64, 256, 56}, {256, 64, 56}, {128, 512, 28}, {512, 128, 28}, {256, 1024, 14}, {1024, 256, 14}, {512, 2048, 7}, {2048, 512, 7}};
  for (auto& c : cfg) {
    int C = c[0], M = c[1], H = c[2];
    const Conv2dShape s{1, C, H, H, M, H, H, 0, 0, 1};
    std::vector<float> x((size_t)C * H * H + 64, 0.5f), w((size_t)C * M + 64, 0.01f), y((size_t)M * H * H + 64);
    auto epi = [](float v, int64_t, int64_t) { return v > 0.f ? v : 0.f; };
    std::vector<double> t[3];
    std::vector<float> bp((size_t)((M + 15) / 16) * 16 * C + 64, 0.01f);
    std::vector<char> scr(dydca::gemm_scratch_bytes(H * H, M, C, th));
    auto gepi = [](float v, int64_t, int64_t) { return v > 0.f ? v : 0.f; };
    for (int r = 0; r < reps; ++r)
      for (int k = 0; k < 3; ++k) {
        auto t0 = std::chrono::steady_clock::now();
        if (k == 2) dydca::gemm(H * H, M, C, x.data(), C, nullptr, M, bp.data(), y.data(), M, gepi, scr.data(), th);
        else if (k) run_cl(C, M, H, x.data(), w.data(), y.data(), th);
        else conv2d<1, 1, 1, 1, 1, 1, ConvPath::Gemm1x1>(s, x.data(), w.data(), nullptr, y.data(), epi, th);
        t[k].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    for (auto& v : t) std::sort(v.begin(), v.end());
    double fl = 2.0 * C * M * H * H;
    printf("1x1 %4d->%-4d @%-3d NCHW %6.1f  channels-last px %6.1f (%+5.1f%%)  channels-last gemm %6.1f (%+5.1f%%) GF/s (median)\n", C, M, H, fl / t[0][reps / 2] * 1e-9,
           fl / t[1][reps / 2] * 1e-9, (t[0][reps / 2] / t[1][reps / 2] - 1) * 100, fl / t[2][reps / 2] * 1e-9, (t[0][reps / 2] / t[2][reps / 2] - 1) * 100);
  }
}
