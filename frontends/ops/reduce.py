"""Reductions and normalisations: ReduceSum/Mean/Max, Softmax, LayerNormalization, LRN,
BatchNormalization (inference), MaxPool/AveragePool and their Global forms.

Kernels live in runtime_cpp/include/dydca/reduce.h; the templates only pass static geometry."""
from __future__ import annotations

import numpy as np
import sympy

from ..symbolic import as_dim, ceildiv, floordiv
from . import Category, Fusion, OpDef, register
from .shape import norm_axis, prod_dims as _prod


def _has_output(ctx, i):
    return i < len(ctx.node.outputs) and bool(ctx.node.outputs[i])


# ---- ReduceSum / ReduceMean / ReduceMax ----

def reduce_axes(ctx, rank):
    """Sorted reduced axes, or None for 'no reduction' (empty axes with noop_with_empty_axes)."""
    if len(ctx.ins) > 1 and ctx.ins[1] is not None:  # ReduceSum >= 13, the others >= 18
        axes = np.asarray(ctx.const(1, "axes")).reshape(-1)
    else:
        axes = np.asarray(ctx.attrs.get("axes", []), dtype=np.int64).reshape(-1)
    if axes.dtype == object:
        ctx.fail("axes must be numbers known at compile time")
    if axes.size == 0:
        return None if int(ctx.attrs.get("noop_with_empty_axes", 0)) else list(range(rank))
    axes = sorted({norm_axis(ctx, a, rank) for a in axes.tolist()})
    return axes


def _reduce_infer(ctx):
    x = ctx.ins[0]
    axes = reduce_axes(ctx, x.rank)
    if axes is None:
        return [(x.dtype, x.shape)]
    keep = int(ctx.attrs.get("keepdims", 1))
    shape = [sympy.Integer(1) if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes]
    return [(x.dtype, tuple(shape))]


def reduce_geometry(k, dims, axes):
    """Merges adjacent axes of the same kind (kept / reduced) and gives the reduce.h geometry:
    sizes and strides of the kept and reduced groups other than the innermost one."""
    groups = []  # [reduced?, [axes]]
    for i in range(len(dims)):
        if as_dim(dims[i]) == 1:
            continue  # a size-1 axis is neither kept nor reduced work
        r = i in axes
        if groups and groups[-1][0] == r:
            groups[-1][1].append(i)
        else:
            groups.append([r, [i]])
    if not groups:
        groups = [[False, []]]
    strides, acc = [], sympy.Integer(1)
    for d in reversed(dims):
        strides.insert(0, acc)
        acc = acc * as_dim(d)
    size = lambda g: _prod(dims[i] for i in g[1])
    stride = lambda g: strides[g[1][-1]] if g[1] else sympy.Integer(1)
    inner = groups[-1]
    kept = [g for g in groups[:-1] if not g[0]]
    red = [g for g in groups[:-1] if g[0]]
    as_c = lambda gs, f: [k.dimexpr(f(g)) for g in gs] or ["INT64_C(1)"]
    count = _prod(dims[i] for i in axes)
    return dict(nk=max(len(kept), 1), nr=max(len(red), 1),
                kn=as_c(kept, size), ks=as_c(kept, stride), rn=as_c(red, size), rs=as_c(red, stride),
                inner=k.dimexpr(size(inner)), inner_reduced="true" if inner[0] else "false",
                count=k.dimexpr(count))


def _reduce_lower(k, op, mean):
    x = k.ins[0]
    axes = reduce_axes(k, x.rank) if k.node.op.startswith("Reduce") else list(range(2, x.rank))
    if axes is None:  # noop_with_empty_axes: a copy
        axes = []
    g = reduce_geometry(k, x.dims, axes)
    g.update(op=op, mean=mean)
    return g


def _register_reduce(name, op, mean):
    register(OpDef(name, Category.SHAPE_FROM_SHAPES, _reduce_infer, Fusion.REDUCE, "reduce",
                   attrs={"keepdims": 1, "noop_with_empty_axes": 0}, static_inputs=(1,),
                   lower=lambda k: _reduce_lower(_KernelView(k), op, mean)))


