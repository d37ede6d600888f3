"""Static planning: a fixed schedule and one memory arena with compile-time offsets.

Every intermediate tensor gets an offset in one arena, planned for its size bound over the declared
dimension ranges; a buffer is reused as soon as its last reader ran. Alias ops (Reshape, Flatten,
...) share their input's buffer and extend its lifetime; element-wise ops write in place over an
input whose last reader they are.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dydca.frontends.ir import Graph
from dydca.frontends.ops import REGISTRY, Fusion, InferCtx, with_defaults
from dydca.frontends.symbolic import as_dim

ALIGN = 64


@dataclass
class Buffer:
    value: str
    kind: str  # "arena" | "input" | "output" | "const" | "alias"
    index: int = 0  # input/output index
    offset: int = 0  # arena offset or const-blob offset
    bytes: int = 0  # size bound (arena) or exact size (const)
    first: int = -1  # schedule step that writes it
    last: int = -1  # last schedule step that reads it
    root: str = ""  # alias/in-place: the value whose storage this one uses


@dataclass
class Plan:
    schedule: list  # nodes in execution order
    buffers: dict[str, Buffer] = field(default_factory=dict)
    arena_bytes: int = 0
    sum_bytes: int = 0  # sum of all intermediate tensor bounds (what no reuse would need)
    scratch: dict = field(default_factory=dict)  # schedule step -> its node's scratch Buffer

    def storage(self, name: str) -> Buffer:
        b = self.buffers[name]
        while b.kind == "alias":
            b = self.buffers[b.root]
        return b


def nbytes_bound(graph: Graph, name: str) -> int:
    v = graph.values[name]
    n = as_dim(1)
    for d in v.shape:
        n *= as_dim(d)
    return int(graph.dims.upper_bound(n)) * np.dtype(v.dtype).itemsize


def scratch_bytes(graph: Graph, node, op) -> int:
    """Bound over the declared dims of the scratch the op's `scratch` rule asks for (0: none)."""
    if op is None or op.scratch is None:
        return 0
    ctx = InferCtx(node, [graph.values.get(i) if i else None for i in node.inputs],
                   with_defaults(op, node), graph.dims)
    need = op.scratch(ctx)
    return int(graph.dims.upper_bound(need)) if need else 0


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(graph: Graph, inplace: bool = True) -> Plan:
    plan = Plan(schedule=list(graph.nodes))
    bufs = plan.buffers
    for i, name in enumerate(graph.inputs):
        bufs[name] = Buffer(name, "input", index=i, first=-1)
    for j, name in enumerate(graph.outputs):
        bufs.setdefault(name, Buffer(name, "output", index=j))
    for name, v in graph.values.items():
        if v.is_const and name not in bufs:
            bufs[name] = Buffer(name, "const", bytes=v.const.nbytes)
    for step, node in enumerate(plan.schedule):
        op = REGISTRY[node.op] if node.op in REGISTRY else None
        for k, i in enumerate(node.inputs):
            if i and i in bufs and (op is None or k not in op.static_inputs):
                b = plan.storage(i)
                b.last = max(b.last, step)
                bufs[i].last = max(bufs[i].last, step)
        for k, o in enumerate(node.outputs):
            if not o or o in bufs:
                if o in bufs:
                    bufs[o].first = step
                continue
            if op is not None and op.fusion == Fusion.ALIAS and node.inputs[0] in bufs:
                bufs[o] = Buffer(o, "alias", root=node.inputs[0], first=step)
            else:
                bufs[o] = Buffer(o, "arena", bytes=_align(nbytes_bound(graph, o)), first=step)
        scratch = scratch_bytes(graph, node, op)
        if scratch:  # working memory live during this step only (not a value: no name in `bufs`)
            plan.scratch[step] = Buffer(f"scratch of step {step}", "arena", bytes=_align(scratch),
                                        first=step, last=step)
    # lifetimes of aliased storage end with the last reader of any alias
    for b in bufs.values():
        if b.kind == "alias":
            plan.storage(b.value).last = max(plan.storage(b.value).last, b.last)
    arena = [b for b in bufs.values() if b.kind == "arena"] + list(plan.scratch.values())
    for b in arena:
        if b.last < b.first:
            b.last = b.first  # written, never read: still needs room while it is written
    if inplace:
        _share_inplace(graph, plan)
    placed: list[Buffer] = []
    for b in sorted((b for b in arena if b.kind == "arena"), key=lambda b: (-b.bytes, b.first)):
        b.offset = _first_fit(b, placed)
        placed.append(b)
    plan.arena_bytes = max((b.offset + b.bytes for b in placed), default=0)
    plan.sum_bytes = sum(b.bytes for b in arena)
    return plan


def _first_fit(b: Buffer, placed: list[Buffer]) -> int:
    """Lowest offset where `b` overlaps no live buffer (greedy by size, as TFLite's planner)."""
    busy = sorted((p.offset, p.offset + p.bytes) for p in placed
                  if not (p.last < b.first or b.last < p.first))
    offset = 0
    for lo, hi in busy:
        if offset + b.bytes <= lo:
            break
        offset = max(offset, hi)
    return offset


def _share_inplace(graph: Graph, plan: Plan) -> None:
    """An element-wise node may write over an input it reads last, when the sizes match."""
    bufs = plan.buffers
    for step, node in enumerate(plan.schedule):
        op = REGISTRY.get(node.op)
        if op is None or op.fusion != Fusion.ELEMENTWISE or len(node.outputs) != 1:
            continue
        out = bufs.get(node.outputs[0])
        if out is None or out.kind != "arena":
            continue
        for i in node.inputs:
            if not i or i not in bufs:
                continue
            src = plan.storage(i)
            same = graph.values[i].shape == graph.values[node.outputs[0]].shape and \
                graph.values[i].dtype == graph.values[node.outputs[0]].dtype
            if src.kind == "arena" and src.last == step and same and bufs[i].kind == "arena":
                out.kind, out.root = "alias", i
                src.last = max(src.last, out.last)
                break
