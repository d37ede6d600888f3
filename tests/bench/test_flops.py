"""bench.flops against FLOPs counted by hand, and against a whole zoo model's known count."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

from bench.flops import node_flops, total_flops
from dydca import zoo


def tiny_model():
    """A 1x1 Conv, an If whose else branch holds a 3x3 Conv without padding, a Gemm (transB)."""
    w = numpy_helper.from_array(np.zeros((8, 4, 1, 1), np.float32), "w")
    w2 = numpy_helper.from_array(np.zeros((8, 8, 3, 3), np.float32), "w2")
    g = numpy_helper.from_array(np.zeros((8, 5), np.float32), "g")
    out = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, None)  # noqa: E731
    then = helper.make_graph([helper.make_node("Relu", ["y"], ["t"])], "t", [], [out("t")])
    other = helper.make_graph([helper.make_node("Conv", ["y", "w2"], ["e"], name="c2")], "e", [], [out("e")])
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="c1"),
             helper.make_node("If", ["c"], ["z"], name="if", then_branch=then, else_branch=other),
             helper.make_node("Gemm", ["v", "g"], ["u"], name="gemm", transB=1)]
    graph = helper.make_graph(nodes, "check", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 6, 6]),
                                               helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                               helper.make_tensor_value_info("v", TensorProto.FLOAT, [3, 5])],
                              [out("z"), out("u")], [w, g, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_flops_by_hand_through_the_branch_taken():
    shapes = {"x": (2, 4, 6, 6), "c": ()}
    got = {k: v.flops for k, v in node_flops(tiny_model(), shapes).items()}
    # c1: 2*8*6*6 outputs x 4 MACs; c2 (no pads): 2*8*4*4 outputs x 8*9 MACs; gemm: 3x8 outputs x 5
    assert got == {"c1": 2 * 576 * 4, "c2": 2 * 256 * 72, "gemm": 2 * 24 * 5}
    assert "c2" not in node_flops(tiny_model(), shapes, branch="then_branch")


def test_resnet50_has_its_published_cost():
    """torchvision's ResNet-50 is 4.09 GMACs at 224x224 (its model card), i.e. 8.18 GFLOP."""
    assert abs(total_flops(zoo.resnet50(), {"x": (1, 3, 224, 224)}) / 1e9 - 8.18) < 0.01
