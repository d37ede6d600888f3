"""The model folder `dydca-sr train` writes and the device reads: one dynamic N-path network for
one video, compiled, with what the device needs beside it and nothing it does not (no HR, no torch).

    vid_model/
      sr.json        scale, LR frame size, frame count, fps, split policy, margin, batch, the
                     compiled shape classes, training facts (held-out frames, ...)
      model.onnx     the network: inputs x (n, 3, h, w) float32 in [0, 1] and path (int64 scalar)
      split.bin      per frame and cell: split depth and path (patching.save_split_maps)
      lib/           the dydca-compiled library of model.onnx (dydca.load)
      lr.mp4         the LR stream the server sends

The library is compiled for two shape classes: patch batches (n up to `batch`, windows of every
patch size plus the margin) and the whole LR frame (n = 1), so one arena serves both modes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .patching import SplitPolicy

MANIFEST = "sr.json"
VERSION = 1


@dataclass
class Bundle:
    folder: Path
    scale: int
    lr_height: int
    lr_width: int
    frames: int
    fps: float
    policy: SplitPolicy
    margin: int
    batch: int = 64
    extra: dict = field(default_factory=dict)  # training facts for the report

    @property
    def model_path(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def split_path(self) -> Path:
        return self.folder / "split.bin"

    @property
    def lib_dir(self) -> Path:
        return self.folder / "lib"

    @property
    def lr_path(self) -> Path:
        return self.folder / "lr.mp4"

    def shape_classes(self) -> list[dict]:
        """dydca.compile dims: patch batches, and the whole frame."""
        windows = [size + 2 * self.margin for size in self.policy.patch_sizes().values()]
        side = (min(windows), max(windows))
        return [{"n": (1, self.batch), "h": side, "w": side},
                {"n": (1, 1), "h": (self.lr_height, self.lr_height), "w": (self.lr_width, self.lr_width)}]

    def check_frame_size(self, height: int, width: int, what: str) -> None:
        if (height, width) != (self.lr_height, self.lr_width):
            raise ValueError(f"{what} has {width}x{height} frames, but the model folder "
                             f"{str(self.folder)!r} was made for {self.lr_width}x{self.lr_height} "
                             f"LR frames of another video")

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k not in ("folder", "policy")}
        data.update(version=VERSION, policy=self.policy.to_dict(),
                    shape_classes=[{k: list(v) for k, v in c.items()} for c in self.shape_classes()])
        (self.folder / MANIFEST).write_text(json.dumps(data, indent=2))

    def compile(self, progress=None):
        """Compiles model.onnx into lib/ for the bundle's shape classes (dydca's build cache makes
        a repeat a copy); returns the dydca.Model."""
        import dydca
        return dydca.compile(str(self.model_path), dims=self.shape_classes(), out_dir=self.lib_dir,
                             name="sr_model", progress=progress)


def load(folder) -> Bundle:
    folder = Path(folder)
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise ValueError(f"{str(folder)!r} is not a dydca-sr model folder ({MANIFEST} missing)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(folder / MANIFEST)!r} is not valid JSON: {e}") from None
    if data.get("version") != VERSION:
        raise ValueError(f"{str(folder)!r} was written by another dydca-sr (version {data.get('version')}, "
                         f"this one reads {VERSION})")
    return Bundle(folder, data["scale"], data["lr_height"], data["lr_width"], data["frames"], data["fps"],
                  SplitPolicy.from_dict(data["policy"]), data["margin"], data["batch"], data.get("extra", {}))


def runner(model):
    """A patching.PathRunner over a compiled N-path model: (batch, path) -> upscaled batch."""
    def run(batch: np.ndarray, path: int) -> np.ndarray:
        return model.run({"x": np.ascontiguousarray(batch, np.float32), "path": np.array(path, np.int64)})[0]
    return run
