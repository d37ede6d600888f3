"""Selection by value: NonZero. How many elements it selects is known only after it ran (the
fourth dynamism category): its output extent is an execution-determined dim, bounded by the input's
size, that the kernel materialises and later shape expressions read.

Kernels live in runtime_cpp/include/dydca/selection.h."""
from __future__ import annotations

import numpy as np

from ..symbolic import as_dim
from . import I64, Category, Fusion, OpDef, register


def numel(dims):
    n = as_dim(1)
    for d in dims:
        n *= as_dim(d)
    return n


# ---- NonZero ----

def _nonzero_infer(ctx):
    x = ctx.ins[0]
    if not x.shape:
        ctx.fail("a scalar input is not supported; NonZero needs rank >= 1")
    if x.is_const:  # numeric contents: the count is known, the node folds
        return [(I64, (len(x.shape), int(np.count_nonzero(x.const))))]
    count = ctx.dims.runtime_dim(f"{ctx.node.outputs[0]}.count", numel(x.shape))
    return [(I64, (len(x.shape), count))]


def _nonzero_lower(k):
    count = k.emitter.graph.values[k.node.outputs[0]].shape[1]
    return {"count": k.dimexpr(count)}


register(OpDef("NonZero", Category.EXECUTION, _nonzero_infer, Fusion.OPAQUE, "nonzero",
               dtypes=("float32", "int64", "int32", "bool"), lower=_nonzero_lower))
