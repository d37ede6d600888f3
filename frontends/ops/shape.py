"""Shape arithmetic and reshaping: Shape, Size, Constant, Gather, Concat, (Un)Squeeze, Reshape, ...

These ops mostly run at compile time: their value rules turn shape sub-graphs into expressions of
the input dimensions, and Reshape-like ops alias their input's buffer (no data movement)."""
from __future__ import annotations

import numpy as np
import sympy

from ..symbolic import as_dim
from . import I64, Category, Fusion, OpDef, register


def _obj(arr):
    return np.asarray(arr, dtype=object)


def prod_dims(dims):
    out = sympy.Integer(1)
    for d in dims:
        out *= as_dim(d)
    return out


def norm_axis(ctx, axis, rank):
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        ctx.fail(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _shape_infer(ctx):
    r = ctx.ins[0].rank
    start, end = _shape_slice(ctx, r)
    return [(I64, (sympy.Integer(max(end - start, 0)),))]


def _shape_slice(ctx, r):
    start = int(ctx.attrs.get("start", 0))
    end = int(ctx.attrs.get("end", r))
    start = min(max(start + r if start < 0 else start, 0), r)
    end = min(max(end + r if end < 0 else end, 0), r)
    return start, end


def _shape_value(ctx):
    start, end = _shape_slice(ctx, ctx.ins[0].rank)
    return [_obj(list(ctx.ins[0].shape[start:end]))]


register(OpDef("Shape", Category.VALUE_FROM_SHAPES, _shape_infer, Fusion.OPAQUE, "fill",
               value=_shape_value, dtypes=("int64",)))


def _size_value(ctx):
    n = sympy.Integer(1)
    for d in ctx.ins[0].shape:
        n *= as_dim(d)
    return [_obj(n)]


register(OpDef("Size", Category.VALUE_FROM_SHAPES, lambda ctx: [(I64, ())], Fusion.OPAQUE, "fill",
               value=_size_value, dtypes=("int64",)))


def _constant_value(ctx):
    a = ctx.attrs
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in a:
            v = np.asarray(a[key])
            if key.endswith("float") or key.endswith("floats"):
                v = v.astype(np.float32)
            elif key.endswith("int") or key.endswith("ints"):
                v = v.astype(np.int64)
            return [v]
    ctx.fail("Constant has no supported value attribute (value_string(s) and sparse are unsupported)")


def _constant_infer(ctx):
    v = _constant_value(ctx)[0]
    return [(v.dtype, tuple(as_dim(d) for d in v.shape))]


register(OpDef("Constant", Category.SHAPE_FROM_SHAPES, _constant_infer, Fusion.OPAQUE, None,
               value=_constant_value))


def _gather_infer(ctx):
    data, idx = ctx.ins[0], ctx.ins[1]
    axis = norm_axis(ctx, ctx.attrs.get("axis", 0), data.rank)
    return [(data.dtype, tuple(data.shape[:axis]) + tuple(idx.shape) + tuple(data.shape[axis + 1:]))]


def _gather_value(ctx):
    data, idx = ctx.ins[0].const, ctx.ins[1].const
    axis = norm_axis(ctx, ctx.attrs.get("axis", 0), data.ndim)
    return [np.take(data, np.asarray(idx, dtype=np.int64), axis=axis)]


def _gather_lower(k):
    """data viewed as [outer, axis, inner]: each index selects one contiguous inner block."""
    data, idx = k.ins[0], k.ins[1]
    axis = norm_axis(k, k.attrs.get("axis", 0), data.rank)
    return {"outer": k.dimexpr(prod_dims(data.dims[:axis])), "axis_dim": data.shape[axis],
            "n_idx": k.dimexpr(prod_dims(idx.dims)), "inner": k.dimexpr(prod_dims(data.dims[axis + 1:]))}


register(OpDef("Gather", Category.SHAPE_FROM_SHAPES, _gather_infer, Fusion.LAYOUT, "gather",
               value=_gather_value, attrs={"axis": 0}, dtypes=("float32", "int64", "int32", "bool"),
               lower=_gather_lower))


def _concat_infer(ctx):
    ins = [v for v in ctx.ins if v is not None]
    rank = ins[0].rank
    axis = norm_axis(ctx, ctx.attrs["axis"], rank)
    shape = list(ins[0].shape)
    shape[axis] = sum((as_dim(v.shape[axis]) for v in ins), sympy.Integer(0))
    return [(ins[0].dtype, tuple(shape))]


def _concat_value(ctx):
    arrs = [v.const for v in ctx.ins if v is not None]
    axis = ctx.attrs["axis"]
    dtype = object if any(a.dtype == object for a in arrs) else None
    return [np.concatenate([np.asarray(a, dtype=dtype) for a in arrs], axis=axis)]


def _concat_lower(k):
    """Each input is a block of rows [outer, its axis * inner] placed side by side in the output."""
    out = k.outs[0]
    axis = norm_axis(k, k.attrs["axis"], out.rank)
    inner = prod_dims(out.dims[axis + 1:])
    parts, acc = [], sympy.Integer(0)
    for x in k.ins:
        if x is None:
            continue
        length = as_dim(x.dims[axis]) * inner
        parts.append({"ptr": x.ptr, "offset": k.dimexpr(acc), "len": k.dimexpr(length)})
        acc += length
    return {"outer": k.dimexpr(prod_dims(out.dims[:axis])), "pitch": k.dimexpr(as_dim(out.dims[axis]) * inner),
            "parts": parts}


register(OpDef("Concat", Category.SHAPE_FROM_SHAPES, _concat_infer, Fusion.LAYOUT, "concat",
               value=_concat_value, dtypes=("float32", "int64", "int32", "bool"), lower=_concat_lower))


def _axes(ctx, rank):
    """Axes from the opset >= 13 input or the older attribute."""
    if len(ctx.ins) > 1 and ctx.ins[1] is not None:
        axes = ctx.const(1, "axes")
    else:
        axes = ctx.attrs.get("axes")
    if axes is None:
        return None
    return sorted(norm_axis(ctx, a, rank) for a in np.asarray(axes).reshape(-1).tolist())


def _unsqueeze_infer(ctx):
    x = ctx.ins[0]
    raw = ctx.const(1, "axes") if len(ctx.ins) > 1 and ctx.ins[1] is not None else ctx.attrs["axes"]
    axes = _axes(ctx, x.rank + np.asarray(raw).size)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, sympy.Integer(1))
    return [(x.dtype, tuple(shape))]


