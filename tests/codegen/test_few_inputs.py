"""Convs with few input channels per group (Cg <= FEW_INPUTS_MAX: the RGB first layers) take the
panel micro-kernel (runtime_cpp/include/dydca/conv.h: fi_row; frontends/ops/conv.py: conv_path
"FewInputs").  Checked against onnxruntime at its tile edges: widths below, at and above the 6- and
12-pixel tiles and the 96-pixel row chunks (a width of 193 at stride 2 makes two), odd sizes, batches, symmetric and
asymmetric pads, stride 2, output channels not multiples of 8 (a block pair of 16, then a lone
block), Cg 1..3 with groups, fused epilogues (bias, ReLU + residual, PReLU, Tanh) and the
depth-to-space store; dilated kernels keep the general kernel."""
from __future__ import annotations

from onnx import helper

from dydca.frontends.ops.conv import FEW_INPUTS_MAX, conv_path
from tests.codegen.test_conv_fast_paths import node_calls
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model


def test_path_choice():
    p = [1, 1]
    assert FEW_INPUTS_MAX == 3
    assert conv_path([5, 5], [1, 1], [2, 2], [2, 2], 64, 3, 1, None) == "FewInputs"
    assert conv_path([3, 3], [2, 2], p, p, 24, 1, 3, None) == "FewInputs"
    assert conv_path([3, 3], [1, 1], p, p, 16, 4, 1, None) == "General16"   # Cg above the limit
    assert conv_path([3, 3], [1, 1], p, p, 6, 3, 1, None) == "FewChannels"  # Mg < 8 first
    assert conv_path([3, 3], [1, 1], p, p, 16, 3, 1, None, [2, 2]) == "General16"  # dilated
    assert conv_path([1, 1], [1, 1], [0, 0], [0, 0], 16, 3, 1, None) == "Gemm1x1"


def few_inputs_model():
    """x [n,3,h,w], r [n,12,h,w]:
    y0 = ReLU(conv5x5 3->12 + bias) + r   (residual epilogue; Mg 12: one pair, 4 lanes of it unused)
    y1 = PReLU(conv3x3 3->20 + bias), pads (0,1,2,0)   (a pair, then a lone block of 4)
    y2 = Tanh(conv5x5/s2 3->16), pads 2
    y3 = DepthToSpace(conv3x3 3->12 + bias, 2)   (the pixel-shuffle store)
    y4 = conv7x7/s2 3->64 + bias, pads 3   (a ResNet stem: 4 blocks)
    y5 = conv3x3 3->24 in 3 groups (Cg 1, Mg 8), pads (1,0,1,2)
    y6 = conv1x1 3->9, pads (0,0,1,1)
    y7 = conv5x5 3->64, pads 2   (ESPCN's first layer)
    y8 = conv3x3 3->16 dilation 2, pads 2   (the control: the general kernel)
    y9 = conv3x3 r 12->48 in 6 groups (Cg 2, Mg 8), pads 1"""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], pads=[2, 2, 2, 2], name="res"),
             node("Relu", ["c0"], ["r0"]), node("Add", ["r0", "r"], ["y0"]),
             node("Conv", ["x", "W1", "B1"], ["c1"], pads=[0, 1, 2, 0], name="prelu"),
             node("PRelu", ["c1", "S1"], ["y1"]),
             node("Conv", ["x", "W2"], ["c2"], pads=[2, 2, 2, 2], strides=[2, 2], name="strided"),
             node("Tanh", ["c2"], ["y2"]),
             node("Conv", ["x", "W3", "B3"], ["c3"], pads=[1, 1, 1, 1], name="shuffle"),
             node("DepthToSpace", ["c3"], ["y3"], blocksize=2, mode="DCR"),
             node("Conv", ["x", "W4", "B4"], ["y4"], pads=[3, 3, 3, 3], strides=[2, 2], name="stem"),
             node("Conv", ["x", "W5"], ["y5"], pads=[1, 0, 1, 2], group=3, name="grouped"),
             node("Conv", ["x", "W6"], ["y6"], pads=[0, 0, 1, 1], name="pointwise"),
             node("Conv", ["x", "W7"], ["y7"], pads=[2, 2, 2, 2], name="espcn"),
             node("Conv", ["x", "W8"], ["y8"], pads=[2, 2, 2, 2], dilations=[2, 2], name="dilated"),
             node("Conv", ["r", "W9"], ["y9"], pads=[1, 1, 1, 1], group=6, name="pairs")]
    inits = [("W0", rand((12, 3, 5, 5), 0)), ("B0", rand((12,), 1)),
             ("W1", rand((20, 3, 3, 3), 2)), ("B1", rand((20,), 3)), ("S1", rand((20, 1, 1), 4)),
             ("W2", rand((16, 3, 5, 5), 5)), ("W3", rand((12, 3, 3, 3), 6)), ("B3", rand((12,), 7)),
             ("W4", rand((64, 3, 7, 7), 8)), ("B4", rand((64,), 9)), ("W5", rand((24, 1, 3, 3), 10)),
             ("W6", rand((9, 3, 1, 1), 11)), ("W7", rand((64, 3, 5, 5), 12)), ("W8", rand((16, 3, 3, 3), 13)),
             ("W9", rand((48, 2, 3, 3), 14))]
    return make_model(nodes, [("x", ["n", 3, "h", "w"]), ("r", ["n", 12, "h", "w"])],
                      [f"y{j}" for j in range(10)], inits)


def test_few_inputs_matches_onnxruntime_at_tile_edges(tmp_path):
    dims = {"n": (1, 3), "h": (1, 40), "w": (2, 200)}  # w = 1 would leave "prelu" 0 wide
    nhw = [(1, 5, 3), (1, 4, 5), (2, 3, 6), (1, 7, 7), (1, 2, 12), (3, 3, 13), (1, 3, 48), (1, 2, 71),
           (1, 3, 72), (1, 3, 74), (2, 3, 95), (1, 2, 96), (1, 3, 97), (1, 2, 193), (1, 1, 2), (2, 17, 29)]
    cases = [{"x": (n, 3, h, w), "r": (n, 12, h, w)} for n, h, w in nhw]
    compiled = check_model(few_inputs_model(), cases, dims=dims, out_dir=tmp_path)
    calls = node_calls(compiled)
    for name in ("res", "prelu", "strided", "shuffle", "stem", "grouped", "pointwise", "espcn", "pairs"):
        assert calls[name] == ["FewInputs"], (name, calls[name])
    assert calls["dilated"] == ["General16"]
