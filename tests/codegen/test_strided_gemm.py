"""Strided 1x1 convs on the 1x1 GEMM path (runtime_cpp/include/dydca/conv.h: conv2d_1x1_strided;
frontends/ops/conv.py: conv_variants' "StridedGemm1x1"): a strided 1x1 conv without padding gathers
its input pixels into the node's scratch and runs the GEMM, whose last few pixels (up to
kCvNP past its 16-pixel panels) take the channel-vectorised kernel (gemm1x1_cv).
Checked against onnxruntime at the tile edges (pixel counts below, at and above a panel, with tails
of 1..6 pixels, tails of 7..15 left to a masked panel, channels not multiples of the 6-row tiles or
8-lane blocks so block pairs straddle row blocks, odd input sizes whose last row and column are not
read), with batches, groups, strides (2, 2), (3, 3) and (2, 1), 1-D convs, a fused ResNet residual
epilogue and weights known only at run time; plus where the path is taken and the scratch."""
from __future__ import annotations

import numpy as np
from onnx import helper

from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from dydca.frontends.ops.conv import strided_1x1_scratch_bytes
from tests.codegen.test_conv_fast_paths import node_calls
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model


def projection_model():
    """x [n,20,h,w], z [n,8,w]:
    y0 = ReLU(conv1x1/2 20->13 + bias + ReLU(conv1x1/2 20->13))  (ResNet's block end: the
         projection's output is the residual operand of the other conv's fused epilogue)
    y1 = conv1x1/3 20->40, no bias                  (stride 3: skipped rows and columns)
    y2 = conv1x1 (2,1) 20->24 in 2 groups of 10/12  (groups: per-group GEMMs and gathers)
    y4 = conv1x1/2 20->70 + bias, unit-stride 1x1 70->37 over it (the plain 1x1 GEMM's tails too)
    y3 = 1-D conv1x1/2 8->5                          (a conv over a height of 1)"""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], strides=[2, 2], name="proj"),
             node("Conv", ["x", "W1"], ["c1"], strides=[2, 2], name="main"),
             node("Relu", ["c1"], ["r1"]), node("Add", ["c0", "r1"], ["s0"]), node("Relu", ["s0"], ["y0"]),
             node("Conv", ["x", "W2"], ["y1"], strides=[3, 3], name="three"),
             node("Conv", ["x", "W3", "B3"], ["y2"], strides=[2, 1], group=2, name="grouped"),
             node("Conv", ["z", "W4"], ["y3"], strides=[2], name="oned"),
             node("Conv", ["x", "W5", "B5"], ["c5"], strides=[2, 2], name="wide"),
             node("Conv", ["c5", "W6"], ["y4"], name="plain")]
    inits = [("W0", rand((13, 20, 1, 1), 0)), ("B0", rand((13,), 1)), ("W1", rand((13, 20, 1, 1), 2)),
             ("W2", rand((40, 20, 1, 1), 3)), ("W3", rand((24, 10, 1, 1), 4)), ("B3", rand((24,), 5)),
             ("W4", rand((5, 8, 1), 6)), ("W5", rand((70, 20, 1, 1), 7)), ("B5", rand((70,), 8)),
             ("W6", rand((37, 70, 1, 1), 9) * 0.2)]
    return make_model(nodes, [("x", ["n", 20, "h", "w"]), ("z", ["n", 8, "w"])], [f"y{j}" for j in range(5)], inits)


def shapes(n, h, w):
    return {"x": (n, 20, h, w), "z": (n, 8, w)}


def test_strided_gemm_matches_onnxruntime_at_tile_edges():
    dims = {"n": (1, 3), "h": (1, 61), "w": (1, 400)}
    cases = [shapes(1, 14, 14),    # 7x7 = 49: 3 panels and a 1-pixel tail ("three": 5x5, tail only)
             shapes(1, 19, 21),    # 10x11 = 110: 6 panels and a 14-pixel masked one ("three": 7x7)
             shapes(2, 27, 35),    # 14x18 = 252: 15 panels and a 12-pixel masked one, batch
             shapes(3, 61, 33),    # 31x17 = 527: the last input row and column skipped
             shapes(1, 1, 400),    # 1x200 = 12 panels and an 8-pixel one (1-D)
             shapes(1, 17, 23),    # 9x12 = 108: a 12-pixel panel; "three" 6x8 = 48: 3 whole panels
             shapes(2, 8, 8),      # 4x4 = 16: one whole panel; 3x3 = 9
             shapes(1, 8, 12),     # 4x6 = 24: one panel and 8; "oned" 6, "plain" 24
             shapes(1, 14, 10),    # 7x5 = 35: 2 panels and 3; "three" 5x4 = 20: one panel and 4
             shapes(1, 2, 10),     # 1x5 = 5: tail only; "grouped" 1x10 = 10: a masked panel
             shapes(1, 6, 4),      # 3x2 = 6 and 2x2 = 4: tail only
             shapes(1, 2, 4),      # 1x2 = 2
             shapes(1, 1, 1)]
    compiled = check_model(projection_model(), cases, dims=dims)
    calls = node_calls(compiled)
    for name in ("proj", "main", "three", "grouped", "oned", "wide"):
        assert calls[name] == ["Strided"], (name, calls[name])
    assert calls["plain"] == ["Gemm1x1"]


def test_only_unpadded_1x1_convs_take_it():
    dims = {"n": (1, 2), "h": (1, 40), "w": (1, 41)}
    for attrs, wshape, path in ((dict(strides=[2, 2]), (24, 16, 1, 1), "Strided"),
                                (dict(strides=[2, 2], pads=[0, 0, 1, 1]), (24, 16, 1, 1), "General"),
                                (dict(strides=[2, 2], pads=[1, 1, 1, 1]), (24, 16, 3, 3), "General")):
        model = make_model([helper.make_node("Conv", ["x", "W"], ["y"], name="proj", **attrs)],
                           [("x", ["n", 16, "h", "w"])], ["y"], [("W", rand(wshape, 8))])
        compiled = check_model(model, [{"x": (1, 16, 40, 41)}, {"x": (2, 16, 3, 2)}], dims=dims)
        assert node_calls(compiled) == {"proj": [path]}


def test_runtime_weights_and_scratch():
    """Weights that are a graph input are packed per call into the scratch's front, the gathered
    input lies after them; the plan reserves both at the declared maxima."""
    model = make_model([helper.make_node("Conv", ["x", "W", "B"], ["y"], strides=[2, 2], name="proj")],
                       [("x", ["n", 12, "h", "w"]), ("W", [20, 12, 1, 1]), ("B", [20])], ["y"], [])
    dims = {"n": (1, 2), "h": (20, 50), "w": (20, 45)}
    compiled = check_model(model, [{"x": (2, 12, 50, 45), "W": (20, 12, 1, 1), "B": (20,)},
                                   {"x": (1, 12, 21, 20), "W": (20, 12, 1, 1), "B": (20,)}], dims=dims)
    assert node_calls(compiled) == {"proj": ["Strided"]}
    packed = 3 * 8 * 12 * 4 + 64  # 20 channels in three 8-blocks
    gathered = strided_1x1_scratch_bytes(2, 12, [25, 23])
    assert gathered == 2 * 12 * 25 * 23 * 4 + 64
    p = plan(from_onnx(model, dims=dims)).plan
    assert [b.bytes for b in p.scratch.values()] == [-(-(packed + gathered) // 64) * 64]
