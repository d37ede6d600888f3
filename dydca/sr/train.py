"""Overfitting one N-path network to one video's patches (PyTorch on CPU; `pip install .[train]`).

    result = train(patches_by_path, targets_by_path, scale=2, steps=2000, minutes=10, seed=0)
    result.model, result.history

As the Dy-DCA paper trains: L1 loss, Adam (lr 1e-3) with cosine decay to 0. Every batch comes
from one path's patch set (the path is a property of the patch: its size class), so one step
trains one body plus the shared skip. The batch order is a pure function of (seed, epoch): a run
resumed from a checkpoint continues with exactly the batches the uninterrupted run would have seen.

Determinism: the same seed, data, arguments and torch thread count give bit-identical weights;
train() seeds torch and, for its duration, turns on torch.use_deterministic_algorithms and, when
`threads` is given, fixes torch's intra-op thread count (CPU kernels may split their sums
differently for another count). A `minutes` budget stops at a wall-clock time, which no seed can
make repeatable; with `steps` given the learning-rate schedule follows the step count, so runs
agree up to the step where the slower one stopped.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch

from .export import SRConfig
from .net import DynamicSR

PatchSets = Mapping[int, np.ndarray] | Sequence[np.ndarray]


@dataclass
class TrainResult:
    model: DynamicSR
    history: list[dict] = field(default_factory=list)  # per step: step, path, loss, psnr, lr, seconds
    steps: int = 0              # optimizer steps done in total (including those before a resume)
    seconds: float = 0.0        # wall clock of this call
    stopped_by: str = "steps"   # "steps" or "minutes"
    steps_run: int = 0          # optimizer steps done by this call

    @property
    def steps_per_second(self) -> float:
        return self.steps_run / self.seconds if self.seconds > 0 else 0.0


# ------------------------------------------------------------------------------------ the data
def _as_float(array: np.ndarray, what: str) -> torch.Tensor:
    """(N,3,h,w) uint8 (0..255) or float (0..1) -> float32 tensor in 0..1."""
    a = np.asarray(array)
    if a.ndim != 4 or a.shape[1] != 3:
        raise ValueError(f"{what}: expected (N, 3, h, w) patches, got shape {a.shape}")
    scale = 255.0 if a.dtype == np.uint8 else 1.0
    return torch.from_numpy(np.ascontiguousarray(a, np.float32) / np.float32(scale))


def path_sets(patches_by_path: PatchSets, targets_by_path: PatchSets, scale: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per path index 0..N-1: (LR patches, HR targets) as tensors; a path absent from a dict, or
    with no patches, gets empty tensors and no batches."""
    def listed(sets):
        if isinstance(sets, Mapping):
            return [sets.get(k) for k in range(max(sets, default=-1) + 1)]
        return list(sets)
    lrs, hrs = listed(patches_by_path), listed(targets_by_path)
    if len(lrs) != len(hrs):
        raise ValueError(f"{len(lrs)} patch sets but {len(hrs)} target sets")
    out = []
    for k, (lr, hr) in enumerate(zip(lrs, hrs)):
        if lr is None or len(lr) == 0:
            out.append((torch.empty(0, 3, 1, 1), torch.empty(0, 3, scale, scale)))
            continue
        x, y = _as_float(lr, f"path {k} patches"), _as_float(hr, f"path {k} targets")
        if y.shape != (x.shape[0], 3, x.shape[2] * scale, x.shape[3] * scale):
            raise ValueError(f"path {k}: targets {tuple(y.shape)} are not the x{scale} of patches {tuple(x.shape)}")
        out.append((x, y))
    if not any(len(x) for x, _ in out):
        raise ValueError("no training patches on any path")
    return out


