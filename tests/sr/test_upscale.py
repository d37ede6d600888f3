"""The device side: a model folder's compiled N-path library upscales patch batches per path and
whole frames, matching onnxruntime on the same plan; a folder made for another video is refused."""
import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

from dydca import zoo
from dydca.sr import bundle as bundles
from dydca.sr import patching, upscale, video
from dydca.sr.evaluate import ort_runner
from tests.sr.synth import smooth_clip

SCALE, PATCH, MARGIN = 2, 16, 3  # each multipath path is <= 3 3x3 convs deep: radius 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A model folder around an untrained 2-path network (the device side needs no training)."""
    d = tmp_path_factory.mktemp("vid_model")
    lr = smooth_clip(frames=3, height=40, width=56)
    maps, policy = patching.compute_split_maps(lr, patching.SplitPolicy(patch=PATCH, n_paths=2), SCALE)
    onnx.save(zoo.multipath(paths=2, select="index", scale=SCALE), str(d / "model.onnx"))
    patching.save_split_maps(d / "split.bin", maps)
    b = bundles.Bundle(d, SCALE, 40, 56, len(lr), 25.0, policy, MARGIN, batch=8)
    b.save()
    b.compile()
    video.write_video(d / "lr.mp4", lr, fps=25)
    return d, lr, maps


def test_patch_mode_runs_every_path_through_the_library_as_onnxruntime_does(folder):
    d, lr, maps = folder
    up = upscale.Upscaler(d)
    assert {k[0] for k in patching.plan_patches(maps.grid, maps.depth[0], maps.path[0], MARGIN).groups} == {0, 1}
    ref = ort_runner(d)
    for t, frame in enumerate(lr):
        plan = patching.plan_patches(maps.grid, maps.depth[t], maps.path[t], MARGIN)
        want = patching.to_uint8(patching.upscale_frame(frame, plan, ref, SCALE, max_batch=8))
        got = up(t, frame)
        assert got.shape == (80, 112, 3) and np.abs(got.astype(int) - want).max() <= 1


def test_frame_mode_and_recomputed_maps(folder):
    d, lr, maps = folder
    whole = upscale.Upscaler(d, mode="frame", path=0)
    want = patching.to_uint8(ort_runner(d)(patching.to_batch(lr[0]), 0)[0].transpose(1, 2, 0))
    assert np.abs(whole(0, lr[0]).astype(int) - want).max() <= 1
    again = upscale.Upscaler(d, recompute_map=True)
    depth, path = again.split(1, lr[1])
    assert (depth == maps.depth[1]).all() and (path == maps.path[1]).all()  # same LR, same policy


def test_upscale_video_writes_every_frame(folder, tmp_path):
    d, lr, _ = folder
    stats = upscale.upscale_video(d / "lr.mp4", d, tmp_path / "sr.mp4", progress=False)
    frames, info = video.read_video(tmp_path / "sr.mp4")
    assert stats.frames == len(lr) == len(frames) and frames.shape[1:] == (80, 112, 3)
    assert stats.ms_per_frame > 0


def test_a_folder_made_for_another_video_size_is_refused(folder, tmp_path):
    d, _, _ = folder
    other = tmp_path / "other.mp4"
    video.write_video(other, smooth_clip(frames=2, height=48, width=64), fps=25)
    with pytest.raises(ValueError, match=r"has 64x48 frames, but the model folder .* was made for 56x40"):
        upscale.upscale_video(other, d, tmp_path / "sr.mp4", progress=False)
    with pytest.raises(ValueError, match="not a dydca-sr model folder"):
        upscale.Upscaler(tmp_path)
    with pytest.raises(ValueError, match="path 5 is out of range: the model has 2 paths"):
        upscale.Upscaler(d, mode="frame", path=5)
