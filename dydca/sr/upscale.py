"""Upscaling on the device: decode the LR stream, patch each frame by its split map, run each
path's batches through the compiled library (no torch, no onnxruntime), stitch, encode.

Two modes: "patches" (the Dy-DCA way: each patch class down its own path) and "frame" (the whole
frame down one path, for comparison)."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from . import bundle as bundles
from . import patching, video


@dataclass
class UpscaleStats:
    frames: int
    seconds: float  # model work: patching, runs, stitching (not decoding or encoding)

    @property
    def ms_per_frame(self) -> float:
        return 1e3 * self.seconds / max(self.frames, 1)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


class Upscaler:
    """The device side of one model folder: call it on LR frames in order."""

    def __init__(self, folder, mode: str = "patches", path: int | None = None, recompute_map: bool = False,
                 threads: int | None = None):
        if mode not in ("patches", "frame"):
            raise ValueError(f"mode must be 'patches' or 'frame', not {mode!r}")
        self.bundle = bundles.load(folder)
        b = self.bundle
        self.model = _load_library(b)
        if threads is not None:
            self.model.set_threads(threads)
        self.run = bundles.runner(self.model)
        self.mode = mode
        self.path = b.policy.n_paths - 1 if path is None else int(path)
        if not 0 <= self.path < b.policy.n_paths:
            raise ValueError(f"path {path} is out of range: the model has {b.policy.n_paths} paths")
        self.recompute = recompute_map
        self.maps = None if recompute_map or mode == "frame" else patching.load_split_maps(
            b.split_path, frame_size=(b.lr_height, b.lr_width), scale=b.scale)
        self.grid = patching.Grid(b.lr_height, b.lr_width, b.policy.patch)

    def split(self, t: int, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split depth and path per cell of frame t: from the side file, or recomputed from LR."""
        if self.maps is not None:
            if t >= len(self.maps):
                raise ValueError(f"frame {t} is past the {len(self.maps)} frames the split maps cover")
            return self.maps.depth[t], self.maps.path[t]
        scores = patching.score_frame(frame, self.grid, self.bundle.policy.score)
        paths = patching.assign_paths(scores[None], self.bundle.policy.thresholds, self.bundle.policy.score)[0]
        return self.bundle.policy.depth_of(paths), paths

    def __call__(self, t: int, frame: np.ndarray) -> np.ndarray:
        """LR frame t (HxWx3 uint8) -> SR frame (uint8)."""
        self.bundle.check_frame_size(*frame.shape[:2], "the LR video")
        if self.mode == "frame":
            return patching.to_uint8(self.run(patching.to_batch(frame), self.path)[0].transpose(1, 2, 0))
        depth, path = self.split(t, frame)
        plan = patching.plan_patches(self.grid, depth, path, self.bundle.margin)
        return patching.to_uint8(patching.upscale_frame(frame, plan, self.run, self.bundle.scale,
                                                        max_batch=self.bundle.batch))


def _load_library(b: bundles.Bundle):
    import dydca
    try:
        return dydca.load(b.lib_dir)
    except FileNotFoundError:  # a folder copied without its build: compile it here
        return b.compile()


def upscale_video(lr_video, folder, out, mode: str = "patches", recompute_map: bool = False,
                  threads: int | None = None, progress: bool = True) -> UpscaleStats:
    """Upscales the LR video with the model folder and writes the SR video to `out`."""
    up = Upscaler(folder, mode, recompute_map=recompute_map, threads=threads)
    reader = video.VideoReader(lr_video)
    up.bundle.check_frame_size(reader.info.height, reader.info.width, f"video {str(lr_video)!r}")
    stats = UpscaleStats(0, 0.0)

    def frames():
        for t, frame in enumerate(reader):
            t0 = time.perf_counter()
            sr = up(t, frame)
            stats.seconds += time.perf_counter() - t0
            stats.frames += 1
            if progress:
                print(f"\rupscaling: frame {stats.frames}/{reader.info.frames or '?'}, "
                      f"{stats.fps:.1f} frames/s", end="", file=sys.stderr, flush=True)
            yield sr
    try:
        video.write_video(out, frames(), fps=reader.info.fps)
    finally:
        reader.close()
        if progress:
            print(file=sys.stderr)
    return stats
