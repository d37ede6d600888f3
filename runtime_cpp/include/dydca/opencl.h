// dydca runtime for the opencl target: the host side of a generated model library.
//
// The OpenCL library is opened with dlopen when a model is created, not linked: a model library
// then loads on any machine, and one without an OpenCL driver (no libOpenCL, no platform) gets a
// clear error from its first call while the cpp target keeps working in the same process.
// A model's device code is one program, built once per model instance; its binary is cached on
// disk ($DYDCA_CACHE_DIR/opencl or ~/.cache/dydca/opencl) under the SHA-256 of the platform,
// device, driver version and source, so later loads skip the OpenCL compiler.
#pragma once
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001
#endif

namespace dydca::ocl {

// ---- the OpenCL entry points, resolved from libOpenCL at run time ----
#define DYDCA_OCL_FUNCTIONS(X)                                                                   \
  X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo)                  \
  X(clCreateContext) X(clReleaseContext) X(clCreateCommandQueue) X(clReleaseCommandQueue)        \
  X(clCreateBuffer) X(clReleaseMemObject) X(clCreateProgramWithSource)                           \
  X(clCreateProgramWithBinary) X(clBuildProgram) X(clGetProgramBuildInfo) X(clGetProgramInfo)    \
  X(clReleaseProgram) X(clCreateKernel) X(clReleaseKernel) X(clSetKernelArg)                     \
  X(clEnqueueNDRangeKernel) X(clEnqueueWriteBuffer) X(clEnqueueReadBuffer)                       \
  X(clEnqueueCopyBuffer) X(clFinish)

struct Api {
#define DYDCA_OCL_MEMBER(name) decltype(&::name) name = nullptr;
  DYDCA_OCL_FUNCTIONS(DYDCA_OCL_MEMBER)
#undef DYDCA_OCL_MEMBER
};

inline const char* error_name(cl_int e) {
  switch (e) {
#define C(x) case x: return #x;
    C(CL_DEVICE_NOT_FOUND) C(CL_DEVICE_NOT_AVAILABLE) C(CL_COMPILER_NOT_AVAILABLE)
    C(CL_MEM_OBJECT_ALLOCATION_FAILURE) C(CL_OUT_OF_RESOURCES) C(CL_OUT_OF_HOST_MEMORY)
    C(CL_BUILD_PROGRAM_FAILURE) C(CL_INVALID_VALUE) C(CL_INVALID_PLATFORM) C(CL_INVALID_DEVICE)
    C(CL_INVALID_CONTEXT) C(CL_INVALID_COMMAND_QUEUE) C(CL_INVALID_MEM_OBJECT) C(CL_INVALID_BINARY)
    C(CL_INVALID_BUILD_OPTIONS) C(CL_INVALID_PROGRAM) C(CL_INVALID_PROGRAM_EXECUTABLE)
    C(CL_INVALID_KERNEL_NAME) C(CL_INVALID_KERNEL) C(CL_INVALID_ARG_INDEX) C(CL_INVALID_ARG_VALUE)
    C(CL_INVALID_ARG_SIZE) C(CL_INVALID_KERNEL_ARGS) C(CL_INVALID_WORK_DIMENSION)
    C(CL_INVALID_WORK_GROUP_SIZE) C(CL_INVALID_WORK_ITEM_SIZE) C(CL_INVALID_GLOBAL_OFFSET)
    C(CL_INVALID_BUFFER_SIZE) C(CL_INVALID_GLOBAL_WORK_SIZE) C(CL_MISALIGNED_SUB_BUFFER_OFFSET)
    C(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
#undef C
    case CL_PLATFORM_NOT_FOUND_KHR: return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "an unknown OpenCL error";
  }
}

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws naming the OpenCL call, what it was doing and the error code.
inline void check(cl_int e, const char* call, const std::string& what) {
  if (e != CL_SUCCESS)
    throw Error(std::string(call) + " failed (" + error_name(e) + ", " + std::to_string(e) + ") " + what);
}

// ---- SHA-256 (FIPS 180-4), for the program binary cache key ----
inline std::string sha256_hex(const std::string& msg) {
  static const uint32_t K[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::string m = msg;
  const uint64_t bits = uint64_t(msg.size()) * 8;
  m.push_back(char(0x80));
  while (m.size() % 64 != 56) m.push_back(char(0));
  for (int i = 7; i >= 0; --i) m.push_back(char((bits >> (8 * i)) & 0xff));
  auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  for (size_t off = 0; off < m.size(); off += 64) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(m.data() + off + 4 * i);
      w[i] = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
    }
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t t1 = k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
  }
  char out[65];
  for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h[i]);
  return std::string(out, 64);
}

