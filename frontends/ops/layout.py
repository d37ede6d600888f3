"""Data movement: Transpose, DepthToSpace, SpaceToDepth, Slice, Expand, Tile, Split, Pad, Resize,
Upsample, ConstantOfShape, Range (Concat and Gather live in shape.py beside their value rules).

Transpose, DepthToSpace, SpaceToDepth, Slice, Expand and Tile are all one kernel: the contiguous
output reads the input through a strided view (shape, strides, offset) derived here from the op, so
the C++ side (runtime_cpp/include/dydca/layout.h) has one well-tuned copy loop. Compile-time inputs
(starts, pads, repeats, scales, ...) may be numbers or expressions of the input dims; the kernel
parameters are then C++ expressions of the per-call symbol values.
"""
from __future__ import annotations

import numpy as np
import sympy

from ..symbolic import as_dim
from . import F32, I64, Category, Fusion, InferCtx, OpDef, register
from .elementwise import broadcast_shapes, broadcast_strides
from .shape import norm_axis, prod_dims as _prod

ANY = ("float32", "int64", "int32", "bool")


# ---- shared helpers ----

def _contiguous_strides(dims):
    st, acc = [], sympy.Integer(1)
    for d in reversed(list(dims)):
        st.append(acc)
        acc *= as_dim(d)
    return st[::-1]


def _dim(v):
    """A compile-time scalar (number or dim expression) as a sympy integer expression."""
    if isinstance(v, sympy.Basic):
        return as_dim(v)
    f = float(v)
    if f != int(f):
        raise ValueError(f"{v} is not an integer")
    return sympy.Integer(int(f))


def _vec(arr):
    return [] if arr is None else list(np.asarray(arr, dtype=object).reshape(-1))


def _max(scope, a, b):
    """max(a, b), decided from the dim ranges where possible (sympy alone cannot see h >= 1)."""
    a, b = as_dim(a), as_dim(b)
    d = as_dim(a - b)
    if d.is_number:
        return a if d >= 0 else b
    if scope.lower_bound(d) >= 0:
        return a
    if scope.upper_bound(d) <= 0:
        return b
    return sympy.Max(a, b)


def _min(scope, a, b):
    return -_max(scope, -as_dim(a), -as_dim(b))


def _clamp(scope, v, lo, hi):
    return _min(scope, _max(scope, v, lo), hi)


def node_ctx(k) -> InferCtx:
    """The shape-rule view of a node at lowering time (so lowering reuses the rule's own parsing)."""
    g = k.emitter.graph
    ins = [g.values.get(i) if i else None for i in k.node.inputs]
    return InferCtx(k.node, ins, k.attrs, g.dims)


def _cxx(k, exprs):
    return [k.dimexpr(e) for e in exprs]


def view_params(k, shape, strides, offset=0):
    """Template parameters of the `strided_copy` kernel (strides may already be C++ strings)."""
    return {"view_shape": _cxx(k, shape),
            "view_strides": [s if isinstance(s, str) else k.dimexpr(s) for s in strides],
            "offset": k.dimexpr(offset)}


def _permuted_view(dims, perm):
    st = _contiguous_strides(dims)
    return [dims[p] for p in perm], [st[p] for p in perm]


def c_scalar(value, c_type: str) -> str:
    from dydca.codegen.emit import c_float
    if c_type == "bool":
        return "true" if bool(value) else "false"
    if c_type == "float":
        return c_float(value)
    return f"{c_type}({int(value)})"


def _strided(name, infer, view, value=None, static_inputs=(), attrs=None, category=Category.SHAPE_FROM_SHAPES):
    """Registers an op whose kernel is the strided view copy; `view(k)` -> (shape, strides, offset)."""
    def lower(k):
        return view_params(k, *view(k))
    register(OpDef(name, category, infer, Fusion.LAYOUT, "strided_copy", value=value, attrs=attrs or {},
                   dtypes=ANY, static_inputs=static_inputs, lower=lower))


