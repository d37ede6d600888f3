// Kernel size and stride of each ab_kernels.cpp kind (pads are (k - 1) / 2), shared by both sides;
// kind 8 (a ConvTranspose of stride 2) reports stride 1 and takes a 2h x 2w output (ab_main.cpp).
#pragma once
#include <cstdint>

inline void ab_geometry(int kind, int64_t& k, int64_t& s) {
  k = kind == 1 || kind == 2 || kind == 10 ? 1 : kind == 6 ? 5 : kind == 7 ? 7 : kind == 8 ? 9 : 3;
  s = kind == 2 || kind == 4 || kind == 7 ? 2 : 1;  // kind 8: see above
}
