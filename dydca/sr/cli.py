"""dydca-sr: the video SR system from the command line.

    dydca-sr train   hr.mp4 --scale 4 --paths 2 --minutes 10 -o vid_model/  # server: overfit
    dydca-sr upscale vid_model/lr.mp4 --model vid_model/ -o sr.mp4           # device: no torch
    dydca-sr eval    --model vid_model/ --reference hr.mp4 --json report.json

Exit status: 0 ok, 2 a problem with the input or options (one line saying what).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dydca-sr", description="Content-aware video super-resolution "
                                 "with one dynamic N-path network per video, run through dydca.")
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="overfit one dynamic network to an HR video (needs torch: pip install .[train])")
    t.add_argument("video", help="the HR video")
    t.add_argument("-o", "--out", required=True, help="the model folder to write")
    t.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    t.add_argument("--paths", type=int, default=2, help="patch classes, each with its own path (default 2)")
    t.add_argument("--split", choices=("auto", "depth", "quantile"), default="auto",
                   help="path classes by split depth (patch / 2^k) or by score quantile (auto: depth up to 2 paths)")
    t.add_argument("--more-paths", type=lambda s: [int(v) for v in s.split(",")], default=[], metavar="N,...",
                   help="also train dynamic models with these path counts, to compare N (eval lists them)")
    t.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget per model (default 10)")
    t.add_argument("--steps", type=int, help="optimizer steps (the cosine schedule follows them)")
    t.add_argument("--patch", type=int, default=32, help="LR grid cell in pixels (default 32)")
    t.add_argument("--features", type=int, default=16, help="channels of path 0 (path k: +8k)")
    t.add_argument("--blocks", type=int, default=2, help="residual blocks of path 0 (path k: +k)")
    t.add_argument("--crf", type=int, default=18, help="H.264 quality of the LR stream (default 18)")
    t.add_argument("--max-frames", type=int, help="use only the first N frames")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, help="torch threads while training")
    t.add_argument("--baselines", action="store_true",
                   help="also train the whole-video, per-chunk and (with --generic) generic baselines")
    t.add_argument("--chunks", type=int, default=4, help="per-chunk baseline: models (default 4)")
    t.add_argument("--generic", metavar="VIDEO", help="an unrelated HR video for the generic baseline")
    u = sub.add_parser("upscale", help="upscale an LR video with a model folder's compiled library")
    u.add_argument("video", help="the LR video (the model folder's lr.mp4)")
    u.add_argument("--model", required=True, help="the model folder")
    u.add_argument("-o", "--out", required=True, help="the SR video to write")
    u.add_argument("--mode", choices=("patches", "frame"), default="patches")
    u.add_argument("--recompute-map", action="store_true", help="recompute split maps from LR, not the side file")
    u.add_argument("--threads", type=int)
    e = sub.add_parser("eval", help="quality, size and speed of every method in a model folder")
    e.add_argument("--model", required=True, help="the model folder")
    e.add_argument("--reference", required=True, help="the HR video")
    e.add_argument("--json", help="also write the results here")
    e.add_argument("--threads", type=int)
    return ap


def run(args) -> int:
    if args.command == "train":
        from .pipeline import TrainSpec, train_video
        spec = TrainSpec(scale=args.scale, paths=args.paths, minutes=args.minutes, steps=args.steps,
                         patch=args.patch, split=args.split, features=args.features, blocks=args.blocks, crf=args.crf,
                         max_frames=args.max_frames, seed=args.seed, threads=args.threads)
        b = train_video(args.video, args.out, spec, baselines=args.baselines, chunks=args.chunks,
                        generic_video=args.generic, more_paths=args.more_paths)
        print(f"wrote {b.folder}: {b.policy.n_paths} paths, x{b.scale}, margin {b.margin}; "
              f"next: dydca-sr upscale {b.lr_path} --model {b.folder} -o sr.mp4")
    elif args.command == "upscale":
        from .upscale import upscale_video
        stats = upscale_video(args.video, args.model, args.out, args.mode, args.recompute_map, args.threads)
        print(f"wrote {args.out}: {stats.frames} frames, {stats.ms_per_frame:.1f} ms/frame "
              f"({stats.fps:.1f} frames/s) in the model")
    else:
        from . import evaluate
        results = evaluate.evaluate(args.model, args.reference, args.threads)
        print(evaluate.table(results))
        for p in evaluate.plots(results, args.model):
            print(f"plot: {p}")
        if args.json:
            evaluate.write_json(results, args.json)
            print(f"wrote {args.json}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError, ImportError, MemoryError) as e:
        if os.environ.get("DYDCA_DEBUG"):
            raise
        hint = " (training needs torch: pip install '.[train]')" if isinstance(e, ImportError) and "torch" in str(e) else ""
        print(f"dydca-sr: error: {' '.join(str(e).split())}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("dydca-sr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
