"""Element-wise operators: numpy-style broadcasting; the kernel is one template over a C++
expression of the inputs `a`, `b`, `c` of element type `T`."""
from __future__ import annotations

import re

import numpy as np
import sympy

from ..symbolic import as_dim
from . import BOOL, Category, F32, Fusion, OpDef, register

NUMERIC = ("float32", "int64", "int32")


def broadcast_shapes(ctx, shapes):
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = [s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0]
        non_one = [d for d in dims if as_dim(d) != 1]
        if not non_one:
            out.append(sympy.Integer(1))
            continue
        static = {int(d) for d in non_one if as_dim(d).is_Integer}
        if len(static) > 1:
            ctx.fail(f"inputs of shapes {[tuple(map(str, s)) for s in shapes]} do not broadcast")
        # a symbolic dim meeting a fixed one must equal it; two symbols are taken as equal
        out.append(sympy.Integer(static.pop()) if static else as_dim(non_one[0]))
    return tuple(out)


def _same_as_broadcast(dtype=None):
    def infer(ctx):
        ins = [v for v in ctx.ins if v is not None]
        return [(dtype or ins[0].dtype, broadcast_shapes(ctx, [v.shape for v in ins]))]
    return infer


def _symbolic_arith(fn):
    """Value rule for integer shape arithmetic on expression arrays (Add, Mul, ... of dims)."""
    def value(ctx):
        arrs = [np.asarray(v.const, dtype=object) for v in ctx.ins]
        return [np.frompyfunc(fn, len(arrs), 1)(*arrs)]
    return value


def _floor_div(a, b):
    return sympy.floor(sympy.Integer(1) * a / b) if not (isinstance(a, float) or isinstance(b, float)) else a / b


def unary(name, expr, dtypes=("float32",), attrs=None, since=1):
    register(OpDef(name, Category.SHAPE_FROM_SHAPES, _same_as_broadcast(), Fusion.ELEMENTWISE,
                   "elementwise", attrs=attrs or {}, expr=expr, dtypes=dtypes, since=since,
                   lower=lambda k: lower(k)))


def binary(name, expr, dtypes=NUMERIC, out=None, value=None):
    register(OpDef(name, Category.SHAPE_FROM_SHAPES, _same_as_broadcast(out), Fusion.ELEMENTWISE,
                   "elementwise", expr=expr, dtypes=dtypes, value=value,
                   lower=lambda k: lower(k)))


unary("Relu", "std::max(a, T(0))", NUMERIC)
# Branch-free versions (runtime_cpp/include/dydca/vmath.h): loops over them vectorise, library
# calls would run one element at a time (ESPCN's fused tanh epilogues); so does LeakyRelu / PRelu's
# select (FSRCNN's fused PRelu epilogues)
unary("Sigmoid", "dydca::sigmoid(a)")
unary("Tanh", "dydca::tanh(a)")
unary("Sqrt", "std::sqrt(a)")
unary("Exp", "std::exp(a)")
unary("Erf", "std::erf(a)")
unary("Neg", "-a", NUMERIC)
unary("Abs", "std::abs(a)", NUMERIC)
unary("Reciprocal", "T(1) / a")
unary("LeakyRelu", "dydca::prelu(a, T({alpha}))", attrs={"alpha": 0.01})
unary("Identity", "a", NUMERIC + ("bool",))
def _dropout_infer(ctx):
    """Inference Dropout is the identity; training mode (input 2 true) would drop elements."""
    if len(ctx.ins) > 2 and ctx.ins[2] is not None and bool(np.asarray(ctx.const(2, "training_mode")).any()):
        ctx.fail("training_mode=1 is not supported (inference only)")
    return [(ctx.ins[0].dtype, ctx.ins[0].shape)]


register(OpDef("Dropout", Category.SHAPE_FROM_SHAPES, _dropout_infer, Fusion.ELEMENTWISE, "elementwise",
               expr="a", dtypes=NUMERIC, static_inputs=(1, 2),
               lower=lambda k: lower(k)))  # the mask output (index 1) is not produced

binary("Add", "a + b", value=_symbolic_arith(lambda a, b: a + b))
binary("Sub", "a - b", value=_symbolic_arith(lambda a, b: a - b))
binary("Mul", "a * b", value=_symbolic_arith(lambda a, b: a * b))
binary("Div", "dydca::div(a, b)", value=_symbolic_arith(_floor_div))
binary("Pow", "dydca::pow(a, b)")  # the exponent may be of another type (ONNX Pow's T1)
binary("Mod", "dydca::mod<{fmod}>(a, b)", value=_symbolic_arith(sympy.Mod))
binary("Max", "std::max(a, b)", value=_symbolic_arith(sympy.Max))
binary("Min", "std::min(a, b)", value=_symbolic_arith(sympy.Min))
binary("PRelu", "dydca::prelu(a, b)", dtypes=("float32",))  # branch-free: vmath.h


