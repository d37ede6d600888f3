"""TopK against onnxruntime. k known at compile time (a number, or a dim expression from the input
shapes) fixes the output extent (category 3 in effect); k as a run-time tensor makes it an
execution-determined dim that the kernel checks and sets. Results must equal onnxruntime's
exactly: ties (the lower index first), NaN (above every number), and sorted=0, whose order is
onnxruntime's selection order, not a sorted one."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import dydca
from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from dydca.frontends.ops import ModelError
from dydca.frontends.ops.selection import TOPK_MAX_WORKERS
from tests.oracle import check_model, const, make_model, tensor
from tests.runtime.test_zero_alloc import assert_no_allocation, harness, measure  # noqa: F401 (fixture)

ELEM = {np.float32: TensorProto.FLOAT, np.int64: TensorProto.INT64, np.int32: TensorProto.INT32}
X3 = ["a", "n", "c"]
DIMS3 = {"a": (1, 6), "n": (1, 300), "c": (1, 5)}
SHAPES3 = [(1, 1, 1), (3, 7, 2), (6, 300, 5), (2, 40, 1), (1, 5, 5)]
# (axis, largest, sorted): every axis position, a negative axis, both orders, both sorted modes
CONFIGS = [(0, 1, 1), (1, 0, 1), (-1, 1, 0), (-2, 1, 1), (2, 0, 0), (1, 1, 0)]


def topk_node(j, axis, largest, sorted_):
    return helper.make_node("TopK", ["x", f"k{j}"], [f"v{j}", f"i{j}"], axis=axis, largest=largest, sorted=sorted_)


def topk_outputs(elem, count):
    return [t for j in range(count)
            for t in (tensor(f"v{j}", elem, None), tensor(f"i{j}", TensorProto.INT64, None))]


def runtime_k_model(dtype, dims=X3, configs=CONFIGS):
    """One TopK per config over the same input, each with its own run-time k input."""
    elem = ELEM[dtype]
    nodes = [topk_node(j, *c) for j, c in enumerate(configs)]
    inputs = [tensor("x", elem, dims)] + [tensor(f"k{j}", TensorProto.INT64, [1]) for j in range(len(configs))]
    return make_model(nodes, inputs, topk_outputs(elem, len(configs)), opset=11)


def sample(shape, dtype, rng, ties):
    """Distinct values (normal floats, wide ints), or few distinct values (ties) with NaNs for floats."""
    if ties:
        x = rng.integers(-3, 4, shape).astype(dtype)
        if dtype == np.float32:
            x[rng.random(shape) < 0.1] = np.nan
        return x
    if dtype == np.float32:
        return rng.standard_normal(shape).astype(np.float32)
    return rng.integers(-10 ** 6, 10 ** 6, shape).astype(dtype)


class Oracle:
    """A model compiled once by dydca and loaded once in onnxruntime; `check` runs both on the given
    feeds (check_model draws its own, and k, ties and NaNs must be chosen here) and requires equal
    outputs: TopK copies values, so equal means bit-equal, NaN positions included."""

    def __init__(self, model, dims):
        self.compiled = dydca.compile(model, dims=dims)
        self.sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def check(self, feeds, what):
        got, ref = self.compiled.run(feeds), self.sess.run(None, feeds)
        assert len(got) == len(ref)
        for j, (g, r) in enumerate(zip(got, ref)):
            assert (g.shape, g.dtype) == (r.shape, r.dtype), f"{what} output {j}: {g.shape} {g.dtype} != onnxruntime's"
            np.testing.assert_array_equal(g, r, err_msg=f"{what} output {j}")
        return got


def k_choices(n):
    """0, 1, small (heap path), about half and all of the axis (nth_element path)."""
    return sorted({0, min(1, n), min(3, n), n // 2, n - 1 if n > 1 else n, n})


# ---------------------------------------------------------------- k at run time

def test_runtime_k_is_an_execution_dim_bounded_by_the_axis_dim():
    g = plan(from_onnx(runtime_k_model(np.float32), dims=DIMS3)).graph
    assert {name: str(bound) for name, bound in g.dims.runtime.items()} == \
        {f"v{j}.k": X3[axis] for j, (axis, _, _) in enumerate(CONFIGS)}
    for j, (axis, _, _) in enumerate(CONFIGS):
        for out in (f"v{j}", f"i{j}"):
            extent = g.values[out].shape[axis]
            assert g.dims.is_runtime(extent)
            assert g.dims.lower_bound(extent) == 0 and g.dims.upper_bound(extent) == DIMS3[X3[axis]][1]
    assert g.values["i0"].dtype == np.int64


def test_scratch_holds_one_position_per_axis_element_for_each_capped_worker():
    header = (Path(__file__).resolve().parents[2] / "runtime_cpp/include/dydca/selection.h").read_text()
    assert int(re.search(r"constexpr int kTopKMaxWorkers = (\d+);", header)[1]) == TOPK_MAX_WORKERS
    for rows, workers in [((1, 10), 10), ((1, 200), TOPK_MAX_WORKERS)]:
        model = runtime_k_model(np.float32, ["r", "n"], [(1, 1, 1)])
        p = plan(from_onnx(model, dims={"r": rows, "n": (1, 5000)})).plan
        assert [b.bytes for b in p.scratch.values()] == [workers * 5000 * 4]
    p = plan(from_onnx(const_k_model(1), dims={"a": (1, 6), "n": (3, 300), "c": (2, 5)})).plan
    # k = 1 (node 0) needs none; node 1 (k = 2 along c <= 5, 6 x 300 rows): the capped workers
    assert [b.bytes for b in p.scratch.values()] == [TOPK_MAX_WORKERS * 5 * 4]


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_runtime_k_on_every_axis_matches_onnxruntime(dtype):
    oracle = Oracle(runtime_k_model(dtype), DIMS3)
    rng = np.random.default_rng(0)
    for shape in SHAPES3:
        choices = [k_choices(shape[axis]) for axis, _, _ in CONFIGS]
        for step in range(max(map(len, choices))):  # each node walks through its axis's choices
            ks = {f"k{j}": np.array([c[min(step, len(c) - 1)]], np.int64) for j, c in enumerate(choices)}
            for ties in (False, True):
                feeds = {"x": sample(shape, dtype, rng, ties), **ks}
                got = oracle.check(feeds, f"{shape} k={[int(k[0]) for k in ks.values()]} ties={ties}")
                assert got[0].shape[0] == ks["k0"][0]


ROWS_CONFIGS = [(1, 1, 0), (-1, 0, 0), (1, 0, 1), (0, 1, 1)]
ROWS_DIMS = {"r": (1, 64), "n": (1, 5000)}


@pytest.fixture(scope="module")
def rows_oracle():
    """[r, n] with n up to 5000: enough work per call that the rows are split across threads."""
    return Oracle(runtime_k_model(np.float32, ["r", "n"], ROWS_CONFIGS), ROWS_DIMS)


def rows_feeds(x, k):
    """k for the nodes along n; the one along r (the last) gets k capped at r."""
    ks = [k, k, k, min(k, x.shape[0])]
    return {"x": x, **{f"k{j}": np.array([v], np.int64) for j, v in enumerate(ks)}}


def test_unsorted_order_is_onnxruntimes_for_every_k(rows_oracle):
    """sorted=0 lists the elements in the order onnxruntime's selection leaves them (a running best,
    its heap, or nth_element, chosen by k and n): every k of every n up to 40, ties and NaNs too."""
    rng = np.random.default_rng(2)
    for n in range(1, 41):
        for k in range(n + 1):
            rows_oracle.check(rows_feeds(sample((3, n), np.float32, rng, ties=k % 2 == 1), k), f"n={n} k={k}")


def test_rows_split_across_threads_match_onnxruntime(rows_oracle):
    rows_oracle.compiled.set_threads(2)
    rng = np.random.default_rng(1)
    for shape in [(64, 5000), (64, 1000), (3, 5000), (17, 999)]:
        n = shape[1]
        for k in (1, 5, 40, n // 3, n):
            rows_oracle.check(rows_feeds(sample(shape, np.float32, rng, ties=k % 2 == 0), k), f"{shape} k={k}")


@pytest.mark.parametrize("bad", [-1, 8])
def test_runtime_k_out_of_range_raises_value_error(rows_oracle, bad):
    feeds = rows_feeds(np.ones((4, 7), np.float32), 2)
    feeds["k0"] = np.array([bad], np.int64)
    with pytest.raises(ValueError, match=rf"TopK node .*k = {bad} is out of range for an axis of size 7"):
        rows_oracle.compiled.run(feeds)
    feeds["k0"] = np.array([7], np.int64)  # the model is usable after the refused run
    rows_oracle.check(feeds, "after a refused k")


# ---------------------------------------------------------------- k known at compile time

def const_k_model(k_value, opset=11):
    nodes = [topk_node(0, 1, 1, 1), topk_node(1, -1, 0, 1)]
    inits = [const("k0", np.array([k_value], np.int64)), const("k1", np.array([2], np.int64))]
    return make_model(nodes, [tensor("x", TensorProto.FLOAT, X3)], topk_outputs(TensorProto.FLOAT, 2), inits,
                      opset=opset)


def test_constant_k_fixes_the_extent_and_matches_onnxruntime():
    dims = {"a": (1, 6), "n": (3, 300), "c": (2, 5)}
    g = from_onnx(const_k_model(3), dims=dims)
    assert not g.dims.runtime
    assert [str(d) for d in g.values["i0"].shape] == ["a", "3", "c"]
    assert [str(d) for d in g.values["v1"].shape] == ["a", "n", "2"]
    check_model(const_k_model(3), [{"x": (1, 3, 2)}, {"x": (6, 300, 5)}, {"x": (2, 17, 3)}], dims)


def test_k_from_the_input_shape_is_a_dim_expression():
    """k = n // 2 through Shape -> Gather -> Div: the extent is that expression, 0 when n = 1."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "one"], ["n1"], axis=0),
             helper.make_node("Div", ["n1", "two"], ["k0"]),
             topk_node(0, 1, 0, 1)]
    model = make_model(nodes, [tensor("x", TensorProto.FLOAT, X3)], topk_outputs(TensorProto.FLOAT, 1),
                       [const("one", np.array([1], np.int64)), const("two", np.array(2, np.int64))])
    g = from_onnx(model, dims=DIMS3)
    assert not g.dims.runtime
    assert str(g.values["v0"].shape[1]) == "floor(n/2)"
    check_model(model, [{"x": (1, 1, 1)}, {"x": (3, 7, 2)}, {"x": (6, 300, 5)}, {"x": (2, 40, 1)}], DIMS3)


