"""dydca-sr end to end on a tiny synthetic clip: train (with baselines) -> upscale -> eval, as
subprocesses; and the one-line errors for bad input."""
import json
import subprocess
import sys

import pytest

from dydca.sr import video
from tests.sr.synth import smooth_clip

def sr(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dydca.sr.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    video.write_video(d / "hr.mp4", smooth_clip(frames=12, height=96, width=128), fps=25, crf=10)
    video.write_video(d / "other.mp4", smooth_clip(frames=6, height=64, width=96, seed=3), fps=25, crf=10)
    return d


def test_train_upscale_eval(clips, tmp_path):
    pytest.importorskip("torch")
    model = tmp_path / "vid_model"
    t = sr("train", clips / "hr.mp4", "-o", model, "--patch", "16", "--steps", "120", "--threads", "1",
           "--baselines", "--chunks", "2", "--generic", clips / "other.mp4", "--more-paths", "3")
    assert t.returncode == 0, t.stderr
    for f in ("sr.json", "model.onnx", "split.bin", "lr.mp4", "lib/manifest.json",
              "baselines/whole_video/sr.json", "baselines/per_chunk/chunk1/sr.json", "baselines/generic/sr.json", "baselines/dydca_p3/split.bin"):
        assert (model / f).exists(), f
    u = sr("upscale", model / "lr.mp4", "--model", model, "-o", tmp_path / "sr.mp4")
    assert u.returncode == 0, u.stderr
    frames, _ = video.read_video(tmp_path / "sr.mp4")
    assert frames.shape == (12, 96, 128, 3)
    e = sr("eval", "--model", model, "--reference", clips / "hr.mp4", "--json", tmp_path / "r.json")
    assert e.returncode == 0, e.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert list(report) == ["bicubic", "generic", "whole_video", "per_chunk", "dydca", "dydca_p3", "dydca_lr_map"]
    for name, row in report.items():
        assert {"psnr_y", "psnr_rgb", "ssim", "models", "model_bytes", "ms_per_frame"} <= set(row), name
    for name in ("generic", "whole_video", "per_chunk", "dydca"):  # every network also through onnxruntime
        assert report[name]["ms_per_frame_ort"] > 0, name
    assert report["per_chunk"]["models"] == 2 and report["per_chunk"]["switches"] == 1
    # --steps is one budget for every method: the chunk models share it
    assert {report[k]["train_steps"] for k in ("dydca", "dydca_p3", "whole_video", "generic", "per_chunk")} == {120}
    assert report["dydca"]["psnr_y"] > report["bicubic"]["psnr_y"]  # overfitting pays on held-out frames
    assert (model / "psnr_per_frame.png").exists() and (model / "psnr_vs_bytes.png").exists()
    assert report["dydca"]["paths"] == 2 and report["dydca_p3"]["paths"] == 3
    assert json.loads((model / "baselines/dydca_p3/sr.json").read_text())["policy"]["mode"] == "quantile"  # auto, 3 paths
    assert "| dydca (2 paths) |" in e.stdout and "| dydca_p3 (3 paths) |" in e.stdout
    # the device recomputes the side file's map from the very LR stream it decodes: same patches
    assert abs(report["dydca_lr_map"]["psnr_y"] - report["dydca"]["psnr_y"]) < 0.01


@pytest.mark.parametrize("args, message", [
    (["train", "missing.mp4", "-o", "m"], "cannot read video 'missing.mp4': no such file"),
    (["upscale", "x.mp4", "--model", "nowhere", "-o", "y.mp4"], "is not a dydca-sr model folder"),
    (["eval", "--model", "nowhere", "--reference", "x.mp4"], "is not a dydca-sr model folder"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    p = sr(*args, cwd=tmp_path)
    assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_scale_outside_2_to_4_is_refused(tmp_path):
    p = sr("train", "x.mp4", "-o", "m", "--scale", "5", cwd=tmp_path)
    assert p.returncode == 2 and "invalid choice: 5" in p.stderr


def test_frames_smaller_than_a_patch(clips, tmp_path):
    tiny = tmp_path / "tiny.mp4"
    video.write_video(tiny, smooth_clip(frames=3, height=16, width=16), fps=25)
    p = sr("train", tiny, "-o", tmp_path / "m", "--patch", "32", "--steps", "1", cwd=tmp_path)
    assert p.returncode == 2 and "smaller than" in p.stderr, p.stderr


def test_the_demo_compiles_the_bundled_folder_upscales_and_reports(tmp_path):
    """`make demo`'s job, as a function call: no torch needed (it only compiles and runs)."""
    from dydca.sr import demo
    assert demo.main(["-o", str(tmp_path / "demo"), "--threads", "2"]) == 0
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert list(report) == ["bicubic", "whole_video", "per_chunk", "dydca", "dydca_lr_map"]
    assert report["dydca"]["psnr_y"] > report["per_chunk"]["psnr_y"] > report["bicubic"]["psnr_y"]
    frames, _ = video.read_video(tmp_path / "demo" / "sr.mp4")
    assert frames.shape == (100, 272, 640, 3)