def _symbolic_logic(fn):
    """Value rule for comparisons and logic on dims (an If routing by input size: h < 48): an
    array of sympy booleans, plain bools where every entry is decided."""
    arith = _symbolic_arith(fn)

    def value(ctx):
        arr = np.asarray(arith(ctx)[0], dtype=object)
        flat = arr.reshape(-1)
        if all(e in (sympy.true, sympy.false) or isinstance(e, (bool, np.bool_)) for e in flat):
            return [np.array([bool(e) for e in flat], dtype=bool).reshape(arr.shape)]
        return [arr]
    return value


binary("Equal", "a == b", dtypes=NUMERIC + ("bool",), out=BOOL, value=_symbolic_logic(sympy.Eq))
binary("Less", "a < b", out=BOOL, value=_symbolic_logic(sympy.Lt))
binary("Greater", "a > b", out=BOOL, value=_symbolic_logic(sympy.Gt))
binary("LessOrEqual", "a <= b", out=BOOL, value=_symbolic_logic(sympy.Le))
binary("GreaterOrEqual", "a >= b", out=BOOL, value=_symbolic_logic(sympy.Ge))
binary("And", "a && b", dtypes=("bool",), out=BOOL, value=_symbolic_logic(sympy.And))
binary("Or", "a || b", dtypes=("bool",), out=BOOL, value=_symbolic_logic(sympy.Or))
register(OpDef("Not", Category.SHAPE_FROM_SHAPES, _same_as_broadcast(), Fusion.ELEMENTWISE, "elementwise",
               expr="!a", dtypes=("bool",), value=_symbolic_logic(sympy.Not), lower=lambda k: lower(k)))
register(OpDef("Sum", Category.SHAPE_FROM_SHAPES, _same_as_broadcast(), Fusion.ELEMENTWISE,
               "elementwise", expr="+", dtypes=("float32",), lower=lambda k: lower(k)))  # n-ary: the template folds with +


def _where_infer(ctx):
    return [(ctx.ins[1].dtype, broadcast_shapes(ctx, [v.shape for v in ctx.ins]))]


register(OpDef("Where", Category.SHAPE_FROM_SHAPES, _where_infer, Fusion.ELEMENTWISE, "elementwise",
               expr="a ? b : c", dtypes=NUMERIC, data_input=1, lower=lambda k: lower(k)))


def _clip_infer(ctx):
    # the bounds are folded into the expression: a run-time bound must be refused, not ignored
    for idx, what in ((1, "min"), (2, "max")):
        if len(ctx.ins) > idx and ctx.ins[idx] is not None:
            ctx.const(idx, what)
    return [(ctx.ins[0].dtype, ctx.ins[0].shape)]


# Clip's bounds are optional inputs; lowering folds known bounds into the expression
register(OpDef("Clip", Category.SHAPE_FROM_SHAPES, _clip_infer, Fusion.ELEMENTWISE, "elementwise",
               expr="std::min(std::max(a, T({min})), T({max}))", dtypes=("float32",),
               static_inputs=(1, 2), lower=lambda k: lower(k)))


def _cast_infer(ctx):
    from onnx import helper
    return [(np.dtype(helper.tensor_dtype_to_np_dtype(ctx.attrs["to"])), ctx.ins[0].shape)]


register(OpDef("Cast", Category.SHAPE_FROM_SHAPES, _cast_infer, Fusion.ELEMENTWISE, "elementwise",
               expr="static_cast<R>(a)", dtypes=NUMERIC + ("bool",),
               value=lambda ctx: [ctx.ins[0].const], lower=lambda k: lower(k)))


def _fused_infer(ctx):
    """A fused chain's output: the broadcast of all its operands, of the chain's final dtype."""
    return [(np.dtype(ctx.attrs["dtype"]), broadcast_shapes(ctx, [v.shape for v in ctx.ins if v is not None]))]


# Internal op made by compiler/passes/fuse_elementwise: attrs["program"] is a list of steps
# (op_name, attrs, [("in", k) | ("tmp", j), ...]) evaluated per output element; attrs["dtype"] is
# the result's dtype name. One kernel, one pass over memory, no intermediate buffers.
register(OpDef("FusedElementwise", Category.SHAPE_FROM_SHAPES, _fused_infer, Fusion.ELEMENTWISE,
               "elementwise", dtypes=NUMERIC + ("bool",), lower=lambda k: lower(k), internal=True))


# ---- code generation: the C++ expression of one step, and the lowering of a whole node ----

