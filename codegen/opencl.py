"""The opencl target's code generation: host C++ through the cpp model template, device code in
OpenCL C.

Each node that computes becomes one OpenCL kernel (codegen/templates/opencl/kernels/<op>.cl.j2)
plus a host function enqueueing it. Control flow stays on the host: If through the cpp `if.j2`,
reading back only its condition byte; Loop through opencl/kernels/loop.j2 (device-to-device copies,
one condition byte back per trip). Every kernel takes the same arguments (arena, constants, status
word, input/output buffers, then the call's symbols as scalars), so a tensor is addressed on the
device exactly as on the CPU: the planner's arena offset, the blob offset, or the input/output
buffer. A kernel refusing its inputs (Gather's index out of range) records it in the status word,
which the run reads back once at its end.

Most ops reuse their cpp lowering (`OpDef.lower`): its parameters are dim expressions and pointers,
and the pointers here are device expressions. The C++ spellings those expressions carry
(`std::max<int64_t>`, `INT64_C`, `dydca::floordiv`, `static_cast<T>`, functional casts, `f.s[k]`)
are rewritten to OpenCL C by `to_opencl` over each finished kernel. Conv, ConvTranspose, MatMul and
Gemm have their own lowering here (the cpp ones pack weights for the CPU kernels). NonZero and
TopK run their cpp kernels on the host between a read-back of their inputs and a write of their
outputs ("staged"). An op without either is refused at compile time, naming the node.
"""
from __future__ import annotations

import copy
import dataclasses
import re

import numpy as np
import sympy

from dydca.frontends.ops import REGISTRY, ModelError
from dydca.frontends.symbolic import as_dim

from .emit import Emitter, TensorRef, comment, ctype

# template (OpDef.kernel) -> where it runs: "device" (an OpenCL kernel <name>.cl.j2), "host" (the
# cpp template of the same name, run by the host: control flow) or "staged" (the cpp kernel on the
# host over copies of its tensors: ops whose output extent the data decides, outside the ops the
# target is for)
SUPPORTED = {
    "conv": "device", "elementwise": "device", "strided_copy": "device", "alias": "device",
    "fill": "device", "concat": "device", "split": "device", "pad": "device", "pool": "device",
    "resize": "device", "reduce": "device", "gather": "device",
    "batchnorm": "device", "constant_of_shape": "device", "range": "device", "matmul": "device",
    "gemm": "device", "softmax": "device", "layernorm": "device", "lrn": "device", "if": "host", "loop": "host",
    "nonzero": "staged", "topk": "staged",
}

DEVICE_TEMPLATES = {"gemm": "matmul"}  # templates one device kernel serves

DEVICE_TYPES = {"bool": "uchar"}  # buffers of bool hold one byte per element


def dev_ctype(c_type: str) -> str:
    return DEVICE_TYPES.get(c_type, c_type)


# ---- C++ expression text -> OpenCL C ----

_CASTABLE = r"float|double|int64_t|int32_t|uint8_t|bool"


def _functional_casts(text: str) -> str:
    """T(x) -> ((T)(x)) for the scalar types (C has no functional casts)."""
    out, pos = [], 0
    for m in re.finditer(rf"(?<![\w.)])({_CASTABLE})\(", text):
        if m.start() < pos:
            continue
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            j += 1
        out.append(text[pos:m.start()])
        out.append(f"(({m.group(1)})({_functional_casts(text[m.end():j - 1])}))")
        pos = j
    out.append(text[pos:])
    return "".join(out)


_REWRITES = [
    (re.compile(r"\bf\.s\[(\d+)\]"), r"s\1"),  # the call's symbols are kernel arguments s0, s1, ...
    (re.compile(r"std::numeric_limits<\w+>::infinity\(\)"), "INFINITY"),
    (re.compile(r"std::numeric_limits<\w+>::quiet_NaN\(\)"), "NAN"),
    (re.compile(r"std::(max|min)(<[\w ]+>)?\("), r"\1("),
    (re.compile(r"std::abs\("), "dydca_abs("),
    (re.compile(r"std::(\w+)\("), r"\1("),
    (re.compile(r"static_cast<(\w+)>"), r"(\1)"),
    (re.compile(r"dydca::mod<true>"), "dydca_fmod"),
    (re.compile(r"dydca::mod<false>"), "dydca_mod"),
    (re.compile(r"dydca::(\w+)(<[\w ]+>)?"), r"dydca_\1"),
]


