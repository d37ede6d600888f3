"""examples/cpp_app: compile the bundled SR model, build the C++ app against its library and header
with CMake, run it on an image, and check its output against onnxruntime."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import dydca
from dydca import demo
from tests.oracle import assert_close

APP = Path(__file__).resolve().parents[2] / "examples" / "cpp_app"

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    return proc


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(the built app, the compiled model): the demo's model and dims, so the build is shared with
    `make demo` and the demo's test through the build cache."""
    root = tmp_path_factory.mktemp("cpp_app")
    model = dydca.compile(demo.MODEL, dims=demo.DIMS, out_dir=root / "lib", name="espcn_x2")
    build = root / "app"
    configure = _run(["cmake", "-S", APP, "-B", build, f"-DDYDCA_BUILD={root / 'lib'}", "-DCMAKE_BUILD_TYPE=Release"])
    assert configure.returncode == 0, configure.stdout + configure.stderr
    assert "dydca model: espcn_x2" in configure.stdout  # the name came from manifest.json
    compiled = _run(["cmake", "--build", build])
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    return build / "dydca_app", model


@pytest.fixture(scope="module")
def session():
    return ort.InferenceSession(str(demo.MODEL), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("crop", [(slice(40, 77), slice(100, 153)), (slice(0, 256), slice(0, 256))])
def test_app_matches_onnxruntime(app, session, tmp_path, crop):
    exe, _ = app
    img = demo.read_png(demo.IMAGE)[crop]
    demo.write_pnm(tmp_path / "in.ppm", img)
    proc = _run([exe, tmp_path / "in.ppm", tmp_path / "out.ppm", "--threads", "2", "--runs", "3",
                 "--raw", tmp_path / "out.f32"])
    assert proc.returncode == 0, proc.stderr
    h, w = img.shape[:2]
    assert f"1x3x{h}x{w} -> 1x3x{2 * h}x{2 * w}, 2 threads, median" in proc.stdout
    (ref,) = session.run(None, {"lr": demo.to_nchw(img)})
    got = np.fromfile(tmp_path / "out.f32", np.float32).reshape(ref.shape)
    assert_close(got, ref, what="raw output")
    written = demo.read_pnm(tmp_path / "out.ppm")
    assert written.shape == (2 * h, 2 * w, 3)
    # the app rounds like demo.from_nchw; a value at a rounding boundary may land one level apart
    assert np.abs(written.astype(int) - demo.from_nchw(ref).astype(int)).max() <= 1


def test_app_grey_input_becomes_rgb(app, session, tmp_path):
    exe, _ = app
    grey = demo.read_png(demo.IMAGE)[60:90, 30:70, 1:2]
    demo.write_pnm(tmp_path / "in.pgm", grey)
    proc = _run([exe, tmp_path / "in.pgm", tmp_path / "out.ppm", "--raw", tmp_path / "out.f32", "--runs", "1"])
    assert proc.returncode == 0, proc.stderr
    (ref,) = session.run(None, {"lr": demo.to_nchw(np.repeat(grey, 3, axis=2))})
    assert_close(np.fromfile(tmp_path / "out.f32", np.float32).reshape(ref.shape), ref)


def test_app_reports_library_errors(app, tmp_path):
    """An image below the compiled range: the library's last_error reaches the user."""
    exe, _ = app
    demo.write_pnm(tmp_path / "tiny.ppm", np.zeros((8, 20, 3), np.uint8))
    proc = _run([exe, tmp_path / "tiny.ppm", tmp_path / "out.ppm"])
    assert proc.returncode == 1
    assert "output_shapes failed" in proc.stderr and "(h) is 8, outside the compiled range [16, 1088]" in proc.stderr
    (tmp_path / "bad.ppm").write_bytes(b"P6\n4 4\n255\n" + bytes(10))
    proc = _run([exe, tmp_path / "bad.ppm", tmp_path / "out.ppm"])
    assert proc.returncode == 1 and "truncated pixel data" in proc.stderr
