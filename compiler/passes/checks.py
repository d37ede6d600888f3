"""Consistency checks for graphs after a pass: the IR invariants (Graph.check) plus what fusion
passes add: every value written once and described, and every fused program well-formed (refs
point at existing inputs or earlier steps, steps are element-wise ops of the table)."""
from __future__ import annotations

from dydca.frontends.ir import Graph, Node
from dydca.frontends.ops import REGISTRY, Fusion

PROGRAM_ATTRS = {"program": ("in", "tmp"), "epilogue": ("in", "tmp", "acc")}
"""Node attributes that hold fused programs, with the reference kinds each may use."""


def check_program(node: Node, attr: str) -> None:
    kinds = PROGRAM_ATTRS[attr]
    program = node.attrs[attr]
    assert isinstance(program, list) and program, f"node {node.name}: empty {attr}"
    for j, (op_name, attrs, refs) in enumerate(program):
        op = REGISTRY.get(op_name)
        assert op is not None and op.fusion == Fusion.ELEMENTWISE and "program" not in attrs, (
            f"node {node.name}: {attr} step {j} ({op_name}) is not an element-wise op")
        assert isinstance(attrs, dict), f"node {node.name}: {attr} step {j} attrs are not a dict"
        for kind, k in refs:
            assert kind in kinds, f"node {node.name}: {attr} step {j} uses ref kind {kind!r}"
            if kind == "tmp":
                assert 0 <= k < j, f"node {node.name}: {attr} step {j} reads step {k} before it runs"
            elif kind == "in":
                assert 0 <= k < len(node.inputs) and node.inputs[k], (
                    f"node {node.name}: {attr} step {j} reads missing input {k}")
            else:
                assert k == 0, f"node {node.name}: {attr} step {j} reads acc {k}"


def check_graph(graph: Graph) -> None:
    """Raises AssertionError naming the first broken invariant."""
    graph.check()
    written = set()
    for node in graph.nodes:
        assert node.op in REGISTRY, f"node {node.name}: op {node.op} is not in the table"
        for name in [i for i in node.inputs if i] + [o for o in node.outputs if o]:
            v = graph.values.get(name)
            assert v is not None and v.shape is not None and v.dtype is not None, (
                f"node {node.name}: value {name!r} has no dtype/shape")
        for o in node.outputs:
            assert not o or o not in written, f"value {o!r} is written by two nodes"
            written.add(o)
        for attr in PROGRAM_ATTRS:
            if attr in node.attrs:
                check_program(node, attr)
