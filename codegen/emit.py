"""Renders a planned graph into C++ sources through the target's Jinja templates.

Each node becomes one function named after its index and op; its body is its op's kernel template,
rendered with the node's tensors as `TensorRef`s (C++ pointer and shape expressions) and the
parameters its op's `lower` computed (packed weights, resolved pads, ...). No string from the model
reaches the sources except through the `comment` and `cstr_inner` filters.
"""
from __future__ import annotations

import copy
import hashlib
import math
import re
from dataclasses import dataclass, field

import jinja2
import numpy as np
import onnx
from onnx import helper

from dydca.compiler.planner import Plan
from dydca.frontends.ir import Graph, Node
from dydca.frontends.ops import REGISTRY, Fusion, ModelError
from dydca.frontends.symbolic import as_dim, to_cpp

from .targets import Target

CTYPES = {"float32": "float", "int64": "int64_t", "int32": "int32_t", "bool": "bool", "uint8": "uint8_t"}


def ctype(dtype) -> str:
    return CTYPES[np.dtype(dtype).name]


def comment(text) -> str:
    """Model text made safe inside a // or /* */ comment: printable ASCII, no comment delimiters."""
    s = "".join(c if 32 <= ord(c) < 127 and c != "\\" else "?" for c in str(text))
    return s.replace("*/", "*?").replace("/*", "?*")


def cstr_inner(text) -> str:
    """Model text as the inside of a C string literal: anything but [A-Za-z0-9 _.,:-] escaped."""
    out = []
    for b in str(text).encode("utf-8"):
        c = chr(b)
        out.append(c if re.match(r"[A-Za-z0-9 _.,:/+=-]", c) else f"\\{b:03o}")
    return "".join(out)


def ident(text) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", str(text))
    return ("m_" + s) if not s or s[0].isdigit() else s


def c_float(x: float) -> str:
    x = float(x)
    if math.isnan(x):
        return "std::numeric_limits<float>::quiet_NaN()"
    if math.isinf(x):
        return ("" if x > 0 else "-") + "std::numeric_limits<float>::infinity()"
    return repr(float(np.float32(x))) + "f"


@dataclass
class TensorRef:
    """A tensor as kernel templates see it."""

    # C++ pointer expression (typed), or a function making it: a constant enters the blob only
    # when a kernel reads `ptr` (a kernel that packs it at compile time embeds just the packed form)
    ptr_source: object
    ctype: str
    shape: list  # C++ int64 expressions
    dims: tuple  # sympy dims
    static: list | None  # ints when the whole shape is fixed
    const: np.ndarray | None = None  # contents known at compile time (numeric or symbolic)

    @property
    def ptr(self) -> str:
        if callable(self.ptr_source):
            self.ptr_source = self.ptr_source()
        return self.ptr_source

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> str:
        return " * ".join(f"({d})" for d in self.shape) or "INT64_C(1)"

    def dim(self, i: int) -> str:
        return self.shape[i]


@dataclass
class KernelCtx:
    node: Node
    fn: str
    ins: list  # TensorRef | None
    outs: list
    attrs: dict
    emitter: "Emitter"
    params: dict = field(default_factory=dict)

    def fail(self, message):
        raise ModelError(self.node, message)

    def blob(self, array: np.ndarray, c_type: str | None = None) -> str:
        """Adds a compile-time array (e.g. packed weights) to the constant blob; returns a pointer."""
        return self.emitter.add_blob(array, c_type)

    def dimexpr(self, expr) -> str:
        return self.emitter.dim(expr)

    def functor(self, ret: str, params: list, expr: str) -> str:
        """A stateless function object `ret (params...) { return expr; }` as a named type: nodes
        with the same expression share it, and with it their kernel's instantiation."""
        return self.emitter.add_functor(ret, params, expr)