# ---- Transpose ----

def _perm(ctx, rank):
    perm = ctx.attrs.get("perm")
    if perm is None:
        return list(range(rank))[::-1]
    perm = [norm_axis(ctx, p, rank) for p in perm]
    if sorted(perm) != list(range(rank)):
        ctx.fail(f"perm {list(ctx.attrs['perm'])} is not a permutation of {rank} axes")
    return perm


def _transpose_infer(ctx):
    x = ctx.ins[0]
    return [(x.dtype, tuple(x.shape[p] for p in _perm(ctx, x.rank)))]


def _transpose_view(k):
    x = k.ins[0]
    shape, st = _permuted_view(list(x.dims), _perm(node_ctx(k), x.rank))
    return shape, st, 0


_strided("Transpose", _transpose_infer, _transpose_view,
         value=lambda ctx: [np.transpose(ctx.ins[0].const, _perm(ctx, ctx.ins[0].rank))])


# ---- DepthToSpace / SpaceToDepth: a 6-d reshape, a transpose, a reshape ----

def _block(ctx):
    b = int(ctx.attrs["blocksize"])
    if b < 1:
        ctx.fail(f"blocksize {b} must be positive")
    x = ctx.ins[0]
    if x.rank != 4:
        ctx.fail(f"input must be 4-d (N, C, H, W), got rank {x.rank}")
    return b, [as_dim(d) for d in x.shape]


def _exact_div(ctx, d, b, what):
    if d.is_Integer and int(d) % b:
        ctx.fail(f"{what} {d} is not divisible by {b}")
    return as_dim(d / b)


def _d2s_infer(ctx):
    b, (n, c, h, w) = _block(ctx)
    return [(ctx.ins[0].dtype, (n, _exact_div(ctx, c, b * b, "channels"), h * b, w * b))]


def _d2s_view(k):
    ctx = node_ctx(k)
    b, (n, c, h, w) = _block(ctx)
    c2 = _exact_div(ctx, c, b * b, "channels")
    if str(k.attrs.get("mode", "DCR")).upper() == "CRD":
        return (*_permuted_view([n, c2, b, b, h, w], [0, 1, 4, 2, 5, 3]), 0)
    return (*_permuted_view([n, b, b, c2, h, w], [0, 3, 4, 1, 5, 2]), 0)


def _s2d_infer(ctx):
    b, (n, c, h, w) = _block(ctx)
    return [(ctx.ins[0].dtype, (n, c * b * b, _exact_div(ctx, h, b, "height"), _exact_div(ctx, w, b, "width")))]


def _s2d_view(k):
    ctx = node_ctx(k)
    b, (n, c, h, w) = _block(ctx)
    dims = [n, c, _exact_div(ctx, h, b, "height"), b, _exact_div(ctx, w, b, "width"), b]
    return (*_permuted_view(dims, [0, 3, 5, 1, 2, 4]), 0)


_strided("DepthToSpace", _d2s_infer, _d2s_view, attrs={"mode": "DCR"})
_strided("SpaceToDepth", _s2d_infer, _s2d_view)


# ---- Slice ----

def _slice_args(ctx):
    """starts, ends, axes, steps from the opset >= 10 inputs or the older attributes."""
    if len(ctx.ins) > 1:
        return (_vec(ctx.const(1, "starts")), _vec(ctx.const(2, "ends")),
                _vec(ctx.const(3, "axes")) or None, _vec(ctx.const(4, "steps")) or None)
    a = ctx.attrs
    return list(a["starts"]), list(a["ends"]), a.get("axes"), None


def _wrap_negative(ctx, v, dim):
    """An index counted from the end when negative (ONNX); its sign must be decidable."""
    v = _dim(v)
    if v.is_number:
        return v + dim if v < 0 else v
    if ctx.dims.lower_bound(v) >= 0:
        return v
    if ctx.dims.upper_bound(v) < 0:
        return v + dim
    ctx.fail(f"slice bound {v} is negative for some input sizes and not for others; not supported")


