"""Data-movement ops against onnxruntime: each model is compiled once (many ops as separate outputs)
and run at several shapes, symbolic dims included."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import dydca
from tests.oracle import assert_close, check_model, make_model, tensor

X4 = ("x", ["n", "c", "h", "w"])
DIMS4 = {"n": (1, 3), "c": (1, 16), "h": (1, 40), "w": (1, 70)}
SHAPES4 = [{"x": (1, 3, 5, 7)}, {"x": (2, 16, 9, 33)}, {"x": (3, 1, 1, 70)}, {"x": (2, 5, 40, 1)}]
I64 = TensorProto.INT64


def node(op, ins, out, **attrs):
    outs = out if isinstance(out, list) else [out]
    return helper.make_node(op, ins, outs, **attrs)


def i64(*v):
    return np.array(v, np.int64)


def outputs_of(nodes, ints=()):
    """Graph outputs for every node output; those named in `ints` are int64."""
    return [tensor(o, I64, None) if o in ints else o for n in nodes for o in n.output]


def shape_chain(src, prefix, idx):
    """Shape(src) -> Gather(idx): a 1-d int64 tensor of some of src's dims (symbolic contents)."""
    return [node("Shape", [src], f"{prefix}_shape"),
            node("Gather", [f"{prefix}_shape", f"{prefix}_idx"], prefix, axis=0)], (f"{prefix}_idx", i64(*idx))


def run_against_ort(model, feeds_list, dims, **kw):
    """Like check_model, with explicit feeds (int inputs with chosen values)."""
    compiled = dydca.compile(model, dims=dims, **kw)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        for j, (g, r) in enumerate(zip(compiled.run(feeds), sess.run(None, feeds))):
            assert_close(g, r, what=f"output {j} at {[(k, v.shape) for k, v in feeds.items()]}")
    return compiled


# ---- Transpose / DepthToSpace / SpaceToDepth ----

def test_transpose():
    nodes = [node("Transpose", ["x"], "rev"), node("Transpose", ["x"], "nhwc", perm=[0, 2, 3, 1]),
             node("Transpose", ["x"], "hw", perm=[0, 1, 3, 2]), node("Transpose", ["x"], "neg", perm=[3, 0, 2, 1]),
             node("Transpose", ["m"], "mt", perm=[1, 0]), node("Transpose", ["k"], "kt", perm=[2, 0, 1])]
    model = make_model(nodes, [X4, ("m", ["r", 67]), tensor("k", I64, [2, "r", 3])], outputs_of(nodes, {"kt"}))
    dims = dict(DIMS4, r=(1, 300))
    check_model(model, [dict(s, m=(r, 67), k=(2, r, 3)) for s, r in zip(SHAPES4, (1, 300, 45, 129))], dims)


def test_depth_space():
    nodes = [node("DepthToSpace", ["x"], "dcr", blocksize=2), node("DepthToSpace", ["x"], "crd", blocksize=2, mode="CRD"),
             node("SpaceToDepth", ["x"], "s2d", blocksize=2), node("DepthToSpace", ["y"], "dcr3", blocksize=3)]
    model = make_model(nodes, [("x", ["n", 8, "h", "w"]), ("y", [1, 18, "h", "w"])], outputs_of(nodes))
    shapes = [{"x": (1, 8, 2, 4), "y": (1, 18, 2, 4)}, {"x": (2, 8, 10, 6), "y": (1, 18, 10, 6)},
              {"x": (3, 8, 64, 64), "y": (1, 18, 64, 64)}]
    check_model(model, shapes, {"n": (1, 3), "h": (2, 64), "w": (2, 64)})


# ---- Concat / Split ----

def test_concat():
    nodes = [node("Concat", ["x", "y", "x"], "c1", axis=1), node("Concat", ["x", "x"], "clast", axis=-1),
             node("Concat", ["x", "x"], "c0", axis=0), node("Concat", ["ia", "ib"], "ic", axis=1)]
    model = make_model(nodes, [X4, ("y", ["n", 3, "h", "w"]), tensor("ia", I64, ["n", "h"]), tensor("ib", I64, ["n", 2])],
                       outputs_of(nodes, {"ic"}))
    shapes = [dict(x=s["x"], y=(s["x"][0], 3) + s["x"][2:], ia=(s["x"][0], s["x"][2]), ib=(s["x"][0], 2)) for s in SHAPES4]
    check_model(model, shapes, DIMS4)


