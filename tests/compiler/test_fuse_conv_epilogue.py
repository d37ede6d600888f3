"""fuse_conv_epilogue: the element-wise chain after a conv runs inside the conv's store."""
import numpy as np
from onnx import helper

from dydca.compiler.passes import fuse_conv_epilogue
from tests.compiler.graphs import DIMS, apply, build, ops, planned, rand
from tests.oracle import check_model

node = helper.make_node
X = ("x", ["n", 3, "h", "w"])
R = ("r", ["n", 8, "h", "w"])
SHAPES = [{"x": (1, 3, 5, 7), "r": (1, 8, 5, 7)}, {"x": (3, 3, 24, 24), "r": (3, 8, 24, 24)},
          {"x": (2, 3, 1, 13), "r": (2, 8, 1, 13)}]
W, B = rand((8, 3, 3, 3), 1), rand((8,), 2)
CONV = node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])


def test_conv_without_bias_takes_relu():
    _, g = build([node("Conv", ["x", "w"], ["c"]), node("Relu", ["c"], ["y"])], [X], ["y"], [("w", W)])
    f = apply(fuse_conv_epilogue, g)
    assert ops(f) == ["Conv"]
    n = f.nodes[0]
    assert n.inputs == ["x", "w", ""] and n.outputs == ["y"]  # "" keeps epilogue indices fixed
    assert [(s[0], s[2]) for s in n.attrs["epilogue"]] == [("Relu", [("acc", 0)])]
    assert n.attrs["fused_from"] == "Conv+Relu" and "c" not in f.values


def activation_residual_model():
    slope, lo, hi = rand((8, 1, 1), 3), np.array(-0.5, np.float32), np.array(1.5, np.float32)
    nodes = [CONV, node("PRelu", ["c", "s"], ["p"]), node("Add", ["r", "p"], ["a"]),
             node("Clip", ["a", "lo", "hi"], ["y"])]
    return build(nodes, [X, R], ["y"], [("w", W), ("b", B), ("s", slope), ("lo", lo), ("hi", hi)])


def test_activation_and_residual_structure():
    _, g = activation_residual_model()
    f = apply(fuse_conv_epilogue, g)
    assert ops(f) == ["Conv"]
    n = f.nodes[0]
    assert n.inputs == ["x", "w", "b", "s", "r"] and n.outputs == ["y"]
    prog = n.attrs["epilogue"]
    assert [(s[0], s[2]) for s in prog] == [
        ("PRelu", [("acc", 0), ("in", 3)]), ("Add", [("in", 4), ("tmp", 0)]), ("Clip", [("tmp", 1)])]
    assert sorted(prog[2][1]["static_ins"]) == [1, 2]  # Clip bounds are compile-time
    assert n.attrs["fused_from"] == "Conv+PRelu+Add+Clip"


def test_activation_and_residual_match_onnxruntime():
    model, _ = activation_residual_model()
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert planned(compiled) == [("Conv", "Conv+PRelu+Add+Clip")]


def test_operand_produced_after_the_conv_moves_the_conv_later():
    # the residual is computed between the conv and its reader: the fused conv must run after it
    nodes = [CONV, node("Sigmoid", ["r"], ["q"]), node("Sub", ["q", "c"], ["d"]),
             node("Tanh", ["d"], ["y"])]
    model, g = build(nodes, [X, R], ["y"], [("w", W), ("b", B)])
    f = apply(fuse_conv_epilogue, g)
    assert ops(f) == ["Sigmoid", "Conv"] and f.nodes[1].inputs == ["x", "w", "b", "q"]
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert planned(compiled) == [("Sigmoid", ""), ("Conv", "Conv+Sub+Tanh")]


def test_scalar_and_per_channel_constants_and_leaky_relu():
    nodes = [CONV, node("LeakyRelu", ["c"], ["l"], alpha=0.1), node("Mul", ["l", "k"], ["m"]),
             node("Add", ["m", "chan"], ["y"])]
    model, _ = build(nodes, [X], ["y"], [("w", W), ("b", B), ("k", np.array([1.7], np.float32)),
                                         ("chan", rand((1, 8, 1, 1), 4))])
    compiled = check_model(model, [{"x": s["x"]} for s in SHAPES], dims=DIMS)
    assert planned(compiled) == [("Conv", "Conv+LeakyRelu+Mul+Add")]


def test_conv_transpose_takes_sigmoid():
    wt = rand((3, 4, 2, 2), 5)
    nodes = [node("ConvTranspose", ["x", "wt"], ["c"], strides=[2, 2]), node("Sigmoid", ["c"], ["y"])]
    model, _ = build(nodes, [X], ["y"], [("wt", wt)])
    compiled = check_model(model, [{"x": s["x"]} for s in SHAPES], dims=DIMS)
    assert planned(compiled) == [("ConvTranspose", "ConvTranspose+Sigmoid")]


def test_conv_output_with_two_readers_or_graph_output_keeps_no_epilogue():
    _, g = build([CONV, node("Relu", ["c"], ["y"]), node("Neg", ["c"], ["z"])],
                 [X], ["y", "z"], [("w", W), ("b", B)])
    assert "epilogue" not in apply(fuse_conv_epilogue, g).nodes[0].attrs
    _, g = build([CONV, node("Relu", ["c"], ["y"])], [X], ["y", "c"], [("w", W), ("b", B)])
    assert "epilogue" not in apply(fuse_conv_epilogue, g).nodes[0].attrs


def test_chain_stops_at_an_operand_the_kernel_cannot_index():
    # a per-column operand [w] is neither per-element, per-channel nor scalar: Relu is absorbed,
    # the Add stays an element-wise kernel
    nodes = [CONV, node("Relu", ["c"], ["r0"]), node("Add", ["r0", "col"], ["y"])]
    model, g = build(nodes, [X, ("col", ["w"])], ["y"], [("w", W), ("b", B)])
    f = apply(fuse_conv_epilogue, g)
    assert ops(f) == ["Conv", "Add"] and f.nodes[0].attrs["fused_from"] == "Conv+Relu"
    shapes = [{"x": s["x"], "col": (s["x"][3],)} for s in SHAPES]
    compiled = check_model(model, shapes, dims=DIMS)
    assert planned(compiled) == [("Conv", "Conv+Relu"), ("Add", "")]


def test_broadcast_growing_the_output_is_not_absorbed():
    # Add with a [n, 8, h, w] tensor where the conv output is [1, 8, h, w] grows the result
    nodes = [node("Conv", ["x1", "w", "b"], ["c"], pads=[1, 1, 1, 1]), node("Add", ["c", "r"], ["y"])]
    _, g = build(nodes, [("x1", [1, 3, "h", "w"]), R], ["y"], [("w", W), ("b", B)])
    assert ops(apply(fuse_conv_epilogue, g)) == ["Conv", "Add"]
