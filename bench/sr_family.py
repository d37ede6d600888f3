"""Latency, efficiency and memory of the SR family: dydca vs onnxruntime vs MNN, one run.

    make bench                                              # runs this after the shape-change benchmark
    .venv/bin/python -m bench.sr_family                     # the full table, ~15 minutes on 2 quiet cores
    .venv/bin/python -m bench.sr_family --quick             # 2 models, 2 shapes, 3 runs: a smoke run
    .venv/bin/python -m bench.sr_family --only 'WDSR x4|ResNet' --rounds 30

Rows: each model at each of its shapes. SR models run patch batches (64x3x48x48, 16x3x96x96) and
the whole low-resolution frame of a 1080p output (1x3x540x960 for x2, 1x3x270x480 for x4);
ResNet-50 runs one 1x3x224x224 image. Configurations (random seeded weights, dydca.zoo):
  ESPCN x2       features (64, 32): the paper's
  FSRCNN x2      d=56, s=12, m=4: the paper's
  EDSR x2        nf=32, 4 blocks (zoo default); EDSR-baseline (nf=64, 16 blocks) costs ~10x the
                 FLOPs, 1.4 TFLOP per 540x960 frame: ~10 s a call at 2 cores for 3 runtimes x 21
                 calls, far past the ~15 minutes the whole run is given
  WDSR x2, x4    nf=32, 4 blocks, expand 4: the width and depth of path 0 of dydca.sr's own
                 network (SRConfig.default), the model this project deploys
  SRResNet x4    nf=32, 4 blocks (zoo default), for the same budget reason as EDSR
  2-path, 4-path dydca.zoo.multipath (x2, the default widths), timed on their deepest path (the
                 else branch of every If: selector false / index 3)
  ResNet-50      dydca.zoo.resnet50, torchvision's topology, BatchNorm as nodes (dydca folds them)
dydca compiles each model ONCE for all its rows, with two shape classes: the patch batches
(n 16:64, h and w 48:96) and the frame (fixed); its arena is sized for the larger class, which for
x2 models is 64x96x96 patches, bigger than either shape that runs. ResNet-50: n=1, 224x224 fixed.

Every runtime runs at 2 threads in its own fresh process per row (dydca, onnxruntime with every
graph optimisation, MNN through its converter and Module API), the runtimes taking rounds in turn
(runtimes.run_rounds): round 0 warms up (2 calls), then each round is a pause (onnxruntime's threads
stop spinning), for calls under WAKE_BELOW_S one untimed call (wakes the thread pool), and one timed
call. Latency is the median of the timed calls: ROUNDS of them, or on rows whose rounds are short as
many as fill ROW_SECONDS (up to MAX_ROUNDS; the "calls" column), so a 50 ms row's median is not
20 calls from one 10-second phase of the shared host's load. Peak memory is the growth of the worker's peak RSS
from before loading the model to its last call. Each runtime's last output is compared with
onnxruntime's: max abs difference / output range (the project's bar is 1e-4).
FLOPs: 2 x the MACs of Conv/ConvTranspose/Gemm/MatMul at the row's shapes (bench.flops). The
matrix-multiply peak is the best GFLOP/s of a 2048^3 fp32 GEMM at 2 threads, through numpy's BLAS
and onnxruntime's MatMul, each in a fresh process, at the start and the end of the run; the faster
is the peak. The 3x3-conv column profiles dydca at the row's shape (Model.profile) and gives, over
its 3x3 conv kernels with >= 32 input and output channels, their total FLOPs / total time as a
share of that peak (and the slowest such kernel's share). Compile time is the build's frontend +
g++ seconds from its manifest (recorded when it was built, possibly an earlier run: builds are
cached). Figures are reports, never gates. Writes bench/results/sr_family.md and sr_family.png.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from bench.flops import node_flops, total_flops
from bench.runtimes import (OPENERS, RESULTS, ROOT, RUNTIMES, SETTLE_S, THREADS, CpuWait, Worker,
                            convert_for_mnn, cpu_name, fmt, import_runtime, markdown_table, pyplot,
                            run_rounds, say, serve, versions, worker_args)

BUILD = ROOT / "build" / "bench" / "sr_family"
PATCHES = [(64, 3, 48, 48), (16, 3, 96, 96)]
FRAMES = {2: (1, 3, 540, 960), 4: (1, 3, 270, 480)}  # low-resolution frames of a 1080p output
PATCH_CLASS = {"n": (16, 64), "h": (48, 96), "w": (48, 96)}
ROUNDS = 20  # timed calls per runtime and row, after the warm-up round; at least, for short rows:
ROW_SECONDS, MAX_ROUNDS = 30, 100  # rows whose rounds are short take as many as fill ~30 s (<= 100)
QUICK_ROUNDS = 3
WAKE_BELOW_S = 0.2  # calls shorter than this get an untimed call first: thread wake-up is ~1% of them
PROFILE_RUNS = 3
GEMM_N = 2048
GEMM_RUNS = 15


@dataclass
class Spec:
    """One benchmarked model: its builder, the extra (non-image) feeds picking its path, and the
    shapes it runs at with the dims dydca compiles it for."""
    name: str
    build: Callable
    config: str
    shapes: list
    dims: object
    extra: dict = field(default_factory=dict)


def sr(name: str, build: Callable, scale: int, config: str, extra: dict | None = None) -> Spec:
    frame = FRAMES[scale]
    frame_class = {"n": (1, 1), "h": (frame[2],) * 2, "w": (frame[3],) * 2}
    return Spec(name, build, config, PATCHES + [frame], [PATCH_CLASS, frame_class], extra or {})


def models() -> list[Spec]:
    from dydca import zoo

    return [
        sr("ESPCN x2", lambda: zoo.espcn(scale=2, features=(64, 32)), 2, "features 64, 32"),
        sr("FSRCNN x2", lambda: zoo.fsrcnn(scale=2, d=56, s=12, m=4), 2, "d 56, s 12, m 4"),
        sr("EDSR x2", lambda: zoo.edsr(scale=2, nf=32, blocks=4), 2, "nf 32, 4 blocks"),
        sr("WDSR x2", lambda: zoo.wdsr(scale=2, nf=32, blocks=4, expand=4), 2, "nf 32, 4 blocks, expand 4"),
        sr("WDSR x4", lambda: zoo.wdsr(scale=4, nf=32, blocks=4, expand=4), 4, "nf 32, 4 blocks, expand 4"),
        sr("SRResNet x4", lambda: zoo.srresnet(scale=4, nf=32, blocks=4), 4, "nf 32, 4 blocks"),
        sr("2-path", lambda: zoo.multipath(paths=2, select="bool"), 2, "deepest path (c false)",
           {"c": np.array(False)}),
        sr("4-path", lambda: zoo.multipath(paths=4, select="index"), 2, "deepest path (index 3)",
           {"path": np.array(3, np.int64)}),
        Spec("ResNet-50", zoo.resnet50, "torchvision topology", [(1, 3, 224, 224)],
             {"n": (1, 1), "h": (224, 224), "w": (224, 224)}),
    ]


QUICK = {"ESPCN x2", "2-path"}
QUICK_SHAPES = {(16, 3, 96, 96), FRAMES[2]}
CLASSIC = {"ResNet-50"}  # every other model is an SR network


def shape_str(shape) -> str:
    return "x".join(map(str, shape))


def row_label(model: str, shape) -> str:
    return f"{model} @ {shape_str(shape)}"


def feeds(shape, extra: dict) -> dict:
    """An image batch in [0, 1) (seeded) and the path-picking feeds."""
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    return {"x": x, **{k: np.asarray(v) for k, v in extra.items()}}


def feed_shapes(shape, extra: dict) -> dict:
    return {"x": shape, **{k: np.shape(v) for k, v in extra.items()}}


# ---------------------------------------------------------------- artifacts (parent process)

def prepare(spec: Spec) -> dict:
    """Writes the ONNX model, dydca's build (once for all the model's shapes) and MNN's model."""
    import dydca
    import onnx

    d = BUILD / re.sub(r"\W+", "_", spec.name)
    d.mkdir(parents=True, exist_ok=True)
    model = spec.build()
    onnx.save(model, d / "model.onnx")
    say(f"{spec.name}: compiling with dydca, dims {spec.dims}")
    compiled = dydca.compile(model, dims=spec.dims, out_dir=d / "dydca")
    mf = compiled.manifest
    say(f"{spec.name}: converting for MNN")
    return dict(dir=str(d), inputs=[i.name for i in model.graph.input], output=model.graph.output[0].name,
                arena_bytes=compiled.arena_bytes, compile_s=mf["frontend_seconds"] + mf["build_seconds"],
                flops={shape_str(s): total_flops(model, feed_shapes(s, spec.extra)) for s in spec.shapes},
                unsupported={"MNN": convert_for_mnn(d / "model.onnx", d / "model.mnn")})


