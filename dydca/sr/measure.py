"""Measures the patching design choices on real clips; prints the markdown tables of the README.

    python -m dydca.sr.measure --clips bigbuckbunny bikes --scales 2 4 --frames 40

1. margin: patch-wise vs whole-frame upscaling with the same upscaler (bicubic, the only
   upscaler without training; a network's margin is measured the same way with min_margin).
2. scores: the LR-only gradient score against the seed's PSNR score (bicubic as the generic
   upscaler): rank correlation, class agreement, and how much of the upscaler's squared error
   falls in the cells each score sends to the hard path (what a deeper path can win back). The
   PSNR score is built from that very error, so its share is the best any score can reach;
   grad/psnr says how close the LR-only score gets to it.
3. side file vs recompute: side-file bytes for the clip, ms per frame to recompute the gradient
   map on the device, and whether maps made on clean LR match maps made on the H.264 stream.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from . import clips, patching, video


def _bicubic(scale):
    return lambda batch: video.bicubic_upscale_batch(batch, scale)


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (no scipy needed; ties are rare for these continuous scores)."""
    return float(np.corrcoef(_ranks(a.ravel()), _ranks(b.ravel()))[0, 1])


def margin_rows(lr, hr, scale, patch, margins):
    grid = patching.Grid(lr.shape[0], lr.shape[1], patch)
    depth = np.zeros(grid.shape, np.uint8)
    depth[::2, ::2] = 1  # mix of P and P/2 patches, so both sizes' seams are exercised
    return list(patching.margin_sweep(lr, hr, depth, _bicubic(scale), scale, patch, margins))


def score_rows(lr_frames, hr_frames, scale, patch, n_paths_list=(2, 3, 4)):
    grid = patching.Grid(lr_frames.shape[1], lr_frames.shape[2], patch)
    t0 = time.perf_counter()
    grad = np.stack([patching.gradient_scores(f, grid) for f in lr_frames])
    t1 = time.perf_counter()
    psnr = np.stack([patching.psnr_scores(lr, hr, grid, scale, _bicubic(scale))
                     for lr, hr in zip(lr_frames, hr_frames)])
    t2 = time.perf_counter()
    ms = {"grad_ms": (t1 - t0) * 1e3 / len(lr_frames), "psnr_ms": (t2 - t1) * 1e3 / len(lr_frames)}
    err = 255.0 ** 2 / 10 ** (psnr / 10)  # per-cell MSE of bicubic (cells have equal area)
    rows = []
    for n in n_paths_list:
        by_grad = patching.assign_paths(grad, patching.fit_thresholds(grad, n, "gradient"), "gradient")
        by_psnr = patching.assign_paths(psnr, patching.fit_thresholds(psnr, n, "psnr"), "psnr")
        hard = n - 1
        rows.append({"n_paths": n, "spearman": spearman(grad, -psnr),
                     "agreement": float(np.mean(by_grad == by_psnr)),
                     "err_share_grad": float(err[by_grad == hard].sum() / err.sum()),
                     "err_share_psnr": float(err[by_psnr == hard].sum() / err.sum()), **ms})
    seed = patching.assign_paths(psnr, [40.0], "psnr")
    return rows, float(seed.mean())


def side_rows(hr_frames, scale, patch, crf):
    clean = video.make_lr(hr_frames, scale)
    sent = video.make_lr(hr_frames, scale, crf=crf)
    policy = patching.SplitPolicy(patch=patch, n_paths=2)
    maps_clean, fitted = patching.compute_split_maps(clean.lr, policy, scale)
    t0 = time.perf_counter()
    maps_sent, _ = patching.compute_split_maps(sent.lr, fitted, scale)
    ms = (time.perf_counter() - t0) * 1e3 / len(sent.lr)
    size = len(patching.encode_split_maps(maps_sent))
    return {"frames": len(sent.lr), "cells": maps_sent.path.size, "side_bytes": size,
            "recompute_ms_per_frame": ms, "lr_stream_bytes": len(sent.stream),
            "clean_vs_h264_agreement": float(np.mean(maps_clean.path == maps_sent.path))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="+", default=["bigbuckbunny", "bikes"])
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 4])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--crf", type=int, default=23)
    args = parser.parse_args(argv)
    print("| clip | x | margin | PSNR whole | PSNR patched | gap dB | patched vs whole dB |")
    print("|---|---|---|---|---|---|---|")
    loaded = {name: video.read_video(clips.clip_path(name), args.frames)[0] for name in args.clips}
    for name, frames in loaded.items():
        for scale in args.scales:
            low = video.make_lr(frames[:1], scale)
            for r in margin_rows(low.lr[0], low.hr[0], scale, args.patch, range(4)):
                print(f"| {name} | {scale} | {r['margin']} | {r['psnr_whole']:.3f} | "
                      f"{r['psnr_patched']:.3f} | {r['gap_db']:.4f} | {r['psnr_patched_vs_whole']:.1f} |")
    print("\n| clip | x | paths | Spearman(grad, -psnr) | class agreement | hard-path error share: "
          "grad | psnr | grad/psnr | score ms/frame: grad | psnr |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, frames in loaded.items():
        for scale in args.scales:
            low = video.make_lr(frames, scale)
            rows, seed_frac = score_rows(low.lr, low.hr, scale, args.patch)
            for r in rows:
                print(f"| {name} | {scale} | {r['n_paths']} | {r['spearman']:.3f} | "
                      f"{r['agreement']:.3f} | {r['err_share_grad']:.3f} | {r['err_share_psnr']:.3f} | "
                      f"{r['err_share_grad'] / r['err_share_psnr']:.2f} | {r['grad_ms']:.2f} | "
                      f"{r['psnr_ms']:.1f} |")
            print(f"| {name} | {scale} | seed rule (<40 dB) splits {seed_frac:.3f} of cells "
                  "| | | | | | | |")
    print(f"\n| clip | x | frames | cells | side file bytes | recompute ms/frame | LR H.264 crf {args.crf} "
          "bytes | map agreement clean LR vs H.264 LR |")
    print("|---|---|---|---|---|---|---|---|")
    for name, frames in loaded.items():
        for scale in args.scales:
            r = side_rows(frames, scale, args.patch, args.crf)
            print(f"| {name} | {scale} | {r['frames']} | {r['cells']} | {r['side_bytes']} | "
                  f"{r['recompute_ms_per_frame']:.2f} | {r['lr_stream_bytes']} | "
                  f"{r['clean_vs_h264_agreement']:.3f} |")


if __name__ == "__main__":
    main()
