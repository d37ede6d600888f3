"""Reductions, normalisations and pools against onnxruntime: each model is compiled once (many ops
as separate outputs) and run at several shapes, symbolic dims included."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import dydca
import onnxruntime as ort
from dydca.frontends.ops import ModelError
from tests.oracle import assert_close, check_model, make_model, random_feeds, tensor

X4 = ("x", ["n", "c", "h", "w"])
DIMS4 = {"n": (1, 3), "c": (1, 16), "h": (1, 40), "w": (1, 40)}
SHAPES4 = [{"x": (1, 3, 5, 7)}, {"x": (2, 16, 9, 33)}, {"x": (3, 1, 1, 40)}, {"x": (2, 5, 40, 1)}]


def node(op, ins, out, **attrs):
    return helper.make_node(op, ins, [out], **attrs)


def test_reduce_attribute_axes_opset13():
    """Axes as attributes (ReduceMean/Max < 18), ReduceSum's axes input (>= 13), keepdims, all-axes."""
    nodes = [
        node("ReduceSum", ["x", "a1"], "sum_c", keepdims=1),
        node("ReduceSum", ["x", "a13"], "sum_c_w", keepdims=0),
        node("ReduceSum", ["x"], "sum_all", keepdims=0),
        node("ReduceSum", ["x", "empty"], "sum_noop", noop_with_empty_axes=1),
        node("ReduceMean", ["x"], "mean_hw", axes=[2, 3]),
        node("ReduceMean", ["x"], "mean_n", axes=[0], keepdims=0),
        node("ReduceMax", ["x"], "max_w", axes=[-1]),
        node("ReduceMax", ["x"], "max_ch", axes=[1, 2], keepdims=0),
    ]
    outs = [n.output[0] for n in nodes]
    model = make_model(nodes, [X4], outs, [("a1", np.array([1], np.int64)), ("a13", np.array([1, 3], np.int64)),
                                           ("empty", np.zeros(0, np.int64))], opset=13)
    check_model(model, SHAPES4, DIMS4)


def test_reduce_axes_input_opset18():
    nodes = [
        node("ReduceMean", ["x", "a"], "mean", keepdims=1),
        node("ReduceMax", ["x", "a"], "max", keepdims=0),
        node("ReduceMax", ["x"], "max_all"),
        node("ReduceMean", ["x", "last"], "mean_last", keepdims=0),
    ]
    model = make_model(nodes, [X4], [n.output[0] for n in nodes],
                       [("a", np.array([0, 2], np.int64)), ("last", np.array([-1], np.int64))], opset=18)
    check_model(model, SHAPES4, DIMS4)


def test_global_pools():
    nodes = [node("GlobalAveragePool", ["x"], "gap"), node("GlobalMaxPool", ["x"], "gmp")]
    model = make_model(nodes, [X4], ["gap", "gmp"])
    check_model(model, SHAPES4, DIMS4)


def test_softmax_opset13_axes():
    nodes = [node("Softmax", ["x"], "last"), node("Softmax", ["x"], "mid", axis=1),
             node("Softmax", ["x"], "first", axis=0)]
    model = make_model(nodes, [X4], [n.output[0] for n in nodes], opset=13)
    m = check_model(model, SHAPES4 + [{"x": (1, 16, 1, 1)}], DIMS4)
    # large logits: the max subtraction keeps exp finite
    big = {"x": (np.random.default_rng(1).standard_normal((2, 3, 4, 5)) * 300).astype(np.float32)}
    for got in m.run(big):
        assert np.isfinite(got).all()


def test_softmax_opset11_flattens():
    """Before opset 13 Softmax normalises the input flattened to 2-D at `axis` (default 1)."""
    nodes = [node("Softmax", ["x"], "d1"), node("Softmax", ["x"], "d2", axis=2)]
    model = make_model(nodes, [X4], ["d1", "d2"], opset=11)
    check_model(model, SHAPES4, DIMS4)


def test_layernorm():
    rng = np.random.default_rng(3)
    d = 48
    scale, bias = rng.standard_normal(d).astype(np.float32), rng.standard_normal(d).astype(np.float32)
    scale2 = rng.standard_normal((5, d)).astype(np.float32)
    nodes = [
        node("LayerNormalization", ["x", "s", "b"], "y", epsilon=1e-3),
        node("LayerNormalization", ["x", "s"], "y_nobias"),
        # (an empty-name B input crashes onnxruntime 1.32's session setup: leave it off)
        helper.make_node("LayerNormalization", ["x2", "s2"], ["y2", "mean2", "istd2"], axis=1),
    ]
    model = make_model(nodes, [("x", ["b", "t", d]), ("x2", ["b", 5, d])], ["y", "y_nobias", "y2", "mean2", "istd2"],
                       [("s", scale), ("b", bias), ("s2", scale2)])
    shapes = [{"x": (1, 1, d), "x2": (1, 5, d)}, {"x": (2, 37, d), "x2": (2, 5, d)},
              {"x": (4, 64, d), "x2": (4, 5, d)}]
    check_model(model, shapes, {"b": (1, 4), "t": (1, 64)})


