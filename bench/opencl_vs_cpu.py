"""The opencl target against the cpp target on the SR family and the N-path networks.

    .venv/bin/python -m bench.opencl_vs_cpu                      # the full table (see below for its time)
    .venv/bin/python -m bench.opencl_vs_cpu --quick              # 2 models, 3 timed runs: a smoke run
    .venv/bin/python -m bench.opencl_vs_cpu --device 'NVIDIA'    # another OpenCL device (DYDCA_OPENCL_DEVICE)

Each model of dydca.zoo (the SR family, and the 2- and 4-path networks on their deepest path) is
compiled once per target for two fixed shape classes, a patch batch (16x3x48x48) and a frame
(1x3x270x480, the low-resolution frame of a 1080p x4 output), and run at both in this process. A
row takes rounds: round 0 warms each target up (2 calls), then in every round each target, in
turn (the order alternating), gets a pause and one timed call, so load from other processes lands
on both alike. Times are medians of the timed calls; the cpp target runs at 2 threads; the OpenCL
driver uses what it likes (PoCL: one thread per core). The last outputs of the two targets are
compared: max abs difference, and that difference over the cpp output's range (the project's bar
is 1e-4). Writes bench/results/opencl_vs_cpu.md (the full run) or prints the table (--quick).
The full run took 13.4 minutes on 2 cores shared with other work (load average 3 to 5); the
SRResNet x4 frame row, ~20 s a call on PoCL there, was 5 of them (`--only` leaves it out).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.runtimes import RESULTS, ROOT, SETTLE_S, THREADS, CpuWait, cpu_name, fmt, markdown_table, say

BUILD = ROOT / "build" / "bench" / "opencl_vs_cpu"
PATCH = (16, 3, 48, 48)
FRAME = (1, 3, 270, 480)
TARGETS = ("cpp", "opencl")
ROUNDS = 10
QUICK_ROUNDS = 3
QUICK = {"ESPCN x2", "2-path"}


@dataclass
class Spec:
    name: str
    build: Callable
    config: str
    extra: dict = field(default_factory=dict)  # the non-image feeds (path selectors)


def models() -> list[Spec]:
    from dydca import zoo

    return [
        Spec("ESPCN x2", lambda: zoo.espcn(scale=2, features=(64, 32)), "features 64, 32"),
        Spec("FSRCNN x2", lambda: zoo.fsrcnn(scale=2, d=56, s=12, m=4), "d 56, s 12, m 4"),
        Spec("EDSR x2", lambda: zoo.edsr(scale=2, nf=32, blocks=4), "nf 32, 4 blocks"),
        Spec("WDSR x2", lambda: zoo.wdsr(scale=2, nf=32, blocks=4, expand=4), "nf 32, 4 blocks, expand 4"),
        Spec("WDSR x4", lambda: zoo.wdsr(scale=4, nf=32, blocks=4, expand=4), "nf 32, 4 blocks, expand 4"),
        Spec("SRResNet x4", lambda: zoo.srresnet(scale=4, nf=32, blocks=4), "nf 32, 4 blocks"),
        Spec("2-path", lambda: zoo.multipath(paths=2, select="bool"), "deepest path (c false)",
             {"c": np.array(False)}),
        Spec("4-path", lambda: zoo.multipath(paths=4, select="index"), "deepest path (index 3)",
             {"path": np.array(3, np.int64)}),
    ]


def shape_class(shape) -> dict:
    n, _, h, w = shape
    return {"n": (n, n), "h": (h, h), "w": (w, w)}


def shape_str(shape) -> str:
    return "x".join(map(str, shape))


# ---------------------------------------------------------------- the OpenCL device's name

def _cl_info(fn, handle, what: int) -> str:
    size = ctypes.c_size_t(0)
    if fn(handle, what, 0, None, ctypes.byref(size)) != 0 or size.value == 0:
        return ""
    buf = ctypes.create_string_buffer(size.value)
    fn(handle, what, size, buf, None)
    return buf.value.decode(errors="replace")


def opencl_devices() -> list[tuple[str, bool]]:
    """(label, is a GPU) of every OpenCL device, labelled "<platform>:<device> <platform name> /
    <device name>" as runtime_cpp/include/dydca/opencl.h labels them; [] without a driver."""
    try:
        cl = ctypes.CDLL("libOpenCL.so.1")
    except OSError:
        return []
    CL_PLATFORM_NAME, CL_DEVICE_NAME, CL_DEVICE_TYPE, CL_DEVICE_TYPE_ALL, CL_DEVICE_TYPE_GPU = \
        0x0902, 0x102B, 0x1000, 0xFFFFFFFF, 1 << 2
    n = ctypes.c_uint(0)
    if cl.clGetPlatformIDs(0, None, ctypes.byref(n)) != 0 or n.value == 0:
        return []
    platforms = (ctypes.c_void_p * n.value)()
    cl.clGetPlatformIDs(n, platforms, None)
    out = []
    for i, p in enumerate(platforms):
        nd = ctypes.c_uint(0)
        if cl.clGetDeviceIDs(ctypes.c_void_p(p), ctypes.c_uint64(CL_DEVICE_TYPE_ALL), 0, None, ctypes.byref(nd)) != 0:
            continue
        devices = (ctypes.c_void_p * nd.value)()
        cl.clGetDeviceIDs(ctypes.c_void_p(p), ctypes.c_uint64(CL_DEVICE_TYPE_ALL), nd, devices, None)
        for j, d in enumerate(devices):
            kind = ctypes.c_uint64(0)
            cl.clGetDeviceInfo(ctypes.c_void_p(d), CL_DEVICE_TYPE, ctypes.sizeof(kind), ctypes.byref(kind), None)
            label = (f"{i}:{j} {_cl_info(cl.clGetPlatformInfo, ctypes.c_void_p(p), CL_PLATFORM_NAME)} / "
                     f"{_cl_info(cl.clGetDeviceInfo, ctypes.c_void_p(d), CL_DEVICE_NAME)}")
            out.append((label, bool(kind.value & CL_DEVICE_TYPE_GPU)))
    return out


