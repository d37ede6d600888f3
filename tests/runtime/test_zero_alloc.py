"""Zero allocation per call: after one warm-up run per shape, running a compiled library makes no
heap allocation (model library, runtime headers, libstdc++ and the thread pool's workers all
counted) while the shape changes on every call and, for an If model, the path does too.

The count is taken by tests/runtime/alloc_harness.cpp, a C++ program that interposes the malloc
family, dlopens the library through its generic C ABI (dydca_get_api) and runs it; Python's own
allocations never enter the measured phase."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import dydca
from dydca import zoo
from tests.codegen.test_if import DIMS, index_model, two_path_model

HERE = Path(__file__).resolve().parent
INCLUDE = HERE.parent.parent / "runtime_cpp" / "include"
# > 1 so that dydca::parallel_for shares loops out to the thread pool (started when the library
# loads, one worker per further core: no call allocates).
THREADS = 2
ROUNDS = 3
SR_SHAPES = [(1, 3, 8, 8), (2, 3, 21, 37), (1, 3, 64, 48), (4, 3, 16, 16)]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found")
    exe = tmp_path_factory.mktemp("alloc") / "alloc_harness"
    # -rdynamic exports the harness's malloc family so that shared libraries bind to it
    subprocess.run([cxx, "-std=c++17", "-O1", "-rdynamic", f"-I{INCLUDE}", str(HERE / "alloc_harness.cpp"),
                    "-o", str(exe), "-ldl"], check=True, capture_output=True, text=True)
    return exe


def dims_spec(shape) -> str:
    return "x".join(str(d) for d in shape)


def measure(harness, model, cases: list[str]) -> dict:
    """Runs the harness on a compiled model; returns the parsed counts."""
    lib = Path(model.build_dir) / model.manifest["library"]
    proc = subprocess.run([str(harness), str(lib), str(THREADS), str(ROUNDS), *cases],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"harness failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    setup = re.search(r"setup_allocations=(\d+)", proc.stdout)
    m = re.search(r"measured_runs=(\d+) allocations=(\d+) frees=(\d+) parallel_regions=(\d+)", proc.stdout)
    finite = re.search(r"finite=([01])", proc.stdout)
    assert setup and m and finite, proc.stdout
    return {"setup": int(setup[1]), "runs": int(m[1]), "allocations": int(m[2]), "frees": int(m[3]),
            "regions": int(m[4]), "finite": finite[1] == "1", "log": proc.stdout}


def assert_no_allocation(result, cases):
    # create() allocates the model and its arena, so the hook must have seen at least those two:
    # proof that it binds the dlopened library's allocations
    assert result["setup"] >= 2, result["log"]
    assert result["runs"] == ROUNDS * len(cases)
    # the kernels' multi-threaded paths ran (loops shared out by the thread pool), so the zero
    # covers the pool's per-loop work too, not only the serial fallbacks
    assert result["regions"] > 0, result["log"]
    assert result["allocations"] == 0 and result["frees"] == 0, (
        f"{result['allocations']} allocations / {result['frees']} frees in {result['runs']} runs "
        f"after warm-up:\n{result['log']}")
    assert result["finite"], result["log"]


def test_sr_model_allocates_nothing_across_shapes(harness):
    model = dydca.compile(zoo.edsr(nf=16, blocks=2), dims=DIMS)
    cases = [dims_spec(s) for s in SR_SHAPES]
    assert_no_allocation(measure(harness, model, cases), cases)


def test_if_model_allocates_nothing_across_paths_and_shapes(harness):
    model = dydca.compile(two_path_model(), dims=DIMS)
    # every call changes the shape, and consecutive calls alternate the path
    cases = [f"{dims_spec(s)},:{i % 2}" for i, s in enumerate(SR_SHAPES + SR_SHAPES[::-1])]
    assert_no_allocation(measure(harness, model, cases), cases)


def test_index_routed_model_allocates_nothing_across_paths_and_shapes(harness):
    model = dydca.compile(index_model(), dims=DIMS)
    cases = [f"{dims_spec(s)},:{i % 3}" for i, s in enumerate(SR_SHAPES + SR_SHAPES[:2])]
    assert_no_allocation(measure(harness, model, cases), cases)


def test_strided_gemm_model_allocates_nothing_across_shapes(harness):
    """Strided 1x1 convs on the GEMM path (their input gathered into the plan's scratch) and on the
    direct kernel, the shape switching between them on every call."""
    from tests.codegen.test_strided_gemm import projection_model

    model = dydca.compile(projection_model(), dims={"n": (1, 3), "h": (1, 61), "w": (1, 80)})
    cases = [f"{n}x20x{h}x{w},{n}x8x{w}" for n, h, w in [(1, 27, 35), (2, 9, 9), (3, 61, 33), (1, 20, 80)]]
    assert_no_allocation(measure(harness, model, cases), cases)


def test_harness_counts_allocations(harness, tmp_path):
    """The hook must see an allocation that does happen, or a zero above proves nothing: a library
    whose run calls malloc/new on every call is counted."""
    src = tmp_path / "leaky.cpp"
    src.write_text(ALLOCATING_LIBRARY)
    lib = tmp_path / "libleaky.so"
    # -O0: at higher levels GCC may delete a matched malloc/free or new/delete pair
    subprocess.run([shutil.which("g++"), "-std=c++17", "-O0", "-shared", "-fPIC", f"-I{INCLUDE}", str(src), "-o", str(lib)],
                   check=True, capture_output=True, text=True)
    proc = subprocess.run([str(harness), str(lib), str(THREADS), str(ROUNDS), "4", "8"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"measured_runs=(\d+) allocations=(\d+) frees=(\d+)", proc.stdout)
    assert m and int(m[1]) == 2 * ROUNDS
    # one malloc, one operator new and one std::vector per run, each freed
    assert int(m[2]) == 3 * int(m[1]) and int(m[3]) == 3 * int(m[1]), proc.stdout


# A minimal library on the dydca C ABI: y = 2x on a rank-1 float input, allocating on every run.
ALLOCATING_LIBRARY = r"""
#include <cstdlib>
#include <cstring>
#include <vector>
#include "dydca/api.h"
static int run(void*, const void* const* in, const int64_t* const* s, void* const* out) {
  float* tmp = static_cast<float*>(std::malloc(sizeof(float) * s[0][0]));
  int* boxed = new int(1);
  std::vector<float> v(s[0][0]);
  for (int64_t i = 0; i < s[0][0]; ++i) tmp[i] = 2 * static_cast<const float*>(in[0])[i] * *boxed + v[i];
  std::memcpy(out[0], tmp, sizeof(float) * s[0][0]);
  std::free(tmp);
  delete boxed;
  return DYDCA_OK;
}
static int shapes(void*, const int64_t* const* s, int64_t* const* o) { o[0][0] = s[0][0]; return DYDCA_OK; }
static const char* const names[] = {"x"}, *const onames[] = {"y"};
static const int dt[] = {1}, rk[] = {1};
static const int64_t lo[] = {1}, hi[] = {64};
static const int64_t* const los[] = {lo}, *const his[] = {hi};
static int threads = 1;
static const dydca_api api = {DYDCA_ABI_VERSION, "leaky",
  []() -> void* { return &threads; }, [](void*) {}, [](void*, int t) { threads = t; },
  [](const void*) { return threads; }, shapes, run, [](const void*) { return ""; },
  [](const void*, int64_t* const*) { return 0; }, 0,
  [](void*, int) {}, [](const void*, double*) { return int64_t(0); }, 0, nullptr, nullptr,
  1, 1, names, onames, dt, dt, rk, rk, los, his, 0};
extern "C" const dydca_api* dydca_get_api(void) { return &api; }
"""


def test_execution_determined_shapes_allocate_nothing(harness):
    """NonZero's count, an If whose branches differ in shape, and a Loop ended early by its
    condition: shapes only the run decides still fit the planned arena, with no allocation."""
    from tests.codegen.test_execution_dims import DIMS as IF_DIMS, differing_branches_model, nonzero_gather_model
    from tests.codegen.test_loop import DIMS as LOOP_DIMS, residual_loop
    nz = dydca.compile(nonzero_gather_model(), dims={"n": (1, 1 << 17)})  # large enough to go parallel
    cases = [dims_spec(s) for s in [(1, 8), (1 << 17, 8), (37, 8), (50000, 8)]]
    assert_no_allocation(measure(harness, nz, cases), cases)
    branches = dydca.compile(differing_branches_model(), dims=IF_DIMS)
    cases = [f"{dims_spec(s)},:{i % 2}" for i, s in enumerate([(1, 3, 2, 2), (4, 3, 64, 64), (2, 3, 17, 30)] * 2)]
    assert_no_allocation(measure(harness, branches, cases), cases)
    loop = dydca.compile(residual_loop(threshold=0.6), dims=LOOP_DIMS)
    cases = [dims_spec(s) for s in [(1, 4, 8, 8), (2, 4, 40, 40), (1, 4, 17, 33)]]
    assert_no_allocation(measure(harness, loop, cases), cases)
