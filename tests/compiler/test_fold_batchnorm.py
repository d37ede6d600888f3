"""fold_batchnorm: inference BN after a conv becomes the conv's weights and bias."""
import numpy as np
import pytest
from onnx import helper

from dydca.compiler.passes import fold_batchnorm
from tests.compiler.graphs import DIMS, apply, build, ops, planned, rand, requires_ops
from tests.oracle import check_model

pytestmark = requires_ops("BatchNormalization")
node = helper.make_node
X = ("x", ["n", 4, "h", "w"])
SHAPES = [{"x": (1, 4, 5, 7)}, {"x": (3, 4, 24, 24)}, {"x": (2, 4, 1, 13)}]


def bn_params(m, seed):
    rng = np.random.default_rng(seed)
    return [("scale", rng.standard_normal(m).astype(np.float32)),
            ("beta", rng.standard_normal(m).astype(np.float32)),
            ("mean", rng.standard_normal(m).astype(np.float32)),
            ("var", rng.uniform(0.2, 2.0, m).astype(np.float32))]


BN = node("BatchNormalization", ["c", "scale", "beta", "mean", "var"], ["y"], epsilon=1e-3)


@pytest.mark.parametrize("conv,weights,m", [
    (node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), [("w", rand((6, 4, 3, 3), 1)), ("b", rand((6,), 2))], 6),
    (node("Conv", ["x", "w"], ["c"], group=2), [("w", rand((6, 2, 1, 1), 3))], 6),
    (node("ConvTranspose", ["x", "w", "b"], ["c"], group=2, strides=[2, 2]),
     [("w", rand((4, 3, 2, 2), 4)), ("b", rand((6,), 5))], 6),
], ids=["conv_bias", "grouped_no_bias", "conv_transpose_grouped"])
def test_bn_folds_into_conv_and_matches_onnxruntime(conv, weights, m):
    model, g = build([conv, BN], [X], ["y"], weights + bn_params(m, 7))
    f = apply(fold_batchnorm, g)
    assert ops(f) == [conv.op_type]
    n = f.nodes[0]
    assert n.outputs == ["y"] and n.attrs["fused_from"] == conv.op_type + "+BatchNormalization"
    assert n.inputs[1] != "w" and f.values[n.inputs[1]].is_const and f.values[n.inputs[2]].shape == (m,)
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert [op for op, _ in planned(compiled)] == [conv.op_type]


def test_bn_after_a_shared_conv_output_is_kept_and_still_correct():
    conv = node("Conv", ["x", "w"], ["c"])
    nodes = [conv, BN, node("Relu", ["c"], ["r"])]
    model, g = build(nodes, [X], ["y", "r"], [("w", rand((6, 4, 1, 1), 1))] + bn_params(6, 8))
    assert ops(apply(fold_batchnorm, g)) == ["Conv", "BatchNormalization", "Relu"]
    check_model(model, SHAPES, dims=DIMS)


def test_bn_with_runtime_statistics_or_on_an_input_is_kept():
    model, g = build([node("BatchNormalization", ["x", "scale", "beta", "mean", "var"], ["y"])],
                     [X], ["y"], bn_params(4, 9))
    assert ops(apply(fold_batchnorm, g)) == ["BatchNormalization"]
    conv = node("Conv", ["x", "w"], ["c"])
    _, g = build([conv, BN], [X, ("mean", [6])], ["y"],
                 [("w", rand((6, 4, 1, 1), 1))] + [p for p in bn_params(6, 10) if p[0] != "mean"])
    assert ops(apply(fold_batchnorm, g)) == ["Conv", "BatchNormalization"]


def test_conv_relu_after_bn_fold_becomes_one_kernel():
    nodes = [node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), BN, node("Relu", ["y"], ["z"])]
    model, _ = build(nodes, [X], ["z"], [("w", rand((6, 4, 3, 3), 1)), ("b", rand((6,), 2))] + bn_params(6, 11))
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert planned(compiled) == [("Conv", "Conv+BatchNormalization+Relu")]
