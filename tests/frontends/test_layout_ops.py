"""Shape and value rules of the data-movement ops (no compilation): symbolic output shapes are
checked against onnx's reference evaluator at concrete sizes, value rules against numpy, and
unsupported forms against their error messages."""
from __future__ import annotations

import numpy as np
import pytest
import sympy
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from dydca.frontends.onnx_import import from_onnx
from dydca.frontends.ops import ModelError
from dydca.frontends.ops.layout import fast_factor_mask, nearest_map
from tests.oracle import make_model, tensor

I64 = TensorProto.INT64
X4 = ("x", ["n", "c", "h", "w"])
DIMS4 = {"n": (1, 3), "c": (1, 16), "h": (1, 40), "w": (1, 70)}


def node(op, ins, out, **attrs):
    return helper.make_node(op, ins, out if isinstance(out, list) else [out], **attrs)


def i64(*v):
    return np.array(v, np.int64)


def check_shapes(model, dims, input_shapes_list):
    """Our symbolic output shapes, evaluated at each set of input shapes, equal the reference's."""
    graph = from_onnx(model, dims=dims)
    ref = ReferenceEvaluator(model)
    for shapes in input_shapes_list:
        values = {}
        for name, shape in shapes.items():
            for d, size in zip(graph.values[name].shape, shape):
                if not d.is_Integer:
                    values[str(d)] = size
        feeds = {vi.name: np.zeros(shapes[vi.name], helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
                 for vi in model.graph.input}
        for name, out in zip(graph.outputs, ref.run(None, feeds)):
            got = tuple(graph.dims.evaluate(d, values) for d in graph.values[name].shape)
            assert got == out.shape, f"{name} at {shapes}: {got} != reference {out.shape}"
    return graph


def test_slice_shapes_symbolic():
    nodes = [node("Slice", ["x", "s1", "e1", "a1", "p1"], "a"), node("Slice", ["x", "s2", "e2", "a2"], "b"),
             node("Slice", ["x", "s3", "e3", "a3", "p3"], "c")]
    inits = [("s1", i64(-1, 1)), ("e1", i64(-1000, 100)), ("a1", i64(3, 2)), ("p1", i64(-2, 3)),
             ("s2", i64(-5, 0)), ("e2", i64(-1, np.iinfo(np.int64).max)), ("a2", i64(2, 3)),
             ("s3", i64(2)), ("e3", i64(0)), ("a3", i64(1)), ("p3", i64(-1))]
    graph = check_shapes(make_model(nodes, [X4], ["a", "b", "c"], inits), DIMS4,
                         [{"x": (1, 1, 1, 1)}, {"x": (2, 3, 4, 5)}, {"x": (3, 16, 40, 70)}, {"x": (1, 2, 7, 2)}])
    h, w = sympy.Symbol("h", integer=True, positive=True), sympy.Symbol("w", integer=True, positive=True)
    assert graph.values["b"].shape[3] == w  # INT64_MAX end clamps to the dim itself, no Min(...)


def test_slice_symbolic_ends_from_shape():
    nodes = [node("Shape", ["x"], "s"), node("Gather", ["s", "i"], "hw"), node("Sub", ["hw", "one"], "hw1"),
             node("Slice", ["x", "zero", "hw1", "ax"], "y")]
    model = make_model(nodes, [X4], ["y"], [("i", i64(2, 3)), ("one", i64(1)), ("zero", i64(0, 0)), ("ax", i64(2, 3))])
    graph = check_shapes(model, dict(DIMS4, h=(2, 40), w=(2, 70)), [{"x": (1, 2, 2, 9)}, {"x": (2, 1, 40, 70)}])
    assert [str(d) for d in graph.values["y"].shape] == ["n", "c", "h - 1", "w - 1"]


def test_shape_chain_values_through_layout_ops():
    """Shape -> Slice / Concat / Expand / Tile / Split / Transpose keep symbolic contents."""
    nodes = [node("Shape", ["x"], "s"), node("Slice", ["s", "st", "en"], "tail"),
             node("Concat", ["tail", "tail"], "cat", axis=0), node("Tile", ["tail", "r"], "tiled"),
             node("Split", ["s", "sp"], ["s01", "s23"], axis=0), node("Unsqueeze", ["tail", "ax0"], "tail2d"),
             node("Transpose", ["tail2d"], "tail_t"), node("Expand", ["s01", "two"], "exp"),
             node("Range", ["zero", "hs", "one"], "rng"), node("Gather", ["s", "hidx"], "hs")]
    nodes = nodes[:-2] + nodes[-1:] + nodes[-2:-1]
    inits = [("st", i64(2)), ("en", i64(4)), ("r", i64(2)), ("sp", i64(2, 2)), ("ax0", i64(0)), ("two", i64(2)),
             ("zero", np.array(0, np.int64)), ("one", np.array(1, np.int64)), ("hidx", np.array(2, np.int64))]
    outs = [tensor(o, I64, None) for o in ("cat", "tiled", "s23", "tail_t", "exp", "rng")]
    graph = from_onnx(make_model(nodes, [X4], outs, inits), dims=DIMS4)
    vals = {o.name: [str(v) for v in graph.values[o.name].const.reshape(-1)] for o in outs if graph.values[o.name].is_symbolic}
    assert vals["cat"] == ["h", "w", "h", "w"]
    assert vals["tiled"] == ["h", "w", "h", "w"]
    assert vals["s23"] == ["h", "w"]
    assert vals["exp"] == ["n", "c"]
    assert graph.values["tail_t"].shape == (2, 1) and vals["tail_t"] == ["h", "w"]
    assert [str(d) for d in graph.values["rng"].shape] == ["h"]  # symbolic length: a run-time kernel


def test_reshape_zero_minus_one_and_shape_chain():
    nodes = [node("Shape", ["x"], "s"), node("Gather", ["s", "nc"], "g"), node("Concat", ["g", "m1"], "t", axis=0),
             node("Reshape", ["x", "t"], "a"), node("Reshape", ["x", "z"], "b"), node("Flatten", ["x"], "f", axis=-1),
             node("Unsqueeze", ["x", "u"], "uu"), node("Squeeze", ["uu", "u"], "sq")]
    inits = [("nc", i64(0, 1)), ("m1", i64(-1)), ("z", i64(0, -1, 0)), ("u", i64(0, 5))]
    model = make_model(nodes, [("x", ["n", "c", "h", 8])], ["a", "b", "f", "uu", "sq"], inits)
    dims = {"n": (1, 3), "c": (1, 16), "h": (1, 40)}
    graph = check_shapes(model, dims, [{"x": (1, 1, 1, 8)}, {"x": (3, 16, 40, 8)}, {"x": (2, 5, 3, 8)}])
    assert [str(d) for d in graph.values["a"].shape] == ["n", "c", "8*h"]


def test_pad_shapes_symbolic_pads():
    """pads = (8 - w % 8) % 8: the output width is an expression with Mod, evaluated per input."""
    nodes = [node("Shape", ["x"], "s"), node("Gather", ["s", "i"], "w"), node("Mod", ["w", "eight"], "r"),
             node("Sub", ["eight", "r"], "d"), node("Mod", ["d", "eight"], "p"), node("Concat", ["z3", "p", "z3", "p"], "pads", axis=0),
             node("Pad", ["x", "pads"], "y", mode="edge"),
             node("Pad", ["x", "p2", "", "ax"], "axes_form", mode="reflect")]
    inits = [("i", i64(3)), ("eight", i64(8)), ("z3", i64(0, 0, 0)), ("p2", i64(1, 2)), ("ax", i64(-1))]
    model = make_model(nodes, [X4], ["y", "axes_form"], inits, opset=18)
    check_shapes(model, dict(DIMS4, h=(2, 40), w=(3, 70)), [{"x": (1, 1, 2, 3)}, {"x": (2, 3, 9, 16)}, {"x": (1, 1, 40, 70)}])


def test_resize_shapes():
    nodes = [node("Resize", ["x", "", "sc"], "a", mode="nearest"), node("Resize", ["x", "", "", "sz"], "b", mode="linear"),
             node("Resize", ["x", "", "sc2"], "c", mode="nearest", axes=[3])]
    inits = [("sc", np.array([1, 1, 1.5, 0.5], np.float32)), ("sz", i64(1, 2, 13, 7)), ("sc2", np.array([3], np.float32))]
    model = make_model(nodes, [("x", [1, 2, "h", "w"])], ["a", "b", "c"], inits, opset=18)
    graph = check_shapes(model, {"h": (1, 40), "w": (1, 70)}, [{"x": (1, 2, 1, 1)}, {"x": (1, 2, 7, 9)}, {"x": (1, 2, 40, 70)}])
    assert [str(d) for d in graph.values["c"].shape] == ["1", "2", "h", "3*w"]


def test_split_shapes_and_generators():
    nodes = [node("Split", ["x"], ["a", "b", "c"], axis=3, num_outputs=3), node("Split", ["x", "sp"], ["d", "e"], axis=1),
             node("Shape", ["x"], "s"), node("ConstantOfShape", ["s"], "zeros"),
             node("Gather", ["s", "iw"], "w"), node("Range", ["w", "zero", "m3"], "down")]
    inits = [("sp", i64(2, 4)), ("iw", np.array(3, np.int64)), ("zero", np.array(0, np.int64)), ("m3", np.array(-3, np.int64))]
    model = make_model(nodes, [("x", [2, 6, "h", "w"])], ["a", "b", "c", "d", "e", "zeros", tensor("down", I64, None)], inits, opset=18)
    check_shapes(model, {"h": (1, 40), "w": (1, 70)}, [{"x": (2, 6, 1, 1)}, {"x": (2, 6, 5, 7)}, {"x": (2, 6, 40, 70)}])


def test_transpose_depth_space_expand_tile_shapes():
    nodes = [node("Transpose", ["x"], "t", perm=[0, 2, 3, 1]), node("DepthToSpace", ["x"], "d", blocksize=2),
             node("SpaceToDepth", ["x"], "s", blocksize=2), node("Expand", ["x", "e"], "ex"), node("Tile", ["x", "r"], "ti")]
    inits = [("e", i64(3, 1, 1, 1, 1)), ("r", i64(1, 2, 1, 3))]
    model = make_model(nodes, [("x", ["n", 8, "h", "w"])], ["t", "d", "s", "ex", "ti"], inits)
    check_shapes(model, {"n": (1, 2), "h": (2, 40), "w": (2, 70)}, [{"x": (1, 8, 2, 2)}, {"x": (2, 8, 40, 70)}])


@pytest.mark.parametrize("nodes, inits, opset, message", [
    ([node("Resize", ["x", "", "sc"], "y", mode="cubic")], [("sc", np.ones(4, np.float32))], 13, "mode 'cubic' is not supported"),
    ([node("Resize", ["x", "", "sc"], "y", mode="linear", antialias=1)], [("sc", np.ones(4, np.float32))], 18, "antialias"),
    ([node("Resize", ["x", "", "sc"], "y", coordinate_transformation_mode="tf_crop_and_resize")],
     [("sc", np.ones(4, np.float32))], 13, "tf_crop_and_resize"),
    ([node("Resize", ["x", "", "sc"], "y", mode="linear")], [("sc", np.array([1, 2, 2, 2], np.float32))], 13,
     "linear resize of axes other than the last two"),
    ([node("Resize", ["x", "", "", "sz"], "y", keep_aspect_ratio_policy="not_larger")], [("sz", i64(1, 1, 4, 4))], 18,
     "keep_aspect_ratio_policy"),
    ([node("Slice", ["x", "s", "e", "a", "p"], "y")], [("s", i64(0)), ("e", i64(2)), ("a", i64(1)), ("p", i64(0))], 13,
     "non-zero number"),
    ([node("Split", ["x", "sp"], ["a", "b"], axis=1)], [("sp", i64(1, 2))], 13, "do not add up"),
    ([node("DepthToSpace", ["x"], "y", blocksize=3)], [], 13, "not divisible by 9"),
    ([node("Pad", ["x", "p"], "y", mode="mirror")], [("p", i64(0, 0, 0, 0, 0, 0, 0, 0))], 13, "mode 'mirror'"),
    ([node("Transpose", ["x"], "y", perm=[0, 1, 1, 2])], [], 13, "not a permutation"),
])
def test_unsupported_forms_name_the_problem(nodes, inits, opset, message):
    model = make_model(nodes, [("x", [1, 4, "h", "w"])], [o for n in nodes for o in n.output], inits, opset=opset)
    with pytest.raises(ModelError, match=message):
        from_onnx(model, dims={"h": (1, 8), "w": (1, 8)})


def test_runtime_values_where_compile_time_ones_are_needed():
    """Slice ends / Range limits from a run-time tensor: a clear error, not a wrong kernel."""
    nodes = [node("Slice", ["x", "s", "e"], "y")]
    model = make_model(nodes, [("x", [4, "w"]), tensor("e", I64, [1])], ["y"], [("s", i64(0))])
    with pytest.raises(ModelError, match="must be known at compile time"):
        from_onnx(model, dims={"w": (1, 8)})
    nodes = [node("Range", ["a", "lim", "d"], "y")]
    model = make_model(nodes, [tensor("lim", I64, [])], [tensor("y", I64, None)],
                       [("a", np.array(0, np.int64)), ("d", np.array(1, np.int64))])
    with pytest.raises(ModelError, match="limit .* must be known at compile time"):
        from_onnx(model)


def test_slice_bound_of_undecidable_sign():
    """A start of h - 5 with h in [1, 40] is negative for some inputs only: refused, not guessed."""
    nodes = [node("Shape", ["x"], "s"), node("Gather", ["s", "i"], "h"), node("Sub", ["h", "five"], "st"),
             node("Slice", ["x", "st", "big", "i"], "y")]
    model = make_model(nodes, [("x", [1, "h"])], ["y"], [("i", i64(1)), ("five", i64(5)), ("big", i64(100))])
    with pytest.raises(ModelError, match="negative for some input sizes"):
        from_onnx(model, dims={"h": (1, 40)})
    check_shapes(model, {"h": (5, 40)}, [{"x": (1, 5)}, {"x": (1, 40)}])


def test_nearest_fast_path_proofs():
    """The integer-factor replication path is enabled exactly where x -> x // k holds."""
    spec = {"coord": "half_pixel", "nearest": "round_prefer_floor", "scales": [1.0, 1.0, 2.0, None]}
    assert fast_factor_mask(spec, 2, 4096) == 1 << 2
    assert fast_factor_mask(spec, 3, 4096) & (1 << 2) and fast_factor_mask(spec, 3, 4096) & (1 << 4)
    assert fast_factor_mask(dict(spec, coord="asymmetric", nearest="floor"), 3, 4096) == sum(1 << k for k in range(2, 9))
    assert fast_factor_mask(dict(spec, coord="align_corners"), 2, 4096) == 0
    assert fast_factor_mask(dict(spec, coord="tf_half_pixel_for_nn"), 2, 4096) == 0
    x = np.arange(12)
    np.testing.assert_array_equal(nearest_map("asymmetric", "simple", x, 3.0), x // 3)
