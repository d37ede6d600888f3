// dydca_app: runs a dydca-compiled image model (input and output (1, C, H, W) float32 in [0, 1])
// on a binary PPM/PGM image through the model's plain C header, writes the result image and
// prints the median run time.
//
//   dydca_app INPUT.ppm OUTPUT.ppm [--threads N] [--runs R] [--raw OUTPUT.f32]
//
// --raw also writes the output tensor as raw float32 (native byte order), for exact comparisons.
// The image reader is a few lines of binary PNM so that the example needs no image library.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include DYDCA_HEADER

// <prefix>_create, <prefix>_run, ...: the generated header's functions for this model
#define DYDCA_CAT2(a, b) a##_##b
#define DYDCA_CAT(a, b) DYDCA_CAT2(a, b)
#define FN(name) DYDCA_CAT(DYDCA_PREFIX, name)
#define DYDCA_STR2(x) #x
#define DYDCA_STR(x) DYDCA_STR2(x)
using Model = DYDCA_CAT(DYDCA_PREFIX, model);

namespace {

struct Image {
  int width = 0, height = 0, channels = 0;  // channels: 1 (PGM) or 3 (PPM)
  std::vector<uint8_t> pixels;              // interleaved, row-major
};

// The next header token of a PNM file, skipping white space and '#' comments.
std::string pnm_token(std::istream& in) {
  std::string tok;
  for (int c = in.get(); c != EOF; c = in.get()) {
    if (c == '#') {
      in.ignore(1 << 20, '\n');
    } else if (std::isspace(c)) {
      if (!tok.empty()) return tok;
    } else {
      tok.push_back(char(c));
    }
  }
  return tok;
}

Image read_pnm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  const std::string magic = pnm_token(in);
  if (magic != "P5" && magic != "P6") throw std::runtime_error(path + ": not a binary PPM (P6) or PGM (P5) image");
  Image img;
  img.channels = magic == "P6" ? 3 : 1;
  try {
    img.width = std::stoi(pnm_token(in));
    img.height = std::stoi(pnm_token(in));
    if (std::stoi(pnm_token(in)) != 255) throw std::runtime_error(path + ": only 8-bit images (maxval 255) are supported");
  } catch (const std::logic_error&) {
    throw std::runtime_error(path + ": corrupt PPM/PGM header");
  }
  if (img.width <= 0 || img.height <= 0) throw std::runtime_error(path + ": empty image");
  img.pixels.resize(size_t(img.width) * img.height * img.channels);
  in.read(reinterpret_cast<char*>(img.pixels.data()), std::streamsize(img.pixels.size()));
  if (in.gcount() != std::streamsize(img.pixels.size())) throw std::runtime_error(path + ": truncated pixel data");
  return img;
}

