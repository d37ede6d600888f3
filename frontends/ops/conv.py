"""Convolutions: Conv and ConvTranspose (1-D and 2-D, groups incl. depthwise, strides, dilations,
pads, auto_pad). Weights are constants, packed at compile time for the kernel (codegen/packing.py);
the kernel takes a fused element-wise epilogue (attrs["epilogue"], see compiler/passes)."""
from __future__ import annotations

import numpy as np
import sympy

from ..symbolic import as_dim, ceildiv, floordiv
from . import Category, Fusion, ModelError, OpDef, register


def conv_geometry(ctx_or_k, x_dims, w_shape, transpose=False):
    """Resolves kernel size, strides, dilations, begin/end pads (sympy) and output spatial dims."""
    a = ctx_or_k.attrs
    spatial = len(x_dims) - 2
    kernel = list(a.get("kernel_shape") or w_shape[2:])
    strides = list(a.get("strides") or [1] * spatial)
    dil = list(a.get("dilations") or [1] * spatial)
    pads = list(a.get("pads") or [0] * (2 * spatial))
    auto = a.get("auto_pad", "NOTSET") or "NOTSET"
    if not (len(kernel) == len(strides) == len(dil) == spatial and len(pads) == 2 * spatial):
        ctx_or_k.fail(f"kernel_shape/strides/dilations/pads do not match {spatial} spatial dims")
    begin, end, out = [], [], []
    for i in range(spatial):
        n, k, s, d = as_dim(x_dims[2 + i]), int(kernel[i]), int(strides[i]), int(dil[i])
        dk = (k - 1) * d + 1
        if not transpose:
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                o = ceildiv(n, s)
                total = sympy.Max(0, (o - 1) * s + dk - n)
                small = floordiv(total, 2)
                b = small if auto == "SAME_UPPER" else total - small
                e = total - b
            elif auto == "VALID":
                b, e = sympy.Integer(0), sympy.Integer(0)
                o = floordiv(n - dk, s) + 1
            else:
                b, e = as_dim(pads[i]), as_dim(pads[spatial + i])
                o = floordiv(n + b + e - dk, s) + 1
        else:
            out_pad = list(a.get("output_padding") or [0] * spatial)[i]
            out_shape = a.get("output_shape")
            if out_shape:
                o = as_dim(out_shape[-spatial + i])
            elif auto in ("SAME_UPPER", "SAME_LOWER"):
                o = n * s
            else:
                o = None
            if o is not None:
                total = s * (n - 1) + out_pad + dk - o
                half = floordiv(total, 2)
                b, e = (half, total - half) if auto != "SAME_LOWER" else (total - half, half)
            else:
                b, e = as_dim(pads[i]), as_dim(pads[spatial + i])
                o = s * (n - 1) + out_pad + dk - b - e
        begin.append(sympy.simplify(b))
        end.append(sympy.simplify(e))
        out.append(sympy.simplify(o))
    return dict(kernel=kernel, strides=strides, dilations=dil, begin=begin, end=end, out=out)


def _check(ctx, transpose):
    x, w = ctx.ins[0], ctx.ins[1]
    if x.rank not in (3, 4):
        ctx.fail(f"{x.rank - 2}-D convolution is not supported (1-D and 2-D are)")
    if w.rank != x.rank:
        ctx.fail(f"weight rank {w.rank} does not match input rank {x.rank}")
    group = int(ctx.attrs.get("group", 1))
    c = as_dim(x.shape[1])
    if not c.is_Integer:
        ctx.fail("the channel dimension must be fixed")
    cin = int(w.shape[0]) if transpose else int(w.shape[1]) * group
    if int(c) != cin:
        ctx.fail(f"input has {int(c)} channels but the weights expect {cin} (group={group})")
    return group


def _conv_infer(ctx):
    group = _check(ctx, False)
    x, w = ctx.ins[0], ctx.ins[1]
    g = conv_geometry(ctx, x.shape, w.shape)
    return [(x.dtype, (x.shape[0], w.shape[0], *g["out"]))]


def _conv_transpose_infer(ctx):
    group = _check(ctx, True)
    x, w = ctx.ins[0], ctx.ins[1]
    g = conv_geometry(ctx, x.shape, w.shape, transpose=True)
    return [(x.dtype, (x.shape[0], int(w.shape[1]) * group, *g["out"]))]


