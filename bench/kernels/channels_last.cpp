// What a channels-last activation layout gains the pixel-tile kernel, and what it would cost the
// 1x1 convs: ResNet-50's shapes, interleaved call by call, medians.
//   pixels: the same px_tile calls over an NCHW input (channel stride = plane) and over a
//           channels-last one (NHWC), 3x3 convs (the input copy and the output stores left out);
//   1x1:    dydca::conv2d's NCHW path (the GEMM or the channel-vector kernel, with its row
//           stores) against px_tile with one tap over channels-last rows (storing channels-last
//           rows), and against the generic packed-B GEMM over them.
//   g++ -O3 -march=native -std=c++17 -fopenmp-simd -Iruntime_cpp/include bench/kernels/channels_last.cpp \
//       -o /tmp/channels_last -lpthread
//   /tmp/channels_last THREADS CALLS            (e.g. 2 60)
#include <dydca/conv.h>
#include <dydca/gemm.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>
using namespace dydca;

namespace {
constexpr int kW = detail::kCvNB * 8;  // output channels per tile

// px_tile over P output pixels x M channels, chunks of 48 pixels per task: pixel q's input at
// pixel(q), taps at toff, channels cs apart; flush(q0, q1, m0, buf) takes each chunk's tiles.
template <class Pixel, class Flush>
void tiles(int64_t P, int64_t M, const int64_t* toff, int nt, int64_t C, int64_t cs, const float* w, int th,
           Pixel pixel, Flush flush) {
  const int64_t NPB = M / kW, cq = 48, nq = (P + cq - 1) / cq, bstride = C * nt * detail::kPxBlock;
  parallel_for_guided(NPB * nq, th, [&](int64_t task) {
    const int64_t q0 = (task % nq) * cq, q1 = std::min<int64_t>(P, q0 + cq), pb = task / nq;
    alignas(64) float buf[64 * kW];
    for (int64_t q = q0; q < q1; q += detail::kPxTile) {
      const int np = (int)std::min<int64_t>(detail::kPxTile, q1 - q);
      const float* xb[detail::kPxTile];
      for (int p = 0; p < np; ++p) xb[p] = pixel(q + p);
      detail::px_tile_nr(kW / detail::kVW, np, xb, toff, nt, C, cs, w + pb * (kW / detail::kPxBlock) * bstride,
                         bstride, buf + (q - q0) * kW);
    }
    flush(q0, q1, pb * kW, buf);
  });
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Median seconds of each of `fns`, called in turns `reps` times.
template <class... F>
std::vector<double> medians(int reps, F... fns) {
  std::vector<std::vector<double>> t(sizeof...(F));
  for (int r = 0; r < reps; ++r) {
    int k = 0;
    ((t[k].push_back(-now()), fns(), t[k].back() += now(), ++k), ...);
  }
  std::vector<double> out;
  for (auto& v : t) std::sort(v.begin(), v.end()), out.push_back(v[v.size() / 2]);
  return out;
}

template <int S>
void pixels_3x3(int C, int H, bool cl, const float* x, const float* w, float* y, int th) {
  const int64_t OH = (H + 2 - 3) / S + 1, Wp = H + 2, cs = cl ? 1 : Wp * Wp;
  int64_t toff[9];
  for (int kh = 0; kh < 3; ++kh)
    for (int kw = 0; kw < 3; ++kw) toff[kh * 3 + kw] = cl ? (kh * Wp + kw) * C : kh * Wp + kw;
  tiles(OH * OH, C, toff, 9, C, cs, w, th,
        [&](int64_t q) {
          const int64_t pix = (q / OH) * S * Wp + (q % OH) * S;
          return x + (cl ? pix * C : pix);
        },
        [&](int64_t q0, int64_t, int64_t m0, const float* buf) { y[q0 + m0] = buf[0]; });
}

void pixels(int th, int reps) {
  const int cfg[][3] = {{2, 128, 56}, {2, 256, 28}, {2, 512, 14}, {1, 512, 7}, {1, 128, 28}};
  for (auto& c : cfg) {
    const int S = c[0], C = c[1], H = c[2], OH = (H + 2 - 3) / S + 1;
    std::vector<float> x((size_t)C * (H + 2) * (H + 2) + 64, 0.5f), w((size_t)C * C * 9 + 64, 0.01f), y(1 << 20);
    auto run = [&](bool cl) {
      if (S == 2) pixels_3x3<2>(C, H, cl, x.data(), w.data(), y.data(), th);
      else pixels_3x3<1>(C, H, cl, x.data(), w.data(), y.data(), th);
    };
    const auto t = medians(reps, [&] { run(false); }, [&] { run(true); });
    const double fl = 2.0 * C * C * 9 * OH * OH;
    std::printf("3x3/%d %3d@%-3d NCHW %6.1f  channels-last %6.1f GF/s (median)  %+5.1f%%\n", S, C, H, fl / t[0] * 1e-9,
                fl / t[1] * 1e-9, (t[0] / t[1] - 1) * 100);
  }
}

void conv_1x1(int th, int reps) {
  const int cfg[][3] = {{64, 256, 56}, {256, 64, 56},  {128, 512, 28}, {512, 128, 28},
                        {256, 1024, 14}, {1024, 256, 14}, {512, 2048, 7}, {2048, 512, 7}};
  auto relu = [](float v, int64_t, int64_t) { return v > 0.f ? v : 0.f; };
  for (auto& c : cfg) {
    const int C = c[0], M = c[1], H = c[2];
    const int64_t P = (int64_t)H * H, toff[1] = {0};
    const Conv2dShape s{1, C, H, H, M, H, H, 0, 0, 1};
    std::vector<float> x((size_t)C * P + 64, 0.5f), w((size_t)C * M + 64, 0.01f), y((size_t)M * P + 64);
    std::vector<float> bp((size_t)(M + 15) / 16 * 16 * C + 64, 0.01f);
    std::vector<char> scr(gemm_scratch_bytes(P, M, C, th));
    auto nchw = [&] { conv2d<1, 1, 1, 1, 1, 1, ConvPath::Gemm1x1>(s, x.data(), w.data(), nullptr, y.data(), relu, th); };
    auto cl_tiles = [&] {
      tiles(P, M, toff, 1, C, 1, w.data(), th, [&](int64_t q) { return x.data() + q * C; },
            [&](int64_t q0, int64_t q1, int64_t m0, const float* buf) {
              for (int64_t q = q0; q < q1; ++q)
                for (int j = 0; j < kW; ++j) y[q * M + m0 + j] = std::max(buf[(q - q0) * kW + j], 0.f);
            });
    };
    auto cl_gemm = [&] { gemm(P, M, C, x.data(), C, nullptr, M, bp.data(), y.data(), M, relu, scr.data(), th); };
    const auto t = medians(reps, nchw, cl_tiles, cl_gemm);
    const double fl = 2.0 * C * M * P;
    std::printf("1x1 %4d->%-4d @%-3d NCHW %6.1f  channels-last tiles %6.1f (%+5.1f%%)  gemm %6.1f (%+5.1f%%) GF/s (median)\n",
                C, M, H, fl / t[0] * 1e-9, fl / t[1] * 1e-9, (t[0] / t[1] - 1) * 100, fl / t[2] * 1e-9,
                (t[0] / t[2] - 1) * 100);
  }
}
}  // namespace

int main(int argc, char** argv) {
  const int th = argc > 1 ? std::atoi(argv[1]) : 2, reps = argc > 2 ? std::atoi(argv[2]) : 60;
  pixels(th, reps);
  conv_1x1(th, reps);
}
