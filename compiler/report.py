"""The plan report: schedule, per-tensor offset and size, arena bytes versus the sum of tensors,
per If: each branch's schedule and region bytes and which shapes take which path, and per node
whose op has kernel variants (OpDef.variants): the variants it compiles and the dims taking each.

Arena bytes are given at both corners of the declared box: the plan itself is sized at the
maximum (its offsets are fixed), and the smallest corner shows what the same schedule would need
there (the planner run again with every dimension pinned to its minimum).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import sympy

from dydca.frontends.control_flow import subgraphs
from dydca.frontends.ops import REGISTRY, graph_ctx
from dydca.frontends.symbolic import sym

from .planner import plan_memory

SWEEP_LIMIT = 100_000
"""Largest declared range of a dimension swept to list which values take which path."""


def _schedule(nodes) -> list[dict]:
    return [dict(step=i, node=n.name, op=n.op, category=int(REGISTRY[n.op].category),
                 fused=n.attrs.get("fused_from", ""), inputs=list(n.inputs), outputs=list(n.outputs))
            for i, n in enumerate(nodes)]


def _condition(values, name: str) -> tuple[str, object]:
    """(how the If's condition is known, the sympy condition when it is an expression of the dims)."""
    v = values[name]
    if v.is_symbolic:
        e = np.asarray(v.const).reshape(-1)[0]
        return "dims", sympy.sympify(e)
    return "runtime", None


def _routes(choices, dims) -> list[dict] | None:
    """For choices [(condition or None, path), ...] (the first whose condition holds is taken;
    None: always) whose conditions name one dimension: the value ranges taking each path, in order."""
    conds = [c for c, _ in choices if c is not None]
    free = sorted({str(s) for c in conds for s in c.free_symbols})
    if len(free) != 1 or free[0] not in dims.ranges:
        return None
    name = free[0]
    lo, hi = dims.ranges[name]
    if hi - lo > SWEEP_LIMIT:
        return None
    tests = [(None if c is None else sympy.lambdify(sym(name), c, "math"), p) for c, p in choices]
    out: list[dict] = []
    for v in range(lo, hi + 1):
        path = next(p for f, p in tests if f is None or bool(f(v)))
        if out and out[-1]["path"] == path:
            out[-1]["range"][1] = v
        else:
            out.append(dict(dim=name, range=[v, v], path=path))
    return out


def _intervals(cond, dims) -> list[dict] | None:
    """For a condition of one dimension: the value ranges taking then/else, in order."""
    return _routes([(cond, "then"), (None, "else")], dims)


def _variants(nodes, values, dims) -> list[dict]:
    """Per node whose op has kernel variants: each variant (its kernel and the dims condition that
    picks it, None for the last) and, for a condition of one dimension, the values taking each."""
    out = []
    for step, node in enumerate(nodes):
        op = REGISTRY[node.op]
        if op.variants is None:
            continue
        choices = op.variants(graph_ctx(node, values, dims))
        out.append(dict(step=step, node=node.name, op=node.op,
                        variants=[dict(kernel=p, when=None if c is None else str(c)) for c, p in choices],
                        routes=_routes(choices, dims) if len(choices) > 1 else None))
    return out


def _ifs(plan, min_plan, dims) -> list[dict]:
    """One entry per If of `plan`'s schedule; `min_plan` is the same schedule planned at the
    smallest corner (same structure, so the same keys)."""
    out = []
    for step, node in enumerate(plan.schedule):
        if node.op != "If":
            continue
        key = node.outputs[0]
        subs, min_subs = plan.branches[key], min_plan.branches[key]
        view = subs[0][0]
        how, cond = _condition(view.values, node.inputs[0])
        entry = dict(step=step, node=node.name, condition=node.inputs[0], decided=how,
                     expr=None if cond is None else str(cond), routes=None,
                     region_bytes=plan.scratch[step].bytes if step in plan.scratch else 0, branches=[])
        if cond is not None:
            entry["routes"] = _intervals(cond, dims)
        for which, (v, sub), (_, msub) in zip(("then", "else"), subs, min_subs):
            entry["branches"].append(dict(path=which, schedule=_schedule(sub.schedule),
                                          arena_bytes_max=sub.arena_bytes, arena_bytes_min=msub.arena_bytes,
                                          ifs=_ifs(sub, msub, dims),
                                          kernel_variants=_variants(sub.schedule, v.values, dims)))
        out.append(entry)
    return out


def _loops(plan, values) -> list[dict]:
    """One entry per Loop of `plan`'s schedule (nested in If branches and bodies too)."""
    from dydca.frontends.loop import parts, runs_every_trip, trip_count
    out = []
    for step, node in enumerate(plan.schedule):
        for view, sub in plan.branches.get(node.outputs[0], ()) if subgraphs(node) else ():
            if node.op == "Loop":
                body, n, k = parts(node)
                m = trip_count(node, values)
                out.append(dict(step=step, node=node.name, trips=None if m is None else str(m),
                                every_trip=runs_every_trip(node, values), carried=n, scans=k,
                                region_bytes=plan.scratch[step].bytes if step in plan.scratch else 0,
                                schedule=_schedule(sub.schedule)))
            out += _loops(sub, view.values)
    return out


def at_min_corner(graph):
    """A copy of `graph` whose every dimension (in nested branches too) is pinned to its minimum."""
    g = graph.copy()
    dims = copy.deepcopy(g.dims)
    dims.ranges = {k: (lo, lo) for k, (lo, _) in dims.ranges.items()}
    dims.classes = []

    def pin(gr):
        gr.dims = dims
        for n in gr.nodes:
            for br in subgraphs(n):
                pin(br)
    pin(g)
    return g


def plan_dict(compiled) -> dict:
    g, p = compiled.graph, compiled.plan
    min_plan = plan_memory(at_min_corner(g))
    tensors = []
    for name, b in p.buffers.items():
        if b.kind in ("const",) or name not in g.values:
            continue
        v = g.values[name]
        tensors.append(dict(name=name, kind=b.kind, storage=p.storage(name).value,
                            offset=p.storage(name).offset if p.storage(name).kind == "arena" else None,
                            bytes_max=b.bytes if b.kind == "arena" else None,
                            shape=[str(d) for d in v.shape], dtype=v.dtype.name,
                            live=[b.first, b.last]))
    return dict(
        dims={k: list(r) for k, r in g.dims.ranges.items()},
        shape_classes=[{k: list(r) for k, r in c.items()} for c in g.dims.classes],
        execution_dims=[dict(name=n, bound=str(b), bound_max=g.dims.upper_bound(b))
                        for n, b in g.dims.runtime.items()],
        schedule=_schedule(p.schedule), ifs=_ifs(p, min_plan, g.dims), loops=_loops(p, g.values),
        kernel_variants=_variants(p.schedule, g.values, g.dims),
        tensors=tensors, arena_bytes=p.arena_bytes, arena_bytes_min=min_plan.arena_bytes,
        sum_bytes=p.sum_bytes,
    )


def _schedule_lines(schedule, indent="") -> list[str]:
    return [f"{indent}{s['step']:>4}  {s['op']:<18} {s['node'][:32]:<32} "
            f"{(s['fused'] + '  ') if s['fused'] else ''}-> {', '.join(s['outputs'])}" for s in schedule]


def _if_lines(ifs, indent="") -> list[str]:
    lines = []
    for e in ifs:
        lines.append(f"{indent}If at step {e['step']} ({e['node']}): region {e['region_bytes']:,} bytes at max")
        if e["decided"] == "dims":
            lines.append(f"{indent}  condition from the dims: {e['expr']}")
            if e["routes"]:
                lines += [f"{indent}  {r['dim']} in [{r['range'][0]}, {r['range'][1]}] -> {r['path']}"
                          for r in e["routes"]]
            else:
                lines += [f"{indent}  {e['expr']} -> then", f"{indent}  otherwise -> else"]
        else:
            lines.append(f"{indent}  path chosen at run time by tensor {e['condition']!r}")
        for b in e["branches"]:
            lines.append(f"{indent}  {b['path']}: arena {b['arena_bytes_min']:,} bytes at min dims, "
                         f"{b['arena_bytes_max']:,} at max")
            lines += _schedule_lines(b["schedule"], indent + "    ")
            lines += _if_lines(b["ifs"], indent + "    ")
            if b["kernel_variants"]:
                lines += [f"{indent}    kernel variants:"] + _variant_lines(b["kernel_variants"], indent + "    ")
    return lines


def _variant_lines(entries, indent="") -> list[str]:
    """plan.txt lines of _variants' entries: a node's kernels with their conditions, then the
    values of the dimension taking each."""
    lines = []
    for e in entries:
        head = f"{indent}{e['step']:>4}  {e['op']:<18} {e['node'][:32]:<32} "
        if len(e["variants"]) == 1:
            lines.append(head + f"{e['variants'][0]['kernel']} (every shape)")
            continue
        lines.append(head + "; ".join(f"{v['kernel']} if {v['when']}" if v["when"] else f"{v['kernel']} otherwise"
                                      for v in e["variants"]))
        lines += [f"{indent}        {r['dim']} in [{r['range'][0]}, {r['range'][1]}] -> {r['path']}"
                  for r in e["routes"] or []]
    return lines


def plan_text(d: dict) -> str:
    lines = ["dydca plan", "", "dims: " + (", ".join(f"{k} in [{a}, {b}]" for k, (a, b) in d["dims"].items()) or "all static"), "",
             f"{'step':>4}  {'op':<18} {'node':<32} outputs"]
    lines += _schedule_lines(d["schedule"])
    for k, c in enumerate(d["shape_classes"]):
        lines.insert(3 + k, f"shape class {k}: " + ", ".join(f"{n} in [{a}, {b}]" for n, (a, b) in c.items()))
    if d["execution_dims"]:
        lines += ["", "dims known only after execution (planned at their bound):"]
        lines += [f"  {e['name']} <= {e['bound']} (at most {e['bound_max']:,})" for e in d["execution_dims"]]
    if d["ifs"]:
        lines += ["", "paths:"] + _if_lines(d["ifs"], "  ")
    for e in d["loops"]:
        ends = "every trip runs" if e["every_trip"] else "its condition may end it earlier"
        lines += ["", f"Loop at step {e['step']} ({e['node']}): up to {e['trips'] or 'unbounded'} trips, {ends}; "
                      f"{e['carried']} carried, {e['scans']} scanned; body region {e['region_bytes']:,} bytes at max"]
        lines += _schedule_lines(e["schedule"], "    ")
    if d["kernel_variants"]:
        lines += ["", "kernel variants (per call, from the dims):"] + _variant_lines(d["kernel_variants"])
    lines += ["", f"{'tensor':<32} {'kind':<7} {'offset':>10} {'bytes@max':>12}  shape"]
    for t in d["tensors"]:
        off = "" if t["offset"] is None else str(t["offset"])
        size = "" if t["bytes_max"] is None else str(t["bytes_max"])
        where = t["kind"] if t["storage"] == t["name"] else f"->{t['storage'][:20]}"
        lines.append(f"{t['name'][:32]:<32} {where[:7]:<7} {off:>10} {size:>12}  [{', '.join(t['shape'])}]")
    saved = 1 - d["arena_bytes"] / d["sum_bytes"] if d["sum_bytes"] else 0.0
    lines += ["", f"arena bytes at the maximum dims: {d['arena_bytes']:,}",
              f"arena bytes at the minimum dims: {d['arena_bytes_min']:,}",
              f"sum of intermediate tensor sizes: {d['sum_bytes']:,}  (reuse saves {saved:.0%})"]
    return "\n".join(lines) + "\n"


def write_reports(compiled, out_dir: Path) -> None:
    d = plan_dict(compiled)
    (Path(out_dir) / "plan.json").write_text(json.dumps(d, indent=2))
    (Path(out_dir) / "plan.txt").write_text(plan_text(d))