def epilogue(k, out, acc="v", m="m", i="i"):
    """C++ expression applying attrs["epilogue"] (a fused element-wise program, see
    compiler/passes) to the kernel's accumulator `acc` of output channel `m` at flat index `i`,
    plus the operand declarations it reads. Operands are indexed by i (same shape as the output),
    by m (per channel) or as a scalar."""
    from .elementwise import step_expr

    program = k.attrs.get("epilogue") or []
    decls, temps = [], []
    names = {}
    for _, _, refs in program:
        for kind, idx in refs:
            if kind == "in" and idx not in names:
                ref = k.ins[idx]
                if ref is None:
                    k.fail(f"epilogue operand {idx} is not a run-time tensor")
                name = f"e{idx}"
                numel = 1
                for d in ref.dims:
                    numel = numel * as_dim(d)
                if as_dim(numel) == 1:
                    names[idx] = f"{name}[0]"
                elif len(ref.dims) == len(out.dims) and all(
                        as_dim(a) == as_dim(b) for a, b in zip(ref.dims, out.dims)):
                    names[idx] = f"{name}[{i}]"
                elif sum(1 for d in ref.dims if as_dim(d) != 1) == 1 and \
                        as_dim(ref.dims[len(ref.dims) - len(out.dims) + 1]) == as_dim(out.dims[1]):
                    names[idx] = f"{name}[{m}]"
                else:
                    k.fail(f"epilogue operand of shape {ref.dims} is neither per-element, "
                           f"per-channel nor scalar")
                decls.append(f"const {ref.ctype}* {name} = {ref.ptr};")
    for op_name, attrs, refs in program:
        args = [acc if kind == "acc" else names[idx] if kind == "in" else temps[idx]
                for kind, idx in refs]
        temps.append(step_expr(op_name, attrs, args, "float", "float"))
    return (temps[-1] if temps else acc), decls


def _lower(k, transpose):
    from dydca.codegen.packing import pack_conv2d, pack_conv_transpose2d

    x, y = k.ins[0], k.outs[0]
    w = k.params["static_ins"].get(1)
    if w is None or w.dtype == object:
        k.fail("convolution weights must be constants (initializers)")
    group = int(k.attrs.get("group", 1))
    g = conv_geometry(k, x.dims, w.shape, transpose)
    if x.rank == 3:  # 1-D: a 2-D conv over a height of 1
        w = w[:, :, None, :]
        g = {key: ([1] + v if key in ("kernel", "strides", "dilations") else [sympy.Integer(0)] + v)
             for key, v in g.items() if key != "out"}
        h, wd, oh, ow = "INT64_C(1)", x.shape[2], "INT64_C(1)", y.shape[2]
    else:
        h, wd, oh, ow = x.shape[2], x.shape[3], y.shape[2], y.shape[3]
    packed = (pack_conv_transpose2d if transpose else pack_conv2d)(w, group)
    bias = k.params["static_ins"].get(2)
    expr, decls = epilogue(k, y)
    return dict(
        fn_name="conv_transpose2d" if transpose else "conv2d",
        kh=g["kernel"][0], kw=g["kernel"][1], sh=g["strides"][0], sw=g["strides"][1],
        dh=g["dilations"][0], dw=g["dilations"][1], group=group,
        pad_t=k.dimexpr(g["begin"][0]), pad_l=k.dimexpr(g["begin"][1]),
        h=h, wd=wd, oh=oh, ow=ow,
        weights=k.blob(packed), bias=k.blob(bias.astype(np.float32)) if bias is not None else "nullptr",
        epi_expr=expr, epi_decls=decls,
    )


for _name, _infer, _t in (("Conv", _conv_infer, False), ("ConvTranspose", _conv_transpose_infer, True)):
    register(OpDef(_name, Category.SHAPE_FROM_SHAPES, _infer, Fusion.ANCHOR, "conv",
                   attrs={"group": 1, "auto_pad": "NOTSET"}, static_inputs=(1, 2),
                   lower=(lambda t: lambda k: _lower(k, t))(_t)))
