"""Running a graph pass in every scope: the top graph and each If branch, nested ones included.

A branch alone is not a graph a pass can read: its nodes read outer values (weights, the input,
results of earlier kernels) by name. The pass therefore sees a view whose values are the branch's
own plus those of every enclosing scope, and whose outputs are the branch's outputs (the If's
buffers, which no fusion may hide). What the pass leaves in the view's values that the branch
does not define itself (the outer values) is dropped again, so nothing outer is copied into the
branch or renamed. Outer values are safe from fusion: their producers are not in the branch, and
in the enclosing graph the If lists them among its inputs, so no fusion there sees a sole reader.
A value a pass creates in a branch (a folded weight, a re-ordered constant) is named after what
it derives from, which sibling branches may share: it is renamed where the name is taken anywhere
in the model, keeping names unique across all scopes (frontends/control_flow.py).
"""
from __future__ import annotations

import copy
import functools
from collections import ChainMap
from typing import Callable

from dydca.frontends.control_flow import SUBGRAPH_ATTRS, defined, refresh_captures, rename, subgraphs
from dydca.frontends.ir import Graph

Pass = Callable[[Graph], Graph]


def in_every_scope(p: Pass) -> Pass:
    """`p` applied to the graph, then to every If branch in it (recursively)."""

    @functools.wraps(p)
    def run(graph: Graph) -> Graph:
        g = p(graph)
        _branches(g, p, g.values, names(g))
        return g

    return run


def names(graph: Graph) -> set[str]:
    """Every name the graph and its branches (recursively) define or read."""
    out = defined(graph) | set(graph.inputs) | set(graph.outputs)
    for n in graph.nodes:
        out.update(n.inputs)
        for br in subgraphs(n):
            out |= names(br)
    return out


def _branches(graph: Graph, p: Pass, scope, used: set) -> None:
    for node in graph.nodes:
        if not subgraphs(node):
            continue
        for a in SUBGRAPH_ATTRS:
            br = node.attrs.get(a)
            if isinstance(br, Graph):
                node.attrs[a] = new = _in_branch(br, p, scope, used)
                _branches(new, p, ChainMap(new.values, scope), used)
        refresh_captures(node)  # a fold may swap an outer weight for a branch constant


def _in_branch(br: Graph, p: Pass, scope, used: set) -> Graph:
    """`p` run on branch `br` in its scope; `used`: the model's names, extended with new ones."""
    outer = {k for k in scope if k not in br.values}
    view = copy.copy(br)
    view.values = dict(ChainMap(br.values, scope))
    out = p(view)
    out.values = {k: v for k, v in out.values.items() if k not in outer}
    for name in [k for k in out.values if k not in br.values]:
        if name in used:
            k, fresh = 1, f"{name}__1"
            while fresh in used or fresh in scope:
                k, fresh = k + 1, f"{name}__{k + 1}"
            rename(out, name, fresh)
            name = fresh
        used.add(name)
    return out