@pytest.mark.parametrize("opset", [9, 10])
def test_older_opsets_k_attribute_and_k_input(opset):
    """opset 1 (here 9): k is an attribute; opset 10: k is an input; neither has largest/sorted."""
    if opset == 9:
        node = helper.make_node("TopK", ["x"], ["v0", "i0"], axis=1, k=4)
        inits = []
    else:
        node = helper.make_node("TopK", ["x", "k0"], ["v0", "i0"], axis=1)
        inits = [const("k0", np.array([4], np.int64))]
    model = make_model([node], [tensor("x", TensorProto.FLOAT, X3)], topk_outputs(TensorProto.FLOAT, 1), inits,
                       opset=opset)
    check_model(model, [{"x": (1, 4, 1)}, {"x": (3, 50, 2)}], {"a": (1, 6), "n": (4, 300), "c": (1, 5)})


@pytest.mark.parametrize("how", ["number", "shape"])
def test_constant_k_that_can_exceed_the_axis_is_refused(how):
    if how == "number":
        model = const_k_model(5)
    else:  # k = m, the length of another input: m = 4 exceeds n = 3
        nodes = [helper.make_node("Shape", ["y"], ["k0"]), topk_node(0, 1, 1, 1)]
        model = make_model(nodes, [tensor("x", TensorProto.FLOAT, X3), tensor("y", TensorProto.FLOAT, ["m"])],
                           topk_outputs(TensorProto.FLOAT, 1))
    dims = {"a": (1, 6), "n": (3, 300), "c": (2, 5), **({"m": (1, 4)} if how == "shape" else {})}
    with pytest.raises(ModelError, match=r"TopK.*k = .* can exceed the axis dimension n"):
        from_onnx(model, dims=dims)