// ---- program binary cache ----
inline std::string cache_dir() {
  if (const char* d = std::getenv("DYDCA_CACHE_DIR"); d && *d) return std::string(d) + "/opencl";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/dydca/opencl";
  return "";
}

inline bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  out = s.str();
  return !out.empty();
}

// Written to a temporary name and renamed, so a concurrent load never reads half a binary.
// Failures only cost the next load a compile.
inline void write_file_atomic(const std::string& path, const unsigned char* data, size_t n) {
  std::string dir = path.substr(0, path.rfind('/'));
  for (size_t p = 1; p != std::string::npos; p = dir.find('/', p + 1)) ::mkdir(dir.substr(0, p).c_str(), 0755);
  ::mkdir(dir.c_str(), 0755);
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return;
    f.write(reinterpret_cast<const char*>(data), std::streamsize(n));
    if (!f) { std::remove(tmp.c_str()); return; }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) std::remove(tmp.c_str());
}

// ---- one model instance's device state ----
struct Device {
  Api cl;
  void* lib = nullptr;
  cl_platform_id platform = nullptr;
  cl_device_id device = nullptr;
  cl_context context = nullptr;
  cl_command_queue queue = nullptr;
  cl_program program = nullptr;
  std::vector<cl_kernel> kernels;  // by kernel index; null for host-only kernels (If)
  cl_mem arena = nullptr;          // one buffer, planned with the CPU arena's offsets
  cl_mem blob = nullptr;           // the compile-time constants, uploaded once
  // a kernel refusing its inputs (an index out of range) records it here: an int flag, then the
  // kernel id, the offending value and its bound as longs (Status); read once at the end of a run
  cl_mem status = nullptr;
  std::vector<cl_mem> io;          // inputs then outputs, grown on demand
  std::vector<size_t> io_bytes;
  std::string device_name;
  bool from_cache = false;  // whether the program came from the binary cache (tests, diagnostics)

  Device() = default;
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device() { release(); }

  void release() {
    if (lib == nullptr) return;
    for (cl_mem b : io) if (b) cl.clReleaseMemObject(b);
    io.clear();
    if (arena) cl.clReleaseMemObject(arena);
    if (blob) cl.clReleaseMemObject(blob);
    if (status) cl.clReleaseMemObject(status);
    for (cl_kernel k : kernels) if (k) cl.clReleaseKernel(k);
    kernels.clear();
    if (program) cl.clReleaseProgram(program);
    if (queue) cl.clReleaseCommandQueue(queue);
    if (context) cl.clReleaseContext(context);
    arena = blob = status = nullptr;
    program = nullptr;
    queue = nullptr;
    context = nullptr;
    // the library stays loaded: drivers keep threads running after their last context
  }