def chosen_device(devices: list[tuple[str, bool]], want: str | None) -> str | None:
    """The device a model runs on: the runtime's own rule (opencl.h pick_device), which a model
    library does not report: DYDCA_OPENCL_DEVICE's "<p>:<d>" or text in the label, else the first
    GPU, else the first device."""
    if want:
        return next((label for label, _ in devices if label.startswith(want + " ") or want in label), None)
    return next((label for label, gpu in devices if gpu), devices[0][0] if devices else None)


# ---------------------------------------------------------------- building and timing

def build(spec: Spec) -> dict:
    """target -> the loaded model, compiled once for both shape classes."""
    import dydca

    d = BUILD / re.sub(r"\W+", "_", spec.name)
    model = spec.build()
    out = {}
    for target in TARGETS:
        say(f"{spec.name}: compiling for {target}")
        m = dydca.compile(model, [shape_class(PATCH), shape_class(FRAME)], d / target, target=target)
        m.set_threads(THREADS)
        out[target] = m
    return out


def feeds(shape, extra: dict) -> dict:
    """An image batch in [0, 1) (seeded) and the path-picking feeds."""
    return {"x": np.random.default_rng(0).random(shape, dtype=np.float32),
            **{k: np.asarray(v) for k, v in extra.items()}}


def time_row(built: dict, x: dict, rounds: int) -> dict:
    """Median seconds per target over `rounds` timed calls after 2 warm-up calls each, the last
    outputs, and the CPU wait share over the timed calls."""
    times = {t: [] for t in built}
    last = {}
    wait = CpuWait()
    for t, m in built.items():
        for _ in range(2):
            last[t] = m.run(x)[0]
    order = list(built)
    for r in range(rounds):
        for t in (order if r % 2 == 0 else order[::-1]):
            time.sleep(SETTLE_S)  # idle threads of the other target stop spinning
            wait.start()
            t0 = time.perf_counter()
            last[t] = built[t].run(x)[0]
            times[t].append(time.perf_counter() - t0)
            wait.stop()
    return dict(median={t: statistics.median(v) for t, v in times.items()}, out=last, wait=wait.share)


def row(spec: Spec, shape, built: dict, rounds: int) -> list[str]:
    res = time_row(built, feeds(shape, spec.extra), rounds)
    cpp, ocl = res["median"]["cpp"], res["median"]["opencl"]
    ref, got = res["out"]["cpp"], res["out"]["opencl"]
    diff = float(np.max(np.abs(ref.astype(np.float64) - got))) if ref.shape == got.shape else None
    scale = max(float(ref.max() - ref.min()), 1e-30)
    say(f"{spec.name} @ {shape_str(shape)}: cpp {cpp * 1e3:.1f} ms, opencl {ocl * 1e3:.1f} ms, max diff {diff}")
    return [spec.name, spec.config, shape_str(shape), fmt(cpp, ".1f", 1e3), fmt(ocl, ".1f", 1e3),
            fmt(ocl / cpp, ".2f", unit="x"), fmt(diff, ".1e"), fmt(None if diff is None else diff / scale, ".1e"),
            fmt(res["wait"], ".0%")]


