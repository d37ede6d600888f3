"""dydca-compile: the command line of the compiler.

    dydca-compile model.onnx -o build/ --dim n=1:16 --dim h=16:1088 --dim w=16:1920
    dydca-compile model.onnx --explain

User errors (a missing or unreadable model, an unsupported operator or element type, bad option
syntax, an output folder that cannot be written) print one line and exit with status 2; a failure
of the C++ build prints the compiler's first errors and exits with status 1.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

EXIT_USAGE = 2
EXIT_BUILD = 1

_DIM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.:-]*?)\s*=\s*(\d+)\s*(?::\s*(\d+)\s*)?$")


class UsageError(Exception):
    """A mistake in what the user asked for; printed as one line."""


def parse_dim(text: str) -> tuple[str, tuple[int, int]]:
    """'h=16:1088' -> ('h', (16, 1088)); 'n=4' fixes n to 4."""
    m = _DIM.match(text)
    if not m:
        raise UsageError(f"bad --dim {text!r}: expected NAME=MIN:MAX (e.g. h=16:1088) or NAME=VALUE")
    lo = int(m.group(2))
    hi = int(m.group(3)) if m.group(3) is not None else lo
    if lo < 1 or hi < lo:
        raise UsageError(f"bad --dim {text!r}: the range must satisfy 1 <= MIN <= MAX")
    return m.group(1), (lo, hi)


def parse_input_shape(text: str) -> tuple[str, list]:
    """'x=n,3,h,w' -> ('x', ['n', 3, 'h', 'w']). The input name is everything before the last '='
    so that names containing '=' still work."""
    name, sep, dims = text.rpartition("=")
    parts = [p.strip() for p in dims.split(",")]
    if not sep or not name or not all(parts):
        raise UsageError(f"bad --input-shape {text!r}: expected INPUT=d0,d1,... with each dim a "
                         f"number or a name (e.g. x=n,3,h,w)")
    return name, [int(p) if p.isdigit() else p for p in parts]


def build_parser() -> argparse.ArgumentParser:
    import dydca

    lo, hi = dydca.DEFAULT_RANGE
    ap = argparse.ArgumentParser(
        prog="dydca-compile",
        description="Compile an ONNX model into a C++ shared library specialised for ranges of its "
                    "input dimensions.",
        epilog=f"A symbolic dimension without --dim gets the default range {lo}:{hi}; the command says "
               f"so. Exit status: 0 ok, 1 the C++ build failed, 2 a problem with the model or options.")
    ap.add_argument("model", nargs="?", help="ONNX model file")
    ap.add_argument("-o", "--out", metavar="DIR",
                    help="folder for lib<name>.so, <name>.h, the plan report and manifest.json")
    ap.add_argument("--dim", action="append", default=[], metavar="NAME=MIN:MAX",
                    help="range of a symbolic input dimension (repeatable); NAME=V fixes it to V")
    ap.add_argument("--shape-class", action="append", default=[], metavar="NAME=MIN:MAX,...",
                    help="a shape class: ranges of every symbolic dim that hold together, e.g. "
                         "n=1:64,h=8:64,w=8:64 for patch batches and n=1,h=64:1080,w=64:1920 for "
                         "frames (repeatable); the arena is sized for the largest class")
    ap.add_argument("--profile", action="append", default=[], metavar="INPUT=d0,d1,...",
                    help="after building, time each kernel on random inputs of these shapes (one "
                         "per input, INPUT=- for a scalar; repeatable) and print the slowest first")
    ap.add_argument("--input-shape", action="append", default=[], metavar="INPUT=d0,d1,...",
                    help="shape of an input whose dims the model leaves unnamed or fixed, with "
                         "numbers and dimension names (repeatable)")
    ap.add_argument("--name", help="library name: lib<NAME>.so, NAME.h and the NAME_ C prefix "
                                   "(default: the model file's stem)")
    ap.add_argument("--target", default="cpp",
                    help="code generation target: cpp (C++ kernels for this CPU), cpp-avx2 (the same with "
                         "8-lane vectors on an AVX-512 CPU whose 512-bit FMAs do not pay) or opencl (OpenCL C "
                         "kernels; default: cpp)")
    ap.add_argument("--explain", action="store_true",
                    help="print each node's op, dynamism category and output shape expressions; "
                         "needs no -o")
    ap.add_argument("--threads", type=int, metavar="N",
                    help="after building, run the library once at the smallest input shapes with N "
                         "threads (<= 0: all cores) to check it loads and runs, and report the time")
    ap.add_argument("--no-cache", action="store_true", help="always rebuild; do not use ~/.cache/dydca")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    ap.add_argument("--list-ops", action="store_true",
                    help="print the supported ONNX operators with their dynamism category and exit")
    return ap


def list_ops() -> str:
    """The operator table as users need it: ONNX operators only (not the compiler's internal ones
    such as fused element-wise groups), by dynamism category."""
    from .frontends.ops import REGISTRY, Category, supported

    lines = []
    for cat in Category:
        ops = [n for n in supported() if REGISTRY[n].category == cat]
        if ops:
            lines.append(f"{int(cat)} {cat.name.lower()} ({len(ops)}): {', '.join(ops)}")
    return "\n".join(lines)


def _printable(name: str) -> str:
    """A model's name as one terminal-safe table cell (names may hold newlines or escapes)."""
    return name if name.isprintable() else repr(name)