# ---------------------------------------------------------------- one runtime on one row (worker)

def timed(run, x) -> float:
    t = time.perf_counter()
    run(x)
    return time.perf_counter() - t


class Timer:
    """Round 0: two warm-up calls. Later rounds: a pause, an untimed call where calls are short,
    one timed call."""

    def __init__(self, run, x):
        self.run, self.x = run, x
        self.times: list[float] = []
        self.wake = True
        self.wait = CpuWait()

    def round(self, r: int) -> None:
        time.sleep(SETTLE_S)
        if r == 0:
            self.run(self.x)
            self.wake = timed(self.run, self.x) < WAKE_BELOW_S
            return
        if self.wake:
            self.run(self.x)
        self.wait.start()
        self.times.append(timed(self.run, self.x))
        self.wait.stop()


def conv3x3_share(job: dict, x: dict) -> dict | None:
    """dydca's profile at these feeds, joined with the FLOPs of each kernel's anchor node: the
    3x3 convs with >= 32 channels in and out, their FLOPs and seconds (in all, and the slowest
    per FLOP). None where the model has no such conv."""
    import dydca
    import onnx

    model = onnx.load(Path(job["art"]["dir"]) / "model.onnx")
    layers = node_flops(model, feed_shapes(job["shape"], job["extra"]))
    m = dydca.load(Path(job["art"]["dir"]) / "dydca")
    m.set_threads(THREADS)
    flops = seconds = 0.0
    slowest = None
    for row in m.profile(x, runs=PROFILE_RUNS, warmup=1):
        name = re.search(r'"([^"]+)"', row["kernel"])
        layer = layers.get(name.group(1)) if name else None
        if not row["leaf"] or layer is None or layer.op != "Conv" or layer.kernel != (3, 3) \
                or min(layer.cin, layer.cout) < 32 or row["ms"] <= 0:
            continue
        flops, seconds = flops + layer.flops, seconds + row["ms"] / 1e3
        rate = layer.flops / (row["ms"] / 1e3)
        slowest = rate if slowest is None else min(slowest, rate)
    return dict(gflops=flops / seconds / 1e9, slowest_gflops=slowest / 1e9) if seconds else None