def _clip_bound(attrs: dict, idx: int, key: str, default: str) -> str:
    """Clip's bound as C++: from compile-time input `idx` (opset >= 11; a step's
    attrs["static_ins"]) or from the attribute `key` (opset < 11)."""
    from dydca.codegen.emit import c_float

    if key + "_expr" in attrs:
        return attrs[key + "_expr"]
    v = (attrs.get("static_ins") or {}).get(idx)
    if v is None:
        v = attrs.get(key)
    return default if v is None else c_float(np.asarray(v).reshape(-1)[0])


def step_expr(op_name: str, attrs: dict, args: list[str], T: str, R: str) -> str:
    """C++ expression of element-wise op `op_name` applied to the C++ expressions `args`.
    `attrs` are the step's attributes; compile-time inputs (Clip's bounds) ride in
    attrs["static_ins"] = {input index: array}."""
    from . import REGISTRY
    from dydca.codegen.emit import c_float

    op = REGISTRY[op_name]
    if op_name == "Sum":
        return "(" + " + ".join(args) + ")"
    if op_name in ("Max", "Min") and len(args) != 2:  # variadic: fold left over 1..n inputs
        fn = "std::max" if op_name == "Max" else "std::min"
        text = f"({args[0]})"
        for a in args[1:]:
            text = f"{fn}<{T}>({text}, ({a}))"
        return text
    fmt = dict(alpha=c_float(attrs.get("alpha", 0.01)), fmod=str(bool(attrs.get("fmod", 0))).lower(),
               min=_clip_bound(attrs, 1, "min", "-std::numeric_limits<T>::infinity()"),
               max=_clip_bound(attrs, 2, "max", "std::numeric_limits<T>::infinity()"))
    text = op.expr.format(**fmt)
    names = dict(zip("abc", args))
    text = re.sub(r"\b([abc])\b", lambda m: f"({names[m.group(1)]})", text)
    text = re.sub(r"\bT\b", T, text)
    return re.sub(r"\bR\b", R, text)


def broadcast_strides(ref, out_rank: int, out_dims) -> list[str]:
    """Strides of `ref` over the output's index space (right-aligned; 0 along broadcast axes)."""
    R = max(out_rank, 1)
    strides = ["INT64_C(0)"] * R
    acc = "INT64_C(1)"
    for j in range(ref.rank - 1, -1, -1):
        axis = R - ref.rank + j
        d = as_dim(ref.dims[j])
        if d == 1 and not (out_rank and as_dim(out_dims[axis]) == 1):
            strides[axis] = "INT64_C(0)"
        else:
            strides[axis] = acc
        acc = f"{acc} * ({ref.shape[j]})" if acc != "INT64_C(1)" else f"({ref.shape[j]})"
    return strides


def program_expr(program: list, leaves: dict, out_ctype: str) -> str:
    """One C++ expression for a fused program. `leaves` maps a non-temporary reference
    (("in", k), ("acc", 0), ...) to (C++ expression, C++ type); each step's result is inlined
    where it is read (every temporary has one reader, so nothing is computed twice)."""
    temps: list[tuple[str, str]] = []
    for n, (op_name, attrs, arg_refs) in enumerate(program):
        args = [temps[i] if kind == "tmp" else leaves[(kind, i)] for kind, i in arg_refs]
        exprs, ts = [a[0] for a in args], [a[1] for a in args]
        T = ts[1] if op_name == "Where" else ts[0]
        R = out_ctype if n == len(program) - 1 else _result_type(op_name, attrs, T)
        temps.append((step_expr(op_name, attrs, exprs, T, R), R))
    return temps[-1][0]


def epilogue_expr(program: list, acc: str, operands: dict) -> str:
    """A fused epilogue (conv, gemm) as one float expression over the accumulator `acc` and the
    operands' element expressions (node input index -> C++ expression)."""
    if not program:
        return acc
    leaves = {("acc", 0): (acc, "float"), **{("in", i): (e, "float") for i, e in operands.items()}}
    return program_expr(program, leaves, "float")


def lower(k) -> dict:
    """Template parameters of the `elementwise` kernel: operands with strides and the expression."""
    out = k.outs[0]
    refs = [x for x in k.ins if x is not None]
    operands = [dict(ptr=x.ptr, ctype=x.ctype, strides=broadcast_strides(x, out.rank, out.dims))
                for x in refs]
    program = k.attrs.get("program")
    if program is None:  # a single op; its compile-time inputs (Clip's bounds) ride in its attrs
        attrs = dict(k.attrs, static_ins=k.params.get("static_ins", {}))
        program = [(k.node.op, attrs, [("in", i) for i in range(len(refs))])]
    leaves = {("in", i): (f"x{i}", x.ctype) for i, x in enumerate(refs)}
    return {"operands": operands, "expr": program_expr(program, leaves, out.ctype)}


def _result_type(op_name, attrs, T):
    if op_name in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Not"):
        return "bool"
    if op_name == "Cast":
        from dydca.codegen.emit import ctype
        from onnx import helper
        return ctype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    return T
