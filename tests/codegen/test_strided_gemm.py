"""Strided 1x1 convs on the 1x1 GEMM path (runtime_cpp/include/dydca/conv.h: conv2d_1x1_strided;
frontends/ops/conv.py: conv_variants' "StridedGemm1x1"): from STRIDED_GEMM_MIN_PIXELS output
pixels per image a strided 1x1 conv without padding gathers its input pixels into the node's scratch
and runs the GEMM, below that the direct kernel. Checked against onnxruntime on both sides of the
threshold and at the GEMM's tile edges (output pixels not multiples of its 16-pixel panels, channels
not multiples of its 6-row tiles or 8-lane blocks, odd input sizes whose last row and column are
not read), with batches, groups, strides (2, 2), (3, 3) and (2, 1), 1-D convs, a fused ResNet
residual epilogue and weights known only at run time; plus the variant choice and the scratch."""
from __future__ import annotations

import re

import numpy as np
from onnx import helper

from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from dydca.frontends.ops.conv import STRIDED_GEMM_MIN_PIXELS, strided_1x1_scratch_bytes
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model


def node_calls(compiled) -> dict[str, list[str]]:
    """Per conv node of the generated source: the kernels it calls (ConvPath names, "Strided")."""
    source = next(compiled.build_dir.glob("*.cpp")).read_text()
    out = {}
    for body in re.split(r"\n// Conv node ", source)[1:]:
        name, code = body.split('"')[1], body.split("\n}\n")[0]
        found = re.findall(r"dydca::ConvPath::(\w+)|dydca::(conv2d_1x1_strided)<", code)
        out[name] = ["Strided" if s else p for p, s in found]
    return out


def projection_model():
    """x [n,20,h,w], z [n,8,w]:
    y0 = ReLU(conv1x1/2 20->13 + bias + ReLU(conv1x1/2 20->13))  (ResNet's block end: the
         projection's output is the residual operand of the other conv's fused epilogue)
    y1 = conv1x1/3 20->40, no bias                  (stride 3: skipped rows and columns)
    y2 = conv1x1 (2,1) 20->24 in 2 groups of 10/12  (groups: per-group GEMMs and gathers)
    y3 = 1-D conv1x1/2 8->5                          (a conv over a height of 1)"""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], strides=[2, 2], name="proj"),
             node("Conv", ["x", "W1"], ["c1"], strides=[2, 2], name="main"),
             node("Relu", ["c1"], ["r1"]), node("Add", ["c0", "r1"], ["s0"]), node("Relu", ["s0"], ["y0"]),
             node("Conv", ["x", "W2"], ["y1"], strides=[3, 3], name="three"),
             node("Conv", ["x", "W3", "B3"], ["y2"], strides=[2, 1], group=2, name="grouped"),
             node("Conv", ["z", "W4"], ["y3"], strides=[2], name="oned")]
    inits = [("W0", rand((13, 20, 1, 1), 0)), ("B0", rand((13,), 1)), ("W1", rand((13, 20, 1, 1), 2)),
             ("W2", rand((40, 20, 1, 1), 3)), ("W3", rand((24, 10, 1, 1), 4)), ("B3", rand((24,), 5)),
             ("W4", rand((5, 8, 1), 6))]
    return make_model(nodes, [("x", ["n", 20, "h", "w"]), ("z", ["n", 8, "w"])], [f"y{j}" for j in range(4)], inits)


def shapes(n, h, w):
    return {"x": (n, 20, h, w), "z": (n, 8, w)}


def test_strided_gemm_matches_onnxruntime_at_tile_edges():
    dims = {"n": (1, 3), "h": (1, 61), "w": (1, 400)}
    cases = [shapes(1, 20, 20),    # 10x10 = 100 outputs: the smallest GEMM call ("three": 7x7, direct)
             shapes(1, 19, 21),    # 10x11 (odd sizes: the last input row is not read)
             shapes(2, 27, 35),    # 14x18 = 252: 15 full 16-pixel panels and a partial one, batch
             shapes(3, 61, 33),    # 31x17: the last input row and column skipped, "three" 21x11 on the GEMM
             shapes(1, 1, 400),    # 1x200 (1-D: 200 outputs)
             shapes(1, 17, 23),    # 9x12 = 108 at stride 2, 6x8 at 3: both sides of the threshold
             shapes(2, 9, 9),      # 5x5: the direct kernel everywhere
             shapes(1, 1, 1)]
    compiled = check_model(projection_model(), cases, dims=dims)
    calls = node_calls(compiled)
    for name in ("proj", "main", "three", "grouped", "oned"):
        assert calls[name][0] == "Strided" and len(calls[name]) == 2, (name, calls[name])


def test_variant_follows_the_output_size():
    conv = make_model([helper.make_node("Conv", ["x", "W"], ["y"], strides=[2, 2], name="proj")],
                      [("x", ["n", 16, "h", "w"])], ["y"], [("W", rand((24, 16, 1, 1), 7))])
    side = int(np.ceil(np.sqrt(STRIDED_GEMM_MIN_PIXELS)))  # outputs of side x side always fill the GEMM
    big = {"n": (1, 2), "h": (2 * side - 1, 80), "w": (2 * side - 1, 80)}
    compiled = check_model(conv, [{"x": (1, 16, 2 * side - 1, 2 * side - 1)}, {"x": (2, 16, 80, 77)}], dims=big)
    assert node_calls(compiled) == {"proj": ["Strided"]}
    small = {"n": (1, 4), "h": (1, 14), "w": (1, 14)}  # at most 7x7 outputs: never the GEMM
    compiled = check_model(conv, [{"x": (4, 16, 14, 14)}, {"x": (1, 16, 3, 5)}], dims=small)
    assert node_calls(compiled) == {"proj": ["General"]}  # 24 channels: three 8-blocks
    # padding, or a kernel wider than 1, rules the GEMM out
    for attrs, wshape in ((dict(strides=[2, 2], pads=[0, 0, 1, 1]), (24, 16, 1, 1)),
                          (dict(strides=[2, 2], pads=[1, 1, 1, 1]), (24, 16, 3, 3))):
        model = make_model([helper.make_node("Conv", ["x", "W"], ["y"], name="proj", **attrs)],
                           [("x", ["n", 16, "h", "w"])], ["y"], [("W", rand(wshape, 8))])
        compiled = check_model(model, [{"x": (1, 16, 40, 41)}], dims=big)
        assert "Strided" not in node_calls(compiled)["proj"]


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