def slice_plan(ctx):
    """Per axis of the input: (first index, step, output length), all sympy."""
    x = ctx.ins[0]
    starts, ends, axes, steps = _slice_args(ctx)
    if not (len(starts) == len(ends) and (axes is None or len(axes) == len(starts))
            and (steps is None or len(steps) == len(starts))):
        ctx.fail("starts, ends, axes and steps must have the same length")
    axes = list(range(len(starts))) if axes is None else [norm_axis(ctx, a, x.rank) for a in axes]
    if len(set(axes)) != len(axes):
        ctx.fail(f"axes {axes} repeat an axis")
    steps = [1] * len(starts) if steps is None else steps
    plan = [(sympy.Integer(0), 1, as_dim(d)) for d in x.shape]
    scope = ctx.dims
    for a, s, e, t in zip(axes, starts, ends, steps):
        t = _dim(t)
        if not t.is_number or t == 0:
            ctx.fail(f"step {t} must be a non-zero number known at compile time")
        t = int(t)
        dim = as_dim(x.shape[a])
        s, e = _wrap_negative(ctx, s, dim), _wrap_negative(ctx, e, dim)
        if t > 0:
            s, e = _clamp(scope, s, 0, dim), _clamp(scope, e, 0, dim)
            n = sympy.ceiling((e - s) / t)
        else:
            s, e = _clamp(scope, s, 0, dim - 1), _clamp(scope, e, -1, dim - 1)
            n = sympy.ceiling((s - e) / -t)
        plan[a] = (s, t, _max(scope, n, 0))
    return plan


def _slice_infer(ctx):
    return [(ctx.ins[0].dtype, tuple(n for _, _, n in slice_plan(ctx)))]


def _slice_value(ctx):
    idx = tuple(slice(int(s), int(s) + int(n) * t, t) if int(n) else slice(0, 0)
                for s, t, n in slice_plan(ctx))
    out = np.asarray(ctx.ins[0].const, dtype=object)[idx]
    return [out.reshape([int(d) for d in ctx.out_shapes[0]])]


def _slice_view(k):
    plan = slice_plan(node_ctx(k))
    st = _contiguous_strides(k.ins[0].dims)
    offset = sum((s * stride for (s, _, _), stride in zip(plan, st)), sympy.Integer(0))
    return [n for _, _, n in plan], [stride * t for (_, t, _), stride in zip(plan, st)], offset


_strided("Slice", _slice_infer, _slice_view, value=_slice_value, static_inputs=(1, 2, 3, 4),
         category=Category.SHAPE_FROM_VALUES)


# ---- Expand / Tile ----

def _expand_infer(ctx):
    x = ctx.ins[0]
    target = tuple(_dim(d) for d in _vec(ctx.const(1, "shape")))
    return [(x.dtype, broadcast_shapes(ctx, [x.shape, target]))]


def _expand_value(ctx):
    return [np.broadcast_to(np.asarray(ctx.ins[0].const, dtype=object),
                            [int(d) for d in ctx.out_shapes[0]]).copy()]


def _expand_view(k):
    out = k.outs[0]
    return list(out.dims), broadcast_strides(k.ins[0], out.rank, out.dims), 0


def _repeats(ctx):
    reps = [_dim(r) for r in _vec(ctx.const(1, "repeats"))]
    if len(reps) != ctx.ins[0].rank:
        ctx.fail(f"repeats has {len(reps)} entries for an input of rank {ctx.ins[0].rank}")
    return reps


def _tile_infer(ctx):
    x = ctx.ins[0]
    return [(x.dtype, tuple(as_dim(d) * r for d, r in zip(x.shape, _repeats(ctx))))]


def _tile_view(k):
    """out viewed as [r0, d0, r1, d1, ...]: the repeat axes read with stride 0."""
    x = k.ins[0]
    shape, strides = [], []
    for d, r, st in zip(x.dims, _repeats(node_ctx(k)), _contiguous_strides(x.dims)):
        shape += [r, d]
        strides += [0, st]
    return shape, strides, 0