def test_split_opset13_and_11():
    n13 = [node("Split", ["x", "sp"], ["a", "b", "c"], axis=1), node("Split", ["x"], ["e0", "e1"], axis=3)]
    m13 = make_model(n13, [("x", ["n", 6, "h", "w"])], outputs_of(n13), [("sp", i64(1, 2, 3))], opset=13)
    shapes = [{"x": (1, 6, 3, 4)}, {"x": (2, 6, 9, 40)}, {"x": (3, 6, 1, 2)}]
    dims = {"n": (1, 3), "h": (1, 40), "w": (2, 40)}
    check_model(m13, shapes, dims)
    n11 = [node("Split", ["x"], ["a", "b"], axis=-2, split=[1, 2])]
    m11 = make_model(n11, [("x", ["n", 6, 3, "w"])], outputs_of(n11), opset=11)
    check_model(m11, [{"x": (1, 6, 3, 4)}, {"x": (3, 6, 3, 40)}, {"x": (2, 6, 3, 2)}], {"n": (1, 3), "w": (2, 40)})


def test_split_num_outputs_opset18():
    nodes = [node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3), node("Split", ["x"], ["d", "e"], axis=0, num_outputs=2)]
    model = make_model(nodes, [("x", [4, 8, "w"])], outputs_of(nodes), opset=18)
    check_model(model, [{"x": (4, 8, 1)}, {"x": (4, 8, 17)}, {"x": (4, 8, 64)}], {"w": (1, 64)})


# ---- Slice ----

def test_slice_inputs():
    nodes = [node("Slice", ["x", "s1", "e1", "a1", "p1"], "neg_steps"),
             node("Slice", ["x", "s2", "e2"], "clamped"),
             node("Slice", ["x", "s3", "e3", "a3"], "from_end"),
             node("Slice", ["x", "s4", "e4", "a4", "p4"], "reverse_all"),
             node("Slice", ["x", "s5", "e5", "a5", "p5"], "strided")]
    inits = [("s1", i64(-1, 100)), ("e1", i64(-100, 0)), ("a1", i64(3, 2)), ("p1", i64(-2, -1)),
             ("s2", i64(0, 1, 1, -1000)), ("e2", i64(9, 100, 1000, 1000)),
             ("s3", i64(-3)), ("e3", i64(-1)), ("a3", i64(-1)),
             ("s4", i64(-1)), ("e4", i64(np.iinfo(np.int64).min)), ("a4", i64(1)), ("p4", i64(-1)),
             ("s5", i64(1, 0)), ("e5", i64(np.iinfo(np.int64).max, 5)), ("a5", i64(2, 3)), ("p5", i64(3, 2))]
    model = make_model(nodes, [X4], outputs_of(nodes), inits)
    check_model(model, SHAPES4, DIMS4)


def test_slice_symbolic_bounds_and_int64():
    """ends computed from the input's own shape (Shape -> Gather -> Sub), on float and int64 data."""
    chain, idx = shape_chain("x", "hw", [2, 3])
    nodes = chain + [node("Sub", ["hw", "one"], "hw1"), node("Slice", ["x", "zero2", "hw1", "a23"], "crop"),
                     node("Div", ["hw", "two"], "half"), node("Slice", ["k", "half", "hw", "a01"], "khalf")]
    model = make_model(nodes, [X4, tensor("k", I64, ["h", "w"])], ["crop", tensor("khalf", I64, None)],
                       [idx, ("one", i64(1)), ("two", i64(2)), ("zero2", i64(0, 0)), ("a23", i64(2, 3)), ("a01", i64(0, 1))])
    check_model(model, [dict(s, k=s["x"][2:]) for s in SHAPES4], DIMS4)


def test_slice_attributes_opset9():
    nodes = [node("Slice", ["x"], "y", starts=[1, -2], ends=[1000, -1], axes=[0, 3]), node("Slice", ["x"], "z", starts=[0], ends=[2])]
    model = make_model(nodes, [X4], ["y", "z"], opset=9)
    check_model(model, [{"x": (2, 3, 4, 5)}, {"x": (3, 1, 2, 70)}, {"x": (2, 16, 9, 2)}], DIMS4)


# ---- Pad ----

