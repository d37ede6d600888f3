"""Selection by value: NonZero, TopK. How many elements NonZero selects is known only after it ran
(the fourth dynamism category): its output extent is an execution-determined dim, bounded by the
input's size, that the kernel materialises and later shape expressions read. TopK's extent is k,
an execution-determined dim too when k is a run-time tensor.

Kernels live in runtime_cpp/include/dydca/selection.h."""
from __future__ import annotations

import numpy as np
import sympy

from ..symbolic import as_dim
from . import I64, Category, Fusion, OpDef, register
from .layout import node_ctx
from .shape import norm_axis, prod_dims


# ---- NonZero ----

def _nonzero_infer(ctx):
    x = ctx.ins[0]
    if not x.shape:
        ctx.fail("a scalar input is not supported; NonZero needs rank >= 1")
    if x.is_const:  # numeric contents: the count is known, the node folds
        return [(I64, (len(x.shape), int(np.count_nonzero(x.const))))]
    count = ctx.dims.runtime_dim(f"{ctx.node.outputs[0]}.count", prod_dims(x.shape))
    return [(I64, (len(x.shape), count))]


def _nonzero_lower(k):
    count = k.emitter.graph.values[k.node.outputs[0]].shape[1]
    return {"count": k.dimexpr(count)}


register(OpDef("NonZero", Category.EXECUTION, _nonzero_infer, Fusion.OPAQUE, "nonzero",
               dtypes=("float32", "int64", "int32", "bool"), lower=_nonzero_lower))


# ---- TopK ----
# The k largest (or smallest) elements along an axis, with their indices. When k is known at
# compile time (the opset-1 attribute, an initializer, or a dim expression from the input shapes)
# the output extent along the axis is that value: category 3 in effect. When k is a run-time
# tensor the extent is an execution-determined dim bounded by the axis dim, which the kernel
# checks and materialises before it computes; that is the entry's category.

TOPK_MAX_WORKERS = 64  # threads one call uses at most: bounds the scratch (dydca::kTopKMaxWorkers)
INDEX_BYTES = 4  # the kernel orders int32 positions along the axis


def _topk_axis(ctx, x):
    if not x.shape:
        ctx.fail("a scalar input is not supported; TopK needs rank >= 1")
    return norm_axis(ctx, ctx.attrs.get("axis", -1), x.rank)


def _topk_k_input(ctx):
    """The k tensor (opset >= 10), or None when k is the opset-1 attribute."""
    v = ctx.ins[1] if len(ctx.ins) > 1 else None
    if v is None:
        if "k" not in ctx.attrs:
            ctx.fail("k is missing: give it as input 1 (opset >= 10) or as the attribute k (opset 1)")
        return None
    if v.dtype != I64:
        ctx.fail(f"k {v.name!r} must be int64, not {v.dtype}")
    if [str(d) for d in v.shape] != ["1"]:  # as onnxruntime, which refuses a scalar k
        ctx.fail(f"k {v.name!r} must be a 1-element 1-D tensor, its shape is {tuple(map(str, v.shape))}")
    return v


def _topk_const_k(ctx, k_input):
    """k as a number or dim expression when known at compile time, else None."""
    if k_input is None:
        return as_dim(int(ctx.attrs["k"]))
    if k_input.const is None:
        return None
    return as_dim(np.asarray(ctx.const(1, "k")).reshape(-1)[0])


def _const_k_checked_at_run_time(ctx, k, n) -> bool:
    """Whether a compile-time k needs the kernel's range check: no when 0 <= k <= n holds over the
    declared ranges. An execution-determined dim in k or n is bounded as if independent of the
    others (a NonZero count vs the size it counts from), so when one is involved and the bounds
    cannot tell, the kernel checks the values; otherwise the model is refused."""
    dims = ctx.dims
    if dims.lower_bound(k) >= 0 and dims.upper_bound(k - n) <= 0:
        return False
    if dims.is_runtime(k) or dims.is_runtime(n):
        return True
    if dims.lower_bound(k) < 0:
        ctx.fail(f"k = {k} can be negative (as low as {dims.lower_bound(k)} over the declared ranges)")
    ctx.fail(f"k = {k} can exceed the axis dimension {n} over the declared dim ranges (by up to "
             f"{dims.upper_bound(k - n)}); narrow the ranges so that k <= {n}")


def _topk_infer(ctx):
    x = ctx.ins[0]
    axis = _topk_axis(ctx, x)
    n = as_dim(x.shape[axis])
    if ctx.dims.upper_bound(n) >= 2 ** 31:
        ctx.fail(f"the axis dimension {n} can reach 2^31; the kernel indexes it with int32")
    k_input = _topk_k_input(ctx)
    k = _topk_const_k(ctx, k_input)
    if k is None:
        k = ctx.dims.runtime_dim(f"{ctx.node.outputs[0]}.k", n)
    else:
        _const_k_checked_at_run_time(ctx, k, n)  # refuses a k that can be out of range
    shape = tuple(x.shape[:axis]) + (k,) + tuple(x.shape[axis + 1:])
    return [(x.dtype, shape), (I64, shape)]


def _topk_scratch(ctx):
    """One int32 position per axis element for each worker; workers <= min(rows, the cap)."""
    x = ctx.ins[0]
    axis = _topk_axis(ctx, x)
    k = _topk_const_k(ctx, _topk_k_input(ctx))
    if k is not None and k.is_Integer and int(k) <= 1:
        return 0  # k = 1 is a running best per row, k = 0 writes nothing
    rows = prod_dims(x.shape[:axis]) * prod_dims(x.shape[axis + 1:])
    return sympy.Min(rows, TOPK_MAX_WORKERS) * as_dim(x.shape[axis]) * INDEX_BYTES


def _topk_lower(k):
    from dydca.codegen.emit import cstr_inner
    x = k.ins[0]
    axis = _topk_axis(k, x)
    g = k.emitter.graph
    kdim = g.values[k.node.outputs[0]].shape[axis]
    # a run-time k tensor: the kernel checks it and sets the dim `kdim` names (an lvalue then);
    # otherwise kdim is k's compile-time expression, checked by the kernel only when needed
    runtime_k = bool(k.node.input(1)) and g.values[k.node.input(1)].const is None
    check_k = not runtime_k and _const_k_checked_at_run_time(node_ctx(k), kdim, x.dims[axis])
    # k.outs skips absent outputs: map them back to the node's output positions
    outs = iter(k.outs)
    refs = [next(outs) if name else None for name in k.node.outputs] + [None, None]
    return {"outer": k.dimexpr(prod_dims(x.dims[:axis])), "n": x.shape[axis], "inner": k.dimexpr(prod_dims(x.dims[axis + 1:])),
            "kdim": k.dimexpr(kdim), "runtime_k": runtime_k, "check_k": check_k,
            "largest": "true" if int(k.attrs["largest"]) else "false",
            "sorted": "true" if int(k.attrs["sorted"]) else "false",
            "values": refs[0].ptr if refs[0] else "nullptr", "indices": refs[1].ptr if refs[1] else "nullptr",
            "what": cstr_inner(f"TopK node {k.node.name or k.node.outputs[0]!r}")}


register(OpDef("TopK", Category.EXECUTION, _topk_infer, Fusion.OPAQUE, "topk",
               attrs={"axis": -1, "largest": 1, "sorted": 1}, dtypes=("float32", "int64", "int32"),
               lower=_topk_lower, scratch=_topk_scratch))