_strided("Expand", _expand_infer, _expand_view, value=_expand_value, static_inputs=(1,),
         category=Category.SHAPE_FROM_VALUES)
_strided("Tile", _tile_infer, _tile_view, static_inputs=(1,), category=Category.SHAPE_FROM_VALUES,
         value=lambda ctx: [np.tile(np.asarray(ctx.ins[0].const, dtype=object), [int(r) for r in _repeats(ctx)])])


# ---- Split ----

def split_sizes(ctx):
    x = ctx.ins[0]
    axis = norm_axis(ctx, ctx.attrs.get("axis", 0), x.rank)
    dim = as_dim(x.shape[axis])
    n_out = len(ctx.node.outputs)
    sizes = _vec(ctx.const(1, "split")) if len(ctx.ins) > 1 and ctx.ins[1] is not None else ctx.attrs.get("split")
    if sizes is not None and len(sizes):
        sizes = [_dim(s) for s in sizes]
        if len(sizes) != n_out:
            ctx.fail(f"split has {len(sizes)} sizes for {n_out} outputs")
    elif "num_outputs" in ctx.attrs:  # opset 18: ceil-sized chunks, the last one smaller
        n = int(ctx.attrs["num_outputs"])
        if n != n_out:
            ctx.fail(f"num_outputs {n} but the node has {n_out} outputs")
        chunk = as_dim(sympy.ceiling(dim / n))
        sizes = [_clamp(ctx.dims, dim - i * chunk, 0, chunk) for i in range(n)]  # trailing chunks may be empty
    else:
        if dim.is_Integer and int(dim) % n_out:
            ctx.fail(f"axis of size {dim} does not split evenly into {n_out} outputs")
        sizes = [as_dim(dim / n_out)] * n_out
    total = as_dim(sum(sizes, sympy.Integer(0)) - dim)
    if total.is_number and total != 0:
        ctx.fail(f"split sizes {[str(s) for s in sizes]} do not add up to the axis size {dim}")
    return axis, sizes


def _split_infer(ctx):
    x = ctx.ins[0]
    axis, sizes = split_sizes(ctx)
    return [(x.dtype, tuple(x.shape[:axis]) + (s,) + tuple(x.shape[axis + 1:])) for s in sizes]


def _split_value(ctx):
    axis, sizes = split_sizes(ctx)
    cuts = np.cumsum([int(s) for s in sizes])[:-1]
    return np.split(np.asarray(ctx.ins[0].const, dtype=object), cuts, axis=axis)


def _split_lower(k):
    x = k.ins[0]
    axis, sizes = split_sizes(node_ctx(k))
    inner = _prod(x.dims[axis + 1:])
    offsets, acc = [], sympy.Integer(0)
    for s in sizes:
        offsets.append(acc * inner)
        acc += s
    return {"outer": k.dimexpr(_prod(x.dims[:axis])), "pitch": k.dimexpr(as_dim(x.dims[axis]) * inner),
            "parts": [{"offset": k.dimexpr(o), "len": k.dimexpr(s * inner)} for o, s in zip(offsets, sizes)]}


register(OpDef("Split", Category.SHAPE_FROM_SHAPES, _split_infer, Fusion.LAYOUT, "split", value=_split_value,
               attrs={"axis": 0}, dtypes=ANY, static_inputs=(1,), lower=_split_lower))


# ---- Pad ----

PAD_MODES = {"constant": 0, "reflect": 1, "edge": 2, "wrap": 3}


