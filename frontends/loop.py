"""ONNX `Loop`: a body sub-graph run up to a trip count, with loop-carried values and scan outputs.

The trip count M must be known at compile time, as a number or an expression of the input dims
(so scan outputs have a bound for the plan); a run-time condition may end the loop earlier, and
then the scan outputs' extent is an execution-determined dim. The iteration number is an
execution-determined dim too: the body's shape arithmetic on it (Slice starts, Gather indices
from `iter + 1`, ...) becomes C++ expressions of the per-call symbol the loop sets each iteration.

The body is planned as a sub-plan in the Loop's region of the arena (compiler/planner.py): its
parameters (iteration number, condition, carried values) and outputs are buffers of that region
live across the whole body; after each iteration the loop copies the carried outputs onto the
carried parameters and each scan output into its slice of the Loop's output.
"""
from __future__ import annotations

import numpy as np
import sympy

from .control_flow import _same_dim, scoped
from .ir import Graph, Node, Value
from .ops import BOOL, I64, Category, Fusion, ModelError, OpDef, register
from .symbolic import as_dim

UNBOUNDED = 1 << 62  # no trip count: the loop runs while its condition holds (no scan outputs)


def parts(node: Node):
    """(body, number of carried values, number of scan outputs)."""
    body = node.attrs["body"]
    n = len(body.inputs) - 2
    return body, n, len(body.outputs) - 1 - n


def trip_count(node: Node, values):
    """M as a dim expression, or None when the node has none."""
    if not node.inputs or not node.inputs[0]:
        return None
    m = values[node.inputs[0]]
    if m.const is None:
        raise ModelError(node, f"trip count {m.name!r} must be known at compile time (a number or an "
                               f"expression of the input dims); a run-time value is not supported")
    return as_dim(np.asarray(m.const).reshape(-1)[0])


def _names(node: Node, what: str) -> str:
    return f"{node.outputs[0] or node.name}.{what}"


def infer_body(graph: Graph, node: Node) -> None:
    """Types the body's parameters from the Loop's inputs, infers the body in the enclosing scope
    and checks that carried values keep their type and shape."""
    from .shape_infer import infer_node

    body, n, k = parts(node)
    if len(node.inputs) < 2 + n or k < 0:
        raise ModelError(node, f"body takes {len(body.inputs)} inputs and returns {len(body.outputs)} "
                               f"outputs; the Loop has {len(node.inputs)} inputs and "
                               f"{len(node.outputs)} outputs")
    if len(node.outputs) != n + k:
        raise ModelError(node, f"has {len(node.outputs)} outputs; its body returns {n} carried and "
                               f"{k} scan outputs")
    dims, m = graph.dims, trip_count(node, graph.values)
    bounded = m is not None and dims.upper_bound(m) < UNBOUNDED
    if not bounded and k:
        raise ModelError(node, "a loop with scan outputs needs a trip count known at compile time")
    it, cond, *carried = body.inputs
    body.values[it] = Value(it, I64, ())
    if bounded:  # the iteration number as a symbol: shape arithmetic on it stays expressions
        i = dims.runtime_dim(_names(node, "iter"), sympy.Max(m - 1, 0))
        body.values[it].const = np.array(i, dtype=object)
    body.values[cond] = Value(cond, BOOL, ())
    for name, init in zip(carried, node.inputs[2:2 + n]):
        v = graph.values[init]
        body.values[name] = Value(name, v.dtype, v.shape)
    view = scoped(body, graph.values)
    for b in body.nodes:
        infer_node(view, b)
    outs = [body.values[o] for o in body.outputs]
    if outs[0].dtype != BOOL:
        raise ModelError(node, f"body's condition output is {outs[0].dtype}; it must be bool")
    for j, (name, out) in enumerate(zip(carried, outs[1:1 + n])):
        v = body.values[name]
        if out.dtype != v.dtype or len(out.shape) != len(v.shape) or not all(map(_same_dim, out.shape, v.shape)):
            raise ModelError(node, f"loop-carried value {j} enters as {v.dtype}{_fmt(v.shape)} and leaves "
                                   f"the body as {out.dtype}{_fmt(out.shape)}; a value whose type or "
                                   f"shape changes across iterations is not supported")
    for j, out in enumerate(outs[1 + n:]):
        if any(s.name == _names(node, "iter") for d in out.shape for s in as_dim(d).free_symbols):
            raise ModelError(node, f"scan output {j} has a shape {_fmt(out.shape)} that changes with "
                                   f"the iteration; scan outputs need one shape")


