"""ONNX conformance: the official backend test cases whose operators dydca implements, compiled and
run through dydca.onnx_backend and compared with the expected outputs.

Cases: onnx's node tests (onnx.backend.test.case.node, each a model with input/output data) and
the model folders shipped in the onnx wheel (pytorch-converted, pytorch-operator, simple). A case
is in scope when every operator it uses is in the operator table (dydca.frontends.REGISTRY). Of
those, a case is skipped
  - by rule, when an input, output or initializer is not a float32/int64/int32/bool tensor (the
    element types dydca compiles), and
  - by the reviewed list tests/conformance_skips.txt (`test_name  # reason`), for the rest.
Everything else must pass.

Speed: a g++ run costs ~2 s whatever the model's size, so cases are compiled in batches: the
models of up to BATCH_SIZE cases of one opset are merged into one model (names prefixed per case)
and built once. A batch that fails to build or run is split in halves until the failure is
pinned on single cases. Batches are evaluated in a pool of processes, which also contains the
rare crash of a generated kernel.

Target: the cpp target by default; `--target opencl` builds every case for the opencl target and
runs it on the OpenCL device (DYDCA_OPENCL_DEVICE picks one; PoCL runs it on this CPU). That
target lowers every operator of the table, so the cases in scope and the skips are the same.

    python -m dydca.conformance [-j JOBS] [-k SUBSTRING] [--target {cpp,opencl}] [--list-failures]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import re
import sys
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

SUPPORTED_DTYPES = {np.dtype(t) for t in ("float32", "int64", "int32", "bool")}
SUPPORTED_ELEM_TYPES = {helper.np_dtype_to_tensor_dtype(d) for d in SUPPORTED_DTYPES}
DATA_SUITES = ("pytorch-converted", "pytorch-operator", "simple")
SKIPS_FILE = Path(__file__).resolve().parent.parent / "tests" / "conformance_skips.txt"
BATCH_SIZE = 24
TARGETS = ("cpp", "opencl")  # dydca.compile's code generation targets
# float outputs pass within the case's own rtol/atol (as onnx's backend runner checks) or within
# the project-wide bound: max abs error <= 1e-4 x the expected output's range
RANGE_RTOL = 1e-4

DTYPE_RULE = ("an input, output or initializer is not a float32/int64/int32/bool tensor "
              "(sequences, optionals, float16/64, int8/16, uint*, strings, ...)")


@dataclass
class Case:
    name: str
    suite: str  # "node" or a data folder's name
    model: onnx.ModelProto
    data_sets: list  # [(inputs, expected outputs)], lists of arrays in graph order
    rtol: float
    atol: float
    ops: tuple = ()

    @property
    def opset(self) -> int:
        return next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)


@dataclass
class Result:
    name: str
    status: str  # "passed" | "failed" | "skipped"
    message: str = ""
    ops: tuple = ()
    seconds: float = 0.0


# ---------------------------------------------------------------- collecting and selecting cases

def _ops(graph: onnx.GraphProto) -> set:
    """(domain, op_type) of every node, sub-graphs included."""
    out = set()
    for n in graph.node:
        out.add((n.domain if n.domain != "ai.onnx" else "", n.op_type))
        for a in n.attribute:
            for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                out |= _ops(g)
    return out


def _as_array(x):
    """Test data as onnx's runner normalises it: TensorProtos become arrays; sequences (lists),
    optionals (None) and maps stay what they are, and fail the dtype rule."""
    if isinstance(x, onnx.TensorProto):
        return numpy_helper.to_array(x)
    if isinstance(x, np.generic):  # a few generators give numpy scalars for rank-0 tensors
        return np.asarray(x)
    return x


def _load_tensor_file(path: Path, type_proto: onnx.TypeProto | None):
    if type_proto is not None and not type_proto.HasField("tensor_type"):
        return None  # a sequence/optional/map: out of the dtype rule, never needed as an array
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def _load_data_sets(case_dir: Path, model: onnx.ModelProto) -> list:
    from .onnx_backend import graph_inputs

    ins = graph_inputs(model)
    outs = list(model.graph.output)
    sets = []
    for d in sorted(case_dir.glob("test_data_set_*"), key=lambda p: int(p.name.rsplit("_", 1)[1])):
        def load(prefix, vis):
            files = sorted(d.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
            return [_load_tensor_file(f, vis[k].type if k < len(vis) else None) for k, f in enumerate(files)]
        sets.append((load("input", ins), load("output", outs)))
    return sets


def collect(suites=("node",) + DATA_SUITES) -> list[Case]:
    """Every case of the given suites, with its operators; names are unique."""
    cases: list[Case] = []
    if "node" in suites:
        from onnx.backend.test.case.node import collect_testcases
        with warnings.catch_warnings():  # the generators' own numpy overflow warnings
            warnings.simplefilter("ignore")
            for t in collect_testcases(None):
                sets = [([_as_array(x) for x in i], [_as_array(x) for x in o]) for i, o in t.data_sets]
                cases.append(Case(t.name, "node", t.model, sets, t.rtol, t.atol))
    from onnx.backend.test.loader import load_model_tests
    for suite in suites:
        if suite == "node":
            continue
        for t in sorted(load_model_tests(kind=suite), key=lambda t: t.name):
            if t.model_dir is None:
                continue  # a model to download: never in scope offline
            model = onnx.load(os.path.join(t.model_dir, "model.onnx"))
            cases.append(Case(t.name, suite, model, _load_data_sets(Path(t.model_dir), model), t.rtol, t.atol))
    seen = Counter(c.name for c in cases)
    for c in cases:
        c.ops = tuple(sorted(op for dom, op in _ops(c.model.graph)))
        if seen[c.name] > 1 and c.suite != "node":
            c.name = f"{c.suite}/{c.name}"
    return cases


def in_scope(case: Case, registry) -> bool:
    return all(dom == "" and op in registry for dom, op in _ops(case.model.graph))


def dtype_rule_violation(case: Case) -> str | None:
    """Why the case falls under the dtype rule, or None."""
    g = case.model.graph
    for vi in list(g.input) + list(g.output):
        t = vi.type
        if not t.HasField("tensor_type"):
            return f"{vi.name!r} is not a tensor"
        if t.tensor_type.elem_type not in SUPPORTED_ELEM_TYPES:
            return f"{vi.name!r} is {onnx.TensorProto.DataType.Name(t.tensor_type.elem_type)}"
    for init in g.initializer:
        if init.data_type not in SUPPORTED_ELEM_TYPES:
            return f"initializer {init.name!r} is {onnx.TensorProto.DataType.Name(init.data_type)}"
    for ins, outs in case.data_sets:
        for x in list(ins) + list(outs):
            if not isinstance(x, np.ndarray) or x.dtype not in SUPPORTED_DTYPES:
                return f"test data of type {getattr(x, 'dtype', type(x).__name__)}"
    return None


def read_skips(path: Path = SKIPS_FILE) -> dict[str, str]:
    """test name -> reason, from `test_name  # reason` lines; blank lines and comment lines skipped."""
    skips = {}
    if not path.exists():
        return skips
    for k, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, reason = text.partition("#")
        name, reason = name.strip(), reason.strip()
        if not sep or not reason or " " in name:
            raise ValueError(f"{path}:{k}: expected `test_name  # reason`, got {line!r}")
        if name in skips:
            raise ValueError(f"{path}:{k}: {name} is listed twice")
        skips[name] = reason
    return skips


@dataclass
class Selection:
    run: list = field(default_factory=list)  # cases that must pass
    listed: list = field(default_factory=list)  # (case, reason) from the skip list
    by_rule: list = field(default_factory=list)  # (case, why) from the dtype rule
    out_of_scope: int = 0
    stale_skips: list = field(default_factory=list)  # skip-list names matching no in-scope case


def select(cases: list[Case], registry=None, skips: dict | None = None, pattern: str | None = None) -> Selection:
    if registry is None:
        from .frontends import REGISTRY as registry
    skips = read_skips() if skips is None else skips
    sel = Selection()
    scoped = set()
    for c in cases:
        if not in_scope(c, registry):
            sel.out_of_scope += 1
            continue
        scoped.add(c.name)
        if pattern and pattern not in c.name:
            continue
        why = dtype_rule_violation(c)
        if why is not None:
            sel.by_rule.append((c, why))
        elif c.name in skips:
            sel.listed.append((c, skips[c.name]))
        else:
            sel.run.append(c)
    sel.stale_skips = sorted(set(skips) - scoped)
    return sel


# ---------------------------------------------------------------- merging, building, comparing

def concrete_model(case: Case) -> onnx.ModelProto:
    """The case's model with every input shape fixed to its first data set's (most are declared
    static already; a few leave dims symbolic or unnamed)."""
    from .onnx_backend import graph_inputs

    m = onnx.ModelProto()
    m.CopyFrom(case.model)
    arrays = case.data_sets[0][0] if case.data_sets else []
    by_name = {vi.name: vi for vi in m.graph.input}
    for vi, arr in zip(graph_inputs(case.model), arrays):
        shape = by_name[vi.name].type.tensor_type.shape
        shape.Clear()
        for d in np.shape(arr):
            shape.dim.add().dim_value = int(d)
    return m


def merge(cases: list[Case]) -> onnx.ModelProto:
    """One model running the cases side by side: case k's names get the prefix `c<k>_`."""
    from .onnx_backend import graph_inputs

    if len(cases) == 1:
        return concrete_model(cases[0])
    nodes, inputs, outputs, inits = [], [], [], []
    for k, case in enumerate(cases):
        g = concrete_model(case).graph
        def rn(name, p=f"c{k}_"):
            return p + name if name else name
        for j, n in enumerate(g.node):
            m = onnx.NodeProto()
            m.CopyFrom(n)
            m.input[:] = [rn(x) for x in n.input]
            m.output[:] = [rn(x) for x in n.output]
            m.name = rn(n.name or f"{n.op_type}_{j}")
            nodes.append(m)
        inits_names = {i.name for i in g.initializer}
        for vi in list(g.input):
            if vi.name in inits_names:
                continue
            v = onnx.ValueInfoProto()
            v.CopyFrom(vi)
            v.name = rn(vi.name)
            inputs.append(v)
        for vi in g.output:
            v = onnx.ValueInfoProto()
            v.CopyFrom(vi)
            v.name = rn(vi.name)
            outputs.append(v)
        for t in g.initializer:
            u = onnx.TensorProto()
            u.CopyFrom(t)
            u.name = rn(t.name)
            inits.append(u)
    model = helper.make_model(helper.make_graph(nodes, "conformance_batch", inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", cases[0].opset)])
    model.ir_version = max(c.model.ir_version for c in cases)
    return model


def compare(got, expected, rtol: float, atol: float) -> str | None:
    """None when `got` matches; else what differs."""
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        return f"shape {got.shape} != expected {expected.shape}"
    if got.dtype != expected.dtype:
        return f"dtype {got.dtype} != expected {expected.dtype}"
    if expected.size == 0:
        return None
    if not np.issubdtype(expected.dtype, np.floating):
        bad = int(np.count_nonzero(got != expected))
        return None if bad == 0 else f"{bad} of {expected.size} elements differ"
    if not np.array_equal(np.isnan(got), np.isnan(expected)):
        return "NaN positions differ"
    finite = np.isfinite(expected)
    if not np.array_equal(got[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)]):
        return "infinities differ"
    g, e = got[finite].astype(np.float64), expected[finite].astype(np.float64)
    if g.size == 0:
        return None
    err = np.abs(g - e)
    if np.all(err <= atol + rtol * np.abs(e)):
        return None
    scale = max(float(e.max() - e.min()), 1.0)
    worst = float(np.nanmax(err)) if np.isfinite(err).any() else float("inf")
    if np.isfinite(g).all() and worst <= RANGE_RTOL * scale:
        return None
    return (f"max abs error {worst:.3g} exceeds rtol {rtol:g}/atol {atol:g} and "
            f"{RANGE_RTOL:g} x range {scale:.3g}")


def _first_line(e: BaseException) -> str:
    """The error's first line, plus its first compiler `error:` line when g++ failed."""
    text = str(e) or type(e).__name__
    lines = text.splitlines()
    first = f"{type(e).__name__}: {lines[0]}"
    err = next((l.strip() for l in lines[1:] if "error:" in l), None)
    return f"{first} | {err}" if err else first


_CASE_PREFIX = re.compile(r"\bc(\d+)_")


def _blame_named(e: BaseException, n_cases: int) -> dict[int, str]:
    """Case index -> message, when the error names a node or value of one case (`c<k>_...`)."""
    first = _first_line(e)
    ks = {int(k) for k in _CASE_PREFIX.findall(first)}
    if len(ks) != 1 or not 0 <= min(ks) < n_cases:
        return {}
    return {ks.pop(): _CASE_PREFIX.sub("", first)}


def _error_text(message: str) -> str:
    """A failure message without build folders and case prefixes, to tell whether two builds
    failed alike."""
    return _CASE_PREFIX.sub("", re.sub(r"/\S+/", "", message))


def _feeds(cases: list[Case], s: int) -> dict:
    """Inputs of data set `s` for the merged model (a case without set s repeats its set 0)."""
    from .onnx_backend import graph_inputs

    prefix = len(cases) > 1
    feeds = {}
    for k, c in enumerate(cases):
        ins = c.data_sets[min(s, len(c.data_sets) - 1)][0]
        for vi, arr in zip(graph_inputs(c.model), ins):
            feeds[f"c{k}_{vi.name}" if prefix else vi.name] = arr
    return feeds


def _check(case: Case, outputs: list) -> str | None:
    for s, (_, expected) in enumerate(case.data_sets):
        got = outputs[s]
        if len(got) != len(expected):
            return f"{len(got)} outputs, expected {len(expected)}"
        for j, (g, e) in enumerate(zip(got, expected)):
            why = compare(g, e, case.rtol, case.atol)
            if why:
                name = case.model.graph.output[j].name
                return f"output {j} ({name}), data set {s}: {why}"
    return None


def _precheck(case: Case) -> str | None:
    """Import + shape inference alone: pins unsupported attributes or shapes on the case without
    a g++ run (a batch would otherwise have to bisect for it)."""
    from .frontends import from_onnx
    from .onnx_backend import bake_inputs, compile_time_inputs
    try:
        model = concrete_model(case)
        feeds = _feeds([case], 0)
        from_onnx(bake_inputs(model, {k: feeds[k] for k in compile_time_inputs(model) if k in feeds}))
    except Exception as e:  # noqa: BLE001 - every failure is a finding for the report
        return _first_line(e)
    return None


_LOG_PATH = re.compile(r"full log: (\S+build\.log)")
_SRC_REF = re.compile(r"(?:^|[\s/])([\w.-]+\.cpp):(\d+):(?:\d+:)?")
_KERNEL_HEAD = re.compile(r'^// \w+ node "c(\d+)_')


def _blame_compiler_errors(e: BaseException, n_cases: int) -> dict[int, str]:
    """Case index -> first g++ error, for a merged build that g++ rejected: each error (or the
    instantiation chain before it) points at a line of the generated source, which lies in the
    kernel function of one case (its heading comment names the node, `c<k>_...`). Empty when the
    failure was not g++'s or cannot be pinned."""
    m = _LOG_PATH.search(str(e))
    if not m:
        return {}
    log = Path(m.group(1))
    try:
        text = log.read_text(errors="replace")
        sources = {p.name: p.read_text(errors="replace").splitlines() for p in log.parent.glob("*.cpp")}
    except OSError:
        return {}
    heads = {name: [(i + 1, int(h.group(1))) for i, line in enumerate(lines)
                    if (h := _KERNEL_HEAD.match(line))] for name, lines in sources.items()}

    def case_at(src, line):
        owner = None
        for start, k in heads.get(src, []):
            if start > line:
                break
            owner = k
        return owner

    blamed: dict[int, str] = {}
    last = None
    for line in text.splitlines():
        for ref in _SRC_REF.finditer(line):
            if ref.group(1) in heads:
                last = case_at(ref.group(1), int(ref.group(2)))
        if "error:" in line:
            if last is None or not 0 <= last < n_cases:
                return {}  # an error outside any case's kernel: not attributable
            blamed.setdefault(last, "RuntimeError: g++ rejected the generated kernel | " +
                              line.split("error:", 1)[1].strip()[:300])
            last = None
    return blamed


def evaluate(cases: list[Case], target: str = "cpp") -> list[Result]:
    """Builds the cases as one model for `target`, runs every data set, checks each case's
    outputs. A build or run failure splits the batch until it is pinned on single cases."""
    from .onnx_backend import DydcaBackend

    results = []
    todo = []
    for c in cases:
        why = _precheck(c)
        if why is None:
            todo.append(c)
        else:
            results.append(Result(c.name, "failed", why, c.ops))
    if not todo:
        return results
    t0 = time.perf_counter()
    try:
        rep = DydcaBackend.prepare(merge(todo), inputs=_feeds(todo, 0), target=target)
        n_sets = max(len(c.data_sets) for c in todo)
        runs = [rep.run(_feeds(todo, s)) for s in range(n_sets)]
    except Exception as e:  # noqa: BLE001
        if len(todo) == 1:
            return results + [Result(todo[0].name, "failed", _first_line(e), todo[0].ops,
                                     time.perf_counter() - t0)]
        blamed = _blame_compiler_errors(e, len(todo)) or _blame_named(e, len(todo))
        if blamed and len(blamed) < len(todo):
            rest = [c for k, c in enumerate(todo) if k not in blamed]
            return results + [Result(todo[k].name, "failed", msg, todo[k].ops) for k, msg in blamed.items()] + \
                evaluate(rest, target)
        # not pinned: if the first case alone fails the same way, the error is common to every
        # build (a broken runtime header) and splitting further would only repeat it
        alone = evaluate(todo[:1], target)
        if alone[0].status == "failed" and _error_text(alone[0].message) == _error_text(_first_line(e)):
            return results + alone + [Result(c.name, "failed", alone[0].message, c.ops) for c in todo[1:]]
        half = max(len(todo) // 2, 1)
        return results + alone + evaluate(todo[1:half], target) + evaluate(todo[half:], target)
    seconds = (time.perf_counter() - t0) / len(todo)
    at = 0
    for c in todo:
        n_out = len(c.model.graph.output)
        outs = [list(r[at:at + n_out]) for r in runs][:len(c.data_sets)]
        at += n_out
        why = _check(c, outs)
        results.append(Result(c.name, "failed" if why else "passed", why or "", c.ops, seconds))
    return results


def batches(cases: list[Case], size: int = BATCH_SIZE) -> list[list[Case]]:
    """Cases of one opset in name order, in chunks (a merged model has a single opset)."""
    by_opset = defaultdict(list)
    for c in sorted(cases, key=lambda c: c.name):
        by_opset[c.opset].append(c)
    out = []
    for opset in sorted(by_opset):
        group = by_opset[opset]
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


class Pool:
    """Evaluates batches in worker processes (spawned: a forked OpenMP runtime can hang). A crashed
    worker (a kernel's segfault) fails its batch, which is retried once and then split. Every
    batch is built for `target`."""

    def __init__(self, jobs: int, target: str = "cpp"):
        self.jobs = max(1, jobs)
        self.target = target
        self._ex = None

    def _executor(self):
        if self._ex is None:
            self._ex = cf.ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"))
        return self._ex

    def close(self):
        if self._ex is not None:
            self._ex.shutdown(cancel_futures=True)
            self._ex = None

    def map(self, work: list[list[Case]]):
        """Yields the results of each batch as it completes."""
        pending = {}

        def submit(batch, attempt):
            pending[self._executor().submit(evaluate, batch, self.target)] = (batch, attempt)

        for b in work:
            submit(b, 0)
        while pending:
            cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            lost = []
            for fut in [f for f in pending if f.done()]:
                batch, attempt = pending.pop(fut)
                try:
                    yield fut.result()
                except cf.process.BrokenProcessPool:
                    lost.append((batch, attempt))
            if not lost:
                continue
            # the pool is broken: every batch still in flight died with it and is resubmitted; the
            # culprit is unknown, so a batch lost twice is split, and a single case lost twice fails
            lost += list(pending.values())
            pending.clear()
            self.close()
            for b, a in lost:
                if a == 0:
                    submit(b, 1)
                elif len(b) > 1:
                    submit(b[:len(b) // 2], 0)
                    submit(b[len(b) // 2:], 0)
                else:
                    yield [Result(b[0].name, "failed", "the process running it crashed "
                                  "(a kernel's segfault or abort)", b[0].ops)]


# ---------------------------------------------------------------- report

def op_table(results: list[Result], listed, by_rule) -> str:
    """passed/failed/skipped per operator; a case counts under every operator it uses."""
    rows = defaultdict(Counter)
    for r in results:
        for op in set(r.ops):
            rows[op][r.status] += 1
    for c, _ in list(listed) + list(by_rule):
        for op in set(c.ops):
            rows[op]["skipped"] += 1
    width = max([len(op) for op in rows] + [8])
    lines = [f"{'operator':<{width}}  passed  failed  skipped"]
    for op in sorted(rows):
        r = rows[op]
        lines.append(f"{op:<{width}}  {r['passed']:>6}  {r['failed']:>6}  {r['skipped']:>7}")
    return "\n".join(lines)


def failures_by_op(results: list[Result]) -> dict[str, list[Result]]:
    """Failing cases grouped by the operator the error names (`node '...' (Op)`), else by the
    case's operators."""
    groups = defaultdict(list)
    for r in results:
        if r.status != "failed":
            continue
        m = re.search(r"\(([A-Z][A-Za-z]*)\)", r.message)
        key = m.group(1) if m and m.group(1) in r.ops else "+".join(r.ops)
        groups[key].append(r)
    return dict(sorted(groups.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dydca.conformance", description=__doc__.split("\n\n")[0])
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="parallel builds")
    ap.add_argument("-k", dest="pattern", help="only cases whose name contains this")
    ap.add_argument("--target", choices=TARGETS, default="cpp",
                    help="code generation target the cases are built for (default: cpp)")
    ap.add_argument("--list-failures", action="store_true", help="every failing case with its error")
    ap.add_argument("--run-listed", action="store_true",
                    help="also run the skip-listed cases, to find entries that now pass")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    cases = collect()
    sel = select(cases, pattern=args.pattern)
    todo = sel.run + ([c for c, _ in sel.listed] if args.run_listed else [])
    print(f"{len(cases)} cases: {len(cases) - sel.out_of_scope} in scope (every operator in the table), "
          f"{sel.out_of_scope} not; running {len(todo)} on the {args.target} target with {args.jobs} jobs",
          flush=True)
    pool = Pool(args.jobs, args.target)
    results = []
    try:
        for rs in pool.map(batches(todo)):
            results += rs
            print(f"\r{len(results)}/{len(todo)}", end="", file=sys.stderr, flush=True)
    finally:
        pool.close()
    print(file=sys.stderr)
    listed_names = {c.name for c, _ in sel.listed}
    now_pass = sorted(r.name for r in results if r.name in listed_names and r.status == "passed")
    results = [r for r in results if r.name not in listed_names]

    print(op_table(results, sel.listed, sel.by_rule))
    counts = Counter(r.status for r in results)
    print(f"\ntotal: {counts['passed']} passed, {counts['failed']} failed, "
          f"{len(sel.listed) + len(sel.by_rule)} skipped "
          f"({len(sel.by_rule)} by the dtype rule: {DTYPE_RULE}; {len(sel.listed)} listed in "
          f"{SKIPS_FILE.name}) in {time.perf_counter() - t0:.0f} s")
    if sel.stale_skips and not args.pattern:
        print(f"skip-list entries naming no in-scope case: {', '.join(sel.stale_skips)}")
    if now_pass:
        print(f"skip-listed cases that now pass (remove them): {', '.join(now_pass)}")
    groups = failures_by_op(results)
    if groups:
        print("\nfailing cases by operator:")
        for op, rs in groups.items():
            print(f"  {op}: {len(rs)}")
            for r in (rs if args.list_failures else rs[:3]):
                print(f"    {r.name}: {r.message}")
            if not args.list_failures and len(rs) > 3:
                print(f"    ... {len(rs) - 3} more (--list-failures)")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