def to_opencl(text: str) -> str:
    for pattern, repl in _REWRITES:
        text = pattern.sub(repl, text)
    return _functional_casts(text)


def c_string_lines(text: str) -> list[str]:
    """`text` as the insides of C string literals, one per line (each keeps its newline)."""
    def esc(line):
        return "".join(c if 32 <= ord(c) < 127 and c not in '\\"?' else f"\\{ord(c):03o}"
                       for c in line) + "\\n"
    return [esc(line) for line in text.split("\n")]


# ---- tensors on the device ----

class DeviceRef(TensorRef):
    """A TensorRef whose `ptr` is an OpenCL C pointer expression; `host_mem` and `host_offset`
    locate it for the host (the If condition read-back)."""

    def __init__(self, *args, host_mem: str = "", host_offset: int = 0, **kw):
        super().__init__(*args, **kw)
        self.host_mem, self.host_offset = host_mem, host_offset


@dataclasses.dataclass
class Local:
    """A kernel's work-group size per shape class: [(class condition as C++ or None, sizes)]; the
    first whose condition holds applies (None: every call)."""

    variants: list

    def describe(self) -> str:
        return " or ".join("x".join(map(str, sizes)) for _, sizes in self.variants)

    def host_code(self) -> str:
        """C++ declaring `local` (const size_t*) for this call."""
        if len(self.variants) == 1:
            sizes = self.variants[0][1]
            return f"static const size_t local[{len(sizes)}] = {{ {', '.join(map(str, sizes))} }};"
        lines = [f"static const size_t local{j}[{len(sizes)}] = {{ {', '.join(map(str, sizes))} }};"
                 for j, (_, sizes) in enumerate(self.variants)]
        pick = "".join(f"({cond}) ? local{j} : " for j, (cond, _) in enumerate(self.variants[:-1]))
        return "\n".join(lines) + f"\nconst size_t* local = {pick}local{len(self.variants) - 1};  // by shape class"


def _pow2_at_most(n: int, cap: int) -> int:
    p = 1
    while p * 2 <= min(max(n, 1), cap):
        p *= 2
    return p