# ---------------------------------------------------------------- report

HEAD = ["model", "config", "input", "cpp ms", "opencl ms", "opencl / cpp", "max abs diff",
        "diff / range", "CPU wait"]


def header(device: str, rounds: int, loads: tuple, seconds: float, command: str) -> str:
    pocl = "Portable Computing Language" in device
    note = ("On PoCL the OpenCL \"device\" is this same CPU: the ratio is the cost of the OpenCL path "
            "(generic OpenCL C kernels, one per node, through PoCL's compiler and scheduler) against "
            "dydca's C++ kernels on the same cores, not a GPU speed-up." if pocl else
            "The OpenCL device is not the host CPU: the ratio compares two processors.")
    return "\n".join([
        "# dydca: opencl target vs cpp target",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {cpu_name()} "
        f"({os.cpu_count()} cores); OpenCL device: **{device}**.",
        "",
        note + " Where a GPU has an OpenCL driver, run `.venv/bin/python -m bench.opencl_vs_cpu "
        "--device <name>` (any text of its `clinfo -l` name; sets DYDCA_OPENCL_DEVICE).",
        "",
        f"Median of {rounds} timed calls per target after 2 warm-up calls, targets alternating call by "
        f"call; cpp at {THREADS} threads. Each model is compiled once per target for two fixed shape "
        f"classes ({shape_str(PATCH)} and {shape_str(FRAME)}). max abs diff: between the two targets' "
        "outputs on the same input; diff / range: over the cpp output's range (bar: 1e-4). CPU wait: "
        "share of the timed calls' wall time in which some task waited for a core (Linux PSI), i.e. "
        f"how much other processes on the machine were competing. Load average (1, 5, 15 min) at the "
        f"start: {', '.join(f'{v:.2f}' for v in loads[0])}; at the end: "
        f"{', '.join(f'{v:.2f}' for v in loads[1])}. Run time {seconds / 60:.1f} min.",
        "",
        f"Command: `{command}`",
        "",
        "",
    ])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.opencl_vs_cpu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{', '.join(sorted(QUICK))} only, "
                    f"{QUICK_ROUNDS} timed calls; prints the table instead of writing the results file")
    ap.add_argument("--device", help="the OpenCL device: '<platform>:<device>' or text of its name "
                    "(sets DYDCA_OPENCL_DEVICE; default: the first GPU, else the first device)")
    ap.add_argument("--rounds", type=int, help=f"timed calls per target and row (default {ROUNDS})")
    ap.add_argument("--only", help="regular expression: only the models whose name matches")
    ap.add_argument("--out", type=Path, help="markdown file to write (default: bench/results/opencl_vs_cpu.md; "
                    "--quick writes only when given)")
    args = ap.parse_args(argv)

    if args.device:
        os.environ["DYDCA_OPENCL_DEVICE"] = args.device  # read when a model library opens its device
    device = chosen_device(opencl_devices(), os.environ.get("DYDCA_OPENCL_DEVICE"))
    if device is None:
        ap.error("no OpenCL device (or none matching DYDCA_OPENCL_DEVICE): install PoCL "
                 "(apt install pocl-opencl-icd ocl-icd-opencl-dev) or see `clinfo -l`")
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    specs = [s for s in models() if (not args.quick or s.name in QUICK) and
             (not args.only or re.search(args.only, s.name))]
    load, t0 = os.getloadavg(), time.perf_counter()
    say(f"device {device}; {len(specs)} models x 2 shapes, {rounds} timed calls each; load {load}")
    rows = []
    for spec in specs:
        built = build(spec)
        rows += [row(spec, shape, built, rounds) for shape in (PATCH, FRAME)]
    command = " ".join([".venv/bin/python -m bench.opencl_vs_cpu"] + list(sys.argv[1:] if argv is None else argv))
    text = header(device, rounds, (load, os.getloadavg()), time.perf_counter() - t0, command) + markdown_table(HEAD, rows) + "\n"
    out = args.out or (None if args.quick else RESULTS / "opencl_vs_cpu.md")
    if out is None:
        print(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
