"""Shape rules of the reduction, normalisation, pooling and matrix ops on symbolic dims (no build):
checked against onnxruntime's output shapes where it defines them, and for clear errors."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import sympy
from onnx import helper

from dydca.frontends.onnx_import import from_onnx
from dydca.frontends.ops import ModelError
from dydca.frontends.symbolic import sym
from tests.oracle import make_model, random_feeds

h, w, n, k = sym("h"), sym("w"), sym("n"), sym("k")


def out_shape(nodes, inputs, inits=(), opset=17, out=None):
    model = make_model(nodes, inputs, [out or nodes[-1].output[0]], inits, opset=opset)
    g = from_onnx(model)
    return g.values[g.outputs[0]].shape, model


def concrete(shape, values):
    return tuple(int(sympy.sympify(d).subs({sym(a): b for a, b in values.items()})) for d in shape)


@pytest.mark.parametrize("attrs,opset,expect", [
    (dict(axes=[1], keepdims=1), 13, ("n", 1, "h", "w")),
    (dict(axes=[-1, 1], keepdims=0), 13, ("n", "h")),
    (dict(keepdims=0), 13, ()),
    (dict(), 13, (1, 1, 1, 1)),
])
def test_reduce_mean_attribute_axes(attrs, opset, expect):
    shape, _ = out_shape([helper.make_node("ReduceMean", ["x"], ["y"], **attrs)], [("x", ["n", 3, "h", "w"])],
                         opset=opset)
    assert tuple(shape) == tuple(sym(d) if isinstance(d, str) else sympy.Integer(d) for d in expect)


def test_reduce_axes_input_and_noop():
    nodes = [helper.make_node("ReduceSum", ["x", "a"], ["y"], keepdims=0)]
    shape, _ = out_shape(nodes, [("x", ["n", 3, "h"])], [("a", np.array([0, 2], np.int64))], opset=13)
    assert tuple(shape) == (3,)
    noop = [helper.make_node("ReduceMax", ["x", "e"], ["y"], noop_with_empty_axes=1)]
    shape, _ = out_shape(noop, [("x", ["n", 3])], [("e", np.zeros(0, np.int64))], opset=18)
    assert tuple(shape) == (n, 3)


def test_reduce_runtime_axes_rejected():
    from onnx import TensorProto
    from tests.oracle import tensor
    model = make_model([helper.make_node("ReduceSum", ["x", "a"], ["y"])],
                       [("x", ["n", 3]), tensor("a", TensorProto.INT64, [1])], ["y"], opset=13)
    with pytest.raises(ModelError, match="axes .* must be known at compile time"):
        from_onnx(model)


POOLS = [
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[3, 3], auto_pad="SAME_UPPER", dilations=[2, 2]),
    dict(kernel_shape=[3, 2], strides=[2, 1], auto_pad="SAME_LOWER"),
    dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="VALID", ceil_mode=1),
]


@pytest.mark.parametrize("attrs", POOLS)
def test_pool_output_sizes_match_onnxruntime(attrs):
    shape, model = out_shape([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], [("x", [1, 1, "h", "w"])])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for hh, ww in ((4, 4), (5, 9), (8, 7), (17, 32)):
        got = sess.run(None, random_feeds(model, {"x": (1, 1, hh, ww)}))[0].shape
        assert concrete(shape, {"h": hh, "w": ww}) == got, (attrs, hh, ww)


def test_pool_errors():
    with pytest.raises(ModelError, match="Indices output of MaxPool"):
        from_onnx(make_model([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])],
                             [("x", [1, 1, 4, 4])], ["y"]))
    with pytest.raises(ModelError, match="3-D pooling is not supported"):
        from_onnx(make_model([helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[2, 2, 2])],
                             [("x", [1, 1, 4, 4, 4])], ["y"]))


def test_global_pool_and_norm_shapes():
    shape, _ = out_shape([helper.make_node("GlobalAveragePool", ["x"], ["y"])], [("x", ["n", 8, "h", "w"])])
    assert tuple(shape) == (n, 8, 1, 1)
    nodes = [helper.make_node("LayerNormalization", ["x", "s"], ["y", "m", "r"], axis=-2)]
    model = make_model(nodes, [("x", ["n", 4, 6])], ["y", "m", "r"], [("s", np.ones((4, 6), np.float32))])
    g = from_onnx(model)
    assert tuple(g.values["m"].shape) == (n, 1, 1)
    with pytest.raises(ModelError, match="training_mode=1 is not supported"):
        from_onnx(make_model([helper.make_node("BatchNormalization", list("xsbmv"), ["y"], training_mode=1)],
                             [("x", [1, 2, 3])], ["y"], [(c, np.ones(2, np.float32)) for c in "sbmv"], opset=15))


@pytest.mark.parametrize("a,b,expect", [
    (["n", "m", "k"], ["k", 5], ("n", "m", 5)),
    (["k"], ["k", 5], (5,)),
    (["m", "k"], ["k"], ("m",)),
    (["k"], ["k"], ()),
    ([2, 1, "m", "k"], [3, "k", 7], (2, 3, "m", 7)),
])
def test_matmul_shapes(a, b, expect):
    shape, _ = out_shape([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", a), ("b", b)])
    assert tuple(shape) == tuple(sym(d) if isinstance(d, str) else sympy.Integer(d) for d in expect)


def test_gemm_shapes_and_errors():
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1)]
    shape, _ = out_shape(nodes, [("a", ["k", "n"]), ("b", [7, "k"]), ("c", [7])])
    assert tuple(shape) == (n, 7)
    with pytest.raises(ModelError, match="inner dimensions differ"):
        out_shape([helper.make_node("Gemm", ["a", "b"], ["y"])], [("a", [3, 4]), ("b", [5, 6])])
    with pytest.raises(ModelError, match="do not broadcast"):
        out_shape([helper.make_node("Gemm", ["a", "b", "c"], ["y"])], [("a", [3, 4]), ("b", [4, 6]), ("c", [5])])
