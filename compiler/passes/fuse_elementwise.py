"""Element-wise fusion: maximal trees of element-wise nodes become one FusedElementwise node.

A node joins the tree of the node that reads its result when that result has exactly one reader
and is not a graph output: the value then exists only inside the fused kernel, which computes
every output element in one pass over memory with no intermediate buffer. Which ops qualify is the
operator table's `fusion` class; nothing here lists op names. Operands of the tree (graph inputs,
constants such as a bias, results of other kernels) become the fused node's inputs, deduplicated.
Broadcasting composes: each operand is read at its own broadcast index of the output element.
"""
from __future__ import annotations

from dydca.frontends.ir import Graph, Node

from .common import (drop_values, fused_from, is_elementwise_step, make_step, reads_at_runtime,
                     replace_nodes, sole_reader)


def _groups(graph: Graph) -> list[list[Node]]:
    """Trees of fusible nodes, each in topological order with its root (output node) last."""
    consumers = graph.consumers()
    root_of: dict[int, Node] = {}
    members: dict[int, list[Node]] = {}
    for node in reversed(graph.nodes):
        if not is_elementwise_step(graph, node):
            continue
        reader = sole_reader(graph, consumers, node.outputs[0])
        if reader is not None and id(reader) in root_of and reads_at_runtime(reader, node.outputs[0]):
            root = root_of[id(reader)]
        else:
            root = node
        root_of[id(node)] = root
        members.setdefault(id(root), []).insert(0, node)
    return [m for m in members.values() if len(m) > 1]


def _fuse(graph: Graph, nodes: list[Node]) -> Node:
    """The FusedElementwise node computing `nodes` (topological order, root last)."""
    produced = {n.outputs[0]: j for j, n in enumerate(nodes)}
    inputs: list[str] = []

    def ref_of(name: str) -> tuple:
        if name in produced:
            return ("tmp", produced[name])
        if name not in inputs:
            inputs.append(name)
        return ("in", inputs.index(name))

    program = [make_step(graph, n, ref_of) for n in nodes]
    root = nodes[-1]
    out = root.outputs[0]
    attrs = {"program": program, "dtype": graph.values[out].dtype.name, "fused_from": fused_from(nodes)}
    return Node("FusedElementwise", root.name, inputs, [out], attrs)


def fuse_elementwise(graph: Graph) -> Graph:
    g = graph.copy()
    for nodes in _groups(g):
        replace_nodes(g, nodes, _fuse(g, nodes), at=nodes[-1])
        drop_values(g, [n.outputs[0] for n in nodes[:-1]])
    return g