def test_pad_modes():
    nodes = [node("Pad", ["x", "p", "v"], "const"), node("Pad", ["x", "p"], "reflect", mode="reflect"),
             node("Pad", ["x", "p"], "edge", mode="edge"), node("Pad", ["x", "cp", "v"], "cropped"),
             node("Pad", ["x", "p"], "wrap", mode="wrap"), node("Pad", ["k", "pk", "kv"], "int_const")]
    inits = [("p", i64(0, 1, 2, 1, 0, 0, 1, 0)), ("v", np.array(2.5, np.float32)), ("cp", i64(0, 0, -1, 2, 0, 0, 1, -1)),
             ("pk", i64(1, 0, 0, 3)), ("kv", i64(-7))]
    model = make_model(nodes, [X4, tensor("k", I64, ["h", "w"])], outputs_of(nodes, {"int_const"}), inits, opset=19)
    shapes = [{"x": (1, 3, 5, 7), "k": (5, 7)}, {"x": (2, 16, 9, 33), "k": (9, 33)}, {"x": (3, 2, 3, 70), "k": (3, 70)}]
    check_model(model, shapes, dict(DIMS4, h=(3, 40), w=(2, 70)))


def test_pad_symbolic_pads_to_multiple():
    """Pads computed from the input's own size: pad h and w up to a multiple of 8 (as SR models do)."""
    chain, idx = shape_chain("x", "hw", [2, 3])
    nodes = chain + [node("Mod", ["hw", "eight"], "r"), node("Sub", ["eight", "r"], "d"), node("Mod", ["d", "eight"], "pad_hw"),
                     node("Concat", ["zeros6", "pad_hw"], "pads", axis=0),
                     node("Pad", ["x", "pads"], "y", mode="reflect"), node("Pad", ["x", "pads"], "z")]
    inits = [idx, ("eight", i64(8)), ("zeros6", i64(0, 0, 0, 0, 0, 0))]
    model = make_model(nodes, [X4], ["y", "z"], inits)
    shapes = [{"x": (1, 3, 9, 7)}, {"x": (2, 4, 16, 33)}, {"x": (1, 1, 40, 70)}]
    check_model(model, shapes, dict(DIMS4, h=(9, 40), w=(7, 70)))


def test_pad_axes_opset18_and_attrs_opset7():
    n18 = [node("Pad", ["x", "p", "", "ax"], "y", mode="edge")]
    m18 = make_model(n18, [X4], ["y"], [("p", i64(2, 1, 0, 3)), ("ax", i64(-1, 1))], opset=18)
    check_model(m18, SHAPES4, DIMS4)
    n7 = [node("Pad", ["x"], "y", pads=[0, 0, 1, 1, 0, 0, 2, 0], value=-1.0), node("Pad", ["x"], "r", pads=[0, 0, 0, 2, 0, 0, 0, 1], mode="reflect")]
    m7 = make_model(n7, [X4], ["y", "r"], opset=7)
    check_model(m7, [{"x": (1, 3, 5, 7)}, {"x": (2, 16, 9, 33)}, {"x": (3, 2, 1, 70)}], DIMS4)


# ---- Gather ----

def test_gather_compile_time_indices():
    nodes = [node("Gather", ["x", "i0"], "g0", axis=0), node("Gather", ["x", "i1"], "g1", axis=1),
             node("Gather", ["x", "iscalar"], "glast", axis=-1), node("Gather", ["k", "i2d"], "gk", axis=1)]
    inits = [("i0", i64(0, -1, 0)), ("i1", i64(-1)), ("iscalar", np.array(-1, np.int64)), ("i2d", np.array([[0, 1], [-2, 0]], np.int32))]
    model = make_model(nodes, [X4, tensor("k", I64, ["n", 2, "w"])], outputs_of(nodes, {"gk"}), inits)
    check_model(model, [dict(s, k=(s["x"][0], 2, s["x"][3])) for s in SHAPES4], DIMS4)


def test_gather_runtime_token_ids():
    """An embedding lookup: a constant table indexed by run-time int64 token ids of dynamic shape."""
    table = np.random.default_rng(1).standard_normal((50, 24)).astype(np.float32)
    nodes = [node("Gather", ["table", "ids"], "emb", axis=0), node("Gather", ["x", "ids"], "rows", axis=1)]
    model = make_model(nodes, [tensor("ids", I64, ["b", "s"]), ("x", [3, 50])], ["emb", "rows"], [("table", table)])
    rng = np.random.default_rng(2)
    feeds = [{"ids": rng.integers(-50, 50, (b, s)).astype(np.int64), "x": rng.standard_normal((3, 50)).astype(np.float32)}
             for b, s in ((1, 1), (2, 17), (4, 64))]
    compiled = run_against_ort(model, feeds, {"b": (1, 4), "s": (1, 64)})
    with pytest.raises(ValueError, match="out of range"):
        compiled.run({"ids": np.full((1, 2), 50, np.int64), "x": feeds[0]["x"]})


