"""Winograd F(4x4, 3x3) conv (runtime_cpp/include/dydca/winograd.h; frontends/ops/conv.py:
conv_variants): 3x3 stride-1 convs of 12+ channels take it per call on outputs of at least
WINOGRAD_MIN_SIDE rows and columns, the direct kernel otherwise. Checked against onnxruntime at
tile edges (sizes not multiples of the 4x4 tile or of the 16-tile block, runs of tiles that fill a
block and that do not, batches), with fused epilogues (bias, ReLU + residual, PReLU), groups,
asymmetric pads and a depth-to-space store; plus the compile-time weight transform, the variant
choice over declared boxes and the planner's scratch."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from onnx import helper

from dydca.codegen.packing import BLOCK, pack_conv2d_winograd
from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from dydca.frontends.ops.conv import WINOGRAD_MAX_WORKERS, WINOGRAD_MIN_SIDE, winograd_scratch_bytes
from tests.codegen.test_kernels_native import Cases, _run, depth_to_space, harness, ref_conv  # noqa: F401
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

HEADER = Path(__file__).resolve().parents[2] / "runtime_cpp/include/dydca/winograd.h"


# The conv entry points besides dydca::conv2d's ConvPath kinds, by the label node_calls gives them.
ENTRY_POINTS = {"conv2d_winograd": "Winograd", "conv2d_1x1_strided": "Strided", "conv2d_pixels": "Pixels"}


def node_calls(compiled) -> dict[str, list[str]]:
    """Per conv node of the generated source: the kernels it calls (ConvPath names, and the
    ENTRY_POINTS labels "Winograd", "Strided", "Pixels")."""
    source = next(compiled.build_dir.glob("*.cpp")).read_text()
    pattern = r"dydca::ConvPath::(\w+)|dydca::(" + "|".join(ENTRY_POINTS) + r")\b"
    out = {}
    for body in re.split(r"\n// Conv node ", source)[1:]:
        name, code = body.split('"')[1], body.split("\n}\n")[0]
        out[name] = [ENTRY_POINTS[e] if e else p for p, e in re.findall(pattern, code)]
    return out


def fast_path_model():
    """x [n,32,h,w], z [n,16,h,w]; one conv per feature, each 3x3/s1 one compiling Winograd:
    y0 = ReLU(conv 32->32 + bias) + x   (residual epilogue: index i must be right)
    y1 = PReLU(conv 16->24 + bias)      (Mg = 24: row tiles 6+6+6+6; per-channel slope)
    y2 = conv 16->40, no bias, pads (0,1,2,0): output h x (w-1), tiles offset from the input's
    y3 = conv 32->32 in 2 groups of 16
    y4 = DepthToSpace(conv 16->64 + bias, 2): the fused pixel-shuffle store
    y5 = conv 32->16 stride 2 (no Winograd: the control)"""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], pads=[1, 1, 1, 1], name="res"),
             node("Relu", ["c0"], ["r0"]), node("Add", ["r0", "x"], ["y0"]),
             node("Conv", ["z", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1], name="prelu"),
             node("PRelu", ["c1", "S1"], ["y1"]),
             node("Conv", ["z", "W2"], ["y2"], pads=[0, 1, 2, 0], name="asym"),
             node("Conv", ["x", "W3"], ["y3"], pads=[1, 1, 1, 1], group=2, name="grouped"),
             node("Conv", ["z", "W4", "B4"], ["c4"], pads=[1, 1, 1, 1], name="shuffle"),
             node("DepthToSpace", ["c4"], ["y4"], blocksize=2, mode="DCR"),
             node("Conv", ["x", "W5"], ["y5"], pads=[1, 1, 1, 1], strides=[2, 2], name="strided")]
    inits = [("W0", rand((32, 32, 3, 3), 0) * 0.2), ("B0", rand((32,), 1)),
             ("W1", rand((24, 16, 3, 3), 2)), ("B1", rand((24,), 3)), ("S1", rand((24, 1, 1), 4)),
             ("W2", rand((40, 16, 3, 3), 5)), ("W3", rand((32, 16, 3, 3), 6)),
             ("W4", rand((64, 16, 3, 3), 7)), ("B4", rand((64,), 8)), ("W5", rand((16, 32, 3, 3), 9))]
    return make_model(nodes, [("x", ["n", 32, "h", "w"]), ("z", ["n", 16, "h", "w"])],
                      [f"y{j}" for j in range(6)], inits)


def shapes(n, h, w):
    return {"x": (n, 32, h, w), "z": (n, 16, h, w)}


def test_winograd_matches_onnxruntime_at_tile_edges(tmp_path):
    dims = {"n": (1, 3), "h": (1, 70), "w": (2, 70)}  # w = 1 would leave "asym" 0 wide
    cases = [shapes(1, 12, 12),   # the smallest Winograd output: 3x3 tiles
             shapes(1, 13, 29),   # partial tiles on both axes, runs of 8 tiles
             shapes(2, 17, 66),   # 17 tiles a row: a whole 16-tile run, then runs across rows
             shapes(1, 64, 70),   # mostly whole runs, a partial tile column
             shapes(3, 12, 13),   # batch: blocks span images
             shapes(1, 11, 40),   # h below the threshold: the direct kernel
             shapes(1, 5, 7), shapes(1, 1, 2)]
    compiled = check_model(fast_path_model(), cases, dims=dims, out_dir=tmp_path)
    calls = node_calls(compiled)
    for name in ("res", "prelu", "asym", "grouped", "shuffle"):
        assert calls[name][0] == "Winograd" and len(calls[name]) == 2, (name, calls[name])
    assert "Winograd" not in calls["strided"]
    report = {e["node"]: e for e in json.loads((tmp_path / "plan.json").read_text())["kernel_variants"]}
    assert report["res"]["variants"][0] == dict(kernel="Winograd", when=f"(h >= {WINOGRAD_MIN_SIDE}) & "
                                                                        f"(w >= {WINOGRAD_MIN_SIDE})")
    # the asymmetric conv's output is w - 1 wide: its condition is on that
    assert report["asym"]["variants"][0]["when"] == f"(h >= {WINOGRAD_MIN_SIDE}) & (w - 1 >= {WINOGRAD_MIN_SIDE})"


def single_conv(cout=32, cin=32, runtime_weights=False, **attrs):
    node = helper.make_node
    inputs = [("x", ["n", cin, "h", "w"])] + ([("W", [cout, cin, 3, 3])] if runtime_weights else [])
    inits = [] if runtime_weights else [("W", rand((cout, cin, 3, 3), 11))]
    return make_model([node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1], name="conv", **attrs)],
                      inputs, ["y"], inits)


def test_box_always_large_compiles_only_winograd():
    dims = {"n": (1, 2), "h": (12, 40), "w": (16, 40)}
    compiled = check_model(single_conv(), [{"x": (1, 32, 12, 16)}, {"x": (2, 32, 40, 37)}], dims=dims)
    assert node_calls(compiled) == {"conv": ["Winograd"]}


def test_no_winograd_where_it_does_not_fit():
    small = {"n": (1, 2), "h": (1, WINOGRAD_MIN_SIDE - 1), "w": (1, 64)}
    compiled = check_model(single_conv(), [{"x": (2, 32, 11, 64)}], dims=small)
    assert node_calls(compiled) == {"conv": ["General16"]}
    big = {"n": (1, 1), "h": (12, 32), "w": (12, 32)}
    # weights known only at run time, too few channels, dilation: the direct kernels
    for model, feeds in [(single_conv(runtime_weights=True), {"x": (1, 32, 20, 20), "W": (32, 32, 3, 3)}),
                         (single_conv(cout=8), {"x": (1, 32, 20, 20)}),
                         (single_conv(cin=8), {"x": (1, 8, 20, 20)}),
                         (single_conv(dilations=[2, 2]), {"x": (1, 32, 20, 20)})]:
        compiled = check_model(model, [feeds], dims=big)
        assert "Winograd" not in node_calls(compiled)["conv"]


def test_scratch_holds_each_capped_workers_transformed_input():
    header = HEADER.read_text()
    assert int(re.search(r"constexpr int kWinogradMaxWorkers = (\d+);", header)[1]) == WINOGRAD_MAX_WORKERS
    for cin, dims in [(32, {"n": (1, 2), "h": (1, 40), "w": (1, 40)}), (16, {"n": (1, 1), "h": (12, 12), "w": (12, 99)})]:
        p = plan(from_onnx(single_conv(cin=cin), dims=dims)).plan
        assert [b.bytes for b in p.scratch.values()] == [-(-winograd_scratch_bytes(cin) // 64) * 64]
        assert winograd_scratch_bytes(cin) == WINOGRAD_MAX_WORKERS * 36 * cin * 16 * 4 + 64
    p = plan(from_onnx(single_conv(), dims={"n": (1, 2), "h": (1, 8), "w": (1, 40)})).plan
    assert not p.scratch  # never Winograd: no scratch


def test_weight_transform_layout_reproduces_the_conv():
    """pack_conv2d_winograd's [group][36][MBk][Cg][8] layout, unpacked and used with the F(4, 3)
    input / output transforms on one 6x6 tile, gives the 3x3 correlation's 4x4 outputs."""
    bt = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], float)
    at = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], float)
    group, mg, cg = 2, 11, 3
    w = rand((group * mg, cg, 3, 3), 12)
    packed = pack_conv2d_winograd(w, group)
    mbk = -(-mg // BLOCK)
    assert packed.shape == (group, 36, mbk, cg, BLOCK) and packed.dtype == np.float32
    d = rand((group * cg, 6, 6), 13).astype(np.float64)
    for g in range(group):
        for m in range(mg):
            u = packed[g, :, m // BLOCK, :, m % BLOCK].astype(np.float64)  # [36, cg]
            v = np.stack([bt @ d[g * cg + c] @ bt.T for c in range(cg)], axis=-1).reshape(36, cg)
            y = at @ (u * v).sum(axis=1).reshape(6, 6) @ at.T
            ref = [[np.sum(d[g * cg:(g + 1) * cg, i:i + 3, j:j + 3] * w[g * mg + m]) for j in range(4)]
                   for i in range(4)]
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)
    assert not packed[:, :, -1, :, mg % BLOCK:].any()  # padding lanes of the last block


def wino(cs: Cases, n, c, h, w, m, group=1, pads=(1, 1, 1, 1), threads=2, bias=True, store=None):
    """Adds one conv2d_winograd call (tests/codegen/kernels/harness.cpp `wino`) to the native
    cases; the harness's epilogue adds r[i] + 0.01*m, counts its calls per element and the
    kernel's allocations."""
    pt, pl, pb, pr = pads
    oh, ow = h + pt + pb - 2, w + pl + pr - 2
    rng = cs.rng
    x = rng.standard_normal((n, c, h, w), dtype=np.float32)
    wt = rng.standard_normal((m, c // group, 3, 3), dtype=np.float32)
    b = rng.standard_normal(m, dtype=np.float32)
    r = rng.standard_normal((n, m, oh, ow), dtype=np.float32)
    d = cs._dir()
    for name, a in (("x", x), ("w", pack_conv2d_winograd(wt, group)), ("b", b), ("r", r)):
        a.tofile(d / f"{name}.bin")
    ref = ref_conv(x, wt, b if bias else None, group, (3, 3, 1, 1, 1, 1), (pt, pl), oh, ow)
    ref = ref + r + 0.01 * np.arange(m)[None, :, None, None]
    tail = []
    if store is not None:
        ref = depth_to_space(ref, *store)
        tail = ["d2s", *store]
    cs.lines.append(" ".join(map(str, ["wino", n, c, h, w, m, oh, ow, pt, pl, group, threads, int(bias), d, *tail])))
    cs.checks.append((d, ref, cs.lines[-1]))


def _build_winograd_cases(cs: Cases):
    for h, w in [(1, 1), (3, 5), (4, 4), (5, 9), (12, 12), (13, 29), (9, 66), (17, 70), (8, 130)]:
        wino(cs, 1, 16, h, w, 16)
    for m in (8, 13, 14, 17, 24, 26, 32, 40, 64):  # row tiles of 6 or 12, remainders 1..11, partial 8-blocks
        wino(cs, 1, 16, 10, 21, m)
    wino(cs, 1, 12, 14, 27, 12)                               # 12 channels: FSRCNN's mapping layers
    wino(cs, 3, 32, 6, 7, 32)                                 # batch: blocks span images
    wino(cs, 64, 16, 4, 4, 16, threads=1)                     # one tile per image
    wino(cs, 1, 32, 10, 70, 32, bias=False)
    wino(cs, 2, 16, 9, 20, 24, pads=(0, 2, 1, 0))             # asymmetric pads
    wino(cs, 1, 16, 7, 9, 16, pads=(0, 0, 0, 0))              # no padding (valid conv)
    wino(cs, 1, 64, 6, 6, 32, group=2)                        # groups (Cg = 32, Mg = 16)
    wino(cs, 2, 48, 5, 11, 48, group=3, threads=3)
    wino(cs, 1, 16, 11, 37, 16, threads=20)                   # more threads than workers with scratch
    wino(cs, 2, 16, 6, 33, 32, store=(2, "DCR"))              # depth-to-space stores
    wino(cs, 1, 16, 5, 9, 18, store=(3, "CRD"))


def test_winograd_kernel_natively(harness, tmp_path):
    """conv2d_winograd against a float64 reference, without the compiler: epilogue once per
    element with the conv's own indices, no heap allocation, tile and block edges."""
    _run(harness, tmp_path, _build_winograd_cases)


# ---- vectorised tanh / sigmoid / prelu (runtime_cpp/include/dydca/vmath.h): the epilogues of
# ESPCN-like (FSRCNN-like) convs and the element-wise Tanh / Sigmoid (PRelu, LeakyRelu) kernels ----

VMATH_PROGRAM = r"""
#include <cstdio>
#include <vector>
#include "dydca/vmath.h"
// Reads n floats from argv[1], writes tanh, sigmoid, then prelu (slope 0.25) of each to argv[2].
static void apply_tanh(const float* x, float* y, long n) { for (long i = 0; i < n; ++i) y[i] = dydca::tanh(x[i]); }
static void apply_sigmoid(const float* x, float* y, long n) { for (long i = 0; i < n; ++i) y[i] = dydca::sigmoid(x[i]); }
static void apply_prelu(const float* x, float* y, long n, float s) { for (long i = 0; i < n; ++i) y[i] = dydca::prelu(x[i], s); }
int main(int, char** argv) {
  FILE* f = std::fopen(argv[1], "rb");
  std::vector<float> x;
  float v;
  while (std::fread(&v, 4, 1, f) == 1) x.push_back(v);
  std::fclose(f);
  std::vector<float> y(3 * x.size());
  apply_tanh(x.data(), y.data(), (long)x.size());
  apply_sigmoid(x.data(), y.data() + x.size(), (long)x.size());
  apply_prelu(x.data(), y.data() + 2 * x.size(), (long)x.size(), 0.25f);
  f = std::fopen(argv[2], "wb");
  std::fwrite(y.data(), 4, y.size(), f);
  std::fclose(f);
}
"""


def _vmath_build(tmp_path, flags):
    import subprocess

    from dydca.codegen.targets import CPP, runtime_include_dir

    src = tmp_path / "vmath.cpp"
    src.write_text(VMATH_PROGRAM)
    exe = tmp_path / "vmath"
    res = subprocess.run([CPP.cxx, *flags, "-fopt-info-vec-optimized", f"-I{runtime_include_dir()}", str(src),
                          "-o", str(exe)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return exe, res.stderr


def test_vmath_tanh_sigmoid_prelu_accuracy_and_vectorisation(tmp_path):
    import subprocess

    from dydca.codegen.targets import CPP

    production = [f for f in CPP.cxxflags if f not in ("-shared", "-fPIC", "-fvisibility=hidden")]
    # the production flags, and GCC's defaults (-ftrapping-math: a float compare or select would
    # keep a branch in the loop, so the functions must vectorise without relying on the flags)
    for flags in (production, ["-O3", "-march=native", "-std=c++17"]):
        exe, report = _vmath_build(tmp_path, flags)
        vectorised = {int(m) for m in re.findall(r"vmath\.cpp:(\d+):\d+: optimized: loop vectorized", report)}
        assert {6, 7, 8} <= vectorised, (flags, report)
    x = np.concatenate([np.arange(-20, 20, 1e-4), np.geomspace(1e-30, 1, 20000), -np.geomspace(1e-30, 1, 20000),
                        np.arange(-86, 88, 1e-3), [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30]]).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    subprocess.run([str(exe), str(tmp_path / "x.bin"), str(tmp_path / "y.bin")], check=True)
    y = np.fromfile(tmp_path / "y.bin", dtype=np.float32).astype(np.float64)
    th, sg, pr = y[:x.size], y[x.size:2 * x.size], y[2 * x.size:]
    xd = x.astype(np.float64)  # references at the same float inputs
    with np.errstate(over="ignore"):
        th_ref, sg_ref = np.tanh(xd), 1 / (1 + np.exp(-xd))
    finite = np.isfinite(xd)
    err = np.abs(th - th_ref)[finite]
    assert err.max() <= 3e-7
    nz = finite & (th_ref != 0)
    assert (np.abs(th - th_ref)[nz] / np.abs(th_ref[nz])).max() <= 3e-7  # relative, tiny |x| included
    normal = finite & (xd >= -86)  # below, sigmoid is denormal, then held at ~4e-39 (vexp's clamp)
    assert (np.abs(sg - sg_ref)[normal] / sg_ref[normal]).max() <= 2e-7
    special = x.size - 7 + np.arange(7)
    # saturation (the clamp at |x| = 7.9053) within the same 3e-7; NaN propagates
    np.testing.assert_allclose(th[special], [0, 0, 1, -1, np.nan, 1, -1], rtol=0, atol=3e-7)
    assert np.signbit(th[special[1]])  # tanh(-0) = -0
    np.testing.assert_array_equal(sg[special[[0, 1, 2, 4, 5]]], [0.5, 0.5, 1, np.nan, 1])
    assert 0 <= sg[special[3]] < 1e-37 and 0 <= sg[special[6]] < 1e-37
    # prelu: exactly x or the float product 0.25 * x (NaN through, -0 a zero, -inf scaled)
    pr_ref = np.where(x >= 0, x, np.float32(0.25) * x).astype(np.float64)
    np.testing.assert_array_equal(pr, pr_ref)


def test_tanh_sigmoid_epilogues_match_onnxruntime(tmp_path):
    """Tanh / Sigmoid fused into convs (the general kernel, the few-channel kernel, Winograd) and
    as element-wise kernels over values far into saturation."""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], pads=[2, 2, 2, 2], name="first5x5"),  # ESPCN's head
             node("Tanh", ["c0"], ["y0"]),
             node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1], name="few"),
             node("Sigmoid", ["c1"], ["y1"]),
             node("Conv", ["z", "W2"], ["c2"], pads=[1, 1, 1, 1], name="wino"),
             node("Tanh", ["c2"], ["y2"]),
             node("Mul", ["x", "K"], ["big"]), node("Tanh", ["big"], ["y3"]), node("Sigmoid", ["big"], ["y4"])]
    inits = [("W0", rand((16, 3, 5, 5), 0)), ("B0", rand((16,), 1)), ("W1", rand((3, 3, 3, 3), 2)),
             ("W2", rand((16, 16, 3, 3), 3)), ("K", np.array([30.0], np.float32))]
    model = make_model(nodes, [("x", ["n", 3, "h", "w"]), ("z", ["n", 16, "h", "w"])],
                       [f"y{j}" for j in range(5)], inits)
    compiled = check_model(model, [{"x": (2, 3, 13, 29), "z": (2, 16, 13, 29)}, {"x": (1, 3, 5, 4), "z": (1, 16, 5, 4)}],
                           dims={"n": (1, 2), "h": (1, 16), "w": (1, 32)}, out_dir=tmp_path)
    source = next(compiled.build_dir.glob("*.cpp")).read_text()
    assert "std::tanh" not in source and "std::exp" not in source
    assert source.count("dydca::tanh(") >= 3 and source.count("dydca::sigmoid(") >= 2
