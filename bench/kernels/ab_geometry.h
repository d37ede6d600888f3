// Kernel size and stride of each ab_kernels.cpp kind (pads are (k - 1) / 2), shared by both sides.
#pragma once
#include <cstdint>

inline void ab_geometry(int kind, int64_t& k, int64_t& s) {
  k = kind == 1 || kind == 2 ? 1 : kind == 6 ? 5 : kind == 7 ? 7 : 3;
  s = kind == 2 || kind == 4 || kind == 7 ? 2 : 1;
}
