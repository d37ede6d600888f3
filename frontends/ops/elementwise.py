"""Element-wise operators: numpy-style broadcasting; the kernel is one template over a C++
expression of the inputs `a`, `b`, `c` of element type `T`."""
from __future__ import annotations

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
unary("Sigmoid", "T(1) / (T(1) + std::exp(-a))")
unary("Tanh", "std::tanh(a)")
unary("Sqrt", "std::sqrt(a)")
unary("Exp", "std::exp(a)")
unary("Erf", "std::erf(a)")
unary("Neg", "-a", NUMERIC)
unary("Abs", "std::abs(a)", NUMERIC)
unary("Reciprocal", "T(1) / a")
unary("LeakyRelu", "a >= T(0) ? a : T({alpha}) * a", attrs={"alpha": 0.01})
unary("Identity", "a", NUMERIC + ("bool",))
unary("Dropout", "a", NUMERIC)  # inference: identity (mask output unsupported)

binary("Add", "a + b", value=_symbolic_arith(lambda a, b: a + b))
binary("Sub", "a - b", value=_symbolic_arith(lambda a, b: a - b))
binary("Mul", "a * b", value=_symbolic_arith(lambda a, b: a * b))
binary("Div", "dydca::div(a, b)", value=_symbolic_arith(_floor_div))
binary("Pow", "dydca::pow(a, b)", dtypes=("float32",))
binary("Mod", "dydca::mod<{fmod}>(a, b)", value=_symbolic_arith(sympy.Mod))
binary("Max", "std::max(a, b)")
binary("Min", "std::min(a, b)")
binary("PRelu", "a >= T(0) ? a : b * a", dtypes=("float32",))
binary("Equal", "a == b", dtypes=NUMERIC + ("bool",), out=BOOL)
binary("Less", "a < b", out=BOOL)
binary("Greater", "a > b", out=BOOL)
register(OpDef("Sum", Category.SHAPE_FROM_SHAPES, _same_as_broadcast(), Fusion.ELEMENTWISE,
               "elementwise", expr="+", dtypes=("float32",), lower=lambda k: lower(k)))  # n-ary: the template folds with +


def _where_infer(ctx):
    return [(ctx.ins[1].dtype, broadcast_shapes(ctx, [v.shape for v in ctx.ins]))]


register(OpDef("Where", Category.SHAPE_FROM_SHAPES, _where_infer, Fusion.ELEMENTWISE, "elementwise",
               expr="a ? b : c", dtypes=NUMERIC, lower=lambda k: lower(k)))


def _clip_infer(ctx):
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


# ---- code generation: the C++ expression of one step, and the lowering of a whole node ----

def step_expr(op_name: str, attrs: dict, args: list[str], T: str, R: str) -> str:
    """C++ expression of element-wise op `op_name` applied to the C++ expressions `args`."""
    import re
    from . import REGISTRY
    from dydca.codegen.emit import c_float

    op = REGISTRY[op_name]
    if op_name == "Sum":
        return "(" + " + ".join(args) + ")"
    fmt = dict(alpha=c_float(attrs.get("alpha", 0.01)), fmod=str(bool(attrs.get("fmod", 0))).lower(),
               min=attrs.get("min_expr", "-std::numeric_limits<T>::infinity()"),
               max=attrs.get("max_expr", "std::numeric_limits<T>::infinity()"))
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


def lower(k) -> dict:
    """Template parameters of the `elementwise` kernel: operands with strides and the expression."""
    from dydca.codegen.emit import ctype

    out = k.outs[0]
    refs = [x for x in k.ins if x is not None]
    operands = [dict(ptr=x.ptr, ctype=x.ctype, strides=broadcast_strides(x, out.rank, out.dims))
                for x in refs]
    args = [f"x{i}" for i in range(len(refs))]
    program = k.attrs.get("program")
    if program is None:  # a single op
        program = [(k.node.op, k.attrs, [("in", i) for i in range(len(refs))])]
    temps: list[str] = []
    types = [x.ctype for x in refs]
    tmp_types: list[str] = []
    for op_name, attrs, arg_refs in program:
        exprs = [args[i] if kind == "in" else temps[i] for kind, i in arg_refs]
        ts = [types[i] if kind == "in" else tmp_types[i] for kind, i in arg_refs]
        attrs = _clip_bounds(k, op_name, attrs)
        T = ts[1] if op_name == "Where" else ts[0]
        R = out.ctype if len(temps) == len(program) - 1 else _result_type(op_name, attrs, T)
        temps.append(step_expr(op_name, attrs, exprs, T, R))
        tmp_types.append(R)
    return {"operands": operands, "expr": temps[-1]}


def _result_type(op_name, attrs, T):
    if op_name in ("Equal", "Less", "Greater"):
        return "bool"
    if op_name == "Cast":
        from dydca.codegen.emit import ctype
        from onnx import helper
        return ctype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    return T


def _clip_bounds(k, op_name, attrs):
    """Clip's bounds come from attributes (opset < 11) or compile-time inputs (opset >= 11)."""
    if op_name != "Clip" or "min_expr" in attrs:
        return attrs
    from dydca.codegen.emit import c_float
    attrs = dict(attrs)
    static = k.params.get("static_ins", {})
    for idx, key in ((1, "min"), (2, "max")):
        v = static.get(idx)
        if v is None and key in attrs:
            v = attrs[key]
        if v is not None:
            attrs[key + "_expr"] = c_float(np.asarray(v).reshape(-1)[0])
    return attrs
