"""Execution-determined dims (the fourth category): NonZero's count and the extent an If's branch
picks are materialised at run time, bounded in the plan, and flow into later shape expressions."""
import numpy as np
import pytest
from onnx import TensorProto, helper

import dydca
from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from tests.oracle import check_model, const, make_model, tensor


def nonzero_gather_model():
    """Keeps the rows of x whose sum is positive: NonZero -> Squeeze -> Gather, then element-wise
    work on the gathered rows, whose count only the data decides."""
    nodes = [helper.make_node("ReduceSum", ["x", "ax1"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["m"]),
             helper.make_node("NonZero", ["m"], ["nz"]),
             helper.make_node("Squeeze", ["nz", "ax0"], ["rows"]),
             helper.make_node("Gather", ["x", "rows"], ["g"], axis=0),
             helper.make_node("Relu", ["g"], ["r"]),
             helper.make_node("Mul", ["r", "two"], ["y"])]
    inits = [const("ax1", np.array([1], np.int64)), const("ax0", np.array([0], np.int64)),
             const("zero", np.array(0, np.float32)), const("two", np.array(2, np.float32))]
    return make_model(nodes, [("x", ["n", 8])], [tensor("y", TensorProto.FLOAT, None),
                                                tensor("nz", TensorProto.INT64, None)], inits)


def test_nonzero_count_is_an_execution_dim_bounded_by_the_input_size():
    g = plan(from_onnx(nonzero_gather_model(), dims={"n": (1, 100)})).graph
    (name, bound), = g.dims.runtime.items()
    assert str(bound) == "n"
    assert g.dims.upper_bound(g.values["y"].shape[0]) == 100
    assert g.dims.lower_bound(g.values["y"].shape[0]) == 0


def test_nonzero_driven_gather_matches_onnxruntime_at_every_count():
    m = check_model(nonzero_gather_model(), [{"x": (n, 8)} for n in (1, 7, 64, 100)], dims={"n": (1, 100)})
    # none selected and all selected: the count may be 0 or the bound
    for x in (-np.ones((5, 8), np.float32), np.ones((5, 8), np.float32)):
        y, nz = m.run({"x": x})
        assert y.shape == (0 if x[0, 0] < 0 else 5, 8) and nz.shape == (1, y.shape[0])


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.bool_])
def test_nonzero_on_each_element_type_in_row_major_order(dtype):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    model = make_model([helper.make_node("NonZero", ["x"], ["y"])], [tensor("x", elem, ["a", "b", 5])],
                       [tensor("y", TensorProto.INT64, None)])
    check_model(model, [{"x": s} for s in [(1, 1, 5), (3, 4, 5), (40, 700, 5)]], dims={"a": (1, 40), "b": (1, 700)})


def branch(name, nodes, out, inits=()):
    return helper.make_graph(nodes, name, [], [tensor(out, TensorProto.FLOAT, None)], list(inits))


def differing_branches_model():
    """then: the input as is; else: a 2x2 max-pool, half the size. What follows reads the result's
    shape (Shape -> output) and works on it (Add), so the extent the branch picks flows on."""
    then = branch("full", [helper.make_node("Relu", ["x"], ["t"])], "t")
    other = branch("half", [helper.make_node("MaxPool", ["x"], ["e"], kernel_shape=[2, 2], strides=[2, 2])], "e")
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
             helper.make_node("Add", ["y", "one"], ["z"]),
             helper.make_node("Shape", ["y"], ["s"]),
             helper.make_node("ReduceMean", ["y"], ["m"], axes=[2, 3], keepdims=0)]
    return make_model(nodes, [("x", ["n", 3, "h", "w"]), tensor("c", TensorProto.BOOL, [])],
                      [tensor("z", TensorProto.FLOAT, None), tensor("s", TensorProto.INT64, None),
                       tensor("m", TensorProto.FLOAT, None)], [const("one", np.array(1, np.float32))])


DIMS = {"n": (1, 4), "h": (2, 64), "w": (2, 64)}


def test_if_whose_branches_differ_in_shape_bounds_the_dim_by_the_larger():
    g = plan(from_onnx(differing_branches_model(), dims=DIMS)).graph
    n, c, h, w = g.values["z"].shape
    assert g.dims.is_runtime(h) and g.dims.is_runtime(w) and not g.dims.is_runtime(n)
    assert g.dims.upper_bound(h * w) == 64 * 64


@pytest.mark.parametrize("taken", [True, False])
def test_if_whose_branches_differ_in_shape_matches_onnxruntime(taken):
    model = differing_branches_model()
    shapes = [(1, 3, 2, 2), (2, 3, 17, 30), (4, 3, 64, 64)]
    m = dydca.compile(model, dims=DIMS)
    import onnxruntime as ort
    from tests.oracle import assert_close
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for s in shapes:
        feeds = {"x": rng.standard_normal(s).astype(np.float32), "c": np.array(taken)}
        for got, ref in zip(m.run(feeds), sess.run(None, feeds)):
            assert_close(got, ref, what=f"{s} then={taken}")
