"""Cost of a shape and path change: dydca vs onnxruntime vs MNN on Dy-DCA N-path SR networks.

    make bench                                   # installs the bench extra, then runs this
    .venv/bin/python -m bench.shape_change [--rounds N]

For the 2-path (bool selector) and 4-path (int index, chain of If) networks of dydca.zoo.multipath,
each runtime at 2 threads, in its own fresh subprocess, runs rounds of:
  steady       every (shape, path) of the mix several times in a row; the first call of each run
               is a change and is dropped, the rest are steady-state calls;
  alternating  one pass over the mix in which shape AND path change on every call, as a video
               pipeline that sends patch batches and full frames through content-picked paths does.
Steady and alternating calls interleave round by round, and the runtimes take rounds in turn (one
process at a time runs), so load from other processes on a shared machine hits every cell alike.
The shape-change cost is  mean alternating time per call / mean steady time of the same calls
(like with like: each (shape, path) weighs the same in both). Peak memory is the growth of the
worker's peak RSS (VmHWM, the figure ru_maxrss reads, reset after the imports and inputs) from loading
the model to the end of its runs; dydca's planned arena (Model.arena_bytes) is reported beside it.
CPU wait is the share of each worker's run time in which some task on the machine waited for a
core (Linux PSI): other processes on shared cores inflate the absolute times, not the ratios much.
Figures are reports, never gates. Writes bench/results/shape_change.md and shape_change.png.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.runtimes import (OPENERS, RESULTS, ROOT, RUNTIMES, SETTLE_S, THREADS, CpuWait, Worker,
                            convert_for_mnn, cpu_name, fmt, import_runtime, markdown_table, pyplot,
                            run_rounds, say, serve, versions, worker_args)

BUILD = ROOT / "build" / "bench" / "shape_change"
# patch batches of a video SR pipeline and the full low-resolution frame (320x180, x2 -> 640x360)
MIX = [(16, 3, 32, 32), (4, 3, 64, 64), (1, 3, 180, 320)]
# dydca's compiled ranges as two shape classes, as a video pipeline declares them: patch batches,
# and the whole frame; the arena is sized for the larger class, not for 16 whole frames
DIMS = [{"n": (1, 16), "h": (32, 64), "w": (32, 64)}, {"n": (1, 1), "h": (180, 180), "w": (320, 320)}]
NETS = {"2-path": dict(paths=2, select="bool"), "4-path": dict(paths=4, select="index")}
ROUNDS = 50  # recorded rounds per runtime and network: ~1 minute in all on 2 quiet cores, a few when loaded
STEADY_REPS = 3  # calls in a row per (shape, path) and round; the first is a change, dropped


# ---------------------------------------------------------------- the mix

def combos(paths: int) -> list[tuple[int, int]]:
    """(shape index, path) pairs in an order where both change on every call, wrapping around
    included; with len(MIX) and `paths` coprime the cycle holds every pair once."""
    n = math.lcm(len(MIX), paths)
    cycle = [(i % len(MIX), i % paths) for i in range(n)]
    assert len(set(cycle)) == len(MIX) * paths, "MIX size and path count must be coprime"
    return cycle


def inputs() -> list[np.ndarray]:
    return [np.random.default_rng(k).standard_normal(s).astype(np.float32) for k, s in enumerate(MIX)]


def selector(net: str, path: int) -> tuple[str, np.ndarray]:
    """The selector input feeding `path`: bool c (true -> path 0) or an int64 index."""
    if NETS[net]["select"] == "bool":
        return "c", np.array(path == 0)
    return "path", np.array(path, np.int64)


def label(k: int, path: int) -> str:
    return f"{'x'.join(map(str, MIX[k]))} p{path}"


# ---------------------------------------------------------------- artifacts (parent process)

def prepare(net: str) -> dict:
    """Writes the ONNX model, dydca's build and MNN's converted model for `net`; returns paths
    and, per runtime, None or why it cannot run."""
    import dydca
    import onnx
    from dydca import zoo

    d = BUILD / net
    d.mkdir(parents=True, exist_ok=True)
    model = zoo.multipath(**NETS[net])
    onnx.save(model, d / "model.onnx")
    say(f"{net}: compiling with dydca, dims {DIMS}")
    compiled = dydca.compile(model, dims=DIMS, out_dir=d / "dydca")
    say(f"{net}: converting for MNN")
    return dict(dir=str(d), inputs=[i.name for i in model.graph.input], output=model.graph.output[0].name,
                arena_bytes=compiled.arena_bytes,
                unsupported={"MNN": convert_for_mnn(d / "model.onnx", d / "model.mnn")})


# ---------------------------------------------------------------- runtimes (worker process)

def open_runtime(runtime: str, art: dict, net: str):
    """The runtime's run(feeds) as run(x, path): x and the selector feeding `path`."""
    run = OPENERS[runtime](art)
    return lambda x, path: run(dict([("x", x), selector(net, path)]))