class OpenCLEmitter(Emitter):
    """Renders host C++ (cpp model template extended by opencl/model.cpp.j2) and one OpenCL C
    program of every device kernel."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.device_kernels: list[str] = []  # OpenCL C source of each device kernel
        # the model's inputs and outputs (kept by branch emitters, whose graph is a branch's view)
        self.n_in = len(self.graph.inputs)
        self.n_io = self.n_in + len(self.graph.outputs)
        # kernels that check their inputs' values (Gather's indices): the run then reads the status
        # word back (a list, shared with the branch emitters)
        self.checking_kernels: list[int] = []
        self._staged: list | None = None  # while rendering a staged op: its tensors' host copies

    # ---- addressing ----
    def add_blob(self, array: np.ndarray, c_type: str | None = None) -> str:
        ptr = super().add_blob(array, c_type)  # reinterpret_cast<const T*>(<prefix>_blob + off)
        off = int(ptr.rsplit("+", 1)[1].strip(" )"))
        return f"((__global const {dev_ctype(c_type or ctype(array.dtype))}*)(blob + {off}))"

    def tensor(self, name: str) -> TensorRef:
        ref = self.device_tensor(name)
        if self._staged is None:
            return ref
        v = self.graph.values[name]
        if not ref.host_mem:  # a constant: the host reads its copy in the library's blob
            ref.ptr_source = lambda: Emitter.add_blob(self, v.const.astype(v.dtype), ref.ctype)
            return ref
        j = len(self._staged)
        self._staged.append(dict(name=name, ref=ref, var=f"st{j}",
                                 bound=self.dim(self.graph.dims.at_bounds(self.numel_dim(ref)))))
        ref.ptr_source = f"reinterpret_cast<{ref.ctype}*>(st{j}.data())"
        return ref

    def device_tensor(self, name: str) -> DeviceRef:
        v = self.graph.values[name]
        t, dt = ctype(v.dtype), dev_ctype(ctype(v.dtype))
        b = self.plan.storage(name) if name in self.plan.buffers else None
        mem, off = "", 0
        if b is None or b.kind == "const" or (v.is_const and b.kind not in ("output", "arena")):
            ptr = lambda: self.add_blob(v.const.astype(v.dtype), t)  # noqa: E731
        elif b.kind == "input":
            ptr, mem = f"((__global const {dt}*)io{b.index})", f"f.dev->io[{b.index}]"
        elif b.kind == "output":
            j = self.n_in + b.index  # the model's outputs follow its inputs
            ptr, mem = f"((__global {dt}*)io{j})", f"f.dev->io[{j}]"
        else:
            ptr, mem, off = f"((__global {dt}*)(arena + {b.offset}))", "f.dev->arena", b.offset
        static = [int(d) for d in v.shape] if v.static_shape else None
        return DeviceRef(ptr, t, [self.dim(d) for d in v.shape], tuple(v.shape), static, v.const,
                         host_mem=mem, host_offset=off)

    # ---- kernels ----
    def _kernel(self, step, node, op, fn):
        """The cpp flow with this target's lowering: the host's for control flow (If, Loop), the
        device's (OPENCL_LOWER, else the op's own) for the rest."""
        symbolic_out = all(self.graph.values[o].is_symbolic for o in node.outputs if o)
        where = SUPPORTED.get("fill" if symbolic_out else op.kernel)
        if where is None:
            raise ModelError(node, f"operator {node.op} is not supported by the opencl target "
                                   f"(compile with target=\"cpp\")")
        if where == "staged":
            return self._staged_kernel(step, node, op, fn)
        lower = HOST_LOWER[node.op] if where == "host" else OPENCL_LOWER.get(node.op, op.lower)
        return super()._kernel(step, node, dataclasses.replace(op, lower=lower), fn)

    def _staged_kernel(self, step, node, op, fn):
        """The cpp kernel on the host: its inputs read back, its outputs (sized at their bound)
        written to the device after it ran, at the extent it decided; its scratch on the host."""
        self._staged = []
        try:
            out = super()._kernel(step, node, op, fn)
        finally:
            staged, self._staged = self._staged, None
        body = out["body"]
        pre = [f"// {node.op} runs on the host over copies of its tensors"]
        scratch = self.plan.scratch.get(step)
        if scratch is not None:
            pre.append(f"std::vector<unsigned char> host_scratch({scratch.bytes});")
            body = body.replace(f"static_cast<void*>(f.arena + {scratch.offset})", "static_cast<void*>(host_scratch.data())")
        post = []
        for t in staged:
            r, size = t["ref"], f"sizeof({t['ref'].ctype})"
            if t["name"] in node.outputs:
                pre.append(f"std::vector<unsigned char> {t['var']}(size_t({t['bound']}) * {size});")
                post.append(f"f.dev->write({r.host_mem}, {r.host_offset}, size_t({r.numel}) * {size}, {t['var']}.data());")
            else:
                pre.append(f"std::vector<unsigned char> {t['var']}(size_t({r.numel}) * {size});")
                pre.append(f"f.dev->read({r.host_mem}, {r.host_offset}, {t['var']}.size(), {t['var']}.data());")
        out["body"] = "\n".join(pre + ["{", body, "}"] + post)
        return out

    def render_kernel(self, template: str, k) -> str:
        """A device op: its OpenCL kernel (added to the program) and, as the node's host body, the
        code enqueueing it. Host ops render their cpp template."""
        if SUPPORTED[template] != "device":
            return super().render_kernel(template, k)
        kid = self._parents[-1]
        name = f"k{kid}_{k.node.op.lower()}"
        module = self.env.get_template(f"kernels/{DEVICE_TEMPLATES.get(template, template)}.cl.j2").make_module(
            dict(k=k, dev_ctype=dev_ctype, kernel_id=kid, **k.params))
        body = str(module).strip()
        if getattr(module, "checks_inputs", False):
            self.checking_kernels.append(kid)
        launch = getattr(module, "launch", None)
        if not launch:  # nothing to compute (a view of its input's buffer)
            return f"// no data movement: {body or 'view'}"
        self.all_kernels[kid]["device"] = name
        glob, local = launch["global"], launch["local"]
        local = local if isinstance(local, Local) else Local([(None, tuple(local))])
        self.device_kernels.append(f'// {k.node.op} node "{comment(k.node.name)}", work-groups of {local.describe()}\n'
                                   f"__kernel void {name}(DYDCA_KERNEL_ARGS) {{\n{to_opencl(body)}\n}}\n")
        return (f"const int64_t global[{len(glob)}] = {{ {', '.join(glob)} }};\n"
                f"{local.host_code()}\n"
                f"f.dev->launch({kid}, \"{name}\", f.s, kNumSymbols, {len(glob)}, global, local, f.prof != nullptr);")

    @staticmethod
    def numel_dim(ref) -> sympy.Expr:
        return sympy.Mul(*[as_dim(d) for d in ref.dims])

    def per_class(self, sizes) -> Local:
        """Local sizes `sizes(dims)` (dims: a SymbolScope) for each shape class, with the condition
        on the call's dims that selects it; one entry where every class agrees (or none declared)."""
        dims = self.graph.dims
        if not dims.classes:
            return Local([(None, sizes(dims))])
        variants = []
        for cls in dims.classes:
            one = copy.copy(dims)
            one.classes = [cls]
            cond = " && ".join(f"f.s[{k}] >= {cls[n][0]} && f.s[{k}] <= {cls[n][1]}" for k, n in enumerate(dims.names))
            variants.append((cond, sizes(one)))
        if len({v for _, v in variants}) == 1:
            return Local([(None, variants[0][1])])
        return Local(variants)

    def local_1d(self, count) -> Local:
        """Work-group size of a flat kernel over `count` items: 64 (a few wavefronts / warps, and
        vector-width multiples on CPU devices), less in a shape class whose counts are smaller."""
        return self.per_class(lambda dims: (_pow2_at_most(dims.upper_bound(as_dim(count)), 64),))

    def local_2d(self, width, height) -> Local:
        """Work-group of a per-pixel kernel: up to 16 columns x 4 rows (64 items whose reads of a
        row are adjacent), narrowed to the largest width/height of each shape class."""
        def sizes(dims):
            lx = _pow2_at_most(dims.upper_bound(as_dim(width)), 16)
            return lx, _pow2_at_most(dims.upper_bound(as_dim(height)), 64 // lx), 1
        return self.per_class(sizes)

    def target_context(self) -> dict:
        n_sym = len(self.graph.dims.all_names)
        args = ["__global uchar* arena", "__global const uchar* blob", "__global long* status"]
        args += [f"__global uchar* io{j}" for j in range(self.n_io)]
        args += [f"const long s{j}" for j in range(n_sym)]
        prelude = self.env.get_template("kernels/_prelude.cl").render()
        source = (prelude + f"#define DYDCA_KERNEL_ARGS {', '.join(args)}\n\n" + "\n".join(self.device_kernels))
        return {"device_source_lines": c_string_lines(source), "blob_bytes": self.blob_size,
                "n_inputs": self.n_in, "io_count": self.n_io, "device_checks": bool(self.checking_kernels)}


# ---- lowerings specific to the device ----

def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def channel_block(mg: int) -> int:
    """Output channels one conv work-item computes: the largest of 32, 16, 8, 4 that the group's
    channels fill (3 take a padded 4; fewer, depthwise included, their own count). Each input
    value loaded then feeds MB multiply-adds. Measured on PoCL's CPU device (1x3x270x480, best of
    7, each pair side by side in one process on the shared 2-core machine): MB 8 vs 4: espcn 819
    vs 1428 ms, edsr 2258 vs 4404; 16 vs 8: 505 vs 770, 1349 vs 2347; 32 vs 16: 391 vs 475, 597
    vs 738. Not yet measured on a GPU, where fewer, heavier work-items may trade differently on
    small patches."""
    for mb in (32, 16, 8, 4):
        if mg >= mb:
            return mb
    return 4 if mg == 3 else mg


def pack_conv_weights(w: np.ndarray, group: int, transpose: bool, mb: int) -> np.ndarray:
    """Weights as [G, Mg/MB, Cg, KH, KW, MB] (zero-padded channels): a work-item's MB output
    channels of one tap are adjacent. w: Conv [M, Cg, KH, KW] or ConvTranspose [C, Mg, KH, KW]."""
    if transpose:
        c, mg = w.shape[:2]
        canon = w.reshape(group, c // group, mg, *w.shape[2:]).transpose(0, 2, 1, 3, 4)
    else:
        canon = w.reshape(group, w.shape[0] // group, *w.shape[1:])
    g, mg, cg, kh, kw = canon.shape
    nb = _ceil(mg, mb)
    padded = np.zeros((g, nb * mb, cg, kh, kw), np.float32)
    padded[:, :mg] = canon
    return np.ascontiguousarray(padded.reshape(g, nb, mb, cg, kh, kw).transpose(0, 1, 3, 4, 5, 2))


def _lower_conv(k, transpose: bool) -> dict:
    from dydca.frontends.ops.conv import _is_number, _store, epilogue, geometry_2d

    x, wt, y = k.ins[0], k.ins[1], k.outs[0]
    if wt.static is None:
        k.fail("convolution weights must have a fixed shape")
    group = int(k.attrs.get("group", 1))
    g = geometry_2d(k, x.dims, wt.static, transpose)
    dims, _ = _store(k, y)  # the conv's own output dims (before a DepthToSpace store)
    shape = list(wt.static[:2]) + [1] * (x.rank == 3) + list(wt.static[2:])
    if transpose:
        cg, mg = shape[0] // group, shape[1]
    else:
        mg, cg = shape[0] // group, shape[1]
    mb = channel_block(mg)
    taps = int(np.prod(shape[2:]))
    if _is_number(wt):  # packed once, at compile time
        weights = k.blob(pack_conv_weights(np.asarray(wt.const, np.float32).reshape(shape), group, transpose, mb))
        onnx_layout = None
    else:  # run-time weights, read in the ONNX layout: the stride between input channels
        weights, onnx_layout = wt.ptr, dict(ci_stride=mg * taps if transpose else taps)
    em = k.emitter
    if x.rank == 3:
        h, wd, oh, ow = "INT64_C(1)", x.shape[2], "INT64_C(1)", k.dimexpr(dims[2])
        oh_dim, ow_dim = sympy.Integer(1), dims[2]
    else:
        h, wd, oh, ow = x.shape[2], x.shape[3], k.dimexpr(dims[2]), k.dimexpr(dims[3])
        oh_dim, ow_dim = dims[2], dims[3]
    expr, decls = epilogue(k, dims)
    store = k.attrs.get("store")
    bias = k.ins[2] if len(k.ins) > 2 else None
    return dict(
        transpose=transpose, kh=g["kernel"][0], kw=g["kernel"][1], sh=g["strides"][0], sw=g["strides"][1],
        dh=g["dilations"][0], dw=g["dilations"][1], group=group, cg=cg, mg=mg, mb=mb, nb=_ceil(mg, mb),
        pad_t=k.dimexpr(g["begin"][0]), pad_l=k.dimexpr(g["begin"][1]),
        n=x.shape[0], c=x.shape[1], h=h, wd=wd, oh=oh, ow=ow, m=k.dimexpr(dims[1]),
        weights=weights, onnx_layout=onnx_layout,
        bias=bias.ptr if bias is not None else None,
        epi_expr=expr,
        epi_decls=_global_decls(decls),
        d2s=None if not store else dict(b=int(store["blocksize"]), dcr=store["mode"] == "DCR"),
        local=em.local_2d(ow_dim, oh_dim),
    )


def _global_decls(decls: list[str]) -> list[str]:
    """Epilogue operand declarations (`const T* e = ptr;`) pointing into global memory."""
    return [re.sub(r"^const ", "__global const ", d) for d in decls]


def _lower_matmul(k) -> dict:
    """MatMul over broadcast batches, operands read in place (no packing)."""
    from dydca.frontends.ops.linalg import _batch_strides, epilogue, matmul_geometry

    a, b, y = k.ins[0], k.ins[1], k.outs[0]
    g = matmul_geometry(k, a.dims, b.dims)
    batch = list(g["batch"])
    expr, decls = epilogue(k, y, M_rows=g["M"], folded=False)
    return dict(M=k.dimexpr(g["M"]), N=k.dimexpr(g["N"]), K=k.dimexpr(g["K"]), nb=len(batch),
                bn=[k.dimexpr(d) for d in batch] or ["INT64_C(1)"],
                sa=_batch_strides(k, batch, g["a_batch"]), sb=_batch_strides(k, batch, g["b_batch"]),
                a=a.ptr, b=b.ptr, a_index="r * K + kk", b_index="kk * N + c",
                epi_expr=expr, epi_decls=_global_decls(decls), local=k.emitter.local_2d(g["N"], g["M"]))


def _lower_gemm(k) -> dict:
    """Gemm: alpha * A' B' + beta * C (C broadcast), transposes read through the indices."""
    from dydca.frontends.ops.linalg import _gemm_dims, gemm_epilogue

    a, b = k.ins[0], k.ins[1]
    M, K, N, ta, tb = _gemm_dims(k, a.dims, b.dims)
    expr, decls = gemm_epilogue(k, M)
    return dict(M=k.dimexpr(M), N=k.dimexpr(N), K=k.dimexpr(K), nb=0, bn=["INT64_C(1)"], sa=[], sb=[],
                a=a.ptr, b=b.ptr, a_index="kk * M + r" if ta else "r * K + kk",
                b_index="c * K + kk" if tb else "kk * N + c",
                epi_expr=expr, epi_decls=_global_decls(decls), local=k.emitter.local_2d(N, M))


def _lower_elementwise(k) -> dict:
    from dydca.frontends.ops.elementwise import broadcast_strides, lower

    params = lower(k)
    out = k.outs[0]
    flat = broadcast_strides(out, out.rank, out.dims)
    for x, ref in zip(params["operands"], [r for r in k.ins if r is not None]):
        x["flat"] = x["strides"] == flat
        x["scalar"] = all(s == "INT64_C(0)" for s in x["strides"])
        x["dctype"] = dev_ctype(x["ctype"])
    params["local"] = k.emitter.local_1d(k.emitter.numel_dim(out))
    return params


def _lower_if(k) -> dict:
    """The cpp If lowering with the condition read back from the device: one byte."""
    from dydca.frontends.control_flow import lower_if

    params = lower_if(k)
    value = k.emitter.graph.values[k.node.inputs[0]]
    if not (value.is_symbolic or value.is_const):  # else decided from the dims or at compile time
        cond = k.ins[0]
        params["cond"] = f"f.dev->read_flag({cond.host_mem}, {cond.host_offset})"
    return params


_LOCATION = [
    (re.compile(r"^\(\(__global (?:const )?\w+\*\)\(arena \+ (\d+)\)\)$"), "f.dev->arena"),
    (re.compile(r"^\(\(__global (?:const )?\w+\*\)\(blob \+ (\d+)\)\)$"), "f.dev->blob"),
    (re.compile(r"^\(\(__global (?:const )?\w+\*\)io(\d+)\)$"), "io"),
]


def host_location(ptr: str) -> tuple[str, str]:
    """(cl_mem expression, byte offset) on the host of a device pointer expression (DeviceRef.ptr)."""
    for pattern, mem in _LOCATION:
        m = pattern.match(ptr)
        if m:
            return (f"f.dev->io[{m.group(1)}]", "0") if mem == "io" else (mem, m.group(1))
    raise ValueError(f"not a device tensor address: {ptr}")


def _lower_loop(k) -> dict:
    """The cpp Loop lowering with every pointer turned into a host-side (buffer, offset)."""
    from dydca.frontends.loop import lower_loop

    params = lower_loop(k)

    def move(m):
        (dm, do), (sm, so) = host_location(m["dst"]), host_location(m["src"])
        return dict(m, dst_mem=dm, dst_off=do, src_mem=sm, src_off=so)

    for key in ("init", "carry", "final", "scans"):
        # a value the planner kept in place needs no copy
        params[key] = [move(m) for m in params[key] if m["dst"] != m["src"] or key == "scans"]
    for key in ("iter", "cond"):
        params[f"{key}_loc"] = host_location(params[f"{key}_ptr"])
    params["cond_out_loc"] = host_location(params["cond_out"])
    if params["cond_init"].endswith("[0]"):
        params["cond_init"] = "f.dev->read_flag({}, {})".format(*host_location(params["cond_init"][:-3]))
    return params


HOST_LOWER = {"If": _lower_if, "Loop": _lower_loop}

OPENCL_LOWER = {
    "Conv": lambda k: _lower_conv(k, False),
    "ConvTranspose": lambda k: _lower_conv(k, True),
    "MatMul": _lower_matmul,
    "Gemm": _lower_gemm,
}
for _name, _op in REGISTRY.items():
    if _op.kernel == "elementwise":
        OPENCL_LOWER[_name] = _lower_elementwise
    elif _op.kernel in SUPPORTED and SUPPORTED[_op.kernel] == "device" and _name not in OPENCL_LOWER:
        OPENCL_LOWER[_name] = _op.lower  # the cpp lowering: dim expressions and device pointers