  void open_library() {
    const char* names[] = {"libOpenCL.so.1", "libOpenCL.so"};
    for (const char* n : names)
      if ((lib = ::dlopen(n, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
    if (!lib)
      throw Error("no OpenCL library (libOpenCL.so.1) could be loaded: install an OpenCL ICD loader and "
                  "driver, or compile the model with target=\"cpp\"");
#define DYDCA_OCL_RESOLVE(name)                                                                      \
    cl.name = reinterpret_cast<decltype(cl.name)>(::dlsym(lib, #name));                              \
    if (!cl.name) throw Error("the OpenCL library lacks " #name " (OpenCL 1.2 is required)");
    DYDCA_OCL_FUNCTIONS(DYDCA_OCL_RESOLVE)
#undef DYDCA_OCL_RESOLVE
  }

  // A string property through the two-call OpenCL pattern (size, then value); "" when absent.
  template <class Obj, class Info, class Getter>
  static std::string info_string(Getter get, Obj obj, Info what) {
    size_t n = 0;
    if (get(obj, what, 0, nullptr, &n) != CL_SUCCESS || n == 0) return "";
    std::string s(n, '\0');
    get(obj, what, n, s.data(), nullptr);
    return s.c_str();
  }
  std::string platform_info(cl_platform_id p, cl_platform_info what) { return info_string(cl.clGetPlatformInfo, p, what); }
  std::string device_info(cl_device_id d, cl_device_info what) { return info_string(cl.clGetDeviceInfo, d, what); }

  // The device: DYDCA_OPENCL_DEVICE = "<platform>:<device>" indices, or text the "<platform name> /
  // <device name>" contains; else the first GPU, else the first device of any kind.
  void pick_device() {
    cl_uint np = 0;
    cl_int e = cl.clGetPlatformIDs(0, nullptr, &np);
    if (e == CL_PLATFORM_NOT_FOUND_KHR || (e == CL_SUCCESS && np == 0))
      throw Error("no OpenCL platform was found (clGetPlatformIDs: " + std::string(error_name(e)) +
                  ", 0 platforms): install an OpenCL driver (ICD), or compile the model with target=\"cpp\", "
                  "which needs none");
    check(e, "clGetPlatformIDs", "listing the OpenCL platforms");
    std::vector<cl_platform_id> ps(np);
    check(cl.clGetPlatformIDs(np, ps.data(), nullptr), "clGetPlatformIDs", "listing the OpenCL platforms");
    struct Choice { cl_platform_id p; cl_device_id d; std::string label; bool gpu; };
    std::vector<Choice> all;
    for (cl_uint i = 0; i < np; ++i) {
      cl_uint nd = 0;
      if (cl.clGetDeviceIDs(ps[i], CL_DEVICE_TYPE_ALL, 0, nullptr, &nd) != CL_SUCCESS || nd == 0) continue;
      std::vector<cl_device_id> ds(nd);
      cl.clGetDeviceIDs(ps[i], CL_DEVICE_TYPE_ALL, nd, ds.data(), nullptr);
      for (cl_uint j = 0; j < nd; ++j) {
        cl_device_type t = 0;
        cl.clGetDeviceInfo(ds[j], CL_DEVICE_TYPE, sizeof t, &t, nullptr);
        all.push_back({ps[i], ds[j], std::to_string(i) + ":" + std::to_string(j) + " " +
                                         platform_info(ps[i], CL_PLATFORM_NAME) + " / " + device_info(ds[j], CL_DEVICE_NAME),
                       (t & CL_DEVICE_TYPE_GPU) != 0});
      }
    }
    if (all.empty())
      throw Error("the OpenCL platforms (" + std::to_string(np) + ") have no devices: compile the model "
                  "with target=\"cpp\" or install an OpenCL driver");
    const Choice* pick = nullptr;
    if (const char* want = std::getenv("DYDCA_OPENCL_DEVICE"); want && *want) {
      std::string w = want;
      for (const auto& c : all)
        if (c.label.compare(0, w.size() + 1, w + " ") == 0 || c.label.find(w) != std::string::npos) { pick = &c; break; }
      if (!pick) {
        std::string list;
        for (const auto& c : all) list += "\n  " + c.label;
        throw Error("DYDCA_OPENCL_DEVICE=" + w + " matches no OpenCL device; the devices are:" + list);
      }
    }
    for (const auto& c : all) if (!pick && c.gpu) pick = &c;
    if (!pick) pick = &all[0];
    platform = pick->p;
    device = pick->d;
    device_name = pick->label;
  }

  void build(const std::string& source, const char* const* kernel_names, int n_kernels) {
    cl_int e = CL_SUCCESS;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, cl_context_properties(platform), 0};
    context = cl.clCreateContext(props, 1, &device, nullptr, nullptr, &e);
    check(e, "clCreateContext", "on " + device_name);
    queue = cl.clCreateCommandQueue(context, device, 0, &e);
    check(e, "clCreateCommandQueue", "on " + device_name);
    const char* options = "-cl-std=CL1.2";
    std::string key = sha256_hex(platform_info(platform, CL_PLATFORM_NAME) + "\n" + platform_info(platform, CL_PLATFORM_VERSION) +
                                 "\n" + device_info(device, CL_DEVICE_NAME) + "\n" + device_info(device, CL_DRIVER_VERSION) +
                                 "\n" + options + "\n" + source);
    std::string dir = cache_dir(), path = dir.empty() ? "" : dir + "/" + key + ".bin", bin;
    if (!path.empty() && read_file(path, bin)) {
      const size_t n = bin.size();
      const auto* p = reinterpret_cast<const unsigned char*>(bin.data());
      cl_int status = CL_SUCCESS;
      program = cl.clCreateProgramWithBinary(context, 1, &device, &n, &p, &status, &e);
      if (e == CL_SUCCESS && status == CL_SUCCESS && cl.clBuildProgram(program, 1, &device, options, nullptr, nullptr) == CL_SUCCESS) {
        from_cache = true;
      } else {  // a stale or foreign binary: build from source and overwrite it
        if (program) cl.clReleaseProgram(program);
        program = nullptr;
      }
    }
    if (!program) {
      const char* src = source.c_str();
      const size_t len = source.size();
      program = cl.clCreateProgramWithSource(context, 1, &src, &len, &e);
      check(e, "clCreateProgramWithSource", "for the model's kernels");
      e = cl.clBuildProgram(program, 1, &device, options, nullptr, nullptr);
      if (e != CL_SUCCESS) {
        size_t n = 0;
        cl.clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &n);
        std::string log(n, '\0');
        cl.clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, n, log.data(), nullptr);
        check(e, "clBuildProgram", "building the model's kernels on " + device_name + ":\n" + log.substr(0, 4000));
      }
      if (!path.empty()) {
        size_t n = 0;
        if (cl.clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof n, &n, nullptr) == CL_SUCCESS && n > 0) {
          std::vector<unsigned char> b(n);
          unsigned char* bp = b.data();
          if (cl.clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof bp, &bp, nullptr) == CL_SUCCESS)
            write_file_atomic(path, b.data(), n);
        }
      }
    }
    kernels.assign(size_t(n_kernels), nullptr);
    for (int i = 0; i < n_kernels; ++i) {
      if (!kernel_names[i][0]) continue;
      kernels[size_t(i)] = cl.clCreateKernel(program, kernel_names[i], &e);
      check(e, "clCreateKernel", std::string("for kernel ") + kernel_names[i]);
    }
  }

  cl_mem buffer(size_t bytes, cl_mem_flags flags, const void* host, const std::string& what) {
    cl_int e = CL_SUCCESS;
    cl_mem b = cl.clCreateBuffer(context, flags, bytes > 0 ? bytes : 64, const_cast<void*>(host), &e);
    check(e, "clCreateBuffer", "allocating " + std::to_string(bytes) + " bytes for " + what + " on " + device_name);
    return b;
  }

  // Sets up everything a run needs; throws Error with the cause.
  void open(const std::string& source, const char* const* kernel_names, int n_kernels, size_t arena_bytes,
            const void* blob_data, size_t blob_bytes, int n_io) {
    open_library();
    pick_device();
    build(source, kernel_names, n_kernels);
    arena = buffer(arena_bytes, CL_MEM_READ_WRITE, nullptr, "the arena");
    blob = buffer(blob_bytes, CL_MEM_READ_ONLY | (blob_bytes ? CL_MEM_COPY_HOST_PTR : 0), blob_bytes ? blob_data : nullptr,
                  "the constants");
    status = buffer(sizeof(Status), CL_MEM_READ_WRITE, nullptr, "the status word");
    io.assign(size_t(n_io), nullptr);
    io_bytes.assign(size_t(n_io), 0);
  }

  // What a kernel refusing its inputs left in `status` (flag 0: nothing).
  struct Status {
    cl_int flag, pad;
    cl_long kernel, value, bound;
  };
  void clear_status() {
    static const Status zero{};
    write(status, 0, sizeof zero, &zero);
  }
  Status read_status() {
    Status st{};
    read(status, 0, sizeof st, &st);
    return st;
  }

  // Input or output buffer j, grown to at least `bytes` (kept between calls).
  void reserve_io(int j, size_t bytes) {
    if (io[size_t(j)] && io_bytes[size_t(j)] >= bytes) return;
    if (io[size_t(j)]) cl.clReleaseMemObject(io[size_t(j)]);
    io[size_t(j)] = nullptr;
    io[size_t(j)] = buffer(bytes, CL_MEM_READ_WRITE, nullptr, "input/output " + std::to_string(j));
    io_bytes[size_t(j)] = bytes;
  }

  // Blocking: the source may change or be freed as soon as it returns (a caller's input after a
  // failed run, a Loop's iteration number, a host-run op's output).
  void write(cl_mem b, size_t offset, size_t bytes, const void* src) {
    if (bytes == 0) return;
    check(cl.clEnqueueWriteBuffer(queue, b, CL_TRUE, offset, bytes, src, 0, nullptr, nullptr), "clEnqueueWriteBuffer",
          "copying to the device");
  }
  void read(cl_mem b, size_t offset, size_t bytes, void* dst) {
    if (bytes == 0) return;
    check(cl.clEnqueueReadBuffer(queue, b, CL_TRUE, offset, bytes, dst, 0, nullptr, nullptr), "clEnqueueReadBuffer",
          "copying a result from the device");
  }
  void copy(cl_mem dst, size_t dst_offset, cl_mem src, size_t src_offset, size_t bytes) {
    if (bytes == 0) return;
    check(cl.clEnqueueCopyBuffer(queue, src, dst, src_offset, dst_offset, bytes, 0, nullptr, nullptr),
          "clEnqueueCopyBuffer", "copying between device buffers");
  }
  void finish() { check(cl.clFinish(queue), "clFinish", "waiting for the device"); }

  // One byte of device memory (an If's condition): the only read-back control flow needs.
  bool read_flag(cl_mem b, size_t offset) {
    unsigned char v = 0;
    read(b, offset, 1, &v);
    return v != 0;
  }

  // Enqueues kernel `id` over `global` work-items (rounded up to whole work-groups of `local`; the
  // kernels guard their tails). Every kernel takes the same arguments: the arena, the constants,
  // the status word, the input/output buffers, then the symbols (dims) of this call.
  void launch(int id, const char* name, const int64_t* symbols, int n_symbols, int dims, const int64_t* global,
              const size_t* local, bool sync) {
    size_t g[3], l[3];
    for (int d = 0; d < dims; ++d) {
      if (global[d] <= 0) return;  // nothing to compute (an empty tensor)
      l[d] = local[d];
      g[d] = (size_t(global[d]) + l[d] - 1) / l[d] * l[d];
    }
    cl_kernel k = kernels[size_t(id)];
    cl_uint a = 0;
    auto arg = [&](size_t n, const void* v) {
      check(cl.clSetKernelArg(k, a, n, v), "clSetKernelArg", "argument " + std::to_string(a) + " of kernel " + name);
      ++a;
    };
    arg(sizeof(cl_mem), &arena);
    arg(sizeof(cl_mem), &blob);
    arg(sizeof(cl_mem), &status);
    for (size_t j = 0; j < io.size(); ++j) arg(sizeof(cl_mem), &io[j]);
    for (int s = 0; s < n_symbols; ++s) {
      cl_long v = symbols[s];
      arg(sizeof v, &v);
    }
    check(cl.clEnqueueNDRangeKernel(queue, k, cl_uint(dims), nullptr, g, l, 0, nullptr, nullptr),
          "clEnqueueNDRangeKernel", std::string("for kernel ") + name + " on " + device_name);
    if (sync) finish();  // profiling: the kernel's time, not its enqueueing
  }
};

}  // namespace dydca::ocl