def timed(run, x, path) -> float:
    t = time.perf_counter()
    run(x, path)
    return time.perf_counter() - t


class Recorder:
    """Times one runtime's calls, round by round. Round 0 warms every (shape, path) up; later
    rounds record steady and alternating calls (seconds per call, per label) and the CPU wait
    (other processes) over the recorded rounds."""

    def __init__(self, run, xs, cycle):
        self.run, self.xs, self.cycle = run, xs, cycle
        self.steady = {label(*c): [] for c in cycle}
        self.alternating = {label(*c): [] for c in cycle}
        self.wait = CpuWait()

    def round(self, r: int) -> None:
        """Round r. It starts after another runtime's round: a pause lets that process's threads
        stop spinning, and one untimed call warms this one's back up. The two segments swap
        order every round, so neither always comes first after the hand-over."""
        time.sleep(SETTLE_S)
        k, path = self.cycle[-1]  # the call before either segment's first, which differs from it
        self.run(self.xs[k], path)
        self.wait.start()
        for segment in (self.steady_pass, self.alternating_pass)[::1 if r % 2 else -1]:
            segment(record=r > 0)
        if r > 0:
            self.wait.stop()

    def steady_pass(self, record: bool) -> None:
        for k, path in self.cycle:  # the same call again and again
            times = [timed(self.run, self.xs[k], path) for _ in range(STEADY_REPS)]
            if record:
                self.steady[label(k, path)] += times[1:]

    def alternating_pass(self, record: bool) -> None:
        for k, path in self.cycle:  # shape and path differ from the previous call
            t = timed(self.run, self.xs[k], path)
            if record:
                self.alternating[label(k, path)].append(t)

    def figures(self) -> dict:
        return dict(steady=self.steady, alternating=self.alternating,
                    cpu_wait=self.wait.share)


def worker(runtime: str, net: str, art: dict, out: Path) -> None:
    """One runtime on one network in a fresh process, driven by the parent round by round (see
    runtimes.serve, which measures the peak RSS growth from before loading the model to the last
    round); at the end it keeps one output per (shape, path) for the accuracy check."""
    import_runtime(runtime)
    xs, cycle = inputs(), combos(NETS[net]["paths"])

    def finish(rec: Recorder) -> dict:
        np.savez(out.with_suffix(".npz"), **{label(k, p): rec.run(xs[k], p) for k, p in cycle})
        return dict(rec.figures(), runtime=runtime, net=net)
    serve(lambda: Recorder(open_runtime(runtime, art, net), xs, cycle), Recorder.round, finish, out)


def bench_net(net: str, rounds: int, tmp: Path) -> list[dict]:
    """All runtimes on one network: each in its own process, taking rounds in turn (the order
    rotating every round), so load from other processes lands on every runtime alike."""
    art = prepare(net)
    workers = {rt: Worker("bench.shape_change", rt, dict(net=net, art=art), tmp / f"{rt}_{net}.json",
                          art["unsupported"].get(rt)) for rt in RUNTIMES}
    for rt, reason in art["unsupported"].items():
        if reason:
            say(f"{net}: {rt} skipped: {reason}")
    results = run_rounds(workers, rounds, lambda r, n: say(f"{net}: round {r}/{n}{' (warm-up)' if r == 0 else ''}"))
    results = {rt: dict(res, net=net) for rt, res in results.items()}
    ref = tmp / f"onnxruntime_{net}.npz"
    return [summarize(results[rt], ref, art["arena_bytes"]) for rt in RUNTIMES]


# ---------------------------------------------------------------- summary

def mean_ms(d: dict) -> dict:
    return {k: 1e3 * float(np.mean(v)) for k, v in d.items()}


def summarize(res: dict, ref: Path, arena_bytes: int) -> dict:
    """Per-runtime figures of one network; errors are max abs differences from onnxruntime's
    outputs at every (shape, path)."""
    if "unsupported" in res:
        return res
    st, alt = mean_ms(res["steady"]), mean_ms(res["alternating"])
    s = dict(res, steady_ms=float(np.mean(list(st.values()))), alt_ms=float(np.mean(list(alt.values()))),
             per_call={k: (st[k], alt[k]) for k in st})
    s["ratio"] = s["alt_ms"] / s["steady_ms"]
    # the same ratio from medians: robust to other processes' bursts on a shared machine
    med = {k: (np.median(res["steady"][k]), np.median(res["alternating"][k])) for k in st}
    s["median_ratio"] = float(sum(b for _, b in med.values()) / sum(a for a, _ in med.values()))
    s["arena_bytes"] = arena_bytes if res["runtime"] == "dydca" else None
    s["max_err"] = None
    if ref.exists():
        with np.load(ref.parent / f"{res['runtime']}_{res['net']}.npz") as got, np.load(ref) as want:
            s["max_err"] = max(float(np.abs(got[k] - want[k]).max()) for k in want.files)
    return s


