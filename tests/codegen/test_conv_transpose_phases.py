"""ConvTranspose with few output channels per group (frontends/ops/conv.py: conv_transpose_path,
conv_variants; runtime_cpp/include/dydca/conv.h: ct_wv_row): each stride phase runs as a stride-1
conv through the width-vectorised FewChannels tiles. Checked against onnxruntime at tile edges:
strides 1, 2 and 3, kernels smaller than / equal to / larger than / not a multiple of the stride
(phases with no tap), pads, output_padding, output_shape, asymmetric auto_pad, groups, Mg 1-4, 1-D,
fused epilogues and a depth-to-space store, widths below / at / above a 24- and 32-pixel tile and
the 96-pixel per-phase chunk, batches; run-time weights too. Phases of at most 2 taps along the row
take General8 on output rows of at most CT_NARROW_ROW pixels; Mg 5-7 and dilated kernels keep the
general kernel."""
from __future__ import annotations

import re

from onnx import helper

from pathlib import Path

from dydca.frontends.ops.conv import CT_FEW_CHANNELS_MAX, CT_NARROW_ROW, conv_transpose_path
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

DIMS = {"n": (1, 3), "h": (1, 24), "w": (1, 110)}

# (name, input, W shape [C, Mg, k...], attrs, epilogue or None, the ConvPaths its node calls); x is
# [n, 8, h, w] (w up to 110: phases of 1-2 taps along the row take both variants), x1 [n, 4, w],
# x2 [n, 8, 5, 6]
# (output_shape needs fixed input sizes)
FEW, NARROW = ["FewChannels"], ["General8", "FewChannels"]
CONVS = [
    ("fsrcnn", "x", (8, 3, 9, 9), dict(strides=[2, 2], pads=[4, 4, 4, 4], output_padding=[1, 1]), "PRelu", FEW),
    ("k_eq_s", "x", (8, 1, 3, 3), dict(strides=[3, 3]), None, NARROW),
    ("k_lt_s", "x", (8, 2, 2, 2), dict(strides=[3, 3], pads=[0, 1, 1, 0], output_padding=[2, 1]), "Relu", NARROW),
    ("grouped", "x", (8, 4, 4, 4), dict(group=2, strides=[2, 2], pads=[1, 2, 2, 1]), None, NARROW),
    ("three", "x", (8, 3, 5, 3), dict(strides=[2, 3], pads=[2, 1, 2, 1], output_padding=[1, 2]), "Sigmoid", NARROW),
    ("stride1", "x", (8, 4, 3, 3), dict(pads=[1, 1, 1, 1]), None, FEW),
    ("same", "x", (8, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_LOWER"), None, NARROW),
    ("shape", "x2", (8, 3, 5, 5), dict(strides=[2, 2], output_shape=[12, 13]), None, FEW),  # odd total pads
    ("shuffle", "x", (8, 4, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1]), "DepthToSpace", NARROW),
    ("oned", "x1", (4, 3, 5), dict(strides=[2], pads=[2, 1], output_padding=[1]), None, FEW),
    ("seven", "x", (8, 7, 5, 3), dict(strides=[2, 3], pads=[2, 1, 2, 1]), None, ["General8"]),
    ("dilated", "x", (8, 3, 3, 3), dict(strides=[2, 2], dilations=[2, 2]), None, ["General8"]),
]


def phase_model(runtime_weights=False):
    node = helper.make_node
    nodes, inits, outs = [], [], []
    inputs = [("x", ["n", 8, "h", "w"]), ("x1", ["n", 4, "w"]), ("x2", ["n", 8, 5, 6])]
    for j, (name, src, wshape, attrs, epi, _) in enumerate(CONVS):
        m = wshape[1] * attrs.get("group", 1)
        if runtime_weights:
            inputs.append((f"w{j}", list(wshape)))
        else:
            inits.append((f"w{j}", rand(wshape, j)))
        inits.append((f"b{j}", rand((m,), 20 + j)))
        out = f"y{j}" if epi is None else f"c{j}"
        nodes.append(node("ConvTranspose", [src, f"w{j}", f"b{j}"], [out], name=name, **attrs))
        if epi == "PRelu":
            inits.append((f"s{j}", rand((m, 1, 1), 40 + j)))
            nodes.append(node("PRelu", [out, f"s{j}"], [f"y{j}"]))
        elif epi == "DepthToSpace":
            nodes.append(node("DepthToSpace", [out], [f"y{j}"], blocksize=2, mode="CRD"))
        elif epi is not None:
            nodes.append(node(epi, [out], [f"y{j}"]))
        outs.append(f"y{j}")
    return make_model(nodes, inputs, outs, inits)


def shapes(n, h, w, runtime_weights=False):
    d = {"x": (n, 8, h, w), "x1": (n, 4, w), "x2": (n, 8, 5, 6)}
    if runtime_weights:
        d.update({f"w{j}": c[2] for j, c in enumerate(CONVS)})
    return d


def conv_calls(compiled) -> dict[str, list[str]]:
    """Per ConvTranspose node of the generated source: the ConvPaths it calls."""
    source = next(compiled.build_dir.glob("*.cpp")).read_text()
    out = {}
    for body in re.split(r"\n// ConvTranspose node ", source)[1:]:
        out[body.split('"')[1]] = re.findall(r"dydca::ConvPath::(\w+)", body.split("\n}\n")[0])
    return out


CASES = [(1, 1, 1), (2, 5, 7), (1, 13, 24), (1, 4, 25), (3, 3, 50), (1, 2, 97), (1, 3, 110)]


def test_path_choice():
    assert [conv_transpose_path(m, [1, 1]) for m in (1, 3, 4, 5, 7, 8, 16)] == \
        ["FewChannels"] * 3 + ["General8"] * 3 + ["General16"]
    assert conv_transpose_path(3, [2, 2]) == conv_transpose_path(3, [1, 2]) == "General8"
    header = (Path(__file__).resolve().parents[2] / "runtime_cpp/include/dydca/conv.h").read_text()
    assert int(re.search(r"constexpr int64_t kCtFewChannelsMax = (\d+);", header)[1]) == CT_FEW_CHANNELS_MAX


def test_stride_phases_match_onnxruntime():
    # output rows of 1-13 (General8 where a phase has at most 2 taps along the row) and 14-220 pixels
    assert CT_NARROW_ROW in range(13, 48)
    compiled = check_model(phase_model(), [shapes(*c) for c in CASES], dims=DIMS)
    assert conv_calls(compiled) == {c[0]: c[-1] for c in CONVS}


def test_runtime_weights_match_onnxruntime():
    """Weights packed per call (pack_conv_transpose2d_weights): the same layout the phases read."""
    check_model(phase_model(runtime_weights=True), [shapes(*c, runtime_weights=True) for c in CASES[1:5]],
                dims=DIMS)