# ---- Expand / Tile ----

def test_expand_and_tile():
    chain, idx = shape_chain("y", "ys", [0, 1])
    nodes = chain + [node("Expand", ["x", "ys"], "to_y"), node("Expand", ["x", "s3"], "rank_up"),
                     node("Tile", ["x", "reps"], "tiled"), node("Tile", ["k", "kreps"], "ktiled"),
                     node("Expand", ["k", "kshape"], "kexp")]
    inits = [idx, ("s3", i64(2, 1, 1)), ("reps", i64(2, 3)), ("kreps", i64(1, 2)), ("kshape", i64(3, 1))]
    model = make_model(nodes, [("x", [1, "w"]), ("y", ["r", "w"]), tensor("k", I64, [1, "w"])],
                       ["to_y", "rank_up", "tiled", tensor("ktiled", I64, None), tensor("kexp", I64, None)], inits)
    shapes = [{"x": (1, w), "y": (r, w), "k": (1, w)} for r, w in ((1, 1), (5, 33), (64, 128))]
    check_model(model, shapes, {"r": (1, 64), "w": (1, 128)})


# ---- Resize / Upsample ----

NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _resize_nodes(mode, scales_or_sizes, coords, nearest_modes=(None,)):
    nodes = []
    for c in coords:
        for nm in nearest_modes:
            attrs = {"mode": mode, "coordinate_transformation_mode": c}
            if nm:
                attrs["nearest_mode"] = nm
            nodes.append(node("Resize", ["x", ""] + scales_or_sizes, f"{mode}_{c}_{nm}", **attrs))
    return nodes


@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 1.7, 0.6), (1, 1, 3, 1), (1, 2, 0.5, 2)])
def test_resize_nearest_scales(scales):
    nodes = _resize_nodes("nearest", ["sc"], COORD_MODES + ("tf_half_pixel_for_nn",), NEAREST_MODES)
    # tf_half_pixel_for_nn + round_prefer_ceil puts (x + 0.5) / 0.6 exactly on .5 ties, where onnxruntime's
    # float arithmetic lands on the other side of the tie than the spec formula in float32 does
    nodes = [n for n in nodes if n.output[0] != "nearest_tf_half_pixel_for_nn_round_prefer_ceil" or scales[3] == int(scales[3])]
    model = make_model(nodes, [X4], outputs_of(nodes), [("sc", np.array(scales, np.float32))], opset=13)
    check_model(model, [{"x": (1, 3, 5, 7)}, {"x": (2, 4, 9, 33)}, {"x": (1, 2, 40, 1)}], DIMS4)


@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 1.7, 0.6), (1, 1, 0.5, 3)])
def test_resize_linear_scales(scales):
    nodes = _resize_nodes("linear", ["sc"], COORD_MODES)
    model = make_model(nodes, [X4], outputs_of(nodes), [("sc", np.array(scales, np.float32))], opset=13)
    check_model(model, [{"x": (1, 3, 5, 7)}, {"x": (2, 4, 9, 33)}, {"x": (1, 2, 40, 1)}], DIMS4)


def test_resize_sizes_symbolic():
    """sizes = Concat(Shape(x)[0:2], [17, 2 * w]) -- fixed and symbolic output sizes; and 1-d linear."""
    chain, idx = shape_chain("x", "nc", [0, 1])
    w_chain, widx = shape_chain("x", "w", [3])
    nodes = chain + w_chain + [node("Mul", ["w", "two"], "w2"), node("Concat", ["nc", "h17", "w2"], "sizes", axis=0)]
    nodes += _resize_nodes("nearest", ["", "sizes"], ("half_pixel", "asymmetric"), ("round_prefer_floor", "floor"))
    nodes += _resize_nodes("linear", ["", "sizes"], ("half_pixel", "align_corners", "pytorch_half_pixel"))
    nodes += [node("Resize", ["v", "", "", "vs"], "v_lin", mode="linear")]  # 2-d: no outer axes
    outs = [n.output[0] for n in nodes if n.op_type == "Resize"]
    model = make_model(nodes, [X4, ("v", [3, "w"])], outs, [idx, widx, ("two", i64(2)), ("h17", i64(17)), ("vs", i64(2, 45))], opset=13)
    check_model(model, [dict(s, v=(3,) + s["x"][3:]) for s in SHAPES4[:3]], DIMS4)


