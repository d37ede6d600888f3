"""The server side: overfit one dynamic N-path network to one video and write its model folder
(dydca/sr/bundle.py). Training needs torch (`pip install .[train]`); it is imported here lazily so
that the device side never needs it.

    HR video -> LR stream (bicubic down, H.264 at a CRF, decoded: what the phone sees)
             -> split maps (content-aware patch classes, from LR)
             -> training windows per path (LR patch + margin, the HR window it should become)
             -> train (every 10th frame held out) -> export ONNX (routing in the graph)
             -> measured deploy margin -> model folder, compiled by dydca
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import bundle as bundles
from . import patching, video

HOLDOUT = 10  # frames t with t % 10 == 0 are held out for evaluation, as the literature does


def held_out(t: int) -> bool:
    return t % HOLDOUT == 0


@dataclass
class TrainSpec:
    scale: int = 2
    paths: int = 2
    minutes: float | None = 10.0
    steps: int | None = None
    patch: int = 32          # LR grid cell; path k patches are patch / 2^k (the seed's split depth)
    train_margin: int = 4    # context around each training window, in LR px
    features: int = 16
    blocks: int = 2
    expand: int = 2
    crf: int = 18            # the LR stream's H.264 quality; training sees the decoded frames
    max_frames: int | None = None
    batch_size: int = 16
    batch: int = 64          # the compiled library's largest patch batch
    seed: int = 0
    threads: int | None = None

    def config(self):
        from .export import PathSpec, SRConfig
        return SRConfig(self.scale, tuple(PathSpec(self.features + 8 * k, self.blocks + k, self.expand)
                                          for k in range(self.paths)))


def training_windows(lr: np.ndarray, hr: np.ndarray, maps: patching.SplitMaps, frames, margin: int,
                     scale: int) -> tuple[dict, dict]:
    """LR windows (patch + margin) of the given frames grouped by path, and the HR windows they
    should become: (N, 3, w, w) and (N, 3, s*w, s*w) uint8."""
    xs: dict[int, list] = {}
    ys: dict[int, list] = {}
    for t in frames:
        plan = patching.plan_patches(maps.grid, maps.depth[t], maps.path[t], margin)
        if any(plan.pad):
            raise ValueError(f"LR frames of {maps.width}x{maps.height} are smaller than a training "
                             f"window ({maps.patch + 2 * margin} px): use a smaller --patch")
        for (path, size), group in plan.groups.items():
            win = plan.window(size)
            for wy, wx in group.windows:
                xs.setdefault(path, []).append(lr[t, wy:wy + win, wx:wx + win].transpose(2, 0, 1))
                ys.setdefault(path, []).append(
                    hr[t, wy * scale:(wy + win) * scale, wx * scale:(wx + win) * scale].transpose(2, 0, 1))
    return ({k: np.stack(v) for k, v in sorted(xs.items())}, {k: np.stack(v) for k, v in sorted(ys.items())})


def torch_runner(model):
    """A PathRunner over the torch network (server side: margin measurement, evaluation)."""
    import torch

    def run(batch, path):
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(batch, np.float32)), path).numpy()
    return run


def deploy_margin(run, lr: np.ndarray, hr: np.ndarray, frames, policy, scale: int) -> int:
    """The smallest margin at which patch-wise upscaling is within 0.05 dB of whole-frame on every
    path (measured on held-out frames, each path applied to the whole frame)."""
    grid = patching.Grid(lr.shape[1], lr.shape[2], policy.patch)
    need = 0
    for path in range(policy.n_paths):
        depth = np.full(grid.shape, policy.depth_of(np.array([path]))[0], np.uint8)
        for t in frames:
            need = max(need, patching.min_margin(lr[t], hr[t], depth, lambda b, k=path: run(b, k),
                                                 scale, policy.patch))
    return need


def train_video(hr_video, out, spec: TrainSpec = TrainSpec(), progress: bool = True) -> bundles.Bundle:
    """Overfits one N-path network to `hr_video` and writes the model folder `out`."""
    from .export import save_onnx
    from .net import numpy_weights
    from .train import train

    say = print if progress else (lambda *a, **k: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hr, info = video.read_video(hr_video, spec.max_frames)
    say(f"read {len(hr)} frames of {hr.shape[2]}x{hr.shape[1]} from {hr_video}")
    low = video.make_lr(hr, spec.scale, crf=spec.crf, fps=info.fps)
    (out / "lr.mp4").write_bytes(low.stream)
    maps, policy = patching.compute_split_maps(low.lr, patching.SplitPolicy(spec.patch, spec.paths), spec.scale)
    train_frames = [t for t in range(len(hr)) if not held_out(t)] or [0]
    test_frames = [t for t in range(len(hr)) if held_out(t)]
    xs, ys = training_windows(low.lr, low.hr, maps, train_frames, spec.train_margin, spec.scale)
    say(f"LR {low.lr.shape[2]}x{low.lr.shape[1]}, {spec.paths} paths: " +
        ", ".join(f"path {k}: {len(x)} windows of {x.shape[2]} px" for k, x in xs.items()))
    if len(xs) < spec.paths:
        raise ValueError(f"the split maps put patches on only {len(xs)} of {spec.paths} paths: "
                         f"the clip has too little variety for that many")
    result = train(xs, ys, spec.scale, spec.config(), steps=spec.steps, minutes=spec.minutes,
                   batch_size=spec.batch_size, seed=spec.seed, threads=spec.threads, progress=progress)
    save_onnx(numpy_weights(result.model), spec.config(), out / "model.onnx")
    margin = deploy_margin(torch_runner(result.model), low.lr, low.hr, test_frames[:1] or [0], policy, spec.scale)
    patching.save_split_maps(out / "split.bin", maps)
    extra = dict(train=asdict(spec), steps=result.steps, train_seconds=round(result.seconds, 1),
                 held_out=f"every {HOLDOUT}th frame (t % {HOLDOUT} == 0): {len(test_frames)} frames",
                 source=str(hr_video), hr_height=int(low.hr.shape[1]), hr_width=int(low.hr.shape[2]))
    b = bundles.Bundle(out, spec.scale, int(low.lr.shape[1]), int(low.lr.shape[2]), len(hr), float(info.fps),
                       policy, margin, spec.batch, extra)
    b.save()
    say(f"trained {result.steps} steps in {result.seconds:.0f} s; deploy margin {margin} LR px; compiling")
    b.compile(progress=(lambda m: say(f"  {m}")) if progress else None)
    return b