def table(rows: list[dict]) -> str:
    head = ["network", "runtime", "steady ms/call", "alternating ms/call", "shape-change cost",
            "cost from medians", "max abs err vs ORT", "dydca arena MiB", "peak RSS growth MiB",
            "CPU wait (PSI)"]
    lines = []
    for s in rows:
        if "unsupported" in s:
            cells = [s["net"], s["runtime"], f"unsupported: {s['unsupported']}"] + ["-"] * (len(head) - 3)
        else:
            cells = [s["net"], s["runtime"], fmt(s["steady_ms"], ".2f"), fmt(s["alt_ms"], ".2f"),
                     fmt(s["ratio"], ".3f", unit="x"), fmt(s["median_ratio"], ".3f", unit="x"),
                     fmt(s["max_err"], ".1e"), fmt(s["arena_bytes"], ".1f", 2**-20),
                     fmt(s["rss_growth_bytes"], ".1f", 2**-20), fmt(s["cpu_wait"], ".0f", 100, "%")]
        lines.append(cells)
    return markdown_table(head, lines)


def detail(rows: list[dict]) -> str:
    """Steady vs alternating mean per (shape, path), the like-with-like pairs behind the ratio."""
    out = []
    for s in rows:
        if "unsupported" in s:
            continue
        out.append(f"\n{s['net']} / {s['runtime']} (ms per call: steady, alternating, ratio)\n")
        out += [f"    {k:22s} {a:9.2f} {b:9.2f} {b / a:6.3f}x" for k, (a, b) in s["per_call"].items()]
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(NETS), figsize=(5 * len(NETS), 4))
    for ax, net in zip(np.atleast_1d(axes), NETS):
        for i, rt in enumerate(RUNTIMES):
            s = next(r for r in rows if r["net"] == net and r["runtime"] == rt)
            if "unsupported" in s:
                ax.text(i, 0, "unsupported", rotation=90, ha="center", va="bottom")
                continue
            ax.bar(i - 0.2, s["steady_ms"], 0.4, color="tab:blue", label="steady" if i == 0 else None)
            ax.bar(i + 0.2, s["alt_ms"], 0.4, color="tab:orange", label="alternating" if i == 0 else None)
            ax.text(i + 0.2, s["alt_ms"], f"{s['ratio']:.2f}x", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(RUNTIMES)), RUNTIMES)
        ax.set_title(f"{net} network, {THREADS} threads")
        ax.set_ylabel("mean ms per call over the mix")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def header(rounds: int, cmd: str) -> str:
    return (f"# Shape-change cost: dydca vs onnxruntime vs MNN\n\n"
            f"`{cmd}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu_name()}, {os.cpu_count()} cores, "
            f"load average before the run {os.getloadavg()[0]:.2f}; {THREADS} threads per runtime; "
            f"{versions()}.\n\n"
            f"Mix: inputs {', '.join('x'.join(map(str, s)) for s in MIX)} (x2 SR) through every path; "
            f"dydca compiled once for the shape classes "
            f"{' and '.join(', '.join(f'{k} {a}:{b}' for k, (a, b) in c.items()) for c in DIMS)}. "
            f"{rounds} rounds, each {STEADY_REPS - 1} steady calls per (shape, path) (after one dropped "
            f"change) and one alternating pass. Shape-change cost = alternating / steady mean time "
            f"per call over the same (shape, path) calls. Peak RSS growth: from before loading the "
            f"model to the end of the runs, each runtime in a fresh process.\n")


def main(argv=None) -> None:
    ap = worker_args(__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="recorded rounds per runtime and network")
    a = ap.parse_args(argv)
    if a.worker:
        job = json.loads(a.job)
        return worker(a.worker, job["net"], job["art"], Path(a.out))
    cmd = "python -m bench.shape_change" + (f" --rounds {a.rounds}" if a.rounds != ROUNDS else "")
    intro = header(a.rounds, cmd)
    with tempfile.TemporaryDirectory(prefix="dydca-bench-") as tmp:
        rows = [row for net in NETS for row in bench_net(net, a.rounds, Path(tmp))]
    intro += f"Load average after the run: {os.getloadavg()[0]:.2f} (other processes share these cores).\n"
    report = f"{intro}\n{table(rows)}\n\n```{detail(rows)}\n```\n"
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "shape_change.md").write_text(report)
    plot(rows, RESULTS / "shape_change.png")
    say(f"wrote {RESULTS / 'shape_change.md'} and {RESULTS / 'shape_change.png'}")


if __name__ == "__main__":
    main()