def worker(runtime: str, job: dict, out: Path) -> None:
    import_runtime(runtime)
    x = feeds(job["shape"], job["extra"])

    def finish(t: Timer) -> dict:
        np.save(out.with_suffix(".npy"), t.run(x))
        conv = conv3x3_share(job, x) if runtime == "dydca" else None
        return dict(runtime=runtime, times=t.times, cpu_wait=t.wait.share, conv3x3=conv)
    serve(lambda: Timer(OPENERS[runtime](job["art"]), x), Timer.round, finish, out)


# ---------------------------------------------------------------- the GEMM peak

def gemm_peak(kind: str) -> float:
    """Best GFLOP/s of an fp32 GEMM_N^3 matrix product at THREADS threads, in this process."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((GEMM_N, GEMM_N), dtype=np.float32) for _ in range(2))
    if kind == "numpy":
        run = lambda: a @ b  # noqa: E731
    else:
        run = ort_matmul(a, b)
    run()
    best = min(timed(lambda _: run(), None) for _ in range(GEMM_RUNS))
    return 2.0 * GEMM_N ** 3 / best / 1e9


def ort_matmul(a: np.ndarray, b: np.ndarray):
    import onnxruntime as ort
    from onnx import TensorProto, helper

    n = a.shape[0]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in "ab"],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, {"a": a, "b": b})


def measure_peak() -> dict:
    """GFLOP/s of each GEMM, each in a fresh process with its BLAS held to THREADS threads."""
    env = {**os.environ, **{k: str(THREADS) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    found = {}
    for kind in ("numpy", "onnxruntime"):
        r = subprocess.run([sys.executable, "-m", "bench.sr_family", "--gemm", kind], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
        found[kind] = float(r.stdout.split()[-1]) if r.returncode == 0 else None
        say(f"GEMM {GEMM_N}^3 through {kind}: {fmt(found[kind], '.1f')} GFLOP/s")
    return found


# ---------------------------------------------------------------- the rows (parent)

def bench_row(spec: Spec, art: dict, shape, rounds: int, tmp: Path) -> dict:
    label = row_label(spec.name, shape)
    job = dict(art=art, shape=list(shape), extra={k: np.asarray(v).tolist() for k, v in spec.extra.items()})
    stem = re.sub(r"\W+", "_", label)
    workers = {rt: Worker("bench.sr_family", rt, job, tmp / f"{stem}_{rt}.json", art["unsupported"].get(rt))
               for rt in RUNTIMES}
    res = run_rounds(workers, rounds, lambda r, n: r % 5 == 0 and say(f"{label}: round {r}/{n}"),
                     min_seconds=0 if rounds < ROUNDS else ROW_SECONDS, max_rounds=MAX_ROUNDS)
    ref = tmp / f"{stem}_onnxruntime.npy"
    for rt, s in res.items():
        if "unsupported" in s:
            say(f"{label}: {rt} unsupported: {s['unsupported']}")
            continue
        s["ms"] = 1e3 * float(np.median(s["times"]))
        s["err"] = relative_error(tmp / f"{stem}_{rt}.npy", ref)
    return dict(model=spec.name, shape=shape, label=label, runtimes=res, arena_bytes=art["arena_bytes"],
                compile_s=art["compile_s"], flops=art["flops"][shape_str(shape)])


def relative_error(got: Path, want: Path) -> float | None:
    """max |got - onnxruntime's| / onnxruntime's output range (at least 1), as tests/oracle.py."""
    if not (got.exists() and want.exists()):
        return None
    a, b = np.load(got).astype(np.float64), np.load(want).astype(np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max() / max(float(b.max() - b.min()), 1.0))


def selected(only: str | None, quick: bool) -> list[tuple[Spec, list]]:
    out = []
    for spec in models():
        shapes = [s for s in spec.shapes
                  if (not quick or (spec.name in QUICK and s in QUICK_SHAPES))
                  and (only is None or re.search(only, row_label(spec.name, s)))]
        if shapes:
            out.append((spec, shapes))
    return out


# ---------------------------------------------------------------- summary

def ms(row: dict, rt: str) -> float | None:
    return row["runtimes"][rt].get("ms")


def speedup(row: dict) -> float | None:
    """Our latency against the faster peer's."""
    peers = [ms(row, rt) for rt in RUNTIMES[1:] if ms(row, rt) is not None]
    ours = ms(row, "dydca")
    return min(peers) / ours if peers and ours else None