def pad_spec(ctx):
    """(mode, begins, ends, constant value) with begins/ends per axis (sympy)."""
    x = ctx.ins[0]
    mode = str(ctx.attrs.get("mode", "constant"))
    if mode not in PAD_MODES:
        ctx.fail(f"mode {mode!r} is not supported (supported: {', '.join(PAD_MODES)})")
    if len(ctx.ins) > 1:
        pads = [_dim(p) for p in _vec(ctx.const(1, "pads"))]
        value = ctx.const(2, "constant_value")
        axes = _vec(ctx.const(3, "axes")) if len(ctx.ins) > 3 and ctx.ins[3] is not None else None
    else:  # opset < 11
        pads = [_dim(p) for p in ctx.attrs["pads"]]
        value = ctx.attrs.get("value", 0.0)
        axes = None
    axes = list(range(x.rank)) if axes is None else [norm_axis(ctx, a, x.rank) for a in axes]
    if len(pads) != 2 * len(axes):
        ctx.fail(f"pads has {len(pads)} entries for {len(axes)} axes")
    begin, end = [sympy.Integer(0)] * x.rank, [sympy.Integer(0)] * x.rank
    for j, a in enumerate(axes):
        begin[a], end[a] = pads[j], pads[j + len(axes)]
    if value is not None:
        v = np.asarray(value).reshape(-1)
        if v.dtype == object:
            ctx.fail("constant_value must be a number known at compile time")
        value = v[0] if v.size else 0
    return PAD_MODES[mode], begin, end, 0 if value is None else value


def _pad_infer(ctx):
    x = ctx.ins[0]
    _, begin, end, _ = pad_spec(ctx)
    shape = tuple(as_dim(d + b + e) for d, b, e in zip(x.shape, begin, end))
    for d in shape:
        if d.is_number and d < 0:
            ctx.fail(f"negative pads crop more than the input holds: output shape {tuple(map(str, shape))}")
    return [(x.dtype, shape)]


def _pad_lower(k):
    mode, begin, _, value = pad_spec(node_ctx(k))
    return {"mode": mode, "begin": _cxx(k, begin), "value": c_scalar(value, k.outs[0].ctype)}


register(OpDef("Pad", Category.SHAPE_FROM_VALUES, _pad_infer, Fusion.LAYOUT, "pad",
               attrs={"mode": "constant"}, dtypes=ANY, static_inputs=(1, 2, 3), lower=_pad_lower))


# ---- Resize / Upsample ----

COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")
FAST_FACTORS = range(2, 9)  # integer factors the nearest fast path is checked for when sizes are given


def resize_spec(ctx):
    """dict(mode, coord, nearest, out (sympy dims), scales (float per axis, None: out/in at run time))."""
    x = ctx.ins[0]
    a = ctx.attrs
    legacy = ctx.node.op == "Upsample" or len(ctx.ins) == 2  # Upsample 7-9, Resize 10
    mode = str(a.get("mode", "nearest"))
    if mode not in ("nearest", "linear", "bilinear"):
        ctx.fail(f"mode {mode!r} is not supported (supported: nearest, linear)")
    if legacy:
        coord, nearest = "asymmetric", "simple"
        raw = ctx.const(1, "scales") if len(ctx.ins) > 1 else a.get("scales")
        scales, sizes = _vec(raw), []
    else:
        coord = str(a.get("coordinate_transformation_mode", "half_pixel"))
        nearest = str(a.get("nearest_mode", "round_prefer_floor"))
        if coord not in COORDS:
            ctx.fail(f"coordinate_transformation_mode {coord!r} is not supported (supported: {', '.join(COORDS)})")
        if nearest not in NEAREST[:4]:
            ctx.fail(f"nearest_mode {nearest!r} is not supported")
        if int(a.get("antialias", 0)):
            ctx.fail("antialias=1 is not supported")
        if str(a.get("keep_aspect_ratio_policy", "stretch")) != "stretch":
            ctx.fail("keep_aspect_ratio_policy other than 'stretch' is not supported")
        scales = _vec(ctx.const(2, "scales")) if len(ctx.ins) > 2 and ctx.ins[2] is not None else []
        sizes = _vec(ctx.const(3, "sizes")) if len(ctx.ins) > 3 and ctx.ins[3] is not None else []
    if bool(scales) == bool(sizes):
        ctx.fail("exactly one of scales and sizes must be given")
    axes = a.get("axes")
    axes = list(range(x.rank)) if axes is None else [norm_axis(ctx, ax, x.rank) for ax in axes]
    given = scales or sizes
    if len(given) != len(axes):
        ctx.fail(f"{'scales' if scales else 'sizes'} has {len(given)} entries for {len(axes)} axes")
    out = [as_dim(d) for d in x.shape]
    scale: list = [1.0] * x.rank
    for ax, v in zip(axes, given):
        if scales:
            if isinstance(v, sympy.Basic):
                ctx.fail("scales must be numbers known at compile time")
            s = float(np.float32(v))
            if s <= 0:
                ctx.fail(f"scale {s} must be positive")
            scale[ax] = s
            out[ax] = as_dim(sympy.floor(out[ax] * sympy.Rational(s)))
        else:
            out[ax] = _dim(v)
            scale[ax] = None if out[ax] != as_dim(x.shape[ax]) else 1.0
    mode = "linear" if mode in ("linear", "bilinear") else "nearest"
    if mode == "linear":
        for d in range(x.rank - 2):
            if out[d] != as_dim(x.shape[d]) or scale[d] != 1.0:
                ctx.fail("linear resize of axes other than the last two is not supported")
    return dict(mode=mode, coord=coord, nearest=nearest, out=out, scales=scale)


