"""Compile time and planned arena of the SR zoo, built from scratch (no build cache).

    .venv/bin/python bench/compile_time.py
"""
import time

import dydca
import dydca.zoo as zoo

DIMS = {"n": (1, 16), "h": (8, 96), "w": (8, 128)}

if __name__ == "__main__":
    print(f"{'model':9s} {'total s':>8s} {'frontend s':>10s} {'g++ s':>6s} {'arena MiB':>10s} {'sum MiB':>8s}")
    for name, build in zoo.SR_MODELS.items():
        t = time.perf_counter()
        m = dydca.compile(build(), dims=DIMS, cache=False)
        mf = m.manifest
        print(f"{name:9s} {time.perf_counter() - t:8.2f} {mf['frontend_seconds']:10.2f} {mf['build_seconds']:6.2f} "
              f"{mf['arena_bytes'] / 2**20:10.1f} {mf['sum_bytes'] / 2**20:8.1f}")
