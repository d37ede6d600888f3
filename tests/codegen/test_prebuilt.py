"""The kernels every model shares, prebuilt (codegen/build.py: prebuilt_object; runtime_cpp
parallel.h: DYDCA_LIB): compiled once per cache and target, linked into each library, and the
model source built with DYDCA_PREBUILT only declares them. A library built that way and one built
from its source alone (DYDCA_NO_PREBUILD) both match onnxruntime on every prebuilt kernel: the
direct kernel's strips at strides 1 and 2 (tap_strip_prebuilt), the pixel tiles (px_tile_nr), the
1x1 GEMM tiles and its channel-vector tail (gemm_tile, cv1x1_tile_n), Winograd (wino_gemm,
wino_transform_in). A model's own object is cached by its source, so models that differ only in
their weights share it."""
from __future__ import annotations

import subprocess

from onnx import helper

from tests.codegen.test_conv_fast_paths import node_calls
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

SHAPES = [{"x": (1, 16, 14, 14)}, {"x": (2, 16, 23, 17)}]


def every_kernel_model(seed=0):
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["a"], pads=[1, 1, 1, 1], name="wino"),        # Winograd
             node("Relu", ["a"], ["r"]),
             node("Conv", ["r", "W1"], ["b"], pads=[1, 1, 1, 1], strides=[2, 2], name="s2"),  # strips, SX 2
             node("Conv", ["x", "W2"], ["c"], pads=[1, 1, 1, 1], name="narrow"),              # strips, SX 1
             node("Conv", ["b", "W3", "B3"], ["y1"], name="pointwise"),                     # 1x1 GEMM
             node("Conv", ["r", "W4"], ["e"], name="expand"),                                # 1x1 GEMM
             node("Conv", ["e", "W5"], ["y2"], pads=[1, 1, 1, 1], strides=[2, 2], name="pix")]  # pixel tiles
    inits = [("W0", rand((24, 16, 3, 3), seed + 0)), ("B0", rand((24,), seed + 1)), ("W1", rand((20, 24, 3, 3), seed + 2)),
             ("W2", rand((8, 16, 3, 3), seed + 3)), ("W3", rand((37, 20, 1, 1), seed + 4)), ("B3", rand((37,), seed + 5)),
             ("W4", rand((128, 24, 1, 1), seed + 6)), ("W5", rand((40, 128, 3, 3), seed + 7))]
    return make_model(nodes, [("x", ["n", 16, "h", "w"])], ["y1", "y2", "c"], inits)


def test_prebuilt_and_self_contained_builds_match_onnxruntime(tmp_path, monkeypatch):
    monkeypatch.setenv("DYDCA_CACHE_DIR", str(tmp_path / "cache"))
    dims = {"n": (1, 2), "h": (12, 24), "w": (12, 24)}
    model = every_kernel_model()
    shared = check_model(model, SHAPES, dims, out_dir=tmp_path / "shared")
    calls = node_calls(shared)
    assert "Winograd" in calls["wino"] and "Pixels" in calls["pix"], calls
    # the model's own object (cached by its source) calls the prebuilt kernels, their object defines them
    cache = tmp_path / "cache"
    (prebuilt,), (own,) = list(cache.glob("prebuilt/*/*.o")), list(cache.glob("objects/*.o"))
    def symbols(obj, *flags):
        return subprocess.run(["nm", "-C", *flags, str(obj)], capture_output=True, text=True, check=True).stdout
    for fn in ("px_tile_nr", "gemm_tile", "tap_strip_prebuilt", "cv1x1_tile_n", "wino_gemm", "wino_transform_in"):
        assert f"dydca::detail::{fn}(" in symbols(own, "-u"), fn
        assert f"dydca::detail::{fn}(" in symbols(prebuilt, "--defined-only"), fn
    # other weights, same source: the object is reused, the library is linked and runs on its weights
    other = every_kernel_model(seed=10)
    check_model(other, SHAPES[:1], dims, out_dir=tmp_path / "other")
    assert list(cache.glob("objects/*.o")) == [own]
    monkeypatch.setenv("DYDCA_NO_PREBUILD", "1")
    check_model(model, SHAPES, dims, out_dir=tmp_path / "alone", cache=False)


def test_an_unusable_cache_still_builds(tmp_path, monkeypatch):
    """No cache folder can be made (its parent is a file): no prebuilt object, no precompiled
    header, the model's object stays in its output folder, and the library is right."""
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DYDCA_CACHE_DIR", str(tmp_path / "file" / "cache"))
    node = helper.make_node
    model = make_model([node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1], name="conv")],
                       [("x", ["n", 16, "h", "w"])], ["y"], [("W", rand((8, 16, 3, 3), 0))])
    built = check_model(model, SHAPES, {"n": (1, 2), "h": (12, 24), "w": (12, 24)}, out_dir=tmp_path / "out")
    assert (built.build_dir / "model.o").exists()
