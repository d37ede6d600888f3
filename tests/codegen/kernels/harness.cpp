// Standalone test driver for the dydca conv / gemm kernels.
// Usage: harness CASEFILE
// Each line of CASEFILE:
//   conv  KH KW SH SW DH DW  N C H W M OH OW pad_t pad_l group threads has_bias DIR [STORE]
//   convt KH KW SH SW DH DW  N C H W M OH OW pad_t pad_l group threads has_bias DIR [STORE]
//   gemm  M N K lda ldb ldc packed threads use_scratch DIR
//   wino  N C H W M OH OW pad_t pad_l group threads has_bias DIR [STORE]
//                                            (3x3/s1 conv2d_winograd, w.bin: pack_conv2d_winograd)
//   pix   KH KW SH SW DH DW  N C H W M OH OW pad_t pad_l group threads has_bias DIR
//                                            (conv2d_pixels, PIX_COMBOS only)
//   pack  M Cg KH KW group threads DIR       (run-time Conv weight packing, w.bin -> y.bin)
//   packt C Mg KH KW group threads DIR       (run-time ConvTranspose weight packing)
// STORE: "id" (default) or "d2s B DCR|CRD" (DepthToSpaceStore, only for D2S_COMBOS).
// DIR holds x.bin/w.bin/b.bin/r.bin (conv) or a.bin/b.bin/bp.bin/r.bin (gemm), float32 raw.
// Writes DIR/y.bin.  The epilogue adds r[i] + 0.01*m (conv) / r[row*N+col] + 0.01*row (gemm), so
// wrong indices are detected (i is the conv's own NCHW index, whatever the store); it also counts
// calls per element (must be exactly 1), and global operator new is counted to check that kernels
// do not allocate.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "dydca/conv.h"
#include "dydca/gemm.h"
#include "dydca/winograd.h"

static std::atomic<long> g_news{0};
void* operator new(std::size_t n) {
  g_news++;
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

static std::vector<float> load(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return {};
  const auto n = (size_t)f.tellg();
  std::vector<float> v(n / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), (std::streamsize)n);
  return v;
}
static void save(const std::string& path, const std::vector<float>& v) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), (std::streamsize)(v.size() * sizeof(float)));
}

struct Epi {
  const float* r;
  int* cnt;
  float operator()(float v, int64_t m, int64_t i) const {
    __atomic_fetch_add(&cnt[i], 1, __ATOMIC_RELAXED);
    return v + r[i] + 0.01f * (float)m;
  }
};
struct GemmEpi {
  const float* r;
  int* cnt;
  int64_t N;
  float operator()(float v, int64_t row, int64_t col) const {
    __atomic_fetch_add(&cnt[row * N + col], 1, __ATOMIC_RELAXED);
    return v + r[row * N + col] + 0.01f * (float)row;
  }
};

#define CONV_COMBOS(X)   \
  X(1, 1, 1, 1, 1, 1)    \
  X(1, 1, 2, 2, 1, 1)    \
  X(3, 3, 1, 1, 1, 1)    \
  X(3, 3, 2, 2, 1, 1)    \
  X(3, 3, 1, 1, 2, 2)    \
  X(5, 5, 1, 1, 1, 1)    \
  X(2, 3, 2, 1, 1, 2)    \
  X(3, 1, 1, 2, 3, 1)    \
  X(9, 9, 1, 1, 1, 1)    \
  X(7, 7, 2, 2, 1, 1)

#define CONVT_COMBOS(X) \
  X(3, 3, 2, 2, 1, 1)   \
  X(9, 9, 3, 3, 1, 1)   \
  X(9, 9, 2, 2, 1, 1)   \
  X(2, 2, 3, 3, 1, 1)   \
  X(4, 4, 2, 2, 1, 1)   \
  X(3, 3, 1, 1, 1, 1)   \
  X(2, 3, 2, 3, 1, 2)   \
  X(5, 5, 2, 1, 2, 1)