class _KernelView:
    """Adapts a KernelCtx to the InferCtx surface reduce_axes uses (ins[1] from static inputs)."""

    def __init__(self, k):
        self._k = k
        static = k.params.get("static_ins", {})
        self.ins = list(k.ins)
        if 1 in static:
            self.ins[1] = _Const(static[1])
        self.attrs, self.node = k.attrs, k.node

    def const(self, i, what="input"):
        return self.ins[i].const

    def __getattr__(self, name):
        return getattr(self._k, name)


class _Const:
    def __init__(self, const):
        self.const = const


_register_reduce("ReduceSum", "SumOp", False)
_register_reduce("ReduceMean", "SumOp", True)
_register_reduce("ReduceMax", "MaxOp", False)


def _global_pool_infer(ctx):
    x = ctx.ins[0]
    if x.rank < 3:
        ctx.fail(f"input of rank {x.rank} has no spatial axes")
    return [(x.dtype, tuple(x.shape[:2]) + (sympy.Integer(1),) * (x.rank - 2))]


for _name, _op, _mean in (("GlobalAveragePool", "SumOp", True), ("GlobalMaxPool", "MaxOp", False)):
    register(OpDef(_name, Category.SHAPE_FROM_SHAPES, _global_pool_infer, Fusion.REDUCE, "reduce",
                   lower=(lambda o, m: lambda k: _reduce_lower(_KernelView(k), o, m))(_op, _mean)))


# ---- Softmax ----

def _same_shape(ctx):
    return [(ctx.ins[0].dtype, ctx.ins[0].shape)]


def _softmax_lower(k):
    x = k.ins[0]
    opset = k.emitter.graph.opset
    axis = norm_axis(k, k.attrs.get("axis", -1 if opset >= 13 else 1), max(x.rank, 1))
    if opset >= 13:  # along one axis
        outer, L, inner = _prod(x.dims[:axis]), as_dim(x.dims[axis]) if x.rank else 1, _prod(x.dims[axis + 1:])
    else:  # older opsets: the input flattened to 2-D at `axis`, softmax over each row
        outer, L, inner = _prod(x.dims[:axis]), _prod(x.dims[axis:]), sympy.Integer(1)
    return dict(outer=k.dimexpr(outer), L=k.dimexpr(L), inner=k.dimexpr(inner))


register(OpDef("Softmax", Category.SHAPE_FROM_SHAPES, _same_shape, Fusion.REDUCE, "softmax",
               lower=_softmax_lower))


# ---- LayerNormalization ----

def _layernorm_infer(ctx):
    x = ctx.ins[0]
    axis = norm_axis(ctx, ctx.attrs.get("axis", -1), x.rank)
    if int(ctx.attrs.get("stash_type", 1)) != 1:
        ctx.fail("only stash_type=1 (float statistics) is supported")
    norm = tuple(x.shape[axis:])
    for i, name in ((1, "Scale"), (2, "B")):
        v = ctx.ins[i] if i < len(ctx.ins) else None
        if v is not None and _prod(v.shape) != _prod(norm):
            ctx.fail(f"{name} of shape {tuple(map(str, v.shape))} must hold the normalized shape "
                     f"{tuple(map(str, norm))} (broadcast {name} is not supported)")
    stat = tuple(x.shape[:axis]) + (sympy.Integer(1),) * (x.rank - axis)
    return [(x.dtype, x.shape), (x.dtype, stat), (x.dtype, stat)][:max(1, len(ctx.node.outputs))]


def _layernorm_lower(k):
    x = k.ins[0]
    axis = norm_axis(k, k.attrs.get("axis", -1), x.rank)
    # k.outs skips absent outputs: map node output positions to refs
    refs, j = [], 0
    for name in k.node.outputs:
        refs.append(k.outs[j] if name else None)
        j += bool(name)
    ptr = lambda i: refs[i].ptr if i < len(refs) and refs[i] is not None else "nullptr"
    bias = k.ins[2] if len(k.ins) > 2 else None
    return dict(outer=k.dimexpr(_prod(x.dims[:axis])), L=k.dimexpr(_prod(x.dims[axis:])),
                bias=bias.ptr if bias is not None else "nullptr", mean_out=ptr(1), inv_std_out=ptr(2))


