// What a channels-last activation layout gains the pixel-tile kernel: the same px_tile calls over an
// NCHW input (channel stride = plane) and over a channels-last one (NHWC), ResNet-50's 3x3 convs,
// interleaved call by call, medians (the input copy and the output stores are left out).
//   g++ -O3 -march=native -std=c++17 -Iruntime_cpp/include bench/kernels/layout_pixels.cpp -o /tmp/layout_pixels -lpthread
//   /tmp/layout_pixels THREADS CALLS        (e.g. 2 60)
#include <dydca/conv.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <algorithm>
using namespace dydca;
template <int S>
void run(int C, int H, bool cl, const float* x, const float* w, float* y, int th) {
  const int OH = (H + 2 - 3) / S + 1, P = OH * OH, Hp = H + 2, Wp = H + 2;
  constexpr int kW = detail::kCvNB * 8;
  const int64_t cs = cl ? 1 : (int64_t)Hp * Wp;
  int64_t toff[9];
  for (int kh = 0; kh < 3; ++kh)
    for (int kw = 0; kw < 3; ++kw) toff[kh * 3 + kw] = cl ? (kh * Wp + kw) * (int64_t)C : kh * Wp + kw;
  const int64_t NPB = C / kW, cq = 48, nq = (P + cq - 1) / cq, bstride = (int64_t)C * 9 * 16;
  parallel_for_guided(NPB * nq, th, [&](int64_t task) {
    const int64_t q0 = (task % nq) * cq, q1 = std::min<int64_t>(P, q0 + cq), pb = task / nq;
    alignas(64) float buf[64 * kW];
    for (int64_t q = q0; q < q1; q += detail::kPxTile) {
      const int np = (int)std::min<int64_t>(detail::kPxTile, q1 - q);
      const float* xb[detail::kPxTile];
      for (int p = 0; p < np; ++p) {
        const int64_t pix = ((q + p) / OH) * S * Wp + ((q + p) % OH) * S;
        xb[p] = x + (cl ? pix * C : pix);
      }
      detail::px_tile_nr(2, np, xb, toff, 9, C, cs, w + pb * 2 * bstride, bstride, buf + (q - q0) * kW);
    }
    y[task] = buf[0];
  });
}
int main(int argc, char** argv) {
  int th = atoi(argv[1]), reps = atoi(argv[2]);
  int cfg[][3] = {{2, 128, 56}, {2, 256, 28}, {2, 512, 14}, {1, 512, 7}, {1, 128, 28}};
  for (auto& c : cfg) {
    int S = c[0], C = c[1], H = c[2], OH = (H + 2 - 3) / S + 1;
    std::vector<float> x((size_t)C * (H + 2) * (H + 2) + 64, 0.5f), w((size_t)C * C * 9 + 64, 0.01f), y(100000);
    std::vector<double> t[2];
    for (int r = 0; r < reps; ++r)
      for (int k = 0; k < 2; ++k) {
        auto t0 = std::chrono::steady_clock::now();
        if (S == 2) run<2>(C, H, k, x.data(), w.data(), y.data(), th); else run<1>(C, H, k, x.data(), w.data(), y.data(), th);
        t[k].push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    for (auto& v : t) std::sort(v.begin(), v.end());
    double fl = 2.0 * C * C * 9 * OH * OH;
    printf("S%d %3d@%-3d NCHW %6.1f  channels-last %6.1f GF/s (median)  %+5.1f%%\n", S, C, H, fl / t[0][reps / 2] * 1e-9,
           fl / t[1][reps / 2] * 1e-9, (t[0][reps / 2] / t[1][reps / 2] - 1) * 100);
  }
}
