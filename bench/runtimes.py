"""What the benchmarks share: the runtimes (dydca, onnxruntime, MNN) opened the same way at 2
threads, each in a fresh worker process driven round by round over stdin, its peak RSS and the CPU
wait around it, MNN's model conversion, and the table and plot helpers.

A benchmark module is both the parent and, with `--worker RUNTIME --job JSON --out PATH`, the
worker: the parent starts one Worker per runtime and sends "round R" lines in turn (run_rounds),
the worker answers each from serve() and writes its figures as JSON at "end".

Artifacts of one model live in one folder (`art["dir"]`): model.onnx, dydca/ (the build) and
model.mnn; `art["inputs"]` names the inputs in the model's order, `art["output"]` the output read.
"""
from __future__ import annotations

import importlib
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
THREADS = 2
SETTLE_S = 0.1  # pause before each round: onnxruntime's threads spin ~40 ms after its last call
RUNTIMES = ["dydca", "onnxruntime", "MNN"]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- artifacts (parent process)

def convert_for_mnn(src: Path, dst: Path) -> str | None:
    """Runs MNN's converter (the C++ tool inside the pip package) in a subprocess. Called through
    `_tools` rather than the `mnnconvert` script, because that script pip-installs a logging SDK
    and sends usage telemetry on every call. Returns None, or why MNN cannot take the model."""
    dst.unlink(missing_ok=True)
    code = "import _tools, sys; _tools.mnnconvert(sys.argv)"
    try:
        r = subprocess.run([sys.executable, "-c", code, "-f", "ONNX", "--modelFile", str(src),
                            "--MNNModel", str(dst), "--bizCode", "dydca-bench"],
                           capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"converter did not run: {e}"
    if r.returncode != 0 or not dst.exists():
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [f"exit status {r.returncode}"]
        return f"MNNConvert failed: {tail[0][:120]}"
    return None


# ---------------------------------------------------------------- runtimes (worker process)
# Each opener returns run(feeds: dict name -> array) -> the output named art["output"], as an
# array the caller owns.

def open_dydca(art: dict):
    import dydca

    m = dydca.load(Path(art["dir"]) / "dydca")
    m.set_threads(THREADS)
    return lambda feeds: m.run(feeds)[0]


def open_onnxruntime(art: dict):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = THREADS, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(Path(art["dir"]) / "model.onnx"), so, providers=["CPUExecutionProvider"])
    return lambda feeds: sess.run([art["output"]], feeds)[0]


def mnn_const(x: np.ndarray):
    """An MNN input: float arrays as they are; MNN has no bool or int64 tensors, so integer and
    bool inputs (path selectors) go in as int32."""
    import MNN.expr as F

    if x.dtype == np.float32:
        return F.const(x, list(x.shape), F.NCHW)
    return F.const(x.astype(np.int32), list(x.shape), F.NCHW, F.int)


def open_mnn(art: dict):
    """MNN runs graphs with control flow, and inputs of any shape, through its Module API;
    shape_mutable lets one module take every input shape."""
    import MNN.expr as F
    import MNN.nn as nn

    rt = nn.create_runtime_manager(({"backend": "CPU", "numThread": THREADS},))
    names = art["inputs"]
    mod = nn.load_module_from_file(str(Path(art["dir"]) / "model.mnn"), names, [art["output"]],
                                   runtime_manager=rt, shape_mutable=True, rearrange=True)

    def run(feeds):
        (y,) = mod.forward([mnn_const(feeds[n]) for n in names])
        # read() views memory MNN reuses or frees on later calls: copy while y is alive, as the
        # other runtimes hand back arrays the caller owns
        return np.array(F.convert(y, F.NCHW).read())
    return run


OPENERS = {"dydca": open_dydca, "onnxruntime": open_onnxruntime, "MNN": open_mnn}
MODULES = {"dydca": ["dydca", "dydca._runtime"], "onnxruntime": ["onnxruntime"], "MNN": ["MNN.nn", "MNN.expr"]}


def import_runtime(runtime: str) -> None:
    """Importing a runtime's code is no cost of the model: workers do it before the RSS baseline."""
    for module in MODULES[runtime]:
        importlib.import_module(module)