def test_k_from_an_execution_determined_dim_is_checked_at_run_time():
    """k = the number of positive elements of y (NonZero's count): an expression known before the
    kernel runs, whose bound (m) cannot be compared with n at compile time, so the kernel checks it."""
    nodes = [helper.make_node("Greater", ["y", "zero"], ["pos"]), helper.make_node("NonZero", ["pos"], ["nz"]),
             helper.make_node("Shape", ["nz"], ["s"]), helper.make_node("Gather", ["s", "one"], ["k0"], axis=0),
             topk_node(0, -1, 1, 1)]
    model = make_model(nodes, [tensor("x", TensorProto.FLOAT, ["n"]), tensor("y", TensorProto.FLOAT, ["m"])],
                       topk_outputs(TensorProto.FLOAT, 1),
                       [const("zero", np.array(0, np.float32)), const("one", np.array([1], np.int64))])
    oracle = Oracle(model, {"n": (1, 100), "m": (1, 100)})
    rng = np.random.default_rng(3)
    for n, m in [(1, 1), (10, 30), (100, 100), (50, 7)]:
        y = rng.standard_normal(m).astype(np.float32)
        y[np.argsort(y)[: max(m - n, 0)]] = -1  # at most n positive
        oracle.check({"x": rng.standard_normal(n).astype(np.float32), "y": y}, f"n={n} m={m}")
    with pytest.raises(ValueError, match=r"k = 5 is out of range for an axis of size 4"):
        oracle.compiled.run({"x": np.zeros(4, np.float32), "y": np.ones(5, np.float32)})


def test_k_tensor_of_another_shape_is_refused():
    model = make_model([topk_node(0, -1, 1, 1)],
                       [tensor("x", TensorProto.FLOAT, X3), tensor("k0", TensorProto.INT64, [2])],
                       topk_outputs(TensorProto.FLOAT, 1), opset=11)
    with pytest.raises(ModelError, match=r"TopK.*1-element 1-D tensor"):
        from_onnx(model, dims=DIMS3)


# ---------------------------------------------------------------- no allocation per call

def test_topk_allocates_nothing_per_call(harness):  # noqa: F811 (the imported fixture)
    model = dydca.compile(runtime_k_model(np.float32, ["r", "n"], ROWS_CONFIGS), dims=ROWS_DIMS)
    # shapes and k change every call; heap and nth_element paths, split across threads and not
    cases = ["64x5000,1:5,1:5,1:5,1:2", "8x100,1:60,1:100,1:3,1:8", "64x1000,1:700,1:0,1:999,1:1",
             "1x1,1:1,1:1,1:0,1:1"]
    assert_no_allocation(measure(harness, model, cases), cases)
