"""`dydca-sr eval`: quality, size and speed of every method a model folder holds, on the frames
held out from training (every 10th), against the HR reference.

Methods (JSON keys): bicubic; generic (one model not fitted to this video); whole_video (one
static model fitted to the whole video, NAS-style); per_chunk (one model per chunk of frames, as
NAS/CaFM/STDO: K models, K - 1 switches); dydca (the one dynamic N-path model, patch-wise) and
dydca_pN (the same with N paths, when trained with --more-paths); dydca_lr_map (the main model
with its split map recomputed from LR on the device instead of read from the side file). Every
network runs through its dydca-compiled library; the dynamic model also through onnxruntime on the
same ONNX when onnxruntime is installed (a column, for comparison; the device never needs it).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import bundle as bundles
from . import metrics, patching, upscale, video
from .pipeline import BASELINES, held_out


@dataclass
class MethodResult:
    name: str
    psnr_y: float
    psnr_rgb: float
    ssim: float  # on Y, as the literature reports it
    ssim_rgb: float
    models: int
    model_bytes: int
    ms_per_frame: float
    ms_per_frame_ort: float | None = None
    switches: int = 0
    paths: int | None = None  # dynamic models: their path count
    train_steps: int | None = None  # optimizer steps over all the method's models (fairness at a glance)
    per_frame_psnr_y: list = field(default_factory=list)


def _weights_bytes(folder: Path) -> int:
    return (folder / "model.onnx").stat().st_size


def _train_steps(bundles_) -> int | None:
    steps = [b.extra.get("steps") for b in bundles_]
    return None if None in steps else sum(steps)


def _timed(fn, frames) -> tuple[list, float]:
    """Outputs and ms per frame; one untimed call first (thread pool start, first-touch pages)."""
    if frames:
        fn(*frames[0])
    out, seconds = [], 0.0
    for t, frame in frames:
        t0 = time.perf_counter()
        out.append(fn(t, frame))
        seconds += time.perf_counter() - t0
    return out, 1e3 * seconds / max(len(out), 1)


def _result(name, sr, hr, scale, ms, models, nbytes, **kw) -> MethodResult:
    rows = [metrics.frame_metrics(s, h, scale) for s, h in zip(sr, hr)]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return MethodResult(name, mean["psnr_y"], mean["psnr_rgb"], mean["ssim_y"], mean["ssim_rgb"], models, nbytes,
                        ms, per_frame_psnr_y=[r["psnr_y"] for r in rows], **kw)


def ort_runner(folder: Path, threads: int | None = None):
    """A PathRunner over onnxruntime on a model folder's ONNX, with as many threads as dydca gets
    (None without onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    return lambda batch, path: sess.run(None, {"x": np.asarray(batch, np.float32), "path": np.array(path, np.int64)})[0]


def _whole_frame(name: str, folders: list[Path], frames, refs, threads, **kw) -> MethodResult:
    """Static models on whole frames through their compiled libraries, and through onnxruntime: one
    model, or one per chunk of frames (each frame goes to the model whose chunk holds it)."""
    ups = [upscale.Upscaler(f, mode="frame", threads=threads) for f in folders]
    spans = [range(*u.bundle.extra["frames"]) for u in ups]

    def pick(t: int) -> int:  # a single model serves every frame (a generic one was trained on another video)
        return 0 if len(ups) == 1 else next(i for i, s in enumerate(spans) if t in s)
    sr, ms = _timed(lambda t, f: ups[pick(t)](t, f), frames)
    ort_ms = None
    runs = [ort_runner(f, threads) for f in folders]
    if runs[0] is not None:
        def via_ort(t, f):
            i = pick(t)
            return patching.to_uint8(runs[i](patching.to_batch(f), ups[i].path)[0].transpose(1, 2, 0))
        _, ort_ms = _timed(via_ort, frames)
    return _result(name, sr, refs, ups[0].bundle.scale, ms, len(ups), sum(_weights_bytes(f) for f in folders),
                   ms_per_frame_ort=ort_ms, train_steps=_train_steps([u.bundle for u in ups]), **kw)


def _dynamic(name: str, folder: Path, frames, refs, threads, recompute_map: bool = False) -> MethodResult:
    """A dynamic model patch-wise through its compiled library, and through onnxruntime on the same
    ONNX and the same patches. `recompute_map`: the device scores the cells from LR itself instead
    of reading the side file (its cost is in the dydca time; onnxruntime is not run again)."""
    up = upscale.Upscaler(folder, threads=threads, recompute_map=recompute_map)
    b = up.bundle
    sr, ms = _timed(up, frames)
    ort_ms = None
    run = None if recompute_map else ort_runner(folder, threads)
    if run is not None:
        def via_ort(t, f):
            depth, path = up.split(t, f)
            plan = patching.plan_patches(up.grid, depth, path, b.margin)
            return patching.to_uint8(patching.upscale_frame(f, plan, run, b.scale, max_batch=b.batch))
        _, ort_ms = _timed(via_ort, frames)
    return _result(name, sr, refs, b.scale, ms, 1, _weights_bytes(folder), ms_per_frame_ort=ort_ms,
                   paths=b.policy.n_paths, train_steps=_train_steps([b]))


def evaluate(folder, reference, threads: int | None = None, progress: bool = True) -> list[MethodResult]:
    folder = Path(folder)
    main = bundles.load(folder)
    say = print if progress else (lambda *a, **k: None)
    lr, _ = video.read_video(main.lr_path)
    main.check_frame_size(lr.shape[1], lr.shape[2], f"{main.lr_path}")
    hr, _ = video.read_video(reference, len(lr))
    hr = video.crop_to_multiple(hr, 2 * main.scale)
    if hr.shape[1:3] != (lr.shape[1] * main.scale, lr.shape[2] * main.scale) or len(hr) < len(lr):
        raise ValueError(f"reference {str(reference)!r} ({hr.shape[2]}x{hr.shape[1]}, {len(hr)} frames) is not "
                         f"the HR of this model folder's LR stream ({lr.shape[2]}x{lr.shape[1]} x{main.scale}, "
                         f"{len(lr)} frames)")
    test = [t for t in range(len(lr)) if held_out(t)]
    frames, refs = [(t, lr[t]) for t in test], [hr[t] for t in test]
    say(f"evaluating on {len(test)} held-out frames (every 10th) of {lr.shape[2]}x{lr.shape[1]} x{main.scale}")
    results = []
    sr, ms = _timed(lambda t, f: video.bicubic_upscale(f, main.scale), frames)
    results.append(_result("bicubic", sr, refs, main.scale, ms, 0, 0))
    base = folder / BASELINES
    for name in ("generic", "whole_video"):
        if (base / name).is_dir():
            results.append(_whole_frame(name, [base / name], frames, refs, threads))
    chunks = sorted((base / "per_chunk").glob("chunk*"), key=lambda p: int(p.name[5:])) if (base / "per_chunk").is_dir() else []
    if chunks:
        results.append(_whole_frame("per_chunk", chunks, frames, refs, threads, switches=len(chunks) - 1))
    variants = sorted(base.glob("dydca_p*"), key=lambda p: int(p.name[7:])) if base.is_dir() else []
    for name, f in [("dydca", folder)] + [(v.name, v) for v in variants]:
        results.append(_dynamic(name, f, frames, refs, threads))
    if main.policy.score == "gradient":  # the other way to get the split map on the device
        results.append(_dynamic("dydca_lr_map", folder, frames, refs, threads, recompute_map=True))
    return results


def table(results: list[MethodResult]) -> str:
    """A markdown table a person can read in a terminal."""
    head = ("| method | PSNR-Y dB | PSNR-RGB dB | SSIM-Y | SSIM-RGB | models | model KB | switches | train steps | "
            "ms/frame (dydca) | ms/frame (onnxruntime) |")
    lines = [head, "|" + "---|" * 11]
    for r in results:
        ort = "-" if r.ms_per_frame_ort is None else f"{r.ms_per_frame_ort:.1f}"
        name = r.name if r.paths is None else f"{r.name} ({r.paths} path{'s' if r.paths > 1 else ''})"
        steps = "-" if r.train_steps is None else r.train_steps
        lines.append(f"| {name} | {r.psnr_y:.2f} | {r.psnr_rgb:.2f} | {r.ssim:.4f} | {r.ssim_rgb:.4f} | {r.models} | "
                     f"{r.model_bytes / 1024:.1f} | {r.switches} | {steps} | {r.ms_per_frame:.1f} | {ort} |")
    return "\n".join(lines)


def to_json(results: list[MethodResult]) -> dict:
    return {r.name: {k: v for k, v in asdict(r).items() if k != "name"} for r in results}


def plots(results: list[MethodResult], out_dir) -> list[Path]:
    """PSNR per held-out frame, and PSNR against model bytes, as PNGs (matplotlib)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = [out_dir / "psnr_per_frame.png", out_dir / "psnr_vs_bytes.png"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(range(len(r.per_frame_psnr_y)), r.per_frame_psnr_y, marker="o", label=r.name)
    ax.set(xlabel="held-out frame (every 10th)", ylabel="PSNR-Y (dB)", title="PSNR per frame")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ax.scatter([r.model_bytes / 1024], [r.psnr_y], label=r.name)
    ax.set(xlabel="model KB (all models a method ships)", ylabel="PSNR-Y (dB)", title="PSNR against model size")
    ax.legend()
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def write_json(results, path) -> None:
    Path(path).write_text(json.dumps(to_json(results), indent=2))