def test_layernorm_runtime_scale_and_offset_data():
    """Scale/B at run time, and data with a large common offset (two-pass variance)."""
    nodes = [node("LayerNormalization", ["x", "s", "b"], "y")]
    model = make_model(nodes, [("x", ["r", "d"]), ("s", ["d"]), ("b", ["d"])], ["y"])
    m = check_model(model, [{"x": (3, 7), "s": (7,), "b": (7,)}, {"x": (17, 300), "s": (300,), "b": (300,)},
                            {"x": (1, 1), "s": (1,), "b": (1,)}], {"r": (1, 32), "d": (1, 512)})
    x = (np.random.default_rng(5).standard_normal((4, 256)) + 1000).astype(np.float32)
    ones, zeros = np.ones(256, np.float32), np.zeros(256, np.float32)
    y = m.run({"x": x, "s": ones, "b": zeros})[0]
    ref = (x - x.mean(-1, keepdims=True, dtype=np.float64)) / x.astype(np.float64).std(-1, keepdims=True)
    assert np.abs(y - ref).max() < 2e-2  # float data at 1000 +- 3 keeps ~4 significant bits of x - mean


def test_batchnorm_const_and_runtime_params():
    rng = np.random.default_rng(7)
    c = 6
    p = [rng.standard_normal(c).astype(np.float32) for _ in range(3)] + [rng.random(c).astype(np.float32) + 0.5]
    nodes = [node("BatchNormalization", ["x", "s", "b", "m", "v"], "y", epsilon=1e-3),
             node("BatchNormalization", ["x2", "s2", "b2", "m2", "v2"], "y2")]
    ins = [("x", ["n", c, "h", "w"]), ("x2", ["n", c]), ("s2", [c]), ("b2", [c]), ("m2", [c]), ("v2", [c])]
    model = make_model(nodes, ins, ["y", "y2"], list(zip(["s", "b", "m", "v"], p)), opset=15)
    vpos = lambda n: {"s2": (c,), "b2": (c,), "m2": (c,), "v2": (c,), "x2": (n, c)}
    shapes = [{"x": (1, c, 3, 5), **vpos(1)}, {"x": (2, c, 17, 9), **vpos(2)}, {"x": (3, c, 1, 1), **vpos(3)}]
    compiled = dydca.compile(model, dims={"n": (1, 3), "h": (1, 32), "w": (1, 32)})
    # run-time variances must be positive: the oracle's random feeds are adjusted before use
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for k, s in enumerate(shapes):
        feeds = random_feeds(model, s, seed=k)
        feeds["v2"] = np.abs(feeds["v2"]) + 0.1
        for g, r in zip(compiled.run(feeds), sess.run(None, feeds)):
            assert_close(g, r, what=f"shapes {s}")


def test_lrn():
    nodes = [node("LRN", ["x"], "y3", size=3), node("LRN", ["x"], "y5", size=5, alpha=1e-2, beta=0.5, bias=2.0)]
    model = make_model(nodes, [X4], ["y3", "y5"])
    check_model(model, SHAPES4, DIMS4)


POOL_CASES = [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[3, 2], strides=[1, 2], dilations=[2, 1], pads=[2, 0, 1, 1])),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    ("MaxPool", dict(kernel_shape=[2, 3], strides=[2, 1], auto_pad="SAME_LOWER")),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID")),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 0], ceil_mode=1, count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[3, 2], strides=[2, 1], auto_pad="SAME_UPPER")),
]


def test_pools_2d():
    nodes = [node(op, ["x"], f"p{i}", **a) for i, (op, a) in enumerate(POOL_CASES)]
    model = make_model(nodes, [X4], [n.output[0] for n in nodes], opset=13)
    # width 150: the interior columns of a row span several blocks of 64 outputs
    shapes = [{"x": (1, 2, 5, 7)}, {"x": (2, 3, 16, 16)}, {"x": (1, 4, 33, 40)}, {"x": (2, 1, 4, 9)},
              {"x": (1, 2, 6, 150)}]
    check_model(model, shapes, {"n": (1, 2), "c": (1, 4), "h": (4, 40), "w": (4, 150)})


def test_pools_1d():
    nodes = [node("MaxPool", ["x"], "m", kernel_shape=[3], strides=[2], pads=[1, 1]),
             node("AveragePool", ["x"], "a", kernel_shape=[4], strides=[1], pads=[2, 1], count_include_pad=1),
             node("MaxPool", ["x"], "c", kernel_shape=[2], strides=[2], ceil_mode=1)]
    model = make_model(nodes, [("x", ["n", 3, "l"])], ["m", "a", "c"])
    check_model(model, [{"x": (1, 3, 4)}, {"x": (2, 3, 77)}, {"x": (1, 3, 200)}], {"n": (1, 2), "l": (4, 256)})


def test_maxpool_indices_unsupported():
    n = helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2])
    model = make_model([n], [("x", [1, 1, 4, 4])], ["y", tensor("idx", TensorProto.INT64)])
    with pytest.raises(ModelError, match="Indices output of MaxPool is not supported"):
        dydca.compile(model)
