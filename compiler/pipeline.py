"""The named stages: import -> simplified (passes) -> materialised -> planned. Each stage's graph
can be dumped for inspection."""
from __future__ import annotations

from dataclasses import dataclass

from dydca.frontends.ir import Graph

from . import passes
from .planner import Plan, plan_memory


@dataclass
class Compiled:
    graph: Graph  # after passes, as planned
    plan: Plan


def optimize(graph: Graph, pass_list=None) -> Graph:
    for p in passes.DEFAULT if pass_list is None else pass_list:
        graph = p(graph)
        graph.check()
    return graph


def plan(graph: Graph, pass_list=None) -> Compiled:
    g = optimize(graph, pass_list)
    g = passes.materialize_outputs(g)
    g.check()
    return Compiled(g, plan_memory(g))