def status_kib(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) of this process, in KiB. VmHWM is the peak ru_maxrss
    reports, minus what ru_maxrss inherits: it also counts the spawning process's RSS at exec,
    which made a worker's figure depend on how big the parent had grown."""
    status = Path("/proc/self/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith(field + ":"))


def reset_peak_rss() -> bool:
    """Sets the peak RSS (VmHWM) to the current RSS (Linux clear_refs 5), so a later VmHWM is the
    peak from now on; False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_wait_us() -> int | None:
    """Microseconds, since boot, that some runnable task waited for a CPU (Linux PSI); None where
    the kernel does not report it. Over a worker's runs it says how much other processes on these
    shared cores slowed the figures."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return int(line.rsplit("total=", 1)[1])


class CpuWait:
    """The share of some stretches of wall time (added up) in which a task waited for a core."""

    def __init__(self):
        self.wait_us, self.wall_s = 0, 0.0
        self._start = None

    def start(self) -> None:
        self._start = (cpu_wait_us(), time.perf_counter())

    def stop(self) -> None:
        wait0, t0 = self._start
        if wait0 is not None:
            self.wait_us += cpu_wait_us() - wait0
            self.wall_s += time.perf_counter() - t0

    @property
    def share(self) -> float | None:
        return self.wait_us / 1e6 / self.wall_s if self.wall_s else None


def reply(msg: str) -> None:
    """A line to the parent. Protocol lines carry a prefix: runtimes print banners on stdout too."""
    print(f"@@ {msg}", flush=True)


def serve(start, step, finish, out: Path) -> None:
    """A worker's loop: start() opens the model (after the peak-RSS baseline) and returns a
    state; each "round R" line calls step(state, R); "end" calls finish(state), a dict of figures,
    and writes it with the peak RSS growth from before start() to the last round. A runtime
    refusing the model, at any shape, answers "unsupported ..." instead: that is its figure."""
    reset = reset_peak_rss()
    base_kib = status_kib("VmRSS")
    try:
        state = start()
        for line in sys.stdin:
            if line.strip() == "end":
                break
            step(state, int(line.split()[1]))
            reply("done")
    except Exception as e:  # noqa: BLE001 - see the docstring
        first_line = (str(e).strip().splitlines() or [""])[0]
        return reply(f"unsupported {type(e).__name__}: {first_line[:120]}")
    growth = (status_kib("VmHWM") - base_kib) * 1024 if reset else None
    out.write_text(json.dumps(dict(finish(state), rss_growth_bytes=growth)))
    reply("end")


class Worker:
    """The parent's handle on one worker process: `python -m MODULE --worker RUNTIME --job JSON
    --out OUT`, or none when `reason` says why the runtime cannot run the job."""

    def __init__(self, module: str, runtime: str, job: dict, out: Path, reason: str | None = None):
        self.runtime, self.out, self.reason = runtime, out, reason
        self.proc = None if self.reason else subprocess.Popen(
            [sys.executable, "-m", module, "--worker", runtime, "--job", json.dumps(job), "--out", str(out)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, command: str) -> None:
        """Sends a command and waits for its answer; a refusal or a crash becomes the reason."""
        if self.reason:
            return
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:  # it exited already: its last lines say why
            pass
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                answer = line[3:].strip()
                if answer.startswith("unsupported "):
                    self.reason = answer.split(" ", 1)[1]
                return
        self.reason = f"worker exited with status {self.proc.wait()} (traceback above)"

    def result(self) -> dict:
        """The worker's figures, or {"unsupported": why}."""
        self.ask("end")
        if self.proc:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            self.proc.wait()
        if self.reason:
            return dict(runtime=self.runtime, unsupported=self.reason)
        return json.loads(self.out.read_text())


def run_rounds(workers: dict, rounds: int, progress=None, min_seconds: float = 0, max_rounds: int = 0) -> dict:
    """Round 0 (warm-up) and `rounds` recorded rounds; in each, every worker takes its turn, one
    process at a time, the order rotating every round, so load from other processes lands on
    every runtime alike. With min_seconds, short rows take more rounds (up to max_rounds): as many
    as the first recorded round's time says fill min_seconds, so their medians span more of the host's
    load phases than 20 calls of a few ms would. Returns each worker's result()."""
    order = list(workers)
    r = 0
    while r <= rounds:
        start = time.perf_counter()
        for i in range(len(order)):
            workers[order[(r + i) % len(order)]].ask(f"round {r}")
        if r == 1 and min_seconds > 0:  # round 0 includes the workers' start-up
            rounds = max(rounds, min(max_rounds, math.ceil(min_seconds / (time.perf_counter() - start))))
        if progress:
            progress(r, rounds)
        r += 1
    return {rt: w.result() for rt, w in workers.items()}


def worker_args(description: str):
    """The options every benchmark module takes in its worker role."""
    import argparse

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    return ap


# ---------------------------------------------------------------- reports

def fmt(value, spec: str, scale: float = 1, unit: str = "") -> str:
    return "-" if value is None else format(value * scale, spec) + unit


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in rows])


def cpu_name() -> str:
    return next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")), platform.processor())


def versions() -> str:
    from importlib.metadata import version  # not the modules: importing MNN prints a banner

    return ", ".join(f"{name} {version(pkg)}" for name, pkg in
                     (("dydca", "dydca"), ("onnxruntime", "onnxruntime"), ("MNN", "MNN")))


def pyplot():
    """matplotlib's pyplot on the file-only backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
