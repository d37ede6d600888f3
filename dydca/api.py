"""dydca.compile() and dydca.load(): ONNX in, a specialised shared library out, run on numpy."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from . import __version__

DimRanges = dict  # name -> (min, max); a list of them declares shape classes


def _arena_too_big(manifest: dict) -> str:
    """Why a library's arena could not be allocated: its size, and the dim ranges it was planned
    for (the arena serves the largest shapes they allow), defaulted ones named."""
    dims = manifest.get("dims") or {}
    defaulted = set(manifest.get("defaulted_dims") or ())
    ranges = ", ".join(f"{k}={lo}:{hi}" + (" (default)" if k in defaulted else "") for k, (lo, hi) in dims.items())
    return (f"cannot allocate the model's {manifest.get('arena_bytes', 0) / 2**30:.1f} GiB arena, planned for "
            f"the largest shapes of {ranges or 'its fixed shapes'}: declare narrower dims (dims=... / --dim)")


class Model:
    """A built model library, loaded and ready to run."""

    def __init__(self, build_dir, manifest: dict):
        from . import _runtime

        self.build_dir = Path(build_dir)
        self.manifest = manifest
        try:
            self._lib = _runtime.Library(str(self.build_dir / manifest["library"]))
        except MemoryError:
            raise MemoryError(_arena_too_big(manifest)) from None
        self.inputs = [d["name"] for d in self._lib.inputs]
        self.outputs = [d["name"] for d in self._lib.outputs]

    @property
    def input_info(self) -> list[dict]:
        return self._lib.inputs

    @property
    def output_info(self) -> list[dict]:
        return self._lib.outputs

    @property
    def threads(self) -> int:
        return self._lib.threads

    def set_threads(self, n: int) -> None:
        """Threads the kernels use; n <= 0 means all cores (the default)."""
        self._lib.set_threads(int(n))

    @property
    def arena_bytes(self) -> int:
        return self._lib.arena_bytes

    def run(self, feeds: dict) -> list[np.ndarray]:
        """Runs on a dict of input name -> numpy array; returns the outputs in model order."""
        if not isinstance(feeds, dict):
            raise TypeError("run() takes a dict of input name -> numpy array")
        unknown = set(feeds) - set(self.inputs)
        missing = [n for n in self.inputs if n not in feeds]
        if unknown or missing:
            raise ValueError(f"inputs missing: {missing}, unknown: {sorted(unknown)}; "
                             f"the model takes {self.inputs}")
        return self._lib.run([np.asarray(feeds[n]) for n in self.inputs])

    __call__ = run

    def profile(self, feeds: dict, runs: int = 20, warmup: int = 2) -> list[dict]:
        """Times every kernel (a fused node; an If or Loop and, inside it, each kernel of the
        branch or body that ran) over `runs` calls on `feeds`. Rows in render order: kernel, ms
        per call, share of the whole run, parent (the index of the If/Loop row running it, -1 at
        the top), leaf (it does the work itself rather than running others)."""
        for _ in range(warmup):
            self.run(feeds)
        self._lib.set_profiling(True)
        try:
            for _ in range(runs):
                self.run(feeds)
            done, rows = self._lib.profile()
        finally:
            self._lib.set_profiling(False)
        total = sum(s for _, parent, s in rows if parent < 0) or 1.0
        parents = {parent for _, parent, _ in rows}
        return [dict(kernel=name, ms=1e3 * s / max(done, 1), share=s / total, parent=parent, leaf=k not in parents)
                for k, (name, parent, s) in enumerate(rows)]

    @staticmethod
    def profile_table(rows: list[dict], top: int | None = None) -> str:
        """The kernels that do the work (leaves of profile()'s rows: inside If branches and Loop
        bodies too, not the If/Loop around them), slowest first: all of them or the `top` slowest.
        Kernels of a branch that did not run show 0."""
        ranked = sorted((r for r in rows if r["leaf"]), key=lambda r: -r["ms"])[:top]
        width = max([len(r["kernel"]) for r in ranked] + [6])
        lines = [f"{'kernel':<{width}}  {'ms/call':>9}  {'share':>6}"]
        lines += [f"{r['kernel']:<{width}}  {r['ms']:>9.3f}  {r['share']:>6.1%}" for r in ranked]
        lines.append(f"{'total':<{width}}  {sum(r['ms'] for r in rows if r['parent'] < 0):>9.3f}")
        return "\n".join(lines)

    def __repr__(self):
        return f"<dydca.Model {self.manifest['name']} inputs={self.inputs} outputs={self.outputs} at {self.build_dir}>"


def load(build_dir) -> Model:
    """Loads a folder written by compile() / dydca-compile; no recompilation."""
    build_dir = Path(build_dir)
    try:
        manifest = json.loads((build_dir / "manifest.json").read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{build_dir} holds no dydca build (manifest.json missing)") from None
    return Model(build_dir, manifest)


def _model_digest(model) -> tuple[str, object]:
    from .frontends.ir import Graph

    if isinstance(model, Graph):
        return hashlib.sha256(pickle.dumps(model)).hexdigest(), model
    if isinstance(model, onnx.ModelProto):
        return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest(), model
    path = Path(os.fspath(model))
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    h = hashlib.sha256(path.read_bytes()).hexdigest()
    return h, path


def library_name(model, name: str | None) -> str:
    if name is None:
        stem = Path(os.fspath(model)).stem if isinstance(model, (str, os.PathLike)) else "model"
        name = stem
    name = re.sub(r"[^A-Za-z0-9_]", "_", name).lower() or "model"
    return ("m_" + name) if name[0].isdigit() else name


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".dydca-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise PermissionError(f"output folder {str(out_dir)!r} is not writable: {e.strerror or e}") from e


def compile(model, dims: DimRanges | list[DimRanges] | None = None, out_dir=None, *, input_shapes: dict | None = None,
            name: str | None = None, target: str = "cpp", cache: bool = True, passes=None,
            progress=None) -> Model:
    """Compiles an ONNX model (path, ModelProto) or a dydca IR Graph into a shared library.

    dims: symbolic dimension name -> (min, max); unbound names get DEFAULT_RANGE. Or a list of such
      maps, shape classes (e.g. [{"n": (1, 64), "h": (8, 64), "w": (8, 64)}, {"n": (1, 1), "h":
      (64, 1080), "w": (64, 1920)}]): a call's dims must fall in one class, and the arena is sized
      for the largest class, not for every dim at its maximum at once.
    input_shapes: input name -> dims (ints or names) for dims the model leaves unnamed.
    out_dir: where lib<name>.so, <name>.h and the plan report go; None: a temporary folder.
    """
    from .codegen import build, get_target
    from .compiler.pipeline import plan as plan_graph
    from .compiler.report import write_reports
    from .frontends import from_onnx
    from .frontends.ir import Graph

    say = progress or (lambda msg: None)
    tgt = get_target(target)
    def ranges(d):
        return {k: tuple(int(x) for x in v) for k, v in d.items()}
    dims = [ranges(c) for c in dims] if isinstance(dims, (list, tuple)) else ranges(dims or {})
    digest, source = _model_digest(model)
    prefix = library_name(model, name)
    options = dict(dims=dims, input_shapes=input_shapes, name=prefix, target=target,
                   passes=[p.__name__ for p in passes] if passes else None)
    key = build.build_key(digest, options, tgt)
    out_dir = Path(tempfile.mkdtemp(prefix="dydca-")) if out_dir is None else Path(out_dir)
    _check_writable(out_dir)

    try:
        existing = json.loads((out_dir / "manifest.json").read_text())
        if existing.get("key") == key and (out_dir / existing["library"]).exists():
            say(f"up to date: {out_dir}")
            return Model(out_dir, existing)
    except (OSError, ValueError, KeyError):
        pass
    hit = build.cached_build(key) if cache else None
    if hit is not None:
        build.copy_build(hit, out_dir)
        say(f"from the build cache: {hit}")
        return load(out_dir)

    t0 = time.perf_counter()
    say("importing and propagating shapes")
    graph = source if isinstance(source, Graph) else from_onnx(source, dims, input_shapes, name=prefix)
    say("running passes and planning memory")
    compiled = plan_graph(graph, passes)
    say(f"generating {target} sources")
    emitter = tgt.emitter_class()(compiled.graph, compiled.plan, tgt, prefix)  # per-target
    sources = emitter.render(__version__, str((out_dir / "weights.bin").resolve()))
    t_gen = time.perf_counter() - t0
    say(f"building lib{prefix}.so with {tgt.cxx}")
    library, t_build = build.compile_library(tgt, sources, emitter.blob(), out_dir, prefix)
    manifest = dict(key=key, name=prefix, library=library.name, header=f"{prefix}.h", target=target,
                    version=__version__, dims={k: list(v) for k, v in compiled.graph.dims.ranges.items()},
                    defaulted_dims=list(compiled.graph.dims.defaulted),
                    shape_classes=[{k: list(v) for k, v in c.items()} for c in compiled.graph.dims.classes],
                    arena_bytes=compiled.plan.arena_bytes, sum_bytes=compiled.plan.sum_bytes,
                    frontend_seconds=round(t_gen, 3), build_seconds=round(t_build, 3))
    write_reports(compiled, out_dir)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2))
    if cache:
        build.store_in_cache(key, out_dir)
    return Model(out_dir, manifest)