def _squeeze_infer(ctx):
    x = ctx.ins[0]
    axes = _axes(ctx, x.rank)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if as_dim(d) == 1]
    for a in axes:
        if as_dim(x.shape[a]) != 1:
            ctx.fail(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return [(x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))]


def _reshape_value(ctx):
    """Reshape-like ops on known contents: same data, new shape (the rule's output shape)."""
    shape = [int(d) for d in ctx.out_shapes[0]]
    return [np.asarray(ctx.ins[0].const).reshape(shape)]


def _reshape_infer(ctx):
    x = ctx.ins[0]
    target = [as_dim(d) for d in np.asarray(ctx.const(1, "shape")).reshape(-1)]
    allowzero = int(ctx.attrs.get("allowzero", 0))
    out = []
    infer_at = None
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            out.append(as_dim(x.shape[i]))
        elif d == -1:
            if infer_at is not None:
                ctx.fail("shape has more than one -1")
            infer_at = i
            out.append(None)
        else:
            out.append(d)
    total = sympy.Integer(1)
    for d in x.shape:
        total *= as_dim(d)
    if infer_at is not None:
        known = sympy.Integer(1)
        for d in out:
            if d is not None:
                known *= d
        out[infer_at] = sympy.simplify(total / known)
    else:
        prod = sympy.Integer(1)
        for d in out:
            prod *= d
        if sympy.simplify(prod - total) != 0 and (prod - total).is_number:
            ctx.fail(f"cannot reshape {tuple(map(str, x.shape))} to {tuple(map(str, out))}")
    return [(x.dtype, tuple(out))]


def _flatten_infer(ctx):
    x = ctx.ins[0]
    axis = int(ctx.attrs.get("axis", 1))  # in [-rank, rank]; negative counts from the input's rank
    if not -x.rank <= axis <= x.rank:
        ctx.fail(f"axis {axis} is out of range for rank {x.rank}")
    axis = axis + x.rank if axis < 0 else axis
    a, b = sympy.Integer(1), sympy.Integer(1)
    for d in x.shape[:axis]:
        a *= as_dim(d)
    for d in x.shape[axis:]:
        b *= as_dim(d)
    return [(x.dtype, (a, b))]


ANY = ("float32", "int64", "int32", "bool")
for _name, _infer, _cat in (("Reshape", _reshape_infer, Category.SHAPE_FROM_VALUES),
                            ("Flatten", _flatten_infer, Category.SHAPE_FROM_SHAPES),
                            ("Squeeze", _squeeze_infer, Category.SHAPE_FROM_SHAPES),
                            ("Unsqueeze", _unsqueeze_infer, Category.SHAPE_FROM_SHAPES)):
    register(OpDef(_name, _cat, _infer, Fusion.ALIAS, "alias", value=_reshape_value, dtypes=ANY,
                   static_inputs=(1,)))
