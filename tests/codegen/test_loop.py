"""Loop end to end against onnxruntime: carried values and scan outputs, a trip count that is a
constant or an expression of the input dims, a run-time condition ending the loop early (the scan
extent is then execution-determined), and the iteration number in shape arithmetic."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from dydca.frontends import from_onnx
from dydca.frontends.ops import ModelError
from tests.oracle import check_model, const, make_model, tensor

I64, F32, BOOL = TensorProto.INT64, TensorProto.FLOAT, TensorProto.BOOL


def body(nodes, inputs, outputs, inits=()):
    return helper.make_graph(nodes, "body", inputs, outputs, list(inits))


def loop11_like(trips=5):
    """The ONNX test_loop11 body: y += x[i:i+1] each trip, every y scanned out. The slice bounds are
    expressions of the iteration number."""
    b = body([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
              helper.make_node("Add", ["iter", "one"], ["end"]),
              helper.make_node("Unsqueeze", ["iter", "ax0"], ["start1"]),
              helper.make_node("Unsqueeze", ["end", "ax0"], ["end1"]),
              helper.make_node("Slice", ["xs", "start1", "end1"], ["sl"]),
              helper.make_node("Add", ["y_in", "sl"], ["y_out"]),
              helper.make_node("Identity", ["y_out"], ["scan"])],
             [tensor("iter", I64, []), tensor("cond_in", BOOL, []), tensor("y_in", F32, [1])],
             [tensor("cond_out", BOOL, []), tensor("y_out", F32, [1]), tensor("scan", F32, [1])],
             [const("xs", np.arange(1, 6, dtype=np.float32)), const("one", np.array(1, np.int64)),
              const("ax0", np.array([0], np.int64))])
    node = helper.make_node("Loop", ["M", "cond", "y"], ["y_final", "scans"], body=b)
    return make_model([node], [tensor("cond", BOOL, []), ("y", [1])],
                      [tensor("y_final", F32, None), tensor("scans", F32, None)],
                      [const("M", np.array(trips, np.int64))])


def test_iteration_number_drives_slices_and_scans_stack_every_trip():
    model = loop11_like()
    m = check_model(model, [{"cond": (), "y": (1,)}])
    for start in (True, False):
        y, scans = m.run({"cond": np.array(start), "y": np.array([2], np.float32)})
        assert scans.shape == ((5, 1) if start else (0, 1))


def residual_loop(threshold=None):
    """A residual conv block applied repeatedly to an image (carried), trip count = h // 8 from the
    input's shape; each trip's mean is scanned out. With a threshold, the loop stops once the mean
    exceeds it (a run-time condition)."""
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((4, 4, 3, 3)) * 0.2).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x_in", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Add", ["x_in", "r"], ["x_out"]),
             helper.make_node("ReduceMean", ["x_out"], ["mean"], keepdims=0)]
    if threshold is None:
        nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    else:
        nodes.append(helper.make_node("Less", ["mean", "limit"], ["cond_out"]))
    b = body(nodes, [tensor("i", I64, []), tensor("cond_in", BOOL, []), tensor("x_in", F32, None)],
             [tensor("cond_out", BOOL, []), tensor("x_out", F32, None), tensor("mean", F32, [])],
             [const("W", W), const("limit", np.array(threshold or 0, np.float32))])
    pre = [helper.make_node("Shape", ["x"], ["shp"]),
           helper.make_node("Gather", ["shp", "two"], ["h"]),
           helper.make_node("Div", ["h", "eight"], ["M"]),
           helper.make_node("Loop", ["M", "", "x"], ["y", "means"], body=b)]
    return make_model(pre, [("x", ["n", 4, "h", "w"])], [tensor("y", F32, None), tensor("means", F32, None)],
                      [const("two", np.array(2, np.int64)), const("eight", np.array(8, np.int64))])


SHAPES = [{"x": s} for s in [(1, 4, 8, 8), (2, 4, 17, 9), (1, 4, 40, 33)]]
DIMS = {"n": (1, 2), "h": (8, 40), "w": (8, 40)}


def test_trip_count_from_the_input_shape_with_a_carried_image():
    check_model(residual_loop(), SHAPES, dims=DIMS)


def test_condition_ends_the_loop_early_and_the_scan_extent_follows():
    m = check_model(residual_loop(threshold=0.6), SHAPES, dims=DIMS)
    g = from_onnx(residual_loop(threshold=0.6), dims=DIMS)
    assert g.dims.is_runtime(g.values["means"].shape[0])


def test_carried_value_changing_shape_is_refused_naming_the_node():
    b = body([helper.make_node("Identity", ["c"], ["c2"]),
              helper.make_node("Concat", ["v", "v"], ["v2"], axis=0)],
             [tensor("i", I64, []), tensor("c", BOOL, []), tensor("v", F32, [2])],
             [tensor("c2", BOOL, []), tensor("v2", F32, None)])
    model = make_model([helper.make_node("Loop", ["M", "", "x"], ["y"], name="grow", body=b)],
                       [("x", [2])], ["y"], [const("M", np.array(3, np.int64))])
    with pytest.raises(ModelError, match=r"'grow' \(Loop\).*loop-carried value 0 .*changes"):
        from_onnx(model)


def test_run_time_trip_count_is_refused_when_the_loop_scans():
    model = loop11_like()
    model.graph.initializer.pop(0)  # M becomes...
    model.graph.input.append(tensor("M", I64, []))
    with pytest.raises(ModelError, match=r"trip count 'M' must be known at compile time"):
        from_onnx(model)
