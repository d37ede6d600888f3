"""Whole-model A/B: two dydca builds of one model (and onnxruntime on its ONNX file, if given),
called in turns in one process, so a shared host's swings hit every side alike.

    .venv/bin/python -m bench.ab_builds BUILD_A BUILD_B --shape 1x3x224x224 [--onnx model.onnx]
                                        [--calls 60] [--threads 2]

Prints each side's median latency and B's speed-up over A (and each build's over onnxruntime).
Build folders come from `dydca-compile model.onnx -o DIR ...` (e.g. one per revision). A report,
never a gate.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import dydca


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("builds", nargs=2, help="two dydca build folders of the same model")
    ap.add_argument("--shape", required=True, help="the input's shape, e.g. 1x3x224x224")
    ap.add_argument("--onnx", help="the model's ONNX file: onnxruntime takes turns too")
    ap.add_argument("--calls", type=int, default=60, help="timed calls per side (default 60)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    shape = tuple(int(d) for d in args.shape.split("x"))
    models = [dydca.load(b) for b in args.builds]
    for m in models:
        m.set_threads(args.threads)
    name = models[0].inputs[0]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    sides = [(b, lambda m=m: m.run({name: x})) for b, m in zip(args.builds, models)]
    if args.onnx:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        # its threads would otherwise spin after each call, on the cores the next side runs on
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(args.onnx, so, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        sides.append(("onnxruntime", lambda: sess.run(None, feed)))
    for _ in range(5):  # warm-up: caches, thread pools
        for _, run in sides:
            run()
    times = [[] for _ in sides]
    for _ in range(args.calls):
        for k, (_, run) in enumerate(sides):
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    med = [float(np.median(t)) * 1e3 for t in times]
    for (label, _), ms in zip(sides, med):
        print(f"{label:40s} median {ms:8.2f} ms")
    print(f"B / A speed-up: {med[0] / med[1]:.3f}x")
    if args.onnx:
        for (label, _), ms in zip(sides[:2], med):
            print(f"{label}: onnxruntime / dydca {med[2] / ms:.3f}x")


if __name__ == "__main__":
    main()
