"""The channel-vector 1x1 kernel (runtime_cpp/include/dydca/conv.h: gemm1x1_cv): unit-stride 1x1
convs with kCv1x1MinK or more input channels per group (8-lane builds: 512) run with the output
channels in the vector lanes (kCvNB 8-channel blocks) and the plane as one flat run of 6-pixel
tiles, instead of the 6 x 16 GEMM tile; strided 1x1 convs take it after their gather.  With AVX-512
the GEMM takes them all, and this kernel the planes' last few pixels past the 16-pixel panels.  Checked against onnxruntime at the
tile edges (planes of 1..6 pixels and planes that end mid-tile, batches), output channels that end
mid-block and mid-group (a block group past the weights' end recomputes the last block), groups,
a fused residual epilogue, strides and weights known only at run time; and that convs below the
threshold still match through the GEMM."""
from __future__ import annotations

import re
from pathlib import Path

from onnx import helper

from tests.codegen.test_conv_fast_paths import node_calls
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

HEADER = Path(__file__).resolve().parents[2] / "runtime_cpp/include/dydca/conv.h"
K = int(re.search(r"kCv1x1MinK = (\d+)", HEADER.read_text()).group(1))


def channel_vector_model():
    """x [n,K,h,w], z [n,2K,h,w], v [n,K-8,h,w]:
    y0 = ReLU(conv1x1 K->K + bias) + x         (a residual epilogue: the output index must be right)
    y1 = conv1x1 K->44, no bias                (44 = 32 + 12: a second block group, part-filled)
    y2 = conv1x1 2K->26 in 2 groups of 13      (groups; 13 channels: one block and 5 of the next)
    y3 = conv1x1/2 K->40 + bias                (strided: the gathered input through the same kernel)
    y4 = conv1x1 (K-8)->20                     (below the threshold: the 6 x 16 GEMM and its tail)"""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], name="res"), node("Relu", ["c0"], ["r0"]),
             node("Add", ["r0", "x"], ["y0"]),
             node("Conv", ["x", "W1"], ["y1"], name="wide"),
             node("Conv", ["z", "W2"], ["y2"], group=2, name="grouped"),
             node("Conv", ["x", "W3", "B3"], ["y3"], strides=[2, 2], name="strided"),
             node("Conv", ["v", "W4"], ["y4"], name="below")]
    inits = [("W0", rand((K, K, 1, 1), 0) * 0.1), ("B0", rand((K,), 1)), ("W1", rand((44, K, 1, 1), 2) * 0.1),
             ("W2", rand((26, K, 1, 1), 3) * 0.1), ("W3", rand((40, K, 1, 1), 4) * 0.1), ("B3", rand((40,), 5)),
             ("W4", rand((20, K - 8, 1, 1), 6) * 0.1)]
    return make_model(nodes, [("x", ["n", K, "h", "w"]), ("z", ["n", 2 * K, "h", "w"]), ("v", ["n", K - 8, "h", "w"])],
                      [f"y{j}" for j in range(5)], inits)


def shapes(n, h, w):
    return {"x": (n, K, h, w), "z": (n, 2 * K, h, w), "v": (n, K - 8, h, w)}


def test_channel_vector_1x1_matches_onnxruntime_at_tile_edges():
    dims = {"n": (1, 3), "h": (1, 20), "w": (1, 20)}
    cases = [shapes(1, 7, 7),     # 49 pixels: 8 tiles and 1 (strided: 16, 2 tiles and 4)
             shapes(1, 1, 1),     # one pixel
             shapes(2, 2, 3),     # 6: one whole tile per image, batch
             shapes(3, 1, 5),     # 5 (strided: 3)
             shapes(1, 14, 14),   # 196: 32 tiles and 4
             shapes(2, 3, 4),     # 12: two tiles (strided: 2)
             shapes(1, 20, 17)]   # 340: 56 tiles and 4, rows not a multiple of the tile
    compiled = check_model(channel_vector_model(), cases, dims=dims)
    calls = node_calls(compiled)
    for name in ("res", "wide", "grouped", "below"):
        assert calls[name] == ["Gemm1x1"], (name, calls[name])
    assert calls["strided"] == ["Strided"]


def test_runtime_weights():
    model = make_model([helper.make_node("Conv", ["x", "W", "B"], ["y"], name="conv")],
                       [("x", ["n", K, "h", "w"]), ("W", [36, K, 1, 1]), ("B", [36])], ["y"], [])
    dims = {"n": (1, 2), "h": (1, 9), "w": (1, 9)}
    compiled = check_model(model, [{"x": (2, K, 9, 7), "W": (36, K, 1, 1), "B": (36,)},
                                   {"x": (1, K, 1, 4), "W": (36, K, 1, 1), "B": (36,)}], dims=dims)
    assert node_calls(compiled) == {"conv": ["Gemm1x1"]}