def add_figures(row: dict, peak: float | None) -> None:
    """GFLOP, our GFLOP/s and their share of `peak` (GFLOP/s), the speed-up."""
    row["gflop"] = row["flops"] / 1e9
    ours = ms(row, "dydca")
    row["gflops"] = row["flops"] / (ours / 1e3) / 1e9 if ours else None
    row["peak_share"] = row["gflops"] / peak if row["gflops"] and peak else None
    row["speedup"] = speedup(row)
    conv = row["runtimes"]["dydca"].get("conv3x3")
    row["conv_share"] = (conv["gflops"] / peak, conv["slowest_gflops"] / peak) if conv and peak else None


def mib(row: dict, rt: str) -> float | None:
    v = row["runtimes"][rt].get("rss_growth_bytes")
    return None if v is None else v / 2**20


def table(rows: list[dict]) -> str:
    head = ["model", "input", "GFLOP", "dydca ms", "onnxruntime ms", "MNN ms", "speed-up vs faster peer",
            "dydca GFLOP/s", "% of GEMM peak", "3x3 conv >=32ch % peak (slowest)",
            "peak MiB dydca / ORT / MNN", "dydca arena MiB", "err/range dydca / MNN", "compile s",
            "CPU wait (PSI, max)", "calls"]
    cells = []
    for r in rows:
        rts = r["runtimes"]
        waits = [s.get("cpu_wait") for s in rts.values() if s.get("cpu_wait") is not None]
        cells.append([r["model"], shape_str(r["shape"]), fmt(r["gflop"], ".1f")]
                     + [fmt(ms(r, rt), ".1f") if "unsupported" not in rts[rt] else "unsupported" for rt in RUNTIMES]
                     + [fmt(r["speedup"], ".2f", unit="x"), fmt(r["gflops"], ".0f"), fmt(r["peak_share"], ".0f", 100, "%"),
                        "-" if not r["conv_share"] else f"{r['conv_share'][0]:.0%} ({r['conv_share'][1]:.0%})",
                        " / ".join(fmt(mib(r, rt), ".0f") for rt in RUNTIMES),
                        fmt(r["arena_bytes"], ".0f", 2**-20),
                        " / ".join(fmt(rts[rt].get("err"), ".0e") for rt in ("dydca", "MNN")),
                        fmt(r["compile_s"], ".1f"), fmt(max(waits) if waits else None, ".0f", 100, "%"),
                        str(max((len(s.get("times", [])) for s in rts.values()), default=0))])
    return markdown_table(head, cells)


