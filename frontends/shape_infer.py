"""Rank, dimension and value propagation over the graph (SoD2's RDP, forward direction).

Every value gets a dtype and a shape whose dims are expressions of the input symbols. Values whose
contents are computable at compile time get them: numbers (constant folding through onnx's
reference evaluator) or expressions (shape sub-graphs, via each op's value rule).
"""
from __future__ import annotations

import numpy as np
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from . import control_flow
from .ir import Graph, Node
from .ops import Category, InferCtx, ModelError, lookup, with_defaults
from .symbolic import as_dim

FOLD_LIMIT = 1 << 22  # elements: larger constant results stay run-time kernels


def infer_node(graph: Graph, node: Node) -> None:
    op = lookup(node)
    control_flow.infer_subgraphs(graph, node)  # If: its branches first, in this scope
    ins = [graph.values.get(i) if i else None for i in node.inputs]
    for i, v in zip(node.inputs, ins):
        if i and (v is None or v.shape is None):
            raise ModelError(node, f"input {i!r} is not produced before this node")
    ctx = InferCtx(node, ins, with_defaults(op, node), graph.dims)
    try:
        results = op.infer(ctx)
    except ModelError:
        raise
    except Exception as e:  # a rule tripping over a malformed model: name the node
        raise ModelError(node, f"cannot infer output shape: {type(e).__name__}: {e}") from e
    ctx.out_shapes = [tuple(as_dim(d) for d in shape) for _, shape in results]
    contents = _contents(op, ctx, node, ins)
    for k, out in enumerate(node.outputs):
        if not out:
            continue
        v = graph.values.setdefault(out, _new_value(out))
        if k >= len(results):
            raise ModelError(node, f"output {k} ({out!r}) is not supported")
        v.dtype, v.shape = np.dtype(results[k][0]), ctx.out_shapes[k]
        v.const = _numeric(contents[k], v.dtype) if contents else None


def _numeric(arr, dtype):
    """Symbolic contents whose every entry is a plain integer (shape arithmetic on static dims)
    become numbers, so later nodes fold and rules needing numbers (axes, ...) get them."""
    if arr is None or arr.dtype != object or not np.issubdtype(dtype, np.integer):
        return arr
    try:
        dims = [as_dim(e) for e in arr.reshape(-1)]
    except Exception:
        return arr
    if not all(d.is_Integer for d in dims):
        return arr
    return np.array([int(d) for d in dims], dtype=dtype).reshape(arr.shape)


def _new_value(name):
    from .ir import Value
    return Value(name)


def _contents(op, ctx, node, ins):
    if control_flow.subgraphs(node):  # the taken branch's contents: never evaluate the node itself
        return op.value(ctx)
    present = [v for v in ins if v is not None]
    if op.category == Category.VALUE_FROM_SHAPES:  # needs only the input shapes
        return [np.asarray(a) for a in op.value(ctx)]
    if not all(v.const is not None for v in present):
        return None
    numeric = all(v.is_const for v in present)
    if numeric and all(_static(s) for s in ctx.out_shapes) and \
            sum(int(np.prod([int(d) for d in s])) for s in ctx.out_shapes) <= FOLD_LIMIT:
        return fold(node, ins)
    if op.value is not None:
        try:
            return [np.asarray(a) for a in op.value(ctx)]
        except ModelError:
            raise
        except Exception:
            return None  # not expressible symbolically: stays a run-time kernel
    return None


def _static(shape):
    return all(as_dim(d).is_Integer for d in shape)


def fold(node: Node, ins) -> list[np.ndarray]:
    """Evaluates one node on constant inputs with onnx's reference implementation."""
    attrs = {k: (numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v)
             for k, v in node.attrs.items()}
    onnx_node = helper.make_node(node.op, [f"i{k}" if v is not None else "" for k, v in enumerate(ins)],
                                 [f"o{k}" for k in range(len(node.outputs))], **attrs)
    feeds = {f"i{k}": v.const for k, v in enumerate(ins) if v is not None}
    try:
        return [np.asarray(r) for r in ReferenceEvaluator(onnx_node).run(None, feeds)]
    except Exception as e:
        raise ModelError(node, f"constant folding failed: {type(e).__name__}: {e}") from e


def infer_shapes(graph: Graph) -> Graph:
    for node in graph.nodes:
        infer_node(graph, node)
    for o in graph.outputs:
        if graph.values[o].shape is None:
            raise ModelError(None, f"output {o!r} is never produced")
    return graph