def epoch_batches(sizes: Sequence[int], batch_size: int, seed: int, epoch: int) -> list[tuple[int, np.ndarray]]:
    """One epoch: every path's patches shuffled and cut into batches of one path each, the batches
    of all paths then shuffled together. A pure function of its arguments."""
    rng = np.random.default_rng([seed, epoch])
    batches = []
    for k, n in enumerate(sizes):
        order = rng.permutation(n)
        batches += [(k, order[i:i + batch_size]) for i in range(0, n, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def batch_stream(sizes: Sequence[int], batch_size: int, seed: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Batches from step `start` on, epoch after epoch."""
    per_epoch = sum(-(-n // batch_size) for n in sizes)
    epoch, skip = divmod(start, per_epoch)
    while True:
        yield from epoch_batches(sizes, batch_size, seed, epoch)[skip:]
        epoch, skip = epoch + 1, 0


def psnr_db(mse: float) -> float:
    """PSNR of values in 0..1."""
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def cosine_lr(lr: float, fraction: float) -> float:
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))


# ------------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, model: DynamicSR, optimizer: torch.optim.Optimizer | None = None,
                    step: int = 0, history: list | None = None) -> Path:
    """Writes to `path`, with "{step}" in it replaced by the step count (one file per checkpoint)."""
    path = Path(str(path).format(step=step))
    torch.save({"config": model.config.to_dict(), "model": model.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "step": step, "history": history or []}, str(path))
    return path


def load_checkpoint(path) -> tuple[DynamicSR, dict]:
    """(model, the checkpoint dict: config, model, optimizer, step, history)."""
    ck = torch.load(str(path), map_location="cpu", weights_only=True)
    model = DynamicSR(SRConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    return model, ck


# ------------------------------------------------------------------------------------ progress
class Progress:
    """tqdm when installed, else one line rewritten on stderr at most twice a second."""

    def __init__(self, total: int | None, enabled: bool, start: int = 0):
        self.enabled, self.total, self.start, self.bar, self.last = enabled, total, start, None, 0.0
        if not enabled:
            return
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)
        except ImportError:
            pass

    def update(self, step: int, info: dict) -> None:
        if not self.enabled:
            return
        text = {"path": info["path"], "loss": f"{info['loss']:.4f}", "psnr": f"{info['psnr']:.2f}dB",
                "lr": f"{info['lr']:.2e}"}
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(text, refresh=False)
            return
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            of = f"/{self.total}" if self.total else ""
            rate = (step - self.start) / info["seconds"] if info["seconds"] > 0 else 0.0
            sys.stderr.write(f"\rtrain step {step}{of} " + " ".join(f"{k} {v}" for k, v in text.items())
                             + f" {rate:.1f} step/s ")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


# ------------------------------------------------------------------------------------ training
def evaluate(model: DynamicSR, patches_by_path: PatchSets, targets_by_path: PatchSets,
             batch_size: int = 64) -> dict:
    """PSNR (dB, RGB on 0..1, outputs clamped, no shave) over all patches and per path."""
    sets = path_sets(patches_by_path, targets_by_path, model.config.scale)
    per_path, total_se, total_n = {}, 0.0, 0
    model.eval()
    with torch.no_grad():
        for k, (x, y) in enumerate(sets):
            if not len(x):
                continue
            se = sum(float(((model(x[i:i + batch_size], k).clamp(0, 1) - y[i:i + batch_size]) ** 2).sum())
                     for i in range(0, len(x), batch_size))
            per_path[k] = psnr_db(se / y.numel())
            total_se, total_n = total_se + se, total_n + y.numel()
    return {"psnr": psnr_db(total_se / total_n), "per_path": per_path}


def train_step(model: DynamicSR, optimizer, x: torch.Tensor, y: torch.Tensor, path: int, lr: float) -> tuple[float, float]:
    """One Adam step on one path's batch: (L1 loss, batch PSNR of the clamped output)."""
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr
    out = model(x, path)
    loss = torch.nn.functional.l1_loss(out, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        mse = float(((out.detach().clamp(0, 1) - y) ** 2).mean())
    return float(loss.detach()), psnr_db(mse)


def train(patches_by_path: PatchSets, targets_by_path: PatchSets, scale: int, config: SRConfig | None = None, *,
          steps: int | None = None, minutes: float | None = None, batch_size: int = 16, lr: float = 1e-3,
          seed: int = 0, threads: int | None = None, progress: bool = True,
          checkpoint: str | Path | None = None, checkpoint_every: int = 0, resume: str | Path | None = None,
          validation: tuple[PatchSets, PatchSets] | None = None, eval_every: int = 0) -> TrainResult:
    """Overfits a DynamicSR to the given patches (see the module docstring).

    patches_by_path[k]: (N_k, 3, h_k, w_k) LR patches of path k, uint8 or float in 0..1;
    targets_by_path[k]: their (N_k, 3, s*h_k, s*w_k) HR patches. config defaults to
    SRConfig.default(scale, n_paths=len(patch sets)). Stops after `steps` optimizer steps or
    `minutes` of wall clock, whichever comes first (at least one is needed); the cosine schedule
    runs over `steps` when given, else over the time budget. checkpoint: a file written every
    `checkpoint_every` steps (0: only at the end), "{step}" in its name replaced by the step
    count; resume: a checkpoint to continue from (its step count, weights and optimizer state;
    pass the same data, seed, batch_size and steps). validation: (patches, targets) evaluated every
    `eval_every` steps and at the end, recorded in the history as val_psnr."""
    if steps is None and minutes is None:
        raise ValueError("train needs a budget: steps, minutes or both")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    sets = path_sets(patches_by_path, targets_by_path, scale)
    deterministic, prev_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if threads is not None:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _train(sets, scale, config, steps, minutes, batch_size, lr, seed, progress,
                      checkpoint, checkpoint_every, resume, validation, eval_every)
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(prev_threads)


def _start(sets, scale, config, lr, seed, resume):
    """(model, optimizer, first step, history) from a fresh seeded init or a checkpoint."""
    if resume is not None:
        model, ck = load_checkpoint(resume)
        if config is not None and model.config != config:
            raise ValueError(f"checkpoint {resume} holds a {model.config}, not the {config} asked for")
    else:
        torch.manual_seed(seed)
        model, ck = DynamicSR(config or SRConfig.default(scale, n_paths=len(sets))), None
    if model.config.scale != scale or model.config.n_paths < len(sets):
        raise ValueError(f"a x{model.config.scale} network with {model.config.n_paths} paths cannot train "
                         f"on x{scale} patches of {len(sets)} paths")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if ck is not None and ck["optimizer"] is not None:
        optimizer.load_state_dict(ck["optimizer"])
    return model, optimizer, (ck["step"] if ck else 0), (list(ck["history"]) if ck else [])


def _train(sets, scale, config, steps, minutes, batch_size, lr, seed, progress,
           checkpoint, checkpoint_every, resume, validation, eval_every) -> TrainResult:
    model, optimizer, step, history = _start(sets, scale, config, lr, seed, resume)
    first = step
    budget = minutes * 60.0 if minutes is not None else math.inf
    bar = Progress(steps, progress, start=step)
    t0 = time.monotonic()
    stopped_by = "steps"
    batches = batch_stream([len(x) for x, _ in sets], batch_size, seed, start=step)
    try:
        while steps is None or step < steps:
            elapsed = time.monotonic() - t0
            if elapsed >= budget:
                stopped_by = "minutes"
                break
            path, idx = next(batches)
            rate = cosine_lr(lr, step / steps if steps else elapsed / budget)
            x, y = sets[path]
            loss, psnr = train_step(model, optimizer, x[idx], y[idx], path, rate)
            step += 1
            entry = {"step": step, "path": path, "loss": loss, "psnr": psnr, "lr": rate,
                     "seconds": time.monotonic() - t0}
            if validation is not None and eval_every and step % eval_every == 0:
                entry["val_psnr"] = evaluate(model, *validation)["psnr"]
            history.append(entry)
            bar.update(step, entry)
            if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
                save_checkpoint(checkpoint, model, optimizer, step, history)
    finally:
        bar.close()
    if validation is not None:
        history.append({"step": step, "val_psnr": evaluate(model, *validation)["psnr"],
                        "seconds": time.monotonic() - t0})
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, optimizer, step, history)
    model.eval()
    return TrainResult(model, history, step, time.monotonic() - t0, stopped_by, step - first)