def _resize_infer(ctx):
    return [(ctx.ins[0].dtype, tuple(resize_spec(ctx)["out"]))]


def nearest_map(coord, nearest, x, scale):
    """The kernel's nearest_index over int array x, emulated in float32 (without the upper clamp)."""
    xf, s = x.astype(np.float32), np.float32(scale)
    with np.errstate(all="ignore"):
        v = {"half_pixel": (xf + np.float32(0.5)) / s - np.float32(0.5),
             "pytorch_half_pixel": (xf + np.float32(0.5)) / s - np.float32(0.5),
             "asymmetric": xf / s,
             "tf_half_pixel_for_nn": (xf + np.float32(0.5)) / s}[coord].astype(np.float32)
    v64 = v.astype(np.float64)
    away = np.sign(v64) * np.floor(np.abs(v64) + 0.5)  # std::round: ties away from zero
    if nearest == "round_prefer_floor":
        i = np.where(v64 == np.trunc(v64) + 0.5, np.floor(v64), away)
    elif nearest == "round_prefer_ceil":
        i = away
    elif nearest == "floor":
        i = np.floor(v64)
    elif nearest == "ceil":
        i = np.ceil(v64)
    else:
        i = np.trunc(v64) if scale >= 1 else np.ceil(v64)
    return np.maximum(i, 0).astype(np.int64)


