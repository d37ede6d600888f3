"""PSNR and SSIM against values derived by hand, and against scikit-image when installed."""
import numpy as np
import pytest

from dydca.sr import metrics as mt

from .synth import random_frame, smooth_clip


def test_identical_images():
    a = random_frame(40, 50)
    for channel in ("y", "rgb"):
        assert mt.psnr(a, a.copy(), 2, channel) == float("inf")
        assert mt.ssim(a, a.copy(), 2, channel) == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_a_known_error():
    a = np.full((20, 30, 3), 100, np.uint8)
    signs = np.where(np.indices((20, 30)).sum(0) % 2 == 0, 5, -5)[..., None]
    b = (a + signs).astype(np.uint8)  # every RGB value off by exactly 5
    assert mt.psnr(a, b, channel="rgb") == pytest.approx(10 * np.log10(255 ** 2 / 25), abs=1e-12)
    # equal change k on R, G and B moves BT.601 Y by k * 219 / 255 (the studio range)
    assert mt.psnr(a, b, channel="y") == pytest.approx(20 * np.log10(255 / (5 * 219 / 255)), abs=1e-9)


def test_y_uses_the_studio_range():
    black, white = np.zeros((1, 1, 3)), np.full((1, 1, 3), 255.0)
    assert mt.rgb_to_y(black)[0, 0] == pytest.approx(16.0)
    assert mt.rgb_to_y(white)[0, 0] == pytest.approx(235.0)


def test_border_is_shaved():
    a = random_frame(30, 30)
    b = a.copy()
    b[:3] = 0
    b[:, -3:] = 255
    assert mt.psnr(a, b, shave=3) == float("inf") and mt.psnr(a, b, shave=2) < 40


def test_ssim_of_constant_images():
    # no variance: SSIM reduces to the luminance term (2 m1 m2 + C1) / (m1^2 + m2^2 + C1)
    a, b = np.full((16, 16, 3), 100, np.uint8), np.full((16, 16, 3), 120, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 120 + c1) / (100 ** 2 + 120 ** 2 + c1)
    assert mt.ssim(a, b, channel="rgb") == pytest.approx(expected, rel=1e-12)


def test_ssim_falls_with_noise():
    clean = smooth_clip(1, 48, 64)[0]
    rng = np.random.default_rng(1)
    noisy = [np.clip(clean + rng.normal(0, s, clean.shape), 0, 255).astype(np.uint8) for s in (3, 20)]
    values = [mt.ssim(clean, n) for n in noisy]
    assert 1.0 > values[0] > values[1]


def test_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics", reason="scikit-image not installed")
    a = smooth_clip(1, 48, 64)[0]
    b = np.clip(a + np.random.default_rng(2).normal(0, 6, a.shape), 0, 255).astype(np.uint8)
    opts = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    ya, yb = mt.rgb_to_y(a), mt.rgb_to_y(b)
    assert mt.ssim(a, b) == pytest.approx(metrics.structural_similarity(ya, yb, **opts), abs=1e-9)
    assert mt.ssim(a, b, channel="rgb") == pytest.approx(metrics.structural_similarity(
        a.astype(float), b.astype(float), channel_axis=2, **opts), abs=1e-9)
    assert mt.psnr(a, b, channel="rgb") == pytest.approx(
        metrics.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)


def test_bad_input():
    with pytest.raises(ValueError, match="differ in shape"):
        mt.psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="channel must be"):
        mt.psnr(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), channel="u")
    with pytest.raises(ValueError, match="at least 11x11"):
        mt.ssim(np.zeros((12, 12, 3)), np.zeros((12, 12, 3)), shave=2)


def test_video_metrics_average_frames():
    clip = smooth_clip(3, 32, 32)
    noisy = clip.copy()
    noisy[1] = 255 - noisy[1]
    summary = mt.video_metrics(noisy, clip, shave=2)
    assert summary["frames"] == 3 and summary["psnr_y"] == float("inf")
    finite = mt.video_metrics(noisy[1:2], clip[1:2], shave=2)
    assert finite["psnr_rgb"] == pytest.approx(mt.psnr(noisy[1], clip[1], 2, "rgb"))