register(OpDef("LayerNormalization", Category.SHAPE_FROM_SHAPES, _layernorm_infer, Fusion.REDUCE,
               "layernorm", attrs={"axis": -1, "epsilon": 1e-5, "stash_type": 1},
               lower=_layernorm_lower, since=17))


# ---- BatchNormalization (inference) and LRN: per-channel over [N, C, spatial] ----

def _nc_s(x):
    return (x.dims[0], x.dims[1] if x.rank > 1 else 1, _prod(x.dims[2:]))


def _batchnorm_infer(ctx):
    if int(ctx.attrs.get("training_mode", 0)):
        ctx.fail("training_mode=1 is not supported (inference only)")
    if any(_has_output(ctx, i) for i in range(1, 5)):
        ctx.fail("only output 0 (Y) is supported; running statistics outputs are training-only")
    if ctx.ins[0].rank < 2:
        ctx.fail("input must have rank >= 2 ([N, C, ...])")
    return [(ctx.ins[0].dtype, ctx.ins[0].shape)]


def _batchnorm_lower(k):
    x = k.ins[0]
    n, c, s = _nc_s(x)
    eps = float(k.attrs.get("epsilon", 1e-5))
    params = [k.ins[i] for i in range(1, 5)]
    out = dict(n=k.dimexpr(n), c=k.dimexpr(c), s=k.dimexpr(s), eps=eps)
    if all(p.const is not None and p.const.dtype != object for p in params):
        scale, bias, mean, var = (np.asarray(p.const, np.float64).reshape(-1) for p in params)
        a = scale / np.sqrt(var + eps)  # folded once at compile time, in double
        out.update(folded=True, a=k.blob(a.astype(np.float32)), b=k.blob((bias - mean * a).astype(np.float32)))
    else:
        out.update(folded=False, scale=params[0].ptr, bias=params[1].ptr, mean=params[2].ptr, var=params[3].ptr)
    return out


register(OpDef("BatchNormalization", Category.SHAPE_FROM_SHAPES, _batchnorm_infer, Fusion.OPAQUE,
               "batchnorm", attrs={"epsilon": 1e-5, "momentum": 0.9, "training_mode": 0},
               lower=_batchnorm_lower))


def _lrn_lower(k):
    x = k.ins[0]
    n, c, s = _nc_s(x)
    size = int(k.attrs["size"])
    return dict(n=k.dimexpr(n), c=k.dimexpr(c), s=k.dimexpr(s), lo=(size - 1) // 2, hi=size - 1 - (size - 1) // 2,
                alpha_n=float(k.attrs["alpha"]) / size, beta=float(k.attrs["beta"]), bias=float(k.attrs["bias"]))


def _lrn_infer(ctx):
    if "size" not in ctx.attrs:
        ctx.fail("attribute size is required")
    return _same_shape(ctx)


register(OpDef("LRN", Category.SHAPE_FROM_SHAPES, _lrn_infer, Fusion.OPAQUE, "lrn",
             attrs={"alpha": 1e-4, "beta": 0.75, "bias": 1.0}, lower=_lrn_lower))


# ---- MaxPool / AveragePool ----