def test_resize_axes_opset18():
    nodes = [node("Resize", ["x", "", "sc"], "y", mode="linear", axes=[3, 2]),
             node("Resize", ["x", "", "", "sz"], "z", mode="nearest", axes=[-1])]
    model = make_model(nodes, [X4], ["y", "z"], [("sc", np.array([2.0, 0.5], np.float32)), ("sz", i64(11))], opset=18)
    check_model(model, SHAPES4[:3], DIMS4)


def test_upsample_and_resize10():
    n9 = [node("Upsample", ["x", "sc"], "near", mode="nearest"), node("Upsample", ["x", "sc"], "lin", mode="linear")]
    m9 = make_model(n9, [X4], ["near", "lin"], [("sc", np.array([1, 1, 2, 1.5], np.float32))], opset=9)
    check_model(m9, SHAPES4[:3], DIMS4)
    n7 = [node("Upsample", ["x"], "near", mode="nearest", scales=[1.0, 1.0, 3.0, 2.0])]
    check_model(make_model(n7, [X4], ["near"], opset=7), SHAPES4[:3], DIMS4)
    n10 = [node("Resize", ["x", "sc"], "near", mode="nearest"), node("Resize", ["x", "sc"], "lin", mode="linear")]
    m10 = make_model(n10, [X4], ["near", "lin"], [("sc", np.array([1, 1, 0.5, 2.5], np.float32))], opset=10)
    check_model(m10, SHAPES4[:3], DIMS4)


# ---- generators ----

def test_constant_of_shape_and_range_symbolic():
    chain, idx = shape_chain("x", "hw", [2, 3])
    w_chain, widx = shape_chain("x", "w", [3])
    nodes = chain + w_chain + [
        node("ConstantOfShape", ["hw"], "zeros"),
        node("ConstantOfShape", ["hw"], "sevens", value=helper.make_tensor("v", I64, [1], [7])),
        node("Squeeze", ["w", "ax0"], "ws"), node("Range", ["zero", "ws", "one"], "pos"),
        node("Range", ["ws", "zero", "minus2"], "down"),
        node("Cast", ["ws"], "wf", to=TensorProto.FLOAT), node("Range", ["fstart", "wf", "fdelta"], "frange"),
    ]
    inits = [idx, widx, ("ax0", i64(0)), ("zero", np.array(0, np.int64)), ("one", np.array(1, np.int64)),
             ("minus2", np.array(-2, np.int64)), ("fstart", np.array(0.5, np.float32)), ("fdelta", np.array(0.25, np.float32))]
    model = make_model(nodes, [X4], ["zeros", tensor("sevens", I64, None), tensor("pos", I64, None),
                                     tensor("down", I64, None), "frange"], inits)
    check_model(model, SHAPES4, DIMS4)


# ---- aliases: Reshape / Flatten / Squeeze / Unsqueeze ----

def test_reshape_family_with_shape_chains():
    """Reshape with 0 and -1, a target built by Shape -> Gather -> Concat, then data movement after it."""
    chain, idx = shape_chain("x", "nc", [0, 1])
    nodes = chain + [
        node("Concat", ["nc", "minus1"], "target", axis=0), node("Reshape", ["x", "target"], "flat"),
        node("Transpose", ["flat"], "flat_t", perm=[2, 0, 1]),
        node("Reshape", ["x", "zero_neg"], "r0"), node("Flatten", ["x"], "f1", axis=2),
        node("Unsqueeze", ["x", "uax"], "u"), node("Squeeze", ["u", "uax"], "sq"),
        node("Transpose", ["sq"], "sq_t", perm=[3, 2, 1, 0]),
    ]
    inits = [idx, ("minus1", i64(-1)), ("zero_neg", i64(0, 0, -1)), ("uax", i64(0, -1))]
    model = make_model(nodes, [X4], ["flat", "flat_t", "r0", "f1", "u", "sq_t"], inits)
    check_model(model, SHAPES4, DIMS4)
