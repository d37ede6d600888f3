"""Video read/write through PyAV, the LR stream, the bicubic baseline, and clear input errors."""
import io

import numpy as np
import pytest

pytest.importorskip("av", reason="PyAV not installed (pip install av)")

from dydca.sr import metrics, video  # noqa: E402

from .synth import smooth_clip  # noqa: E402


def test_write_read_round_trip(tmp_path):
    clip = smooth_clip(frames=6, height=48, width=64)
    target = tmp_path / "clip.mp4"
    assert video.write_video(target, clip, fps=30, crf=18) == 6
    frames, info = video.read_video(target)
    assert frames.shape == clip.shape and frames.dtype == np.uint8
    assert (info.width, info.height, info.fps, info.frames, info.codec) == (64, 48, 30, 6, "h264")
    assert min(metrics.psnr(a, b, channel="rgb") for a, b in zip(frames, clip)) > 30


def test_near_lossless_444(tmp_path):
    clip = smooth_clip(frames=3)
    video.write_video(tmp_path / "q.mp4", clip, crf=0, pix_fmt="yuv444p")
    frames, _ = video.read_video(tmp_path / "q.mp4")
    assert np.abs(frames.astype(int) - clip).max() <= 3  # only RGB <-> YUV rounding


def test_reader_iterates_and_limits(tmp_path):
    video.write_video(tmp_path / "c.mp4", smooth_clip(frames=5))
    with video.VideoReader(tmp_path / "c.mp4") as reader:
        assert reader.info.frames == 5
        assert sum(1 for _ in reader) == 5
    assert video.read_video(tmp_path / "c.mp4", max_frames=2)[0].shape[0] == 2


def test_unreadable_video_names_the_file(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a video")
    with pytest.raises(ValueError, match="cannot read video .*junk.mp4"):
        video.read_video(junk)
    with pytest.raises(ValueError, match="no such file"):
        video.probe(tmp_path / "missing.mp4")


def test_write_errors(tmp_path):
    with pytest.raises(ValueError, match="even width and height"):
        video.write_video(tmp_path / "odd.mp4", np.zeros((2, 15, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        video.write_video(tmp_path / "f.mp4", np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="no frames"):
        video.write_video(tmp_path / "e.mp4", [])
    with pytest.raises(ValueError, match="crf must be in 0..51"):
        video.write_video(tmp_path / "c.mp4", np.zeros((1, 16, 16, 3), np.uint8), crf=60)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_make_lr_crops_and_scales(scale):
    clip = smooth_clip(frames=2, height=50, width=70)
    low = video.make_lr(clip, scale)
    step = 2 * scale
    assert low.hr.shape == (2, 50 // step * step, 70 // step * step, 3)
    assert low.lr.shape == (2, low.hr.shape[1] // scale, low.hr.shape[2] // scale, 3)
    assert low.stream is None and np.array_equal(low.hr, clip[:, :low.hr.shape[1], :low.hr.shape[2]])
    # bicubic back up should resemble HR on this smooth content
    up = video.bicubic_upscale(low.lr[0], scale)
    assert up.shape == low.hr[0].shape and metrics.psnr(up, low.hr[0], scale) > 25


def test_make_lr_reencodes_like_a_stream():
    clip = smooth_clip(frames=4, height=64, width=96)
    clean = video.make_lr(clip, 2)
    sent = video.make_lr(clip, 2, crf=28)
    assert sent.lr.shape == clean.lr.shape and sent.stream[4:8] == b"ftyp"  # an MP4
    frames, info = video.read_video(io.BytesIO(sent.stream))
    assert np.array_equal(frames, sent.lr) and info.width == 48
    assert 25 < metrics.psnr(sent.lr[0], clean.lr[0], channel="rgb") < float("inf")


@pytest.mark.parametrize("scale", [1, 5, 2.0, True, "2"])
def test_scale_outside_2_to_4_is_refused(scale):
    with pytest.raises(ValueError, match=r"scale must be one of \(2, 3, 4\)"):
        video.make_lr(smooth_clip(frames=1), scale)
    with pytest.raises(ValueError, match="scale must be one of"):
        video.bicubic_upscale(smooth_clip(frames=1)[0], scale)


def test_frames_too_small_for_the_scale():
    with pytest.raises(ValueError, match="too small for x4"):
        video.make_lr(np.zeros((1, 7, 40, 3), np.uint8), 4)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        video.make_lr(np.zeros((1, 40, 40), np.uint8), 2)


def test_bicubic_batch_matches_frame_bicubic():
    frame = smooth_clip(frames=1)[0]
    batch = video.bicubic_upscale_batch(frame.transpose(2, 0, 1)[None] / 255.0, 3)
    as_uint8 = (np.clip(batch[0].transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
    # float vs 8-bit fixed-point arithmetic inside Pillow: at most one level apart
    assert np.abs(as_uint8.astype(int) - video.bicubic_upscale(frame, 3)).max() <= 1