def pool_geometry(ctx, x_dims):
    """Kernel, strides, dilations, begin/end pads and output sizes (sympy) of a 1-D or 2-D pool,
    with onnxruntime's output-size rules (ceil_mode included)."""
    a = ctx.attrs
    sp = len(x_dims) - 2
    if sp not in (1, 2):
        ctx.fail(f"{sp}-D pooling is not supported (1-D and 2-D are)")
    kernel = [int(v) for v in a["kernel_shape"]]
    strides = [int(v) for v in (a.get("strides") or [1] * sp)]
    dil = [int(v) for v in (a.get("dilations") or [1] * sp)]
    pads = [int(v) for v in (a.get("pads") or [0] * (2 * sp))]
    auto = a.get("auto_pad", "NOTSET") or "NOTSET"
    ceil_mode = int(a.get("ceil_mode", 0))
    if not (len(kernel) == len(strides) == len(dil) == sp and len(pads) == 2 * sp):
        ctx.fail(f"kernel_shape/strides/dilations/pads do not match {sp} spatial dims")
    begin, end, out = [], [], []
    for i in range(sp):
        n, k, s, d = as_dim(x_dims[2 + i]), kernel[i], strides[i], dil[i]
        dk = (k - 1) * d + 1
        exact = None
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            # onnxruntime sizes SAME pads from the undilated kernel (and rejects negative ones);
            # n - (ceil(n/s) - 1) * s lies in [1, s], so k >= s needs no clamp and, undilated, gives
            # exactly ceil(n/s) outputs (simple expressions keep sympy fast)
            o = ceildiv(n, s)
            total = (o - 1) * s + k - n if k >= s else sympy.Max(0, (o - 1) * s + k - n)
            small = floordiv(total, 2)
            b = small if auto == "SAME_UPPER" else total - small
            e = total - b
            exact = o if k >= s and d == 1 else None
        elif auto == "VALID":
            b = e = sympy.Integer(0)
        elif auto == "NOTSET":
            b, e = as_dim(pads[i]), as_dim(pads[sp + i])
        else:
            ctx.fail(f"auto_pad {auto!r} is not supported")
        span = n + b + e - dk
        if exact is not None:
            o = exact
        elif not ceil_mode:
            o = floordiv(span, s) + 1
        else:
            o = ceildiv(span, s) + 1
            # onnxruntime drops a last window that would start past the input and its begin pad;
            # that can only happen when e + s - 1 >= dk (the Min is costly in sympy: only then)
            if not (e.is_Integer and int(e) + s - 1 < dk):
                o = sympy.Min(o, ceildiv(n + b, s))
        begin.append(b)
        end.append(e)
        out.append(o)
    return dict(kernel=kernel, strides=strides, dilations=dil, begin=begin, end=end, out=out)


def _pool_infer(ctx):
    x = ctx.ins[0]
    if ctx.node.op == "MaxPool" and _has_output(ctx, 1):
        ctx.fail("the Indices output of MaxPool is not supported")
    if "kernel_shape" not in ctx.attrs:
        ctx.fail("attribute kernel_shape is required")
    g = pool_geometry(ctx, x.shape)
    return [(x.dtype, tuple(x.shape[:2]) + tuple(g["out"]))]


def _pool_lower(k):
    x, y = k.ins[0], k.outs[0]
    g = pool_geometry(k, x.dims)
    one = lambda v, z: [z] + v
    if x.rank == 3:  # 1-D: height 1
        g = {key: one(v, 1 if key in ("kernel", "strides", "dilations") else sympy.Integer(0))
             for key, v in g.items() if key != "out"}
        h, w, oh, ow = "INT64_C(1)", x.shape[2], "INT64_C(1)", y.shape[2]
    else:
        h, w, oh, ow = x.shape[2], x.shape[3], y.shape[2], y.shape[3]
    avg = k.node.op == "AveragePool"
    return dict(avg="true" if avg else "false",
                include_pad="true" if avg and int(k.attrs.get("count_include_pad", 0)) else "false",
                kh=g["kernel"][0], kw=g["kernel"][1], sh=g["strides"][0], sw=g["strides"][1],
                dh=g["dilations"][0], dw=g["dilations"][1],
                planes=k.dimexpr(x.dims[0] * as_dim(x.dims[1])), h=h, w=w, oh=oh, ow=ow,
                pads=[k.dimexpr(g["begin"][0]), k.dimexpr(g["begin"][1]),
                      k.dimexpr(g["end"][0]), k.dimexpr(g["end"][1])])


for _name in ("MaxPool", "AveragePool"):
    register(OpDef(_name, Category.SHAPE_FROM_SHAPES, _pool_infer, Fusion.REDUCE, "pool",
                   attrs={"auto_pad": "NOTSET", "ceil_mode": 0, "count_include_pad": 0},
                   lower=_pool_lower))
