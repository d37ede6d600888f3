"""Helpers shared by the fusion passes: who reads a value, which nodes are element-wise steps, and
how one node becomes one step of a fused program.

A fused program is a list of steps `(op_name, attrs, refs)`; each ref is ("in", k) (input k of
the fused node), ("tmp", j) (the result of step j) or, in a conv epilogue, ("acc", 0) (the
convolution's result after its bias). The last step's result is the fused node's output.
"""
from __future__ import annotations

from typing import Callable

from dydca.frontends.ir import Graph, Node
from dydca.frontends.ops import REGISTRY, Fusion, with_defaults


def sole_reader(graph: Graph, consumers: dict, name: str) -> Node | None:
    """The one node that reads `name` (possibly at several of its inputs), or None when the value
    is a graph output, is read by several nodes or by none: only then may a fusion hide it."""
    if name in graph.outputs:
        return None
    readers = consumers.get(name, [])
    if not readers or any(r is not readers[0] for r in readers):
        return None
    return readers[0]


def is_elementwise_step(graph: Graph, node: Node) -> bool:
    """A node that can become one step of a fused program: its op is element-wise in the table,
    it has one output computed at run time, and its compile-time inputs are numbers."""
    op = REGISTRY.get(node.op)
    if op is None or op.fusion != Fusion.ELEMENTWISE or "program" in node.attrs:
        return False
    if len(node.outputs) != 1 or not node.outputs[0] or graph.values[node.outputs[0]].const is not None:
        return False
    return all(graph.values[i].is_const for k, i in enumerate(node.inputs) if i and k in op.static_inputs)


def reads_at_runtime(node: Node, name: str) -> bool:
    """Whether `node` reads `name` as a run-time operand (not as a compile-time input)."""
    static = REGISTRY[node.op].static_inputs
    return any(i == name and k not in static for k, i in enumerate(node.inputs))


def make_step(graph: Graph, node: Node, ref_of: Callable[[str], tuple]) -> tuple:
    """The program step for element-wise `node`; `ref_of(name)` gives the ref of each run-time
    input. Compile-time inputs (Clip's bounds) go into the step's attrs["static_ins"]."""
    op = REGISTRY[node.op]
    attrs = with_defaults(op, node)
    statics, refs = {}, []
    for k, name in enumerate(node.inputs):
        if not name:
            continue
        if k in op.static_inputs:
            statics[k] = graph.values[name].const
        else:
            refs.append(ref_of(name))
    if statics:
        attrs["static_ins"] = statics
    return (node.op, attrs, refs)


def fused_from(nodes: list[Node]) -> str:
    """The plan report's record of what a fused node replaced, e.g. "Conv+Relu+Add"."""
    return "+".join(n.op for n in nodes)


def replace_nodes(graph: Graph, removed: list[Node], new: Node, at: Node) -> None:
    """Puts `new` where `at` was and drops `removed` (by identity). The fused node must take the
    place of the LAST node it absorbs: only then are all its operands produced before it."""
    drop = {id(n) for n in removed}
    out = []
    for n in graph.nodes:
        if n is at:
            out.append(new)
        elif id(n) not in drop:
            out.append(n)
    graph.nodes = out


def drop_values(graph: Graph, names) -> None:
    """Forgets intermediate values a fusion made internal (no kernel writes them any more)."""
    for name in names:
        if name not in graph.outputs and name not in graph.inputs:
            graph.values.pop(name, None)
