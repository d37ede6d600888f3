"""The plan report: per If, each branch's schedule and region bytes, which shapes take which path
when the condition is an expression of the dims, arena bytes at both corners of the box, and per
node with kernel variants the kernels it compiles (tests/codegen/test_kernel_variants.py covers
variants chosen per call)."""
import json

import numpy as np
import onnxruntime as ort

import dydca
from dydca.compiler.pipeline import plan
from dydca.compiler.report import plan_dict
from dydca.frontends import from_onnx
from tests.codegen.test_if import DIMS, PATHS, nested_model, size_routed_model
from tests.oracle import assert_close

F32 = 4


def test_size_routed_paths_and_arena_at_both_corners(tmp_path):
    model = size_routed_model(48)
    d = plan_dict(plan(from_onnx(model, DIMS)))
    (e,) = d["ifs"]
    assert e["decided"] == "dims" and e["expr"] == "h < 48"
    assert e["routes"] == [dict(dim="h", range=[8, 47], path="then"), dict(dim="h", range=[48, 64], path="else")]
    (nlo, nhi), (hlo, hhi), (wlo, whi) = DIMS.values()
    for b, widths in zip(e["branches"], PATHS):
        assert [s["fused"] for s in b["schedule"]] == ["Conv+Relu"] * len(widths) + ["Conv+DepthToSpace"]
        # the branch's arena holds its two largest consecutive activations (the last conv writes y,
        # outside the region): widths [8] -> one [n,8,h,w]; [16, 8] -> [n,16,h,w] + [n,8,h,w]
        per_pixel = sum(widths[:2]) * F32
        assert b["arena_bytes_min"] == per_pixel * nlo * hlo * wlo
        assert b["arena_bytes_max"] == per_pixel * nhi * hhi * whi
        assert b["arena_bytes_max"] <= e["region_bytes"]
    assert d["arena_bytes_min"] == max(b["arena_bytes_min"] for b in e["branches"])
    assert d["arena_bytes"] == e["region_bytes"]

    compiled = dydca.compile(model, dims=DIMS, out_dir=tmp_path)
    text = (tmp_path / "plan.txt").read_text()
    for line in ("condition from the dims: h < 48", "h in [8, 47] -> then", "h in [48, 64] -> else",
                 f"arena bytes at the minimum dims: {d['arena_bytes_min']:,}"):
        assert line in text, text
    assert json.loads((tmp_path / "plan.json").read_text())["ifs"][0]["routes"] == e["routes"]
    # the report's routing is the library's: shapes on either side of the threshold match onnxruntime
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(9)
    for h in (47, 48):
        feeds = {"x": rng.standard_normal((1, 3, h, 8)).astype(np.float32)}
        assert_close(compiled.run(feeds)[0], sess.run(None, feeds)[0], what=f"h={h}")


def test_runtime_conditions_and_nested_ifs_are_reported_per_scope():
    d = plan_dict(plan(from_onnx(nested_model(), DIMS)))
    (outer,) = d["ifs"]
    assert outer["decided"] == "runtime" and outer["condition"] == "c1" and outer["routes"] is None
    then, other = outer["branches"]
    (inner,) = then["ifs"]
    assert inner["condition"] == "c2" and [s["op"] for s in then["schedule"]] == ["Sigmoid", "Resize", "If"]
    # the inner If's region is part of the outer then-branch's arena
    assert inner["region_bytes"] <= then["arena_bytes_max"] <= outer["region_bytes"]
    assert [s["fused"] for s in other["schedule"]][-1] == "Conv+DepthToSpace"


def test_kernel_variants_are_reported_per_scope():
    # the size-routed model's convs: 8 and 16 output channels, then 12 into a pixel shuffle; each
    # compiles one kernel for every shape, listed in its branch (the top scope has no conv)
    d = plan_dict(plan(from_onnx(size_routed_model(48), DIMS)))
    assert d["kernel_variants"] == []
    for b, widths in zip(d["ifs"][0]["branches"], PATHS):
        kernels = [[v["kernel"] for v in e["variants"]] for e in b["kernel_variants"]]
        expect = [["General8" if c <= 8 else "General16"] for c in widths] + [["General16"]]
        if widths[0] >= 8:  # 3 input channels (and no FewChannels): frontends/ops/conv.py: FEW_INPUTS_MAX
            expect[0] = ["FewInputs"]
        assert kernels == expect
        assert [e["step"] for e in b["kernel_variants"]] == [s["step"] for s in b["schedule"] if s["op"] == "Conv"]
        assert all(e["variants"][0]["when"] is None and e["routes"] is None for e in b["kernel_variants"])


def test_report_lists_shape_classes_execution_dims_and_loops(tmp_path):
    import dydca
    from tests.codegen.test_loop import DIMS, residual_loop
    frame = {"n": (1, 1), "h": (8, 80), "w": (8, 80)}
    dydca.compile(residual_loop(0.6), dims=[dict(DIMS), frame], out_dir=tmp_path)
    text = (tmp_path / "plan.txt").read_text()
    assert "shape class 1: n in [1, 1], h in [8, 80], w in [8, 80]" in text
    assert "y.trips <= floor(h/8) (at most 10)" in text
    assert "Loop at step 0" in text and "its condition may end it earlier; 1 carried, 1 scanned" in text
    d = json.loads((tmp_path / "plan.json").read_text())
    assert d["loops"][0]["trips"] == "floor(h/8)" and d["execution_dims"][1]["bound_max"] == 10
