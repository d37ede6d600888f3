"""Multi-versioned kernels (OpDef.variants; frontends/ops/conv.py: conv_variants): a conv whose
best kernel differs across the declared dims compiles each variant it can take, picks one per
call from the dims, and the plan report lists the choice; a range that only ever takes one
variant compiles just that one. Every variant must match onnxruntime."""
from __future__ import annotations

import json
import re

from onnx import helper

from dydca.frontends.ops.conv import narrow_row_limit
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

# The few-output-channel convs of the model, in node order: (name, weight shape, pads); each runs
# General8 on rows of at most narrow_row_limit(Mg, KW-1) output pixels, FewChannels on wider ones.
CONVS = [("four3x3", (4, 8, 3, 3), [1, 1, 1, 1]),  # a 32->4 layer, scaled down (Mg <= 3: never General8)
         ("six5x5", (6, 8, 5, 5), [2, 2, 2, 2]),
         ("five1d", (5, 4, 3), [1, 1])]
LIMITS = [narrow_row_limit(w[0], w[-1] - 1) for _, w, _ in CONVS]


def variant_model():
    """x [n,8,h,w] -> Relu(conv3x3 8->4), Sigmoid(conv5x5 8->6), and z [n,4,w] -> 1-D conv 4->5.
    The epilogues are fused into the conv: every variant's call must apply them."""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0"], ["c0"], pads=CONVS[0][2], name="four3x3"),
             node("Relu", ["c0"], ["y0"]),
             node("Conv", ["x", "W1"], ["c1"], pads=CONVS[1][2], name="six5x5"),
             node("Sigmoid", ["c1"], ["y1"]),
             node("Conv", ["z", "W2"], ["y2"], pads=CONVS[2][2], name="five1d")]
    inits = [(f"W{j}", rand(w, j)) for j, (_, w, _) in enumerate(CONVS)]
    return make_model(nodes, [("x", ["n", 8, "h", "w"]), ("z", ["n", 4, "w"])], ["y0", "y1", "y2"], inits)


def shapes(w, n=1, h=3):
    return {"x": (n, 8, h, w), "z": (n, 4, w)}


def conv_calls(compiled) -> list[list[str]]:
    """Per conv kernel of the generated source (in node order), the ConvPaths it calls."""
    source = next(compiled.build_dir.glob("*.cpp")).read_text()
    bodies = re.split(r"\n// Conv node ", source)[1:]
    return [re.findall(r"dydca::ConvPath::(\w+)", b.split("\n}\n")[0]) for b in bodies]


def test_limits_cover_the_measured_crossovers():
    # bench/kernels/bench.cpp `variants` (FewChannels with vectorised border pixels): 3x3 General8
    # wins up to 13 output pixels at Mg 4; Mg 5-7 (two FewChannels sweeps) to 48 (5x5: 36)
    assert LIMITS == [13, 36, 48]
    assert narrow_row_limit(3, 2) == narrow_row_limit(1, 4) == 0  # Mg <= 3: FewChannels everywhere
    assert narrow_row_limit(4, 4) == 0
    assert narrow_row_limit(4, 0) == 0  # 1-wide kernels: no border, never General8


def test_range_spanning_both_variants_picks_per_call(tmp_path):
    dims = {"n": (1, 64), "h": (1, 16), "w": (4, 140)}
    # a batch of tiny patches (every conv narrow), mid widths (only the 5x5 narrow), one wide row
    compiled = check_model(variant_model(), [shapes(6, n=64), shapes(40, n=2), shapes(140),
                                             shapes(LIMITS[0]), shapes(LIMITS[0] + 1)],
                           dims=dims, out_dir=tmp_path)
    assert conv_calls(compiled) == [["General8", "FewChannels"]] * 3
    source = next(compiled.build_dir.glob("*.cpp")).read_text()
    w = "f.s[2]"  # symbols in declaration order: n, h, w
    for limit in LIMITS:
        assert f"if ({w} <= INT64_C({limit})) {{" in source

    report = json.loads((tmp_path / "plan.json").read_text())["kernel_variants"]
    assert [e["node"] for e in report] == [name for name, *_ in CONVS]
    for e, limit in zip(report, LIMITS):
        assert e["variants"] == [dict(kernel="General8", when=f"w <= {limit}"), dict(kernel="FewChannels", when=None)]
        assert e["routes"] == [dict(dim="w", range=[4, limit], path="General8"),
                               dict(dim="w", range=[limit + 1, 140], path="FewChannels")]
    text = (tmp_path / "plan.txt").read_text()
    assert "kernel variants (per call, from the dims):" in text
    assert f"General8 if w <= {LIMITS[0]}; FewChannels otherwise" in text
    assert f"w in [{LIMITS[0] + 1}, 140] -> FewChannels" in text


def test_range_taking_one_variant_compiles_only_it(tmp_path):
    # w in [14, 36]: the 3x3 rows are always wide, the 5x5 and 1-D ones always narrow
    compiled = check_model(variant_model(), [shapes(14), shapes(36, n=2)],
                           dims={"n": (1, 2), "h": (1, 8), "w": (14, 36)}, out_dir=tmp_path)
    assert conv_calls(compiled) == [["FewChannels"], ["General8"], ["General8"]]
    assert "} else {" not in next(compiled.build_dir.glob("*.cpp")).read_text()
    report = json.loads((tmp_path / "plan.json").read_text())["kernel_variants"]
    assert [[v["kernel"] for v in e["variants"]] for e in report] == [["FewChannels"], ["General8"], ["General8"]]
    assert all(e["variants"][0]["when"] is None and e["routes"] is None for e in report)
    assert "General8 (every shape)" in (tmp_path / "plan.txt").read_text()
