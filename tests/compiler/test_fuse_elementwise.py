"""fuse_elementwise: trees of element-wise nodes become one FusedElementwise kernel."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from dydca.compiler.passes import fuse_elementwise
from dydca.frontends import ModelError, from_onnx
from dydca.frontends.ops import REGISTRY, InferCtx, with_defaults
from tests.compiler.graphs import DIMS, apply, build, ops, planned, rand
from tests.oracle import check_model, make_model

node = helper.make_node
X = ("x", ["n", 3, "h", "w"])
SHAPES = [{"x": (1, 3, 5, 7)}, {"x": (3, 3, 24, 24)}, {"x": (2, 3, 1, 13)}]


def chain_model():
    bias = rand((1, 3, 1, 1), 1)
    return build([node("Relu", ["x"], ["r"]), node("Add", ["r", "b"], ["a"]),
                  node("Sigmoid", ["a"], ["s"]), node("Mul", ["s", "x"], ["y"])],
                 [X], ["y"], [("b", bias)])


def test_chain_becomes_one_node_with_constant_and_input_operands():
    _, g = chain_model()
    f = apply(fuse_elementwise, g)
    assert ops(f) == ["FusedElementwise"]
    n = f.nodes[0]
    assert n.inputs == ["x", "b"] and n.outputs == ["y"]  # x read twice, listed once
    assert n.attrs["fused_from"] == "Relu+Add+Sigmoid+Mul"
    assert [(s[0], s[2]) for s in n.attrs["program"]] == [
        ("Relu", [("in", 0)]), ("Add", [("tmp", 0), ("in", 1)]),
        ("Sigmoid", [("tmp", 1)]), ("Mul", [("tmp", 2), ("in", 0)])]
    assert not {"r", "a", "s"} & set(f.values)  # intermediates no longer exist
    # the table's shape rule for the fused op agrees with the replaced chain's result
    # (called directly: infer_node refuses internal ops, which no model may name)
    op = REGISTRY["FusedElementwise"]
    ctx = InferCtx(n, [f.values[i] for i in n.inputs], with_defaults(op, n), f.dims)
    assert op.infer(ctx) == [(np.float32, f.values["y"].shape)]


def test_chain_matches_onnxruntime_and_is_one_kernel():
    model, _ = chain_model()
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert planned(compiled) == [("FusedElementwise", "Relu+Add+Sigmoid+Mul")]


def test_shared_or_output_intermediates_stay_materialised():
    # r has two readers, t is a graph output: neither may disappear inside a fused kernel
    _, g = build([node("Relu", ["x"], ["r"]), node("Exp", ["r"], ["e"]), node("Neg", ["r"], ["q"]),
                  node("Tanh", ["x"], ["t"]), node("Abs", ["t"], ["u"]), node("Sub", ["e", "q"], ["y"])],
                 [X], ["y", "t", "u"])
    f = apply(fuse_elementwise, g)
    fused = [n for n in f.nodes if n.op == "FusedElementwise"]
    assert ops(f).count("Relu") == 1 and ops(f).count("Tanh") == 1 and ops(f).count("Abs") == 1
    assert len(fused) == 1 and fused[0].attrs["fused_from"] == "Exp+Neg+Sub"
    assert fused[0].inputs == ["r"]


def test_tree_with_broadcasting_clip_bounds_and_mixed_types_matches_onnxruntime():
    # two branches meet; Clip's bounds are compile-time inputs; Greater gives bool to Where;
    # the per-row operand [h, 1] and per-channel constant broadcast inside the fused kernel
    lo, hi = np.array(-0.3, np.float32), np.array(0.8, np.float32)
    ch = rand((3, 1, 1), 2)
    nodes = [node("Clip", ["x", "lo", "hi"], ["c"]), node("Mul", ["c", "ch"], ["m"]),
             node("Greater", ["m", "z"], ["g"]), node("Tanh", ["z"], ["t"]),
             node("Where", ["g", "x", "t"], ["y0"]), node("LeakyRelu", ["y0"], ["y"], alpha=0.2)]
    model, g = build(nodes, [X, ("z", ["h", 1])], ["y"], [("lo", lo), ("hi", hi), ("ch", ch)])
    f = apply(fuse_elementwise, g)
    assert ops(f) == ["FusedElementwise"]
    n = f.nodes[0]
    assert set(n.inputs) == {"x", "ch", "z"}  # Clip's bounds are not run-time operands
    clip = n.attrs["program"][0]
    assert clip[0] == "Clip" and sorted(clip[1]["static_ins"]) == [1, 2] and len(clip[2]) == 1
    shapes = [{"x": (1, 3, 5, 7), "z": (5, 1)}, {"x": (3, 3, 24, 2), "z": (24, 1)}]
    compiled = check_model(model, shapes, dims=DIMS)
    assert planned(compiled) == [("FusedElementwise", "Clip+Mul+Greater+Tanh+Where+LeakyRelu")]


def test_integer_and_cast_chain_matches_onnxruntime():
    nodes = [node("Cast", ["x"], ["c"], to=TensorProto.INT64), node("Mul", ["c", "k"], ["m"]),
             node("Abs", ["m"], ["r"]), node("Cast", ["r"], ["y"], to=TensorProto.FLOAT)]
    model = make_model(nodes, [X], ["y"], [("k", np.array([3], np.int64))])
    compiled = check_model(model, SHAPES, dims=DIMS)
    assert planned(compiled) == [("FusedElementwise", "Cast+Mul+Abs+Cast")]


def test_non_elementwise_node_splits_chains():
    w = rand((4, 3, 1, 1), 3)
    _, g = build([node("Relu", ["x"], ["r"]), node("Conv", ["r", "w"], ["c"]),
                  node("Sigmoid", ["c"], ["s"]), node("Neg", ["s"], ["y"])], [X], ["y"], [("w", w)])
    f = apply(fuse_elementwise, g)
    assert ops(f) == ["Relu", "Conv", "FusedElementwise"]
    assert f.nodes[2].inputs == ["c"]


def test_single_nodes_are_left_alone():
    _, g = build([node("Relu", ["x"], ["y"])], [X], ["y"])
    assert ops(apply(fuse_elementwise, g)) == ["Relu"]


def test_fused_op_is_not_accepted_from_a_model():
    model = make_model([node("FusedElementwise", ["x"], ["y"])], [X], ["y"])
    with pytest.raises(ModelError, match="FusedElementwise is not supported") as e:
        from_onnx(model, DIMS)
    assert "FusedElementwise," not in str(e.value)  # nor listed among the supported operators
