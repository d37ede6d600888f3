"""Conv / ConvTranspose end to end against onnxruntime: DepthToSpace folded into the conv's store,
and weights / biases that are only known at run time (graph inputs), packed per call.

Each test compiles ONE multi-branch model (one g++ run) and checks it at several input shapes.
"""
from __future__ import annotations

import numpy as np
from onnx import helper

from tests.compiler.graphs import planned, rand
from tests.oracle import check_model, make_model

node = helper.make_node
DIMS = {"n": (1, 3), "h": (1, 40), "w": (1, 40)}


def test_depth_to_space_folds_into_conv_store():
    """Every (blocksize, mode) pair, over each conv kernel path: general tiles, few output
    channels (one channel after the shuffle, ESPCN's last layer), 1x1, strided, with a scalar
    epilogue (Relu / Mul by a scalar) applied before the shuffle."""
    c = 8
    nodes, inits, outs = [], [], []
    branches = [  # (blocksize, mode, out channels after shuffle, kernel, stride, epilogue)
        (2, "DCR", 4, 3, 1, "Relu"), (2, "CRD", 4, 3, 1, None), (3, "DCR", 1, 3, 1, "Relu"),
        (3, "CRD", 3, 3, 1, "Mul"), (2, "DCR", 3, 1, 1, None), (3, "CRD", 2, 3, 2, None),
        (2, "CRD", 1, 5, 1, "Relu"),
    ]
    inits.append(("half", np.array(0.5, np.float32)))
    for j, (b, mode, cp, k, s, epi) in enumerate(branches):
        m = cp * b * b
        inits += [(f"w{j}", rand((m, c, k, k), 10 + j)), (f"b{j}", rand((m,), 30 + j))]
        nodes.append(node("Conv", ["x", f"w{j}", f"b{j}"], [f"c{j}"], pads=[k // 2] * 4, strides=[s, s]))
        src = f"c{j}"
        if epi == "Relu":
            nodes.append(node("Relu", [src], [f"e{j}"]))
            src = f"e{j}"
        elif epi == "Mul":
            nodes.append(node("Mul", [src, "half"], [f"e{j}"]))
            src = f"e{j}"
        nodes.append(node("DepthToSpace", [src], [f"y{j}"], blocksize=b, mode=mode))
        outs.append(f"y{j}")
    model = make_model(nodes, [("x", ["n", c, "h", "w"])], outs, inits)
    shapes = [{"x": (1, c, 5, 7)}, {"x": (2, c, 17, 33)}, {"x": (3, c, 1, 40)}, {"x": (1, c, 40, 1)}]
    compiled = check_model(model, shapes, dims=DIMS)
    kernels = planned(compiled)
    assert all(op == "Conv" for op, _ in kernels), kernels
    assert all(fused.endswith("+DepthToSpace") for _, fused in kernels), kernels


def test_runtime_weights_match_onnxruntime():
    """Weights and biases as graph inputs (as in the ONNX conformance tests): general, grouped,
    depthwise, strided, dilated, auto_pad, 1x1, few output channels, 1-D; ConvTranspose with pads,
    output_padding, groups, output_shape (odd total pad: the extra row goes first), auto_pad
    SAME_UPPER / SAME_LOWER, and 1-D. One branch mixes a constant W with a run-time B."""
    x, x2, x1 = ("x", ["n", 8, "h", "w"]), ("x2", ["n", 8, 5, 6]), ("x1", ["n", 4, "w"])
    convs = [  # (op, input, W shape, with run-time B, attrs)
        ("Conv", "x", (16, 8, 3, 3), True, dict(pads=[1, 1, 1, 1])),
        ("Conv", "x", (12, 4, 3, 3), True, dict(group=2, strides=[2, 2], pads=[1, 0, 1, 2])),
        ("Conv", "x", (8, 1, 3, 3), True, dict(group=8, auto_pad="SAME_UPPER")),
        ("Conv", "x", (16, 1, 5, 5), False, dict(group=8, auto_pad="SAME_LOWER", strides=[2, 1])),
        ("Conv", "x", (3, 8, 3, 3), True, dict(dilations=[2, 2], pads=[2, 2, 2, 2])),
        ("Conv", "x", (24, 8, 1, 1), True, {}),
        ("Conv", "x", (5, 8, 3, 2), False, dict(auto_pad="SAME_UPPER", strides=[1, 2])),
        ("Conv", "x1", (6, 4, 3), True, dict(strides=[2], pads=[1, 1])),
        ("ConvTranspose", "x", (8, 6, 3, 3), True, dict(strides=[2, 2], pads=[1, 1, 1, 1],
                                                         output_padding=[1, 1])),
        ("ConvTranspose", "x", (8, 2, 4, 4), False, dict(group=4, strides=[2, 2], pads=[1, 1, 1, 1])),
        ("ConvTranspose", "x2", (8, 3, 3, 3), True, dict(strides=[2, 2], output_shape=[10, 12])),
        ("ConvTranspose", "x1", (4, 5, 3), True, dict(strides=[3], dilations=[2])),
        ("ConvTranspose", "x", (8, 4, 3, 3), True, dict(strides=[2, 2], auto_pad="SAME_UPPER")),
        ("ConvTranspose", "x", (8, 4, 3, 3), False, dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ]
    nodes, inputs, outs = [], [x, x2, x1], []
    for j, (op, src, wshape, rt_bias, attrs) in enumerate(convs):
        m = wshape[0] if op == "Conv" else wshape[1] * attrs.get("group", 1)
        inputs.append((f"w{j}", list(wshape)))
        ins = [src, f"w{j}"]
        if rt_bias:
            inputs.append((f"b{j}", [m]))
            ins.append(f"b{j}")
        nodes.append(node(op, ins, [f"y{j}"], **attrs))
        outs.append(f"y{j}")
    # constant weights, run-time bias
    nodes.append(node("Conv", ["x", "wc", "bc"], ["yc"], pads=[1, 1, 1, 1]))
    inputs.append(("bc", [16]))
    outs.append("yc")
    model = make_model(nodes, inputs, outs, [("wc", rand((16, 8, 3, 3), 5))])

    def shapes(n, h, w):
        d = {"x": (n, 8, h, w), "x2": (n, 8, 5, 6), "x1": (n, 4, w), "bc": (16,)}
        for j, (op, _, wshape, rt_bias, attrs) in enumerate(convs):
            d[f"w{j}"] = wshape
            if rt_bias:
                d[f"b{j}"] = (wshape[0] if op == "Conv" else wshape[1] * attrs.get("group", 1),)
        return d

    check_model(model, [shapes(1, 6, 7), shapes(2, 17, 30), shapes(3, 2, 40)], dims=DIMS)