def fast_factor_mask(spec, axis, limit):
    """Bit k set when integer factor k provably maps output x to input x // k on `axis`, for every
    output coordinate up to `limit` (so the kernel may replicate instead of indexing)."""
    if spec["coord"] == "align_corners":
        return 0
    s = spec["scales"][axis]
    factors = FAST_FACTORS if s is None else ([int(s)] if s == int(s) and 2 <= s < 32 else [])
    mask = 0
    for f in factors:
        x = np.arange(max(limit, 1) * f, dtype=np.int64)
        if np.array_equal(nearest_map(spec["coord"], spec["nearest"], x, float(f)), x // f):
            mask |= 1 << f
    return mask


def _resize_lower(k):
    from dydca.codegen.emit import c_float
    spec = resize_spec(node_ctx(k))
    x, o = k.ins[0], k.outs[0]
    scope = k.emitter.graph.dims

    def scale_expr(d):
        s = spec["scales"][d]
        return c_float(s) if s is not None else f"float({o.shape[d]}) / float({x.shape[d]})"
    params = {"mode": spec["mode"], "coord": spec["coord"], "scales": [scale_expr(d) for d in range(x.rank)]}
    if spec["mode"] == "linear":
        if x.rank == 0:
            k.fail("linear resize of a scalar")
        last2 = list(range(max(x.rank - 2, 0), x.rank))
        hw = [(x.shape[d], o.shape[d], params["scales"][d]) for d in last2]
        if len(hw) == 1:
            hw.insert(0, ("INT64_C(1)", "INT64_C(1)", "1.0f"))
        params.update(planes=k.dimexpr(_prod(x.dims[:-2])), hw=hw)
        return params
    masks = [fast_factor_mask(spec, d, scope.upper_bound(o.dims[d])) if d >= x.rank - 2 else 0
             for d in range(x.rank)]
    params.update(nearest=spec["nearest"], fast_x=masks[-1] if masks else 0,
                  fast_y=masks[-2] if len(masks) > 1 else 0)
    return params


for _name in ("Resize", "Upsample"):
    register(OpDef(_name, Category.SHAPE_FROM_VALUES, _resize_infer, Fusion.LAYOUT, "resize",
                   dtypes=("float32",), static_inputs=(1, 2, 3), lower=_resize_lower))


# ---- generators: ConstantOfShape, Range ----

def _fill_value(ctx):
    v = ctx.attrs.get("value")
    return np.zeros(1, np.float32) if v is None else np.asarray(v).reshape(-1)[:1]


def _cos_infer(ctx):
    shape = tuple(_dim(d) for d in _vec(ctx.const(0, "shape")))
    return [(_fill_value(ctx).dtype, shape)]


def _cos_value(ctx):
    return [np.full([int(d) for d in ctx.out_shapes[0]], _fill_value(ctx)[0])]


def _cos_lower(k):
    return {"value": c_scalar(_fill_value(node_ctx(k))[0], k.outs[0].ctype)}


register(OpDef("ConstantOfShape", Category.SHAPE_FROM_VALUES, _cos_infer, Fusion.OPAQUE, "constant_of_shape",
               value=_cos_value, dtypes=ANY, static_inputs=(0,), lower=_cos_lower))


def _range_args(ctx):
    out = []
    for i, what in enumerate(("start", "limit", "delta")):
        v = np.asarray(ctx.const(i, what)).reshape(-1)
        if v.size != 1:
            ctx.fail(f"{what} must be a scalar")
        v = v[0]
        out.append(as_dim(v) if isinstance(v, sympy.Basic) else sympy.nsimplify(float(v), rational=True)
                   if np.issubdtype(np.asarray(v).dtype, np.floating) else sympy.Integer(int(v)))
    if not out[2].is_number or out[2] == 0:
        ctx.fail("delta must be a non-zero number known at compile time")
    return out


def _range_infer(ctx):
    start, limit, delta = _range_args(ctx)
    n = _max(ctx.dims, sympy.ceiling((limit - start) / delta), 0)
    return [(ctx.ins[0].dtype, (n,))]


def _range_value(ctx):
    if ctx.ins[0].dtype.kind not in "iu":
        raise ValueError("float ranges stay kernels")
    start, _, delta = _range_args(ctx)
    return [np.asarray([as_dim(start + i * delta) for i in range(int(ctx.out_shapes[0][0]))], dtype=object)]


def _range_lower(k):
    start, _, delta = _range_args(node_ctx(k))
    o = k.outs[0]

    def cxx(e):
        if o.ctype == "float":
            if e.is_number:
                return c_scalar(float(e), "float")
            return f"float({k.dimexpr(e)})"
        return f"{o.ctype}({k.dimexpr(e)})"
    return {"start": cxx(start), "delta": cxx(delta)}


register(OpDef("Range", Category.SHAPE_FROM_VALUES, _range_infer, Fusion.OPAQUE, "range", value=_range_value,
               dtypes=("float32", "int64", "int32"), static_inputs=(0, 1, 2), lower=_range_lower))
