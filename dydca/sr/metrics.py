"""PSNR and SSIM as the SR literature reports them, in numpy only (runs on the device side too).

Conventions (those of EDSR/WDSR/BasicSR evaluation code, which the VSD4K/NAS/STDO tables follow):
- Y channel: BT.601 luma of 8-bit RGB in the studio range 16..235, as MATLAB's rgb2ycbcr.
- `shave` pixels are removed from every side first (the literature shaves `scale`): SR output
  near the frame edge depends on padding conventions, not on the method.
- SSIM: Wang et al. 2004, 11x11 Gaussian window with sigma 1.5, K1=0.01, K2=0.03, L=255, mean
  over the 'valid' positions (the window entirely inside the image); RGB SSIM is the mean of the
  three channels' SSIM.
- Values are computed on the 0..255 scale in float64; identical images give PSNR = inf.
"""
from __future__ import annotations

import numpy as np

DATA_RANGE = 255.0
BT601 = np.array([65.481, 128.553, 24.966]) / 255.0  # RGB (0..255) -> Y offset 16
SSIM_SIZE, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
CHANNELS = ("y", "rgb")


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """HxWx3 RGB on the 0..255 scale (uint8 or float) -> HxW float64 luma in 16..235."""
    # elementwise, not a matmul: BLAS may sum in a layout-dependent order, and then equal pixels
    # in differently-strided arrays would give (1e-14) different Y and a finite PSNR
    image = np.asarray(image, np.float64)
    return 16.0 + image[..., 0] * BT601[0] + image[..., 1] * BT601[1] + image[..., 2] * BT601[2]


def _prepare(a: np.ndarray, b: np.ndarray, shave: int, channel: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB images on the 0..255 scale, got shape {a.shape}")
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    if shave:
        if min(a.shape[:2]) <= 2 * shave:
            raise ValueError(f"images of {a.shape[1]}x{a.shape[0]} are too small to shave {shave}")
        a, b = a[shave:-shave, shave:-shave], b[shave:-shave, shave:-shave]
    if channel == "y":
        return rgb_to_y(a)[..., None], rgb_to_y(b)[..., None]
    return a.astype(np.float64), b.astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, shave: int = 0, channel: str = "y") -> float:
    """PSNR in dB between two HxWx3 RGB images (0..255 scale), on Y or on all RGB values."""
    a, b = _prepare(a, b, shave, channel)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(DATA_RANGE ** 2 / mse))


def gaussian_window(size: int = SSIM_SIZE, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The 1-D normalised Gaussian whose outer product is MATLAB's fspecial('gaussian', 11, 1.5)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of HxWxC by taps along H then W: a weighted sum of shifted
    views, so numpy does it in len(taps) vectorised passes per axis (no scipy needed)."""
    k = len(taps)
    h, w = image.shape[0] - k + 1, image.shape[1] - k + 1
    rows = sum(t * image[i:i + h] for i, t in enumerate(taps))
    return sum(t * rows[:, i:i + w] for i, t in enumerate(taps))


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    taps = gaussian_window()
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    mu_a, mu_b = _filter_valid(a, taps), _filter_valid(b, taps)
    var_a = _filter_valid(a * a, taps) - mu_a ** 2
    var_b = _filter_valid(b * b, taps) - mu_b ** 2
    cov = _filter_valid(a * b, taps) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a: np.ndarray, b: np.ndarray, shave: int = 0, channel: str = "y") -> float:
    """SSIM (Wang et al.) between two HxWx3 RGB images (0..255 scale), on Y or mean over R, G, B."""
    a, b = _prepare(a, b, shave, channel)
    if min(a.shape[:2]) < SSIM_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_SIZE}x{SSIM_SIZE} after shaving, "
                         f"got {a.shape[1]}x{a.shape[0]}")
    return float(np.mean(_ssim_map(a, b).mean(axis=(0, 1))))


def frame_metrics(sr: np.ndarray, hr: np.ndarray, shave: int) -> dict[str, float]:
    """The four numbers the evaluation table reports for one frame."""
    return {"psnr_y": psnr(sr, hr, shave, "y"), "psnr_rgb": psnr(sr, hr, shave, "rgb"),
            "ssim_y": ssim(sr, hr, shave, "y"), "ssim_rgb": ssim(sr, hr, shave, "rgb")}


def video_metrics(sr_frames, hr_frames, shave: int) -> dict[str, float]:
    """Per-frame metrics averaged over the clip (the literature averages per-frame PSNR, it does
    not pool the MSE); `frames` counts them. Frames that match exactly give inf PSNR, and so
    does the mean: an exact reconstruction is reported as such, not capped."""
    rows = [frame_metrics(sr, hr, shave) for sr, hr in zip(sr_frames, hr_frames, strict=True)]
    if not rows:
        raise ValueError("no frames to evaluate")
    summary = {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}
    summary["frames"] = len(rows)
    return summary
