"""dydca-compile end to end, as a subprocess: building with --dim, the default-range notice,
--explain, --input-shape, --threads, and its one-line errors."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

import dydca
from dydca.cli import UsageError, parse_dim, parse_input_shape
from tests.dydca.helpers import assert_user_error, cli, image_model, save, shape_model
from tests.oracle import assert_close, random_feeds


def _check_against_ort(build_dir, model, shapes_list):
    built = dydca.load(build_dir)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for k, shapes in enumerate(shapes_list):
        feeds = random_feeds(model, shapes, seed=k)
        for got, ref in zip(built.run(feeds), sess.run(None, feeds)):
            assert_close(got, ref, what=str(shapes))
    return built


def test_build_with_dims(tmp_path):
    model = image_model(name="cli_dims")
    path = save(model, tmp_path / "cli dims.onnx")  # a space in the path, a name from the stem
    out = tmp_path / "out"
    proc = cli(path, "-o", out, "--dim", "n=1:2", "--dim", "h=4:32", "--dim", "w = 4 : 48", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert "note:" not in proc.stderr
    assert "dydca-compile: importing" in proc.stderr or "build cache" in proc.stderr or "up to date" in proc.stderr
    assert "checked: ran at x=[1, 3, 4, 4] with 1 thread(s)" in proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["name"] == "cli_dims"
    assert (out / "libcli_dims.so").exists() and (out / "cli_dims.h").exists()
    assert manifest["dims"] == {"n": [1, 2], "h": [4, 32], "w": [4, 48]} and manifest["defaulted_dims"] == []
    built = _check_against_ort(out, model, [{"x": (2, 3, 32, 48)}, {"x": (1, 3, 5, 4)}])
    with pytest.raises(ValueError, match=r"\(w\) is 49, outside the compiled range \[4, 48\]"):
        built.run({"x": np.zeros((1, 3, 4, 49), np.float32)})


def test_default_range_is_announced(tmp_path):
    path = save(image_model(name="cli_default"), tmp_path / "m.onnx")
    out = tmp_path / "out"
    proc = cli(path, "-o", out, "--name", "Defaulted-Model", "--dim", "n=1:2", "--dim", "h=1:16", "-q")
    assert proc.returncode == 0, proc.stderr
    lo, hi = dydca.DEFAULT_RANGE
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "'w'" in notes[0] and f"w={lo}:{hi}" in notes[0], proc.stderr
    assert "'h'" not in notes[0] and "'n'" not in notes[0]
    assert "importing" not in proc.stderr  # -q
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["name"] == "defaulted_model"
    assert manifest["defaulted_dims"] == ["w"] and manifest["dims"]["w"] == [lo, hi]


def test_explain_without_output_folder(tmp_path):
    path = save(shape_model(), tmp_path / "shapes.onnx")
    proc = cli(path, "--explain", "--dim", "n=1:8", "--dim", "h=2:64")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.split()}
    assert rows["relu"].split()[1:4] == ["Relu", "1", "shape_from_shapes"]
    assert "r: [n, 3, h, w]" in rows["relu"]
    assert rows["shape"].split()[1:4] == ["Shape", "2", "value_from_shapes"]
    assert "s: [4] = values of dims" in rows["shape"]
    assert rows["flatten"].split()[1:4] == ["Reshape", "3", "shape_from_values"]
    assert "y: [n, 3*h*w]" in rows["flatten"]
    assert "n in [1, 8], h in [2, 64], w in [1, 4096] (default)" in proc.stdout
    assert "note: no --dim for 'w'" in proc.stderr
    assert not list(tmp_path.glob("*.so")) and not (tmp_path / "build").exists()


def test_explain_and_build_together(tmp_path):
    model = image_model(name="explained")
    out = tmp_path / "out"
    proc = cli(save(model, tmp_path / "explained.onnx"), "--explain", "-o", out,
               "--dim", "n=1:3", "--dim", "h=1:16", "--dim", "w=1:16")
    assert proc.returncode == 0, proc.stderr
    assert "sigmoid  Sigmoid" in proc.stdout and (out / "manifest.json").exists()
    _check_against_ort(out, model, [{"x": (3, 3, 16, 5)}, {"x": (1, 3, 1, 1)}])


def test_input_shape_names_unnamed_dims(tmp_path):
    model = image_model(x_shape=(None, 3, None, None), name="unnamed")
    path = save(model, tmp_path / "unnamed.onnx")
    assert_user_error(cli(path, "-o", tmp_path / "no"), "'x'", "--input-shape")
    out = tmp_path / "out"
    proc = cli(path, "-o", out, "--input-shape", "x=batch,3,height,width",
               "--dim", "batch=1:2", "--dim", "height=8:24", "--dim", "width=8:24")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dims"] == {"batch": [1, 2], "height": [8, 24], "width": [8, 24]}
    _check_against_ort(out, model, [{"x": (2, 3, 24, 8)}, {"x": (1, 3, 9, 17)}])


def test_user_errors_are_one_line(tmp_path):
    path = save(image_model(), tmp_path / "m.onnx")
    assert_user_error(cli(path, "-o", tmp_path / "o", "--dim", "h=16-1088"), "bad --dim 'h=16-1088'", "NAME=MIN:MAX")
    assert_user_error(cli(path, "-o", tmp_path / "o", "--dim", "h=9:3"), "1 <= MIN <= MAX")
    assert_user_error(cli(path, "-o", tmp_path / "o", "--dim", "q=1:4"), "'q'", "no input uses")
    assert_user_error(cli(path, "-o", tmp_path / "o", "--input-shape", "x"), "bad --input-shape")
    assert_user_error(cli(path, "-o", tmp_path / "o", "--target", "fpga"), "unknown target 'fpga'")
    proc = cli(path)  # neither -o nor --explain: argparse's usage error, also status 2
    assert proc.returncode == 2 and "nothing to do" in proc.stderr and "Traceback" not in proc.stderr


def test_option_parsers():
    assert parse_dim("h=16:1088") == ("h", (16, 1088))
    assert parse_dim(" n = 4 ") == ("n", (4, 4))
    assert parse_dim("seq.len=1:77") == ("seq.len", (1, 77))
    assert parse_input_shape("a=b=n,3,h,w") == ("a=b", ["n", 3, "h", "w"])
    for bad in ["h", "h=", "h=1:", "=1:2", "h=0:4", "h=a:b", "h=1:2:3"]:
        with pytest.raises(UsageError):
            parse_dim(bad)
    for bad in ["x", "x=", "x=n,,w", "=n,3"]:
        with pytest.raises(UsageError):
            parse_input_shape(bad)


def test_list_ops_shows_the_onnx_operators_of_the_table():
    from dydca.frontends import REGISTRY

    proc = cli("--list-ops")
    assert proc.returncode == 0, proc.stderr
    listed = {}
    for line in proc.stdout.splitlines():
        head, ops = line.split(": ", 1)
        for op in ops.split(", "):
            listed[op] = int(head.split()[0])
    assert listed and set(listed) <= set(REGISTRY)
    assert all(REGISTRY[op].category == cat for op, cat in listed.items())
    assert {"Conv", "Relu", "Shape", "Reshape"} <= set(listed)
    assert not any(op.startswith("Fused") for op in listed)  # the compiler's own ops stay internal


def test_shape_classes_from_the_command_line(tmp_path):
    model = image_model(name="cli_classes")
    path = save(model, tmp_path / "m.onnx")
    out = tmp_path / "out"
    proc = cli(path, "-o", out, "--shape-class", "n=1:16,h=4:16,w=4:16", "--shape-class", "n=1,h=16:96,w=16:96")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["shape_classes"] == [{"n": [1, 16], "h": [4, 16], "w": [4, 16]},
                                         {"n": [1, 1], "h": [16, 96], "w": [16, 96]}]
    built = _check_against_ort(out, model, [{"x": (16, 3, 16, 5)}, {"x": (1, 3, 96, 70)}])
    with pytest.raises(ValueError, match="fall in no shape class"):
        built.run({"x": np.zeros((2, 3, 96, 96), np.float32)})
    both = cli(path, "-o", tmp_path / "o2", "--dim", "n=1:2", "--shape-class", "n=1:2,h=4:8,w=4:8")
    assert both.returncode == 2 and "either --dim or --shape-class" in both.stderr


def test_profile_prints_time_per_kernel(tmp_path):
    model = image_model(name="cli_profile")
    path = save(model, tmp_path / "m.onnx")
    proc = cli(path, "-o", tmp_path / "out", "--dim", "n=1:2", "--dim", "h=4:32", "--dim", "w=4:32",
               "--profile", "x=1,3,32,32")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("profile at x=[1, 3, 32, 32]") and lines[1].split() == ["kernel", "ms/call", "share"]
    kernels = [ln for ln in lines[2:-1]]
    assert kernels and all(" node " in ln and ln.rstrip().endswith("%") for ln in kernels)
    assert lines[-1].startswith("total")
    shares = [float(ln.split()[-1].rstrip("%")) for ln in kernels]
    assert abs(sum(shares) - 100) < 1
