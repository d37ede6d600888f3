"""The pixel-tile direct kernel (runtime_cpp/include/dydca/conv.h: conv2d_pixels; frontends/ops/
conv.py: conv_variants' "Pixels") for general 3x3 convs of 128+ input channels per group: the
output plane cut into 6-pixel tiles across rows over a zero-padded copy of the input (the node's
scratch) or, without padding, the input in place.  Checked against onnxruntime at the tile edges
(planes of 1..6 pixels, planes that end mid-tile and mid-row, rows shorter than a tile, chunks of
tiles across images), with strides (2, 2) and (2, 1), dilation, asymmetric pads, groups, output
channels that leave an odd 8-block and a part-filled one, a fused residual epilogue, a
depth-to-space store and weights known only at run time; plus where the path is taken and the
scratch the plan reserves."""
from __future__ import annotations

from onnx import helper

from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from dydca.frontends.ops.conv import PIXELS_MIN_CHANNELS, pixels_scratch_bytes
from tests.codegen.test_conv_fast_paths import node_calls
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

C = PIXELS_MIN_CHANNELS


def pixels_model():
    """x [n,C,h,w], z [n,2C,h,w]:
    y0 = ReLU(conv3x3 C->24 + bias + ReLU(conv3x3 C->24))  (a residual epilogue)
    y1 = conv3x3/2 C->44, pads 1                       (stride 2; 44 = 32 + 12: a second block group, part-filled)
    y2 = conv3x3 (2,1) 2C->36 in 2 groups, pads 0,1,2,0 (asymmetric pads, groups of 18: an odd block)
    y3 = conv3x3 dilation 2, pads 2, C->16              (dilated taps)
    y4 = DepthToSpace(conv3x3 C->32, pads 1, 2)        (the pixel-shuffle store)
    y5 = conv3x3 C->8, no pads                          (read in place, no scratch copy)"""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], pads=[1, 1, 1, 1], name="res"),
             node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1], name="main"),
             node("Relu", ["c1"], ["r1"]), node("Add", ["c0", "r1"], ["s0"]), node("Relu", ["s0"], ["y0"]),
             node("Conv", ["x", "W2"], ["y1"], strides=[2, 2], pads=[1, 1, 1, 1], name="strided"),
             node("Conv", ["z", "W3", "B3"], ["y2"], strides=[2, 1], pads=[0, 1, 2, 0], group=2, name="grouped"),
             node("Conv", ["x", "W4"], ["y3"], dilations=[2, 2], pads=[2, 2, 2, 2], name="dilated"),
             node("Conv", ["x", "W5"], ["c5"], pads=[1, 1, 1, 1], name="shuffle"),
             node("DepthToSpace", ["c5"], ["y4"], blocksize=2, mode="DCR"),
             node("Conv", ["x", "W6"], ["y5"], name="valid")]
    inits = [("W0", rand((24, C, 3, 3), 0) * 0.1), ("B0", rand((24,), 1)), ("W1", rand((24, C, 3, 3), 2) * 0.1),
             ("W2", rand((44, C, 3, 3), 3) * 0.1), ("W3", rand((36, C, 3, 3), 4) * 0.1), ("B3", rand((36,), 5)),
             ("W4", rand((16, C, 3, 3), 6) * 0.1), ("W5", rand((32, C, 3, 3), 7) * 0.1),
             ("W6", rand((8, C, 3, 3), 8) * 0.1)]
    return make_model(nodes, [("x", ["n", C, "h", "w"]), ("z", ["n", 2 * C, "h", "w"])],
                      [f"y{j}" for j in range(6)], inits)


def shapes(n, h, w):
    return {"x": (n, C, h, w), "z": (n, 2 * C, h, w)}


def test_pixels_match_onnxruntime_at_tile_edges():
    # h, w below Winograd's 12 except one case, where the s1 convs take Winograd and the rest Pixels
    dims = {"n": (1, 3), "h": (3, 13), "w": (3, 11)}
    cases = [shapes(1, 7, 7),     # 49 pixels: 8 tiles and 1, tiles across rows
             shapes(2, 3, 3),     # 9 pixels a plane (stride 2: 4, valid: 1), batch: tasks per image
             shapes(3, 5, 11),    # 55 pixels, rows longer than a tile
             shapes(1, 4, 3),     # rows shorter than a tile; stride 2: 2x2
             shapes(1, 10, 4),    # 40: 6 tiles and 4
             shapes(1, 13, 11)]   # over a 96-pixel chunk (143); h >= 12 but w < 12: no Winograd
    compiled = check_model(pixels_model(), cases, dims=dims)
    calls = node_calls(compiled)
    for name in ("res", "main", "strided", "grouped", "dilated", "shuffle", "valid"):
        assert calls[name] == ["Pixels"], (name, calls[name])


def test_small_channel_counts_and_1x1_convs_keep_their_kernels():
    dims = {"n": (1, 2), "h": (4, 9), "w": (4, 9)}
    for cin, k, path in ((C - 8, 3, "General16"), (C, 1, "Gemm1x1"), (C, 3, "Pixels")):
        model = make_model([helper.make_node("Conv", ["x", "W"], ["y"], pads=[k // 2] * 4, name="conv")],
                           [("x", ["n", cin, "h", "w"])], ["y"], [("W", rand((16, cin, k, k), 8) * 0.1)])
        compiled = check_model(model, [{"x": (2, cin, 9, 7)}, {"x": (1, cin, 4, 5)}], dims=dims)
        assert node_calls(compiled) == {"conv": [path]}


def test_winograd_keeps_large_maps_and_pixels_the_rest():
    model = make_model([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1], name="conv")],
                       [("x", ["n", C, "h", "w"])], ["y"], [("W", rand((16, C, 3, 3), 9) * 0.1)])
    compiled = check_model(model, [{"x": (1, C, 14, 14)}, {"x": (1, C, 7, 9)}],
                           dims={"n": (1, 1), "h": (7, 14), "w": (7, 14)})
    assert node_calls(compiled) == {"conv": ["Winograd", "Pixels"]}


def test_runtime_weights_and_scratch():
    """Weights that are a graph input are packed per call into the scratch's front, the padded
    input lies after them; the plan reserves both at the declared maxima."""
    model = make_model([helper.make_node("Conv", ["x", "W", "B"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
                                         name="conv")],
                       [("x", ["n", C, "h", "w"]), ("W", [20, C, 3, 3]), ("B", [20])], ["y"], [])
    dims = {"n": (1, 2), "h": (5, 11), "w": (5, 9)}
    compiled = check_model(model, [{"x": (2, C, 11, 9), "W": (20, C, 3, 3), "B": (20,)},
                                   {"x": (1, C, 5, 6), "W": (20, C, 3, 3), "B": (20,)}], dims=dims)
    assert node_calls(compiled) == {"conv": ["Pixels"]}
    packed = 2 * 16 * C * 9 * 4 + 64  # 20 channels in two 16-channel blocks (conv2d_pixels' packing)
    geometry = {"begin": [1, 1], "end": [1, 1], "out": [6, 5], "strides": [2, 2], "kernel": [3, 3],
                "dilations": [1, 1]}
    padded = pixels_scratch_bytes(2, C, geometry)
    assert padded == 2 * C * 13 * 11 * 4 + 64  # taps reach rows 0..12 and columns 0..10 of the padded input
    p = plan(from_onnx(model, dims=dims)).plan
    assert [b.bytes for b in p.scratch.values()] == [-(-(packed + padded) // 64) * 64]
