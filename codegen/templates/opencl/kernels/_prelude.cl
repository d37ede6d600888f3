// dydca device prelude: the scalar types and helpers generated kernels use (the OpenCL C twins of
// runtime_cpp/include/dydca/runtime.h's shape and element-wise helpers).
typedef long int64_t;
typedef int int32_t;
typedef uchar uint8_t;
#define INT64_C(x) ((long)(x))

// Python/ONNX integer division of dims (floor towards -inf)
inline long dydca_floordiv(long a, long b) {
  long q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
inline long dydca_ceildiv(long a, long b) { return -dydca_floordiv(-a, b); }
inline long dydca_pymod(long a, long b) { return a - dydca_floordiv(a, b) * b; }

// element-wise semantics per element type (ONNX: integer division truncates, x/0 = 0)
#define DYDCA_OVL __attribute__((overloadable))
inline float DYDCA_OVL dydca_div(float a, float b) { return a / b; }
inline long DYDCA_OVL dydca_div(long a, long b) { return b == 0 ? 0 : a / b; }
inline int DYDCA_OVL dydca_div(int a, int b) { return b == 0 ? 0 : a / b; }
inline float DYDCA_OVL dydca_fmod(float a, float b) { return fmod(a, b); }
inline long DYDCA_OVL dydca_fmod(long a, long b) { return b == 0 ? 0 : a % b; }
inline int DYDCA_OVL dydca_fmod(int a, int b) { return b == 0 ? 0 : a % b; }
inline float DYDCA_OVL dydca_mod(float a, float b) {
  float r = fmod(a, b);
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
inline long DYDCA_OVL dydca_mod(long a, long b) {
  if (b == 0) return 0;
  long r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
inline int DYDCA_OVL dydca_mod(int a, int b) {
  if (b == 0) return 0;
  int r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
inline float DYDCA_OVL dydca_abs(float a) { return fabs(a); }
inline long DYDCA_OVL dydca_abs(long a) { return a < 0 ? -a : a; }
inline int DYDCA_OVL dydca_abs(int a) { return a < 0 ? -a : a; }
inline float dydca_tanh(float a) { return tanh(a); }
inline float dydca_sigmoid(float a) { return 1.0f / (1.0f + exp(-a)); }
inline float dydca_prelu(float a, float slope) { return a >= 0.0f ? a : slope * a; }
// Pow: the base's type; an integer base to an integer power exactly (by squaring; a negative power
// truncates towards 0), to a float power through float
#define DYDCA_POW_FLOAT(E) \
  inline float DYDCA_OVL dydca_pow(float a, E b) { return b == (E)2 ? a * a : pow(a, (float)b); }
DYDCA_POW_FLOAT(float) DYDCA_POW_FLOAT(long) DYDCA_POW_FLOAT(int)
#define DYDCA_POW_INT(T, E)                                                \
  inline T DYDCA_OVL dydca_pow(T a, E b) {                                 \
    if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;       \
    T r = 1;                                                               \
    for (; b; b >>= 1, a *= a) if (b & 1) r *= a;                          \
    return r;                                                              \
  }
DYDCA_POW_INT(long, long) DYDCA_POW_INT(long, int) DYDCA_POW_INT(int, int) DYDCA_POW_INT(int, long)
inline long DYDCA_OVL dydca_pow(long a, float b) { return (long)pow((float)a, b); }
inline int DYDCA_OVL dydca_pow(int a, float b) { return (int)pow((float)a, b); }

// Pad: the source index of output position i - begin along an axis of size n, or -1 (the constant)
inline long dydca_pad_source(int mode, long i, long n) {
  if (i >= 0 && i < n) return i;
  if (mode == 0 || n == 0) return -1;  // constant; an empty axis has nothing to repeat
  if (mode == 2) return i < 0 ? 0 : n - 1;  // edge
  if (mode == 3) return dydca_pymod(i, n);  // wrap
  if (n == 1) return 0;  // reflect
  const long period = 2 * (n - 1), k = dydca_pymod(i, period);
  return k < n ? k : period - k;
}

// Pooling: taps k in [0, K) of output position o whose input index o*S - P + k*D lies in [lo, hi)
inline void dydca_tap_range(long o, long S, long P, long D, long K, long lo, long hi, long* k0, long* k1) {
  const long start = o * S - P;
  *k0 = start >= lo ? 0 : (lo - start + D - 1) / D;
  *k1 = start + (K - 1) * D < hi ? K : (hi - start + D - 1) / D;
  if (*k1 < *k0) *k1 = *k0;
}

// Resize (layout.h): coordinate modes 0 half_pixel, 1 pytorch_half_pixel, 2 align_corners,
// 3 asymmetric, 4 tf_half_pixel_for_nn; nearest modes 0 round_prefer_floor, 1 round_prefer_ceil,
// 2 floor, 3 ceil, 4 simple (Upsample)
inline float dydca_resize_coord(int c, float x, float scale, long in, long out) {
  switch (c) {
    case 0: return (x + 0.5f) / scale - 0.5f;
    case 1: return out > 1 ? (x + 0.5f) / scale - 0.5f : 0.0f;
    case 2: return out == 1 ? 0.0f : x * (float)(in - 1) / (float)(out - 1);
    case 3: return x / scale;
    default: return (x + 0.5f) / scale;
  }
}
inline long dydca_nearest_index(int c, int m, long x, float scale, long in, long out) {
  if (scale == 1.0f) return min(x, in - 1);
  const float v = dydca_resize_coord(c, (float)x, scale, in, out);
  long i;
  switch (m) {
    case 0: i = (v == (float)((long)v) + 0.5f) ? (long)floor(v) : (long)round(v); break;
    case 1: i = (long)round(v); break;
    case 2: i = (long)floor(v); break;
    case 3: i = (long)ceil(v); break;
    default: i = scale < 1.0f ? (long)ceil(v) : (long)v; break;
  }
  return clamp(i, 0L, in - 1);
}
inline void dydca_linear_tap(int c, long x, float scale, long in, long out, long* i0, long* i1, float* w0, float* w1) {
  float v = scale == 1.0f ? (float)x : dydca_resize_coord(c, (float)x, scale, in, out);
  v = fmax(0.0f, fmin(v, (float)(in - 1)));
  *i0 = min((long)v, in - 1);
  *i1 = min(*i0 + 1, in - 1);
  *w1 = fabs(v - (float)*i0);
  *w0 = fabs(v - (float)*i1);
  if (*i0 == *i1) *w0 = *w1 = 0.5f;
}

// A kernel refusing its inputs: the first report wins (Device::Status on the host)
inline void dydca_refuse(__global long* status, long kernel_id, long value, long bound) {
  if (atomic_cmpxchg((volatile __global int*)status, 0, 1) == 0) {
    status[1] = kernel_id;
    status[2] = value;
    status[3] = bound;
  }
}

