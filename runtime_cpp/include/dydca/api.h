/* dydca: the C ABI every generated library exports, for loaders that open any model.
 * A model's own header (build/<name>.h) declares the same functions under <name>_ prefixes. */
#ifndef DYDCA_API_H
#define DYDCA_API_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DYDCA_ABI_VERSION 3

/* return codes of run/output_shapes */
#define DYDCA_OK 0
#define DYDCA_INVALID_INPUT 1 /* a shape outside the compiled ranges, a bad argument */
#define DYDCA_FAILED 2        /* anything else; see last_error */

typedef struct dydca_api {
  int abi_version;
  const char* name;
  void* (*create)(void);
  void (*destroy)(void* model);
  void (*set_threads)(void* model, int threads);
  int (*get_threads)(const void* model);
  /* out_shapes[j] must hold output_rank(j) dims. A dim known only after running (NonZero's
   * count, an extent the branch taken decides) is given at its upper bound: size buffers so. */
  int (*output_shapes)(void* model, const int64_t* const* in_shapes, int64_t* const* out_shapes);
  int (*run)(void* model, const void* const* inputs, const int64_t* const* in_shapes, void* const* outputs);
  const char* (*last_error)(const void* model);
  /* the exact output shapes of the last successful run (outputs lie at the start of the buffers) */
  int (*result_shapes)(const void* model, int64_t* const* out_shapes);
  int num_runtime_dims; /* 0: output_shapes is exact, result_shapes need not be asked */
  /* profiling: wall seconds per top-level kernel, summed over the runs since set_profiling(1) */
  void (*set_profiling)(void* model, int on);
  int64_t (*profile)(const void* model, double* seconds); /* returns the profiled runs */
  int num_kernels;                  /* every kernel, those inside If branches and Loop bodies too */
  const char* const* kernel_names; /* "<op> node \"<name>\"" per kernel */
  const int* kernel_parents;       /* the kernel (If, Loop) running each one; -1 at the top */
  int num_inputs, num_outputs;
  const char* const* input_names;
  const char* const* output_names;
  const int* input_dtypes; /* ONNX TensorProto element types */
  const int* output_dtypes;
  const int* input_ranks;
  const int* output_ranks;
  const int64_t* const* input_dim_min; /* [input][dim] */
  const int64_t* const* input_dim_max;
  uint64_t arena_bytes;
} dydca_api;

const dydca_api* dydca_get_api(void);

#ifdef __cplusplus
}
#endif
#endif