def summary(rows: list[dict]) -> str:
    """The issue's targets, as measured here (figures, not verdicts on the run's conditions)."""
    sr_rows = [r for r in rows if r["model"] not in CLASSIC and r["speedup"]]
    lines = []
    if sr_rows:
        ups = [r["speedup"] for r in sr_rows]
        worst = min(sr_rows, key=lambda r: r["speedup"])
        lines.append(f"- SR rows ({len(sr_rows)}): median speed-up over the faster peer {np.median(ups):.2f}x, "
                     f"lowest {worst['speedup']:.2f}x ({worst['label']}); target median >= 1.5x, none below 1.0x.")
    conv = [r for r in rows if r["conv_share"]]
    if conv:
        lo = min(conv, key=lambda r: r["conv_share"][1])
        lines.append(f"- 3x3 convs with >= 32 channels: {min(r['conv_share'][0] for r in conv):.0%} to "
                     f"{max(r['conv_share'][0] for r in conv):.0%} of the GEMM peak per row (FLOP-weighted); "
                     f"slowest single kernel {lo['conv_share'][1]:.0%} ({lo['label']}); target >= 60%.")
    mem = [r for r in rows if mib(r, "dydca") is not None and mib(r, "onnxruntime") is not None]
    above = [r["label"] for r in mem if mib(r, "dydca") >= mib(r, "onnxruntime")]
    if mem:
        lines.append(f"- Peak memory below onnxruntime's on {len(mem) - len(above)} of {len(mem)} rows"
                     + (f"; not on: {', '.join(above)}." if above else "."))
    for r in rows:
        if r["model"] in CLASSIC and ms(r, "dydca") and ms(r, "onnxruntime"):
            lines.append(f"- {r['label']}: onnxruntime / dydca latency {ms(r, 'onnxruntime') / ms(r, 'dydca'):.2f}x "
                         f"(target >= 1.0x).")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(rows) + 2), 5))
    width = 0.8 / len(RUNTIMES)
    for i, rt in enumerate(RUNTIMES):
        xs = [k for k, r in enumerate(rows) if ms(r, rt)]
        ax.bar([k + (i - 1) * width for k in xs], [ms(rows[k], rt) for k in xs], width, label=rt)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [f"{r['model']}\n{shape_str(r['shape'])}" for r in rows],
                  rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("median latency, ms (log)")
    ax.set_title(f"SR family and ResNet-50: latency per input shape, {THREADS} threads each")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


