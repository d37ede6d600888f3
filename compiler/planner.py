"""Static planning: a fixed schedule and one memory arena with compile-time offsets.

Every intermediate tensor gets an offset in one arena, planned for its size bound over the declared
dimension ranges; a buffer is reused as soon as its last reader ran. Alias ops (Reshape, Flatten,
...) share their input's buffer and extend its lifetime; element-wise ops write in place over an
input whose last reader they are. Each branch of an If is planned as its own schedule; both
branches' buffers share one region of the arena, reserved at the If's step (they are never live
together), and the taken branch writes the If's outputs, which are buffers of the enclosing plan.
"""
from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field

import numpy as np

from dydca.frontends.control_flow import own_inputs, scoped, subgraphs
from dydca.frontends.ir import Graph
from dydca.frontends.ops import REGISTRY, Fusion, graph_ctx
from dydca.frontends.ops.shape import prod_dims

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
    # If: its first output -> [(branch view, branch plan)] for then/else. A branch's schedule has its
    # own steps; its buffers lie in the If's region (the If step's scratch), which both branches
    # share since only one runs; its `buffers` chain to the enclosing plan's for outer values.
    branches: dict = field(default_factory=dict)

    def storage(self, name: str) -> Buffer:
        b = self.buffers[name]
        while b.kind == "alias":
            b = self.buffers[b.root]
        return b


def nbytes_bound(graph: Graph, name: str) -> int:
    v = graph.values[name]
    return int(graph.dims.upper_bound(prod_dims(v.shape))) * np.dtype(v.dtype).itemsize


def scratch_bytes(graph: Graph, node, op) -> int:
    """Bound over the declared dims of the scratch the op's `scratch` rule asks for (0: none)."""
    if op is None or op.scratch is None:
        return 0
    need = op.scratch(graph_ctx(node, graph.values, graph.dims))
    return int(graph.dims.upper_bound(need)) if need else 0


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(graph: Graph, inplace: bool = True, pinned: tuple = ()) -> Plan:
    """`pinned`: values live over the whole schedule (a Loop body's parameters, written before it
    runs, and its outputs, read after it ran)."""
    plan = Plan(schedule=list(graph.nodes))
    bufs = plan.buffers
    end = len(plan.schedule)
    written = {o for n in graph.nodes for o in n.outputs}
    for name in pinned:  # parameters: in the arena from the start
        if name not in written:
            bufs[name] = Buffer(name, "arena", bytes=_align(nbytes_bound(graph, name)), first=0)
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
        if subgraphs(node):
            plan.branches[node.outputs[0]] = subs = _plan_branches(graph, node, inplace)
            scratch = max([scratch] + [sub.arena_bytes for _, sub in subs])
        if scratch:  # working memory live during this step only (not a value: no name in `bufs`)
            plan.scratch[step] = Buffer(f"scratch of step {step}", "arena", bytes=_align(scratch),
                                        first=step, last=step)
    for name in pinned:
        bufs[name].last = end
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
    for step, node in enumerate(plan.schedule):
        region = plan.scratch.get(step)
        for _, sub in plan.branches.get(node.outputs[0], ()) if subgraphs(node) else ():
            _relocate(sub, region.offset if region else 0, plan.buffers)
    return plan


def _plan_branches(graph: Graph, node, inplace: bool) -> list:
    """Plans each branch of an If as a graph of its own whose inputs are the values it captures and
    whose outputs are the If's outputs (buffers of the enclosing plan, filled by the branch). A
    Loop's body is planned the same way, but its parameters and outputs are its own buffers, live
    through the whole body (the loop writes and reads them around each trip)."""
    subs = []
    for br in subgraphs(node):
        view = scoped(br, graph.values)
        view.inputs = list(node.inputs[own_inputs(node):])
        loop = node.op == "Loop"
        view.outputs = [] if loop else list(node.outputs)
        sub = plan_memory(view, inplace, pinned=tuple(br.inputs + br.outputs) if loop else ())
        for name in [k for k, b in sub.buffers.items() if b.kind in ("input", "output")]:
            del sub.buffers[name]  # stand-ins for the enclosing plan's buffers, linked by _relocate
        sub.buffers = ChainMap(sub.buffers)
        subs.append((view, sub))
    return subs


def _relocate(sub: Plan, base: int, outer) -> None:
    """Moves a branch plan (and the branches nested in it) to offset `base` of the enclosing arena
    and makes the enclosing buffers visible to it."""
    for b in list(sub.buffers.maps[0].values()) + list(sub.scratch.values()):
        if b.kind == "arena":
            b.offset += base
    sub.buffers.maps.append(outer)
    for subs in sub.branches.values():
        for _, inner in subs:
            _relocate(inner, base, outer)


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
