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
    patch: int = 32          # LR grid cell
    split: str = "auto"      # path classes: "depth" (path k patches are patch / 2^k, the seed's
                             # routing by size), "quantile" (every patch P x P, classes by score
                             # quantile) or "auto": depth up to 2 paths, quantile beyond, because
                             # with 3+ paths depth leaves 8 and 4 px patches whose context margin
                             # costs more compute than the split saves (measured: bikes x2)
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

    def policy(self) -> patching.SplitPolicy:
        mode = self.split if self.split != "auto" else ("depth" if self.paths <= 2 else "quantile")
        return patching.SplitPolicy(self.patch, self.paths, mode)

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


@dataclass
class Prepared:
    """One HR video made ready for training: the cropped HR reference and the decoded LR stream."""
    source: str
    hr: np.ndarray
    lr: np.ndarray
    stream: bytes
    fps: float


def prepare(hr_video, spec: TrainSpec, say=lambda *a: None) -> Prepared:
    hr, info = video.read_video(hr_video, spec.max_frames)
    say(f"read {len(hr)} frames of {hr.shape[2]}x{hr.shape[1]} from {hr_video}")
    low = video.make_lr(hr, spec.scale, crf=spec.crf, fps=info.fps)
    return Prepared(str(hr_video), low.hr, low.lr, low.stream, float(info.fps))


def fit(prep: Prepared, out, spec: TrainSpec, frames: range | None = None, deploy_to: Prepared | None = None,
        patches: bool = True, progress: bool = True, say=lambda *a: None) -> bundles.Bundle:
    """Trains one network on `frames` of `prep` (all by default; held-out frames never) and writes
    its model folder. `deploy_to`: the video the folder will upscale when it is not the one
    trained on (a generic model), which fixes the folder's frame size. `patches`: the folder runs
    patch-wise, so its margin is measured (whole-frame baselines keep the training margin)."""
    from .export import save_onnx
    from .net import numpy_weights
    from .train import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = frames if frames is not None else range(len(prep.hr))
    maps, policy = patching.compute_split_maps(prep.lr, spec.policy(), spec.scale)
    train_frames = [t for t in frames if not held_out(t)] or [frames[0]]
    xs, ys = training_windows(prep.lr, prep.hr, maps, train_frames, spec.train_margin, spec.scale)
    say(f"{out.name}: {spec.paths} path(s), frames {frames.start}..{frames.stop - 1}: " +
        ", ".join(f"path {k}: {len(x)} windows of {x.shape[2]} px" for k, x in xs.items()))
    if len(xs) < spec.paths:
        raise ValueError(f"the split maps put patches on only {len(xs)} of {spec.paths} paths: "
                         f"the clip has too little variety for that many")
    result = train(xs, ys, spec.scale, spec.config(), steps=spec.steps, minutes=spec.minutes,
                   batch_size=spec.batch_size, seed=spec.seed, threads=spec.threads, progress=progress)
    save_onnx(numpy_weights(result.model), spec.config(), out / "model.onnx")
    target = deploy_to or prep
    test_frames = [t for t in frames if held_out(t)] or [frames[0]]
    margin = (deploy_margin(torch_runner(result.model), prep.lr, prep.hr, test_frames[:1], policy, spec.scale)
              if patches else spec.train_margin)
    if patches:  # what the device reads beside a patch-wise model (whole-frame ones need neither)
        patching.save_split_maps(out / "split.bin", maps)
        (out / "lr.mp4").write_bytes(prep.stream)
    extra = dict(train=asdict(spec), steps=result.steps, train_seconds=round(result.seconds, 1),
                 frames=[frames.start, frames.stop], source=prep.source,
                 held_out=f"every {HOLDOUT}th frame (t % {HOLDOUT} == 0)")
    b = bundles.Bundle(out, spec.scale, int(target.lr.shape[1]), int(target.lr.shape[2]), len(target.lr),
                       target.fps, policy, margin, spec.batch, extra)
    b.save()
    say(f"{out.name}: {result.steps} steps in {result.seconds:.0f} s; deploy margin {margin} LR px; compiling")
    b.compile()
    return b


BASELINES = "baselines"


def baseline_specs(spec: TrainSpec, chunks: int) -> tuple[TrainSpec, TrainSpec]:
    """(whole-video / generic spec, per-chunk spec), each under the same wall-clock budget as the
    dynamic model: one static network as big as its largest path; K chunk networks as big as its
    smallest path, sharing the budget."""
    from dataclasses import replace
    big = replace(spec, paths=1, features=spec.features + 8 * (spec.paths - 1), blocks=spec.blocks + spec.paths - 1)
    small = replace(spec, paths=1,
                    minutes=None if spec.minutes is None else spec.minutes / chunks,
                    steps=None if spec.steps is None else max(1, spec.steps // chunks))
    return big, small


def variant_folder(out, paths: int) -> Path:
    """Where a dynamic model with another path count sits beside the main one (evaluation reads it)."""
    return Path(out) / BASELINES / f"dydca_p{paths}"


def train_video(hr_video, out, spec: TrainSpec = TrainSpec(), baselines: bool = False, chunks: int = 4,
                generic_video=None, more_paths=(), progress: bool = True) -> bundles.Bundle:
    """Overfits one N-path network to `hr_video` and writes the model folder `out`; with
    `baselines`, also the whole-video, per-chunk (`chunks` models) and, given `generic_video`,
    generic baselines under out/baselines/, each under the same budget; and for each count in
    `more_paths`, a dynamic model with that many paths (variant_folder), to compare N."""
    from dataclasses import replace
    say = print if progress else (lambda *a, **k: None)
    prep = prepare(hr_video, spec, say)
    main = fit(prep, out, spec, progress=progress, say=say)
    for n in more_paths:
        fit(prep, variant_folder(out, n), replace(spec, paths=n), progress=progress, say=say)
    if baselines:
        big, small = baseline_specs(spec, chunks)
        root = Path(out) / BASELINES
        fit(prep, root / "whole_video", big, patches=False, progress=progress, say=say)
        bounds = np.linspace(0, len(prep.hr), chunks + 1).astype(int)
        for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            fit(prep, root / "per_chunk" / f"chunk{i}", small, range(int(a), int(b)), patches=False,
                progress=progress, say=say)
        if generic_video is not None:
            fit(prepare(generic_video, big, say), root / "generic", big, deploy_to=prep, patches=False,
                progress=progress, say=say)
    return main
