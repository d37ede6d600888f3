"""Compile-time conv kernel path selection (frontends/ops/conv.py: conv_path, conv_variants): each
Conv node instantiates only the dydca::ConvPath(s) its static facts and declared dims select; the
choice must agree with the run-time dispatch (a named path throws when the shape does not fit it)
and every path must match onnxruntime. One model, one g++ run, several shapes."""
from __future__ import annotations

import re

import numpy as np

from onnx import helper

from dydca.frontends.ops.conv import conv_path, general_path
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

DIMS = {"n": (1, 2), "h": (1, 24), "w": (1, 30)}


def test_path_choice_follows_static_facts():
    z = [0, 0]
    assert conv_path([3, 3], [1, 1], [1, 1], [1, 1], 8, 1, 8, None) == "Depthwise"
    assert conv_path([1, 1], [1, 1], z, z, 5, 8, 1, None) == "Gemm1x1"
    # a store layout or any pad rules the 1x1 GEMM out
    assert conv_path([1, 1], [1, 1], z, z, 5, 8, 1, "store") == "FewChannels"
    assert conv_path([1, 1], [1, 1], z, [0, 1], 16, 8, 1, None) == "General16"
    assert conv_path([3, 3], [1, 2], [1, 1], [1, 1], 5, 8, 1, None) == "General8"
    assert [general_path(m) for m in (1, 8, 9, 16, 17, 24, 32, 40)] == \
        ["General8", "General8", "General16", "General16", "General", "General", "General16", "General"]


def test_every_path_matches_onnxruntime():
    node = helper.make_node
    convs = [  # (op, W shape, attrs, expected path)
        ("Conv", (24, 8, 3, 3), dict(pads=[1, 1, 1, 1]), "General"),  # odd number of 8-blocks
        ("Conv", (16, 8, 3, 3), dict(pads=[1, 1, 1, 1]), "General16"),
        ("Conv", (6, 8, 3, 3), dict(pads=[1, 1, 1, 1], strides=[1, 2]), "General8"),
        ("Conv", (5, 8, 1, 1), {}, "Gemm1x1"),
        ("Conv", (12, 8, 1, 1), dict(pads=[0, 0, 1, 1]), "General16"),
        # w in [1, 30] spans narrow rows (General8, w <= 13 at Mg 4) and wide ones: both variants compile
        ("Conv", (4, 8, 3, 3), dict(pads=[1, 2, 1, 0]), "FewChannels General8"),
        ("Conv", (3, 8, 3, 3), dict(pads=[1, 1, 1, 1]), "FewChannels"),  # Mg <= 3: FewChannels at every width
        ("Conv", (8, 1, 3, 3), dict(group=8, pads=[1, 1, 1, 1]), "Depthwise"),
        ("ConvTranspose", (8, 24, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1]), "General"),
        ("ConvTranspose", (8, 16, 3, 3), dict(strides=[2, 2]), "General16"),
    ]
    nodes, inits, outs = [], [], []
    for j, (op, wshape, attrs, _) in enumerate(convs):
        inits.append((f"w{j}", rand(wshape, j)))
        nodes.append(node(op, ["x", f"w{j}"], [f"y{j}"], **attrs))
        outs.append(f"y{j}")
    model = make_model(nodes, [("x", ["n", 8, "h", "w"])], outs, inits)
    compiled = check_model(model, [{"x": (1, 8, 24, 30)}, {"x": (2, 8, 5, 7)}, {"x": (1, 8, 1, 1)}],
                           dims=DIMS)
    source = next(compiled.build_dir.glob("*.cpp")).read_text()
    used = sorted(re.findall(r"dydca::ConvPath::(\w+)", source))
    assert used == sorted(p for *_, paths in convs for p in paths.split())


def test_weight_major_order_matches_onnxruntime():
    """Wide convs on small maps, whose packed weights (> 256 KiB per group) outweigh the rows they
    are used for: the general kernels take their tasks block pair by block pair
    (runtime_cpp/include/dydca/conv.h: weight_major); every output must still be written once."""
    node = helper.make_node
    convs = [  # (op, W shape, attrs): Mg = 88 is 11 blocks of 8, an odd one left after the pairs
        ("Conv", (88, 96, 3, 3), dict(pads=[1, 1, 1, 1])),
        # a strided 1x1 like ResNet's projections, padded to stay on the general kernel (unpadded
        # ones take the GEMM: test_strided_gemm.py)
        ("Conv", (136, 512, 1, 1), dict(strides=[2, 2], pads=[0, 0, 1, 1])),
        ("Conv", (96, 96, 3, 3), dict(pads=[1, 1, 1, 1], strides=[2, 2])),
        ("ConvTranspose", (96, 88, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1])),
    ]
    nodes = [node("Slice", ["x", "s0", "s1", "ax"], ["x96"])]
    inits = [("s0", np.array([0], np.int64)), ("s1", np.array([96], np.int64)), ("ax", np.array([1], np.int64))]
    outs = []
    for j, (op, wshape, attrs) in enumerate(convs):
        inits.append((f"w{j}", rand(wshape, j) * 0.1))
        inits.append((f"b{j}", rand((wshape[1] if op == "ConvTranspose" else wshape[0],), j + 10)))
        src = "x" if wshape[1] == 512 else "x96"
        nodes.append(node(op, [src, f"w{j}", f"b{j}"], [f"c{j}"], **attrs))
        nodes.append(node("Relu", [f"c{j}"], [f"y{j}"]))  # a fused epilogue with the channel index
        outs.append(f"y{j}")
    model = make_model(nodes, [("x", ["n", 512, "h", "w"])], outs, inits)
    check_model(model, [{"x": (1, 512, 7, 7)}, {"x": (2, 512, 6, 5)}, {"x": (1, 512, 2, 3)}],
                dims={"n": (1, 2), "h": (2, 8), "w": (2, 8)})