class Emitter:
    def __init__(self, graph: Graph, plan: Plan, target: Target, prefix: str):
        self.graph, self.plan, self.target, self.prefix = graph, plan, target, prefix
        self.symbols = {n: f"f.s[{k}]" for k, n in enumerate(graph.dims.all_names)}
        self.functors: dict[str, str] = {}  # definition -> type name
        # every kernel of the model, nested ones too, in the order they are rendered: its label and
        # the index of the kernel (If, Loop) that runs it, -1 at the top (profiling)
        self.all_kernels: list[dict] = []
        self._parents: list[int] = []  # the kernels whose lowering is rendering this one
        self.blob_parts: list[bytes] = []
        self.blob_size = 0
        self._blob_index: dict[bytes, int] = {}
        # a target may extend another's templates (target.template_path: more folders)
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(
                                          [str(target.template_dir), *map(str, target.template_path)]),
                                      undefined=jinja2.StrictUndefined, trim_blocks=True,
                                      lstrip_blocks=True, keep_trailing_newline=True)
        self.env.filters.update(comment=comment, cstr_inner=cstr_inner, ident=ident, c_float=c_float)
        self.env.globals.update(c_float=c_float, ctype=ctype)

    # ---- expressions ----
    def dim(self, expr) -> str:
        return to_cpp(expr, self.symbols)

    def add_functor(self, ret: str, params: list, expr: str) -> str:
        body = f"{ret} operator()({', '.join(params)}) const {{ return {expr}; }}"
        if body not in self.functors:
            self.functors[body] = f"Fn{len(self.functors)}"
        return self.functors[body]

    def add_blob(self, array: np.ndarray, c_type: str | None = None) -> str:
        data = np.ascontiguousarray(array).tobytes()
        key = hashlib.sha1(data).digest() + str(c_type or array.dtype).encode()
        if key not in self._blob_index:
            self._blob_index[key] = self.blob_size
            self.blob_parts.append(data)
            pad = (-len(data)) % 64
            self.blob_parts.append(b"\0" * pad)
            self.blob_size += len(data) + pad
        t = c_type or ctype(array.dtype)
        return f"reinterpret_cast<const {t}*>({self.prefix}_blob + {self._blob_index[key]})"

    def tensor(self, name: str) -> TensorRef:
        v = self.graph.values[name]
        t = ctype(v.dtype)
        b = self.plan.storage(name) if name in self.plan.buffers else None
        if b is None or b.kind == "const" or (v.is_const and b.kind not in ("output", "arena")):
            ptr = lambda: self.add_blob(v.const.astype(v.dtype), t)  # noqa: E731
        elif b.kind == "input":
            ptr = f"static_cast<const {t}*>(f.in[{b.index}])"
        elif b.kind == "output":
            ptr = f"static_cast<{t}*>(f.out[{b.index}])"
        else:
            ptr = f"reinterpret_cast<{t}*>(f.arena + {b.offset})"
        static = [int(d) for d in v.shape] if v.static_shape else None
        return TensorRef(ptr, t, [self.dim(d) for d in v.shape], tuple(v.shape), static, v.const)

    # ---- kernels ----
    def kernel(self, step: int, node: Node) -> dict:
        op = REGISTRY[node.op]
        fn = f"n{step}_{node.op.lower()}"
        kid = len(self.all_kernels)
        self.all_kernels.append({"label": f'{node.op} node "{node.name}"',
                                 "parent": self._parents[-1] if self._parents else -1})
        self._parents.append(kid)
        try:
            out = self._kernel(step, node, op, fn)
        finally:
            self._parents.pop()
        out["id"] = kid
        return out

    def _kernel(self, step: int, node: Node, op, fn: str) -> dict:
        ins = [self.tensor(i) if i and k not in op.static_inputs else None
               for k, i in enumerate(node.inputs)]
        outs = [self.tensor(o) for o in node.outputs if o]
        from dydca.frontends.ops import with_defaults
        static_ins = {k: self.graph.values[i].const for k, i in enumerate(node.inputs)
                      if i and k in op.static_inputs}
        scratch = self.plan.scratch.get(step)
        k = KernelCtx(node, fn, ins, outs, with_defaults(op, node), self,
                      {"static_ins": static_ins,
                       "scratch": f"static_cast<void*>(f.arena + {scratch.offset})" if scratch else "nullptr"})
        n_functors = len(self.functors)
        symbolic_out = all(self.graph.values[o].is_symbolic for o in node.outputs if o)
        data = node.input(op.data_input)
        if data and op.data_input not in op.static_inputs and not symbolic_out:
            dtype = self.graph.values[data].dtype.name
            if dtype not in op.dtypes:  # refuse here rather than fail in g++
                raise ModelError(node, f"element type {dtype} is not supported by {node.op} "
                                       f"(supported: {', '.join(op.dtypes)})")
        template = "fill" if symbolic_out else op.kernel
        if template is None:
            raise ModelError(node, f"has no kernel for the {self.target.name} target")
        if op.lower is not None and not symbolic_out:
            k.params.update(op.lower(k) or {})
        try:
            body = self.render_kernel(template, k)
        except jinja2.TemplateError as e:
            raise ModelError(node, f"kernel template {template} failed: {e}") from e
        # functors this kernel introduced are defined just before it (after its heading comment, so
        # a g++ error in one points at the node that first used it)
        functors = [{"name": n, "body": b} for b, n in list(self.functors.items())[n_functors:]]
        return {"fn": fn, "op": node.op, "node_name": node.name, "body": body.rstrip(),
                "fused": node.attrs.get("fused_from", ""), "functors": functors}

    def render_kernel(self, template: str, k: KernelCtx) -> str:
        """The body of a node's function (a target's emitter may render it otherwise)."""
        return self.env.get_template(f"kernels/{template}.j2").render(k=k, **k.params)

    def bind_checks(self) -> list[str]:
        lines, names = [], self.graph.dims.names
        for i, name in enumerate(self.graph.inputs):
            v = self.graph.values[name]
            for d, dim in enumerate(v.shape):
                where = f"input \\\"{cstr_inner(name)}\\\" dimension {d}"
                got = f"in_shapes[{i}][{d}]"
                if as_dim(dim).is_Integer:
                    lines.append(
                        f"if ({got} != {int(dim)}) {{ err = std::string(\"{where} is \") + "
                        f"std::to_string({got}) + \", the model fixes it to {int(dim)}\"; return false; }}")
                    continue
                k = names.index(str(dim))
                lo, hi = self.graph.dims.ranges[str(dim)]
                sname = cstr_inner(str(dim))
                lines.append(
                    f"if (!seen[{k}]) {{\n"
                    f"  if ({got} < {lo} || {got} > {hi}) {{ err = std::string(\"{where} ({sname}) is \") + "
                    f"std::to_string({got}) + \", outside the compiled range [{lo}, {hi}]\"; return false; }}\n"
                    f"  f.s[{k}] = {got}; seen[{k}] = true;\n"
                    f"}} else if ({got} != f.s[{k}]) {{ err = std::string(\"{where} ({sname}) is \") + "
                    f"std::to_string({got}) + \" but another input set {sname} to \" + std::to_string(f.s[{k}]); return false; }}")
        return lines + self.class_check()

    def class_check(self) -> list[str]:
        """With shape classes, the bound dims must fall together in one of them."""
        classes, names = self.graph.dims.classes, self.graph.dims.names
        if not classes:
            return []
        inside = " || ".join("(" + " && ".join(f"f.s[{k}] >= {c[n][0]} && f.s[{k}] <= {c[n][1]}"
                                               for k, n in enumerate(names)) + ")" for c in classes)
        got = ' + ", " + '.join(f'"{cstr_inner(n)}=" + std::to_string(f.s[{k}])' for k, n in enumerate(names))
        allowed = cstr_inner(" or ".join("{" + ", ".join(f"{n} in [{lo}, {hi}]" for n, (lo, hi) in c.items()) + "}"
                                         for c in classes))
        return [f'if (!({inside})) {{ err = std::string("dims ") + {got} + '
                f'" fall in no shape class the model was compiled for: {allowed}"; return false; }}']

    def io(self, names, is_input: bool) -> list[dict]:
        out = []
        for j, name in enumerate(names):
            v = self.graph.values[name]
            ranges = [(self.graph.dims.lower_bound(d), self.graph.dims.upper_bound(d)) for d in v.shape]
            out.append({"index": j, "name": name if is_input else self.graph.public(name),
                        "dtype": v.dtype.name, "onnx_dtype": helper.np_dtype_to_tensor_dtype(v.dtype),
                        "rank": len(v.shape), "ranges": ranges,
                        "shape": [self.dim(d) for d in v.shape],
                        "dims_doc": ", ".join(str(d) for d in v.shape)})
        return out

    def runs_code(self, node: Node) -> bool:
        """Alias ops the planner mapped onto their input's buffer move no data: no kernel."""
        return not (REGISTRY[node.op].fusion == Fusion.ALIAS and
                    all(self.plan.buffers[o].kind == "alias" for o in node.outputs if o))

    def kernels(self) -> list[dict]:
        return [self.kernel(s, n) for s, n in enumerate(self.plan.schedule) if self.runs_code(n)]

    def branch(self, graph: Graph, plan: Plan) -> "Emitter":
        """An emitter for a sub-graph (an If branch) with its own values and plan, sharing this
        one's symbols, templates, functors and constant blob."""
        sub = copy.copy(self)
        sub.graph, sub.plan = graph, plan
        sub.add_blob = self.add_blob  # one blob per model: offsets are counted by the top emitter
        return sub

    def render(self, version: str, blob_path: str) -> dict[str, str]:
        kernels = self.kernels()
        ctx = dict(version=version, model_name=self.graph.name, prefix=self.prefix, kernels=kernels,
                   all_kernels=self.all_kernels,
                   includes=self.target.includes(), arena_bytes=self.plan.arena_bytes,
                   symbols=[{"name": n, "lo": lo, "hi": hi} for n, (lo, hi) in self.graph.dims.ranges.items()],
                   runtime_symbols=[{"name": n, "slot": self.dim(self.graph.dims.runtime_dim(n, b)),
                                     "bound": self.dim(b), "bound_doc": str(b)}
                                    for n, b in self.graph.dims.runtime.items()],
                   bind_checks=self.bind_checks(), inputs=self.io(self.graph.inputs, True),
                   outputs=self.io(self.graph.outputs, False), blob_file="weights.bin",
                   blob_path=blob_path)
        ctx.update(self.target_context())  # a target's own template parameters
        return {f"{self.prefix}.cpp": self.env.get_template("model.cpp.j2").render(**ctx),
                f"{self.prefix}.h": self.env.get_template("model.h.j2").render(**ctx),
                f"{self.prefix}_blob.S": self.env.get_template("blob.S.j2").render(**ctx)}

    def target_context(self) -> dict:
        """Extra parameters of the model template, computed after every kernel is rendered
        (a target's emitter subclass adds its own; cpp has none)."""
        return {}

    def blob(self) -> bytes:
        return b"".join(self.blob_parts)