def _fmt(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def runs_every_trip(node: Node, values) -> bool:
    """True when the condition can never end the loop early: the body returns a constant true, or
    passes its condition through and the loop starts true."""
    body = node.attrs["body"]
    out = body.values[body.outputs[0]]
    if out.is_const:
        return bool(np.asarray(out.const).reshape(-1)[0])
    passthrough = any(b.op == "Identity" and b.inputs == [body.inputs[1]] and b.outputs == [body.outputs[0]]
                      for b in body.nodes)
    start = values.get(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
    starts_true = start is None or (start.is_const and bool(np.asarray(start.const).reshape(-1)[0]))
    return passthrough and starts_true


def _loop_infer(ctx):
    node = ctx.node
    body, n, k = parts(node)
    if n + 2 > len(ctx.ins):
        ctx.fail("fewer inputs than the body's carried values")
    cond = ctx.ins[1]
    if cond is not None and cond.dtype != BOOL:
        ctx.fail(f"condition {cond.name!r} is {cond.dtype}; Loop needs a bool")
    results = [(ctx.ins[2 + j].dtype, ctx.ins[2 + j].shape) for j in range(n)]
    if k:
        values = {v.name: v for v in ctx.ins if v is not None}
        m = trip_count(node, values)
        m = m if ctx.dims.lower_bound(m) >= 0 else sympy.Max(m, 0)  # a negative count runs 0 trips
        trips = m if runs_every_trip(node, values) else ctx.dims.runtime_dim(_names(node, "trips"), m)
        for out in body.outputs[1 + n:]:
            v = body.values[out]
            results.append((v.dtype, (trips,) + tuple(v.shape)))
    return results


def lower_loop(k) -> dict:
    """Template parameters of `loop.j2`: the body's kernels and the buffers the loop moves."""
    node, em = k.node, k.emitter
    body, n, _ = parts(node)
    (view, sub), = em.plan.branches[node.outputs[0]]
    inner = em.branch(view, sub)
    ref, outer = inner.tensor, em.tensor

    def move(dst, src):  # src's extent: a scan output takes one trip's slice at a time
        return {"dst": dst.ptr, "src": src.ptr, "ctype": src.ctype, "numel": src.numel}

    it, cond, *carried = body.inputs
    outs = body.outputs
    values = em.graph.values
    m = trip_count(node, values)
    start = values.get(node.inputs[1]) if node.inputs[1:] and node.inputs[1] else None
    cond_init = ("true" if start is None else
                 ("true" if bool(np.asarray(start.const).reshape(-1)[0]) else "false") if start.is_const
                 else f"{outer(node.inputs[1]).ptr}[0]")
    iter_sym = view.values[it].const
    scans = [move(outer(o), ref(s)) for o, s in zip(node.outputs[n:], outs[1 + n:])]
    trips_slot = None
    if scans:
        d0 = as_dim(values[node.outputs[n]].shape[0])
        if em.graph.dims.is_runtime(d0) and d0.is_Symbol:
            trips_slot = k.dimexpr(d0)
    return {
        "kernels": inner.kernels(),
        "trips": k.dimexpr(m) if m is not None and em.graph.dims.upper_bound(m) < UNBOUNDED else "INT64_MAX",
        "cond_init": cond_init,
        "iter_ptr": ref(it).ptr, "cond_ptr": ref(cond).ptr, "cond_out": ref(outs[0]).ptr,
        "iter_slot": k.dimexpr(np.asarray(iter_sym).reshape(-1)[0]) if iter_sym is not None else None,
        "init": [move(ref(c), outer(i)) for c, i in zip(carried, node.inputs[2:2 + n])],
        "carry": [move(ref(c), ref(o)) for c, o in zip(carried, outs[1:1 + n])],
        "final": [move(outer(f), ref(c)) for f, c in zip(node.outputs[:n], carried) if f],
        "scans": scans,
        "trips_slot": trips_slot,
    }


register(OpDef("Loop", Category.EXECUTION, _loop_infer, Fusion.OPAQUE, "loop",
               value=lambda ctx: [None] * len(ctx.node.outputs), static_inputs=(0,),
               dtypes=("float32", "int64", "int32", "bool"), lower=lower_loop))