// conv2d_pixels combos (the 3x3 convs it takes in models, stride 1 and 2).
#define PIX_COMBOS(X) \
  X(3, 3, 1, 1, 1, 1) \
  X(3, 3, 2, 2, 1, 1)

// (KH, KW, SH, SW, DH, DW) combos also instantiated with the depth-to-space stores.
#define D2S_COMBOS(X)  \
  X(1, 1, 1, 1, 1, 1)  \
  X(3, 3, 1, 1, 1, 1)  \
  X(3, 3, 2, 2, 1, 1)  \
  X(5, 5, 1, 1, 1, 1)

#define D2S_STORES(X, a, b_, c, d, e, f) \
  X(a, b_, c, d, e, f, 2, true)          \
  X(a, b_, c, d, e, f, 2, false)         \
  X(a, b_, c, d, e, f, 3, true)          \
  X(a, b_, c, d, e, f, 3, false)

// A conv case's checks after it ran: a compiled combination, no heap allocation, the epilogue
// called exactly once per output element; saves y for the Python side. Returns failures (0/1).
static int conv_verdict(bool found, long news0, const std::vector<int>& cnt, const std::vector<float>& y,
                        const std::string& dir, const std::string& line) {
  if (!found) {
    std::printf("UNSUPPORTED_COMBO %s\n", line.c_str());
    return 1;
  }
  int bad = 0;
  if (g_news.load() != news0) {
    std::printf("HEAP_ALLOC %s\n", line.c_str());
    bad = 1;
  }
  size_t cbad = 0;
  for (int c : cnt) cbad += c != 1;
  if (cbad) {
    std::printf("EPI_COUNT %zu %s\n", cbad, line.c_str());
    bad = 1;
  }
  save(dir + "/y.bin", y);
  return bad;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: harness CASEFILE\n");
    return 2;
  }
  std::ifstream cf(argv[1]);
  std::string line;
  int bad = 0;
  while (std::getline(cf, line)) {
    if (line.empty()) continue;
    std::istringstream is(line);
    std::string op;
    is >> op;
    if (op == "conv" || op == "convt") {
      int KH, KW, SH, SW, DH, DW, threads, has_bias;
      dydca::Conv2dShape s;
      std::string dir;
      is >> KH >> KW >> SH >> SW >> DH >> DW >> s.N >> s.C >> s.H >> s.W >> s.M >> s.OH >> s.OW >> s.pad_t >>
          s.pad_l >> s.group >> threads >> has_bias >> dir;
      std::string store = "id", mode;
      int blk = 1;
      is >> store;
      if (store == "d2s") is >> blk >> mode;
      const bool d2s = store == "d2s", dcr = mode == "DCR";
      auto x = load(dir + "/x.bin"), w = load(dir + "/w.bin"), b = load(dir + "/b.bin"), r = load(dir + "/r.bin");
      const size_t ny = (size_t)(s.N * s.M * s.OH * s.OW);
      std::vector<float> y(ny, -12345.f);
      std::vector<int> cnt(ny, 0);
      Epi epi{r.data(), cnt.data()};
      const float* bias = has_bias ? b.data() : nullptr;
      bool found = false;
      const long news0 = g_news.load();
#define RUN_CONV_D2S(a, b_, c, d, e, f, B, DCR)                                                  \
  if (!found && d2s && blk == B && dcr == DCR && KH == a && KW == b_ && SH == c && SW == d && DH == e && \
      DW == f) {                                                                                  \
    dydca::conv2d<a, b_, c, d, e, f>(s, x.data(), w.data(), bias, y.data(), epi, threads,         \
                                     dydca::DepthToSpaceStore<B, DCR>{s.M, s.OH, s.OW});          \
    found = true;                                                                                 \
  }
#define RUN_CONV_D2S_ALL(a, b_, c, d, e, f) D2S_STORES(RUN_CONV_D2S, a, b_, c, d, e, f)
#define RUN_CONVT_D2S(a, b_, c, d, e, f, B, DCR)                                                 \
  if (!found && d2s && blk == B && dcr == DCR && KH == a && KW == b_ && SH == c && SW == d && DH == e && \
      DW == f) {                                                                                  \
    dydca::conv_transpose2d<a, b_, c, d, e, f>(s, x.data(), w.data(), bias, y.data(), epi, threads, \
                                               dydca::DepthToSpaceStore<B, DCR>{s.M, s.OH, s.OW}); \
    found = true;                                                                                 \
  }
#define RUN_CONV(a, b_, c, d, e, f)                                                     \
  if (!found && !d2s && KH == a && KW == b_ && SH == c && SW == d && DH == e && DW == f) { \
    dydca::conv2d<a, b_, c, d, e, f>(s, x.data(), w.data(), bias, y.data(), epi, threads); \
    found = true;                                                                       \
  }
#define RUN_CONVT(a, b_, c, d, e, f)                                                              \
  if (!found && !d2s && KH == a && KW == b_ && SH == c && SW == d && DH == e && DW == f) {         \
    dydca::conv_transpose2d<a, b_, c, d, e, f>(s, x.data(), w.data(), bias, y.data(), epi, threads); \
    found = true;                                                                                 \
  }
      if (op == "conv") {
        CONV_COMBOS(RUN_CONV)
        D2S_COMBOS(RUN_CONV_D2S_ALL)
      } else {
        CONVT_COMBOS(RUN_CONVT)
        D2S_STORES(RUN_CONVT_D2S, 3, 3, 2, 2, 1, 1)
      }
      bad += conv_verdict(found, news0, cnt, y, dir, line);
    } else if (op == "wino") {
      int threads, has_bias;
      dydca::Conv2dShape s;
      std::string dir, store = "id", mode;
      is >> s.N >> s.C >> s.H >> s.W >> s.M >> s.OH >> s.OW >> s.pad_t >> s.pad_l >> s.group >> threads >> has_bias >>
          dir;
      int blk = 1;
      is >> store;
      if (store == "d2s") is >> blk >> mode;
      auto x = load(dir + "/x.bin"), w = load(dir + "/w.bin"), b = load(dir + "/b.bin"), r = load(dir + "/r.bin");
      const size_t ny = (size_t)(s.N * s.M * s.OH * s.OW);
      std::vector<float> y(ny, -12345.f);
      std::vector<int> cnt(ny, 0);
      std::vector<char> scratch(dydca::winograd_scratch_bytes(s.C / s.group));
      Epi epi{r.data(), cnt.data()};
      const float* bias = has_bias ? b.data() : nullptr;
      const long news0 = g_news.load();
      bool found = true;
      if (store == "id")
        dydca::conv2d_winograd(s, x.data(), w.data(), bias, y.data(), epi, threads, scratch.data());
      else if (blk == 2 && mode == "DCR")
        dydca::conv2d_winograd(s, x.data(), w.data(), bias, y.data(), epi, threads, scratch.data(),
                               dydca::DepthToSpaceStore<2, true>{s.M, s.OH, s.OW});
      else if (blk == 3 && mode == "CRD")
        dydca::conv2d_winograd(s, x.data(), w.data(), bias, y.data(), epi, threads, scratch.data(),
                               dydca::DepthToSpaceStore<3, false>{s.M, s.OH, s.OW});
      else
        found = false;
      bad += conv_verdict(found, news0, cnt, y, dir, line);
    } else if (op == "pix") {
      int KH, KW, SH, SW, DH, DW, threads, has_bias;
      dydca::Conv2dShape s;
      std::string dir;
      is >> KH >> KW >> SH >> SW >> DH >> DW >> s.N >> s.C >> s.H >> s.W >> s.M >> s.OH >> s.OW >> s.pad_t >>
          s.pad_l >> s.group >> threads >> has_bias >> dir;
      auto x = load(dir + "/x.bin"), w = load(dir + "/w.bin"), b = load(dir + "/b.bin"), r = load(dir + "/r.bin");
      const size_t ny = (size_t)(s.N * s.M * s.OH * s.OW);
      std::vector<float> y(ny, -12345.f);
      std::vector<int> cnt(ny, 0);
      std::vector<char> scratch(dydca::conv2d_pixels_scratch_bytes(s, KH, KW, SH, SW, DH, DW));
      Epi epi{r.data(), cnt.data()};
      const float* bias = has_bias ? b.data() : nullptr;
      const long news0 = g_news.load();
      bool found = false;
#define RUN_PIX(a, b_, c, d, e, f)                                                                 \
  if (!found && KH == a && KW == b_ && SH == c && SW == d && DH == e && DW == f) {                   \
    dydca::conv2d_pixels<a, b_, c, d, e, f>(s, x.data(), w.data(), bias, y.data(), epi, threads,      \
                                            scratch.empty() ? nullptr : (void*)scratch.data());     \
    found = true;                                                                                  \
  }
      PIX_COMBOS(RUN_PIX)
      bad += conv_verdict(found, news0, cnt, y, dir, line);
    } else if (op == "gemm") {
      int64_t M, N, K, lda, ldb, ldc;
      int packed, threads, use_scratch;
      std::string dir;
      is >> M >> N >> K >> lda >> ldb >> ldc >> packed >> threads >> use_scratch >> dir;
      auto a = load(dir + "/a.bin"), bm = load(dir + "/b.bin"), bp = load(dir + "/bp.bin"), r = load(dir + "/r.bin");
      std::vector<float> c((size_t)(M * ldc), -12345.f);
      std::vector<int> cnt((size_t)(M * N), 0);
      std::vector<char> scratch(use_scratch ? dydca::gemm_scratch_bytes(M, N, K, threads) : 0);
      GemmEpi epi{r.data(), cnt.data(), N};
      const long news0 = g_news.load();
      dydca::gemm(M, N, K, a.data(), lda, packed ? nullptr : bm.data(), ldb, packed ? bp.data() : nullptr, c.data(),
                  ldc, epi, use_scratch ? (void*)scratch.data() : nullptr, threads);
      if (g_news.load() != news0) {
        std::printf("HEAP_ALLOC %s\n", line.c_str());
        ++bad;
      }
      size_t cbad = 0;
      for (auto v : cnt) cbad += v != 1;
      if (cbad) {
        std::printf("EPI_COUNT %zu %s\n", cbad, line.c_str());
        ++bad;
      }
      // padding columns of C (ldc > N) must be untouched
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = N; j < ldc; ++j)
          if (c[(size_t)(i * ldc + j)] != -12345.f) {
            std::printf("LDC_CLOBBER %s\n", line.c_str());
            ++bad;
            i = M;
            break;
          }
      save(dir + "/y.bin", c);
    } else if (op == "pack" || op == "packt") {
      int64_t A, B, KH, KW, group;  // pack: A = M, B = Cg; packt: A = C, B = Mg
      int threads;
      std::string dir;
      is >> A >> B >> KH >> KW >> group >> threads >> dir;
      auto w = load(dir + "/w.bin");
      const bool t = op == "packt";
      const int64_t nf = t ? dydca::conv_transpose2d_packed_floats(A, B, KH, KW, group)
                           : dydca::conv2d_packed_floats(A, B, KH, KW, group);
      std::vector<float> out((size_t)nf, -12345.f);
      const long news0 = g_news.load();
      const float* p = t ? dydca::pack_conv_transpose2d_weights(w.data(), A, B, KH, KW, group, out.data(), threads)
                         : dydca::pack_conv2d_weights(w.data(), A, B, KH, KW, group, out.data(), threads);
      if (g_news.load() != news0) {
        std::printf("HEAP_ALLOC %s\n", line.c_str());
        ++bad;
      }
      // depthwise: the kernel reads the ONNX weights in place (nothing packed)
      save(dir + "/y.bin", p == w.data() ? w : out);
    } else {
      std::printf("BAD_LINE %s\n", line.c_str());
      ++bad;
    }
  }
  std::printf("DONE bad=%d\n", bad);
  return bad ? 1 : 0;
}
