"""Channels-last pairs (compiler/passes/channels_last.py): a conv whose only reader is a pixel-tile
conv stores its output channels last (dydca::ChannelsLastStore) and the pixel-tile conv reads it
so (conv2d_pixels<..., ChannelsLast>). Checked against onnxruntime: producers on the 1x1 GEMM path,
the channel-vector 1x1 path (K >= 512) and the pixel-tile path itself (a chain of three), a
consumer with padding (its channels-last padded copy) and one without (read in place), strides 1
and 2, plane sizes at the tile edges; and the pairs the pass must not make: a value with a second
reader, a producer whose epilogue reads a tensor by the flat index."""
from __future__ import annotations

import re

from onnx import helper

from dydca.frontends.ops.conv import PIXELS_MIN_CHANNELS
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

C = PIXELS_MIN_CHANNELS


def conv(x, w, y, name, b=None, **attrs):
    return helper.make_node("Conv", [x, w] + ([b] if b else []), [y], name=name, **attrs)


def channels_last_model():
    """x [n,16,h,w], u [n,512,h,w], z [n,C,h,w]:
    reduce  1x1 16->C + ReLU        -> mid     3x3 C->C pads 1 + ReLU -> strided 3x3/2 C->40 pads 1 = y0
    cv      1x1 512->C (K >= 512)   -> valid   3x3 C->24, no pads (read in place)               = y1
    shared  1x1 16->C, also output y2 -> other 3x3 C->8 pads 1                                 = y3
    res     1x1 16->C + z (by flat index) -> after 3x3 C->8 pads 1                             = y4"""
    nodes = [conv("x", "W0", "a0", "reduce", "B0"), helper.make_node("Relu", ["a0"], ["r0"]),
             conv("r0", "W1", "a1", "mid", "B1", pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a1"], ["r1"]),
             conv("r1", "W2", "y0", "strided", "B2", strides=[2, 2], pads=[1, 1, 1, 1]),
             conv("u", "W3", "a3", "cv"), conv("a3", "W4", "y1", "valid", "B4"),
             conv("x", "W5", "y2", "shared"), conv("y2", "W6", "y3", "other", pads=[1, 1, 1, 1]),
             conv("x", "W7", "a7", "res"), helper.make_node("Add", ["a7", "z"], ["s7"]),
             conv("s7", "W8", "y4", "after", pads=[1, 1, 1, 1])]
    inits = [("W0", rand((C, 16, 1, 1), 0) * 0.3), ("B0", rand((C,), 1)), ("W1", rand((C, C, 3, 3), 2) * 0.05),
             ("B1", rand((C,), 3)), ("W2", rand((40, C, 3, 3), 4) * 0.05), ("B2", rand((40,), 5)),
             ("W3", rand((C, 512, 1, 1), 6) * 0.05), ("W4", rand((24, C, 3, 3), 7) * 0.05), ("B4", rand((24,), 8)),
             ("W5", rand((C, 16, 1, 1), 9) * 0.3), ("W6", rand((8, C, 3, 3), 10) * 0.05),
             ("W7", rand((C, 16, 1, 1), 11) * 0.3), ("W8", rand((8, C, 3, 3), 12) * 0.05)]
    return make_model(nodes, [("x", ["n", 16, "h", "w"]), ("u", ["n", 512, "h", "w"]), ("z", ["n", C, "h", "w"])],
                      [f"y{j}" for j in range(5)], inits)


def conv_bodies(compiled) -> dict[str, str]:
    """Per conv node of the generated source: its code."""
    source = next(compiled.build_dir.glob("*.cpp")).read_text()
    return {body.split('"')[1]: body.split("\n}\n")[0] for body in re.split(r"\n// Conv node ", source)[1:]}


def test_channels_last_pairs_match_onnxruntime():
    dims = {"n": (1, 2), "h": (3, 11), "w": (3, 11)}  # under Winograd's 12: the 3x3 convs take Pixels
    cases = [{"x": (1, 16, h, w), "u": (1, 512, h, w), "z": (1, C, h, w)} for h, w in ((7, 7), (3, 3), (11, 9))]
    cases.append({"x": (2, 16, 5, 11), "u": (2, 512, 5, 11), "z": (2, C, 5, 11)})
    compiled = check_model(channels_last_model(), cases, dims=dims)
    code = conv_bodies(compiled)
    producers = {name for name, body in code.items() if "ChannelsLastStore" in body}
    consumers = {name for name, body in code.items() if re.search(r"conv2d_pixels<[^>]*, true>", body)}
    assert producers == {"reduce", "mid", "cv"}, producers
    assert consumers == {"mid", "strided", "valid"}, consumers