def _shape_text(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def explain(graph) -> str:
    """The imported graph as a table: node, op, dynamism category, output shape expressions."""
    from .frontends.ops import REGISTRY

    lines = ["inputs:"]
    for name in graph.inputs:
        v = graph.values[name]
        lines.append(f"  {name!r} {v.dtype.name} {_shape_text(v.shape)}")
    lines.append("dims: " + (", ".join(
        f"{k} in [{a}, {b}]" + (" (default)" if k in graph.dims.defaulted else "")
        for k, (a, b) in graph.dims.ranges.items()) or "none (all static)"))
    rows = []
    for node in graph.nodes:
        cat = REGISTRY[node.op].category
        outs = []
        for o in node.outputs:
            if not o:
                continue
            v = graph.values[o]
            known = " = " + ("values of dims" if v.is_symbolic else "constant") if v.const is not None else ""
            outs.append(f"{_printable(o)}: {_shape_text(v.shape)}{known}")
        rows.append((_printable(node.name), node.op, f"{int(cat)} {cat.name.lower()}", "; ".join(outs)))
    header = ("node", "op", "category", "output shapes")
    widths = [min(40, max(len(r[i]) for r in rows + [header])) for i in range(3)]
    fmt = lambda r: "  ".join(c[:w].ljust(w) for c, w in zip(r[:3], widths)) + "  " + r[3]  # noqa: E731
    lines += ["", fmt(header), fmt(tuple("-" * w for w in widths) + ("-" * 13,))] + [fmt(r) for r in rows]
    lines.append("outputs: " + ", ".join(f"{graph.public(o)!r} {_shape_text(graph.values[o].shape)}"
                                         for o in graph.outputs))
    return "\n".join(lines)


def _default_notice(names, ranges) -> str:
    return ("note: no --dim for " + ", ".join(f"{n!r}" for n in names) + "; using the default range "
            + ", ".join(f"{n}={ranges[n][0]}:{ranges[n][1]}" for n in names)
            + " (memory is planned for the maximum: give --dim to narrow it)")


def _smoke_run(model, threads: int) -> str:
    """Runs the library on zeros at every input's smallest shape."""
    import numpy as np

    feeds = {i["name"]: np.zeros([lo for lo, _ in i["ranges"]], i["dtype"]) for i in model.input_info}
    model.set_threads(threads)
    t0 = time.perf_counter()
    model.run(feeds)
    ms = (time.perf_counter() - t0) * 1e3
    shapes = ", ".join(f"{k}={list(v.shape)}" for k, v in feeds.items())
    return f"checked: ran at {shapes} with {model.threads} thread(s) in {ms:.2f} ms"


def run(args, err) -> int:
    import dydca
    from .frontends import from_onnx

    dims = dict(parse_dim(d) for d in args.dim)
    if args.shape_class:
        if dims:
            raise UsageError("give either --dim or --shape-class, not both")
        dims = [dict(parse_dim(d) for d in c.split(",")) for c in args.shape_class]
    shapes = dict(parse_input_shape(s) for s in args.input_shape)
    say = (lambda m: None) if args.quiet else (lambda m: print(f"dydca-compile: {m}", file=err))

    if args.explain:
        graph = from_onnx(args.model, dims, shapes)
        print(explain(graph))
        if graph.dims.defaulted:
            print(_default_notice(graph.dims.defaulted, graph.dims.ranges), file=err)
        if not args.out:
            return 0

    t0 = time.perf_counter()
    model = dydca.compile(args.model, dims=dims, out_dir=args.out, input_shapes=shapes or None,
                          name=args.name, target=args.target, cache=not args.no_cache, progress=say)
    m = model.manifest
    if m.get("defaulted_dims") and not args.explain:
        print(_default_notice(m["defaulted_dims"], m["dims"]), file=err)
    print(f"built {model.build_dir / m['library']} and {model.build_dir / m['header']} "
          f"in {time.perf_counter() - t0:.1f} s; arena {m['arena_bytes']:,} bytes at the maximum dims",
          file=err)
    if args.threads is not None:
        print(_smoke_run(model, args.threads), file=err)
    if args.profile:
        print(_profile(model, dict(parse_input_shape(p) for p in args.profile)))
    return 0


def _profile(model, shapes: dict) -> str:
    """Per-kernel times at the given input shapes (random inputs, seeded)."""
    import numpy as np

    rng = np.random.default_rng(0)
    missing = [i["name"] for i in model.input_info if i["name"] not in shapes]
    if missing:
        raise UsageError(f"--profile needs a shape for every input; missing: {missing}")
    feeds = {}
    for i in model.input_info:
        shape = [int(d) for d in shapes[i["name"]]] if shapes[i["name"]] != ["-"] else []
        feeds[i["name"]] = (rng.standard_normal(shape) if i["dtype"].kind == "f" else np.zeros(shape)).astype(i["dtype"])
    rows = model.profile(feeds)
    head = ", ".join(f"{k}={list(v.shape)}" for k, v in feeds.items())
    return f"profile at {head}, {model.threads} thread(s), mean of 20 runs after 2 warm-up runs:\n" + model.profile_table(rows)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_ops:
        print(list_ops())
        return 0
    if not args.model:
        parser.error("the model file is required")
    if not args.out and not args.explain:
        parser.error("nothing to do: give -o DIR to build the library, or --explain")
    err = sys.stderr
    try:
        return run(args, err)
    except (UsageError, ValueError, OSError, MemoryError) as e:
        # ValueError covers ModelError (the model) and bad dims; OSError a missing model file or
        # an output folder that cannot be written; MemoryError dims so wide that the arena does
        # not fit. DYDCA_DEBUG=1 shows the traceback instead.
        if os.environ.get("DYDCA_DEBUG"):
            raise
        print(f"dydca-compile: error: {_one_line(e)}", file=err)
        return EXIT_USAGE
    except RuntimeError as e:  # the C++ build failed: dydca's fault, not the user's; say why
        if os.environ.get("DYDCA_DEBUG"):
            raise
        print(f"dydca-compile: build failed: {e}", file=err)
        return EXIT_BUILD
    except KeyboardInterrupt:
        print("dydca-compile: interrupted", file=err)
        return 130


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