void write_pnm(const std::string& path, const Image& img) {
  std::ofstream out(path, std::ios::binary);
  out << (img.channels == 3 ? "P6" : "P5") << "\n" << img.width << " " << img.height << "\n255\n";
  out.write(reinterpret_cast<const char*>(img.pixels.data()), std::streamsize(img.pixels.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Interleaved uint8 -> planar float in [0, 1], converting grey <-> RGB when the model wants the other.
std::vector<float> to_planar(const Image& img, int channels) {
  const size_t plane = size_t(img.width) * img.height;
  std::vector<float> out(plane * channels);
  for (size_t p = 0; p < plane; ++p) {
    const uint8_t* px = &img.pixels[p * img.channels];
    for (int c = 0; c < channels; ++c) {
      float v;
      if (img.channels == channels) v = px[c];
      else if (img.channels == 1) v = px[0];                          // grey -> RGB
      else v = 0.299f * px[0] + 0.587f * px[1] + 0.114f * px[2];  // RGB -> luma
      out[c * plane + p] = v / 255.0f;
    }
  }
  return out;
}

Image from_planar(const float* data, int channels, int height, int width) {
  Image img{width, height, channels, std::vector<uint8_t>(size_t(width) * height * channels)};
  const size_t plane = size_t(width) * height;
  for (size_t p = 0; p < plane; ++p)
    for (int c = 0; c < channels; ++c)
      img.pixels[p * channels + c] = uint8_t(std::lround(std::clamp(data[c * plane + p], 0.0f, 1.0f) * 255.0f));
  return img;
}

void check(Model* m, int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + " failed: " + FN(last_error)(m));
}

int run(int argc, char** argv) {
  std::string input, output, raw;
  int threads = 0, runs = 10;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--threads") threads = std::stoi(value());
    else if (a == "--runs") runs = std::max(1, std::stoi(value()));
    else if (a == "--raw") raw = value();
    else if (input.empty()) input = a;
    else if (output.empty()) output = a;
    else throw std::runtime_error("unexpected argument " + a);
  }
  if (output.empty())
    throw std::runtime_error("usage: dydca_app INPUT.ppm OUTPUT.ppm [--threads N] [--runs R] [--raw OUT.f32]");

  if (FN(num_inputs)() != 1 || FN(input_rank)(0) != 4 || FN(output_rank)(0) != 4)
    throw std::runtime_error("this example runs image models with one (n, C, h, w) input and output");
  int64_t c_lo = 0, c_hi = 0;
  FN(input_dim_range)(0, 1, &c_lo, &c_hi);

  const Image img = read_pnm(input);
  const int channels = int(std::clamp<int64_t>(img.channels, c_lo, c_hi));
  const std::vector<float> x = to_planar(img, channels);
  const int64_t in_shape[4] = {1, channels, img.height, img.width};

  Model* m = FN(create)();
  if (!m) throw std::runtime_error("cannot create the model (out of memory)");
  struct Destroy { Model* m; ~Destroy() { FN(destroy)(m); } } guard{m};
  FN(set_threads)(m, threads);

  const int64_t* in_shapes[] = {in_shape};
  std::vector<std::vector<int64_t>> out_dims(FN(num_outputs)());
  std::vector<int64_t*> out_shapes;
  for (int j = 0; j < int(out_dims.size()); ++j) {
    out_dims[j].resize(FN(output_rank)(j));
    out_shapes.push_back(out_dims[j].data());
  }
  // the first call also checks every input dim against the compiled ranges
  check(m, FN(output_shapes)(m, in_shapes, out_shapes.data()), "output_shapes");
  std::vector<std::vector<float>> outs(out_dims.size());
  std::vector<void*> out_ptrs;
  for (size_t j = 0; j < outs.size(); ++j) {
    int64_t n = 1;
    for (int64_t d : out_dims[j]) n *= d;
    outs[j].resize(size_t(n));
    out_ptrs.push_back(outs[j].data());
  }
  const void* in_ptrs[] = {x.data()};

  check(m, FN(run)(m, in_ptrs, in_shapes, out_ptrs.data()), "run");  // warm-up: page in the arena
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    check(m, FN(run)(m, in_ptrs, in_shapes, out_ptrs.data()), "run");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());

  const std::vector<int64_t>& od = out_dims[0];
  if (od[1] != 1 && od[1] != 3) throw std::runtime_error("output 0 has " + std::to_string(od[1]) + " channels; an image needs 1 or 3");
  write_pnm(output, from_planar(outs[0].data(), int(od[1]), int(od[2]), int(od[3])));
  if (!raw.empty()) {
    std::ofstream f(raw, std::ios::binary);
    f.write(reinterpret_cast<const char*>(outs[0].data()), std::streamsize(outs[0].size() * sizeof(float)));
    if (!f) throw std::runtime_error("cannot write " + raw);
  }
  std::printf("model %s: %dx%dx%dx%d -> %lldx%lldx%lldx%lld, %d threads, median %.3f ms over %d runs\n",
              DYDCA_STR(DYDCA_PREFIX), 1, channels, img.height, img.width, (long long)od[0],
              (long long)od[1], (long long)od[2], (long long)od[3], FN(get_threads)(m), ms[ms.size() / 2], runs);
  std::printf("wrote %s\n", output.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dydca_app: %s\n", e.what());
    return 1;
  }
}