TVM_NOTE = ("TVM: not in the table. The apache-tvm wheel (0.27.0.post1) installs for this Python and its "
            "Relax ONNX frontend builds these models (target llvm), but with its default, untuned CPU "
            "schedules, which in a side-by-side check ran ESPCN over an order of magnitude slower than "
            "onnxruntime: its frame rows alone would take hours, and tuning (MetaSchedule) takes hours per "
            "model and shape.")


def header(cmd: str, peaks: dict, load_before: float, quick: bool, rounds: int, specs) -> str:
    best = max((k for k in peaks if peaks[k]), key=lambda k: peaks[k], default=None)
    peak_line = ", ".join(f"{k} {fmt(v, '.1f')}" for k, v in peaks.items())
    configs = "; ".join(f"{s.name} ({s.config})" for s, _ in specs)
    return (f"# SR family: dydca vs onnxruntime vs MNN{' (partial run)' if quick else ''}\n\n"
            f"`{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu_name()}, {os.cpu_count()} cores, "
            f"load average before the run {load_before:.2f}; {THREADS} threads per runtime; {versions()}.\n\n"
            f"fp32 matrix-multiply peak (best GFLOP/s of a {GEMM_N}^3 GEMM, {THREADS} threads, best of the "
            f"run's start and end): {peak_line}; the peak is {best}'s.\n\n"
            f"Models (seeded random weights, dydca.zoo): {configs}. dydca compiled once per model: SR models "
            f"for two shape classes, patch batches (n 16:64, h and w 48:96) and the frame; ResNet-50 for "
            f"1x3x224x224. Latency: median of {rounds} timed calls per runtime after warm-up "
            f"{'' if rounds < ROUNDS else f'(more on rows with short calls: as many as fill ~{ROW_SECONDS} s, up to {MAX_ROUNDS}; the calls column) '}"
            f"runtimes taking turns, each in a fresh process per row. Peak MiB: growth of the worker's peak RSS from "
            f"loading the model to its last call. err/range: max abs difference from onnxruntime's output "
            f"over its range. See bench/sr_family.py's docstring for why these configurations.\n\n"
            f"{TVM_NOTE}\n\n")


def main(argv=None) -> None:
    ap = worker_args(__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 models, 2 shapes, 3 runs")
    ap.add_argument("--only", help="only the rows whose 'MODEL @ NxCxHxW' label this regex matches")
    ap.add_argument("--rounds", type=int, help=f"timed calls per runtime and row (default {ROUNDS})")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the table and plot go")
    ap.add_argument("--gemm", choices=["numpy", "onnxruntime"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.gemm:
        return print(f"{gemm_peak(a.gemm):.3f}")
    if a.worker:
        return worker(a.worker, json.loads(a.job), Path(a.out))
    partial = a.quick or a.only is not None
    rounds = a.rounds or (QUICK_ROUNDS if a.quick else ROUNDS)
    cmd = "python -m bench.sr_family" + " ".join([""] + (argv if argv is not None else sys.argv[1:]))
    load_before = os.getloadavg()[0]
    specs = selected(a.only, a.quick)
    if not specs:
        ap.error(f"no row matches {a.only!r}")
    peaks = measure_peak()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dydca-bench-") as tmp:
        for spec, shapes in specs:
            art = prepare(spec)
            rows += [bench_row(spec, art, shape, rounds, Path(tmp)) for shape in shapes]
    for kind, v in measure_peak().items():
        peaks[kind] = max(filter(None, [peaks[kind], v]), default=None)
    peak = max(filter(None, peaks.values()), default=None)
    for row in rows:
        add_figures(row, peak)
    report = (f"{header(cmd, peaks, load_before, partial, rounds, specs)}"
              f"Load average after the run: {os.getloadavg()[0]:.2f} (other processes share these cores).\n\n"
              f"{table(rows)}\n\n{summary(rows)}\n")
    print(report)
    stem = "sr_family.partial" if partial else "sr_family"
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / f"{stem}.md").write_text(report)
    plot(rows, a.results / f"{stem}.png")
    say(f"wrote {a.results / (stem + '.md')} and {a.results / (stem + '.png')}")


if __name__ == "__main__":
    main()
