"""fuse_depth_to_space: Conv -> DepthToSpace becomes a conv storing in pixel-shuffled order."""
import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

from dydca.compiler.passes import fuse_conv_epilogue, fuse_depth_to_space
from dydca.compiler.passes.fuse_depth_to_space import d2s_store_index
from tests.compiler.graphs import DIMS, apply, build, ops, planned, rand, requires_ops
from tests.oracle import check_model

pytestmark = requires_ops("DepthToSpace")
node = helper.make_node
X = ("x", ["n", 3, "h", "w"])
SHAPES = [{"x": (1, 3, 5, 7)}, {"x": (3, 3, 24, 24)}, {"x": (2, 3, 1, 13)}]
W, B = rand((12, 3, 3, 3), 1), rand((12,), 2)
CONV = node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_store_index_formula_matches_the_onnx_reference(mode):
    b, shape = 2, (2, 12, 3, 5)
    y = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    ref = ReferenceEvaluator(node("DepthToSpace", ["y"], ["z"], blocksize=b, mode=mode)).run(None, {"y": y})[0]
    n, m, h, w = np.indices(shape)
    z = np.empty(ref.size, np.float32)
    z[d2s_store_index(mode, b, n, m, h, w, *shape[1:])] = y
    np.testing.assert_array_equal(z.reshape(ref.shape), ref)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_conv_takes_the_shuffle_and_matches_onnxruntime(mode):
    model, g = build([CONV, node("DepthToSpace", ["c"], ["y"], blocksize=2, mode=mode)],
                     [X], ["y"], [("w", W), ("b", B)])
    shape_after = g.values["y"].shape
    f = apply(fuse_depth_to_space, g)
    assert ops(f) == ["Conv"]
    n = f.nodes[0]
    assert n.outputs == ["y"] and f.values["y"].shape == shape_after and "c" not in f.values
    assert n.attrs["store"]["blocksize"] == 2 and n.attrs["store"]["mode"] == mode
    assert [str(d) for d in n.attrs["store"]["shape"]] == ["n", "12", "h", "w"]
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert planned(compiled) == [("Conv", "Conv+DepthToSpace")]


def test_epilogue_then_shuffle_matches_onnxruntime():
    # PRelu's per-channel slope is indexed by the conv's own channel, before the shuffle
    nodes = [CONV, node("PRelu", ["c", "s"], ["p"]), node("Add", ["p", "k"], ["q"]),
             node("DepthToSpace", ["q"], ["y"], blocksize=2)]
    model, g = build(nodes, [X], ["y"], [("w", W), ("b", B), ("s", rand((12, 1, 1), 3)),
                                         ("k", np.array([0.25], np.float32))])
    f = apply(fuse_depth_to_space, apply(fuse_conv_epilogue, g))
    assert ops(f) == ["Conv"] and f.nodes[0].attrs["fused_from"] == "Conv+PRelu+Add+DepthToSpace"
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert planned(compiled) == [("Conv", "Conv+PRelu+Add+DepthToSpace")]


def test_shared_conv_output_keeps_the_depth_to_space():
    nodes = [CONV, node("DepthToSpace", ["c"], ["y"], blocksize=2), node("Relu", ["c"], ["r"])]
    _, g = build(nodes, [X], ["y", "r"], [("w", W), ("b", B)])
    assert ops(apply(fuse_depth_to_space, g)) == ["Conv", "DepthToSpace", "Relu"]
    _, g = build([node("DepthToSpace", ["x4"], ["y"], blocksize=2)], [("x4", ["n", 4, "h", "w"])], ["y"])
    assert ops(apply(fuse_depth_to_space, g)) == ["DepthToSpace"]


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_per_channel_chain_after_the_shuffle_joins_the_epilogue(mode):
    # PRelu's slope is per stored channel (3 = 12 / 2^2); the epilogue runs before the shuffle,
    # so the pass re-orders it to the conv's 12 channels at compile time
    nodes = [CONV, node("DepthToSpace", ["c"], ["d"], blocksize=2, mode=mode),
             node("PRelu", ["d", "s"], ["p"]), node("Mul", ["p", "k"], ["y"])]
    model, g = build(nodes, [X], ["y"], [("w", W), ("b", B), ("s", rand((3, 1, 1), 4)),
                                         ("k", np.array(0.5, np.float32))])
    f = apply(fuse_conv_epilogue, apply(fuse_depth_to_space, g))
    assert ops(f) == ["Conv"]
    n = f.nodes[0]
    assert n.attrs["fused_from"] == "Conv+DepthToSpace+PRelu+Mul" and n.outputs == ["y"]
    assert f.values[n.inputs[3]].shape == (12, 1, 1)
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert planned(compiled) == [("Conv", "Conv+DepthToSpace+PRelu+Mul")]


def test_per_element_operand_after_the_shuffle_stays_outside():
    # e has exactly the shuffled shape, but the epilogue indexes per-element operands by the
    # conv's own flat index: the Add stays outside
    conv2 = node("Conv", ["x", "w", "b"], ["c2"], pads=[1, 1, 1, 1])
    nodes = [CONV, node("DepthToSpace", ["c"], ["d"], blocksize=2), conv2,
             node("DepthToSpace", ["c2"], ["e"], blocksize=2), node("Add", ["d", "e"], ["y"])]
    _, g = build(nodes, [X], ["y"], [("w", W), ("b", B)])
    f = apply(fuse_conv_epilogue, apply(fuse_depth_to_space, g))
    assert ops(f) == ["Conv", "Conv", "Add"]
    assert all(n.attrs["fused_from"] == "Conv+DepthToSpace" for n in f.nodes[:2])
