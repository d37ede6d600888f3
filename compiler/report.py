"""The plan report: schedule, per-tensor offset and size, arena bytes versus the sum of tensors."""
from __future__ import annotations

import json
from pathlib import Path

from dydca.frontends.ops import REGISTRY


def plan_dict(compiled) -> dict:
    g, p = compiled.graph, compiled.plan
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
        schedule=[dict(step=i, node=n.name, op=n.op, category=int(REGISTRY[n.op].category),
                       fused=n.attrs.get("fused_from", ""), inputs=list(n.inputs), outputs=list(n.outputs))
                  for i, n in enumerate(p.schedule)],
        tensors=tensors, arena_bytes=p.arena_bytes, sum_bytes=p.sum_bytes,
    )


def plan_text(d: dict) -> str:
    lines = ["dydca plan", "", "dims: " + (", ".join(f"{k} in [{a}, {b}]" for k, (a, b) in d["dims"].items()) or "all static"), "",
             f"{'step':>4}  {'op':<18} {'node':<32} outputs"]
    for s in d["schedule"]:
        lines.append(f"{s['step']:>4}  {s['op']:<18} {s['node'][:32]:<32} {', '.join(s['outputs'])}")
    lines += ["", f"{'tensor':<32} {'kind':<7} {'offset':>10} {'bytes@max':>12}  shape"]
    for t in d["tensors"]:
        off = "" if t["offset"] is None else str(t["offset"])
        size = "" if t["bytes_max"] is None else str(t["bytes_max"])
        where = t["kind"] if t["storage"] == t["name"] else f"->{t['storage'][:20]}"
        lines.append(f"{t['name'][:32]:<32} {where[:7]:<7} {off:>10} {size:>12}  [{', '.join(t['shape'])}]")
    saved = 1 - d["arena_bytes"] / d["sum_bytes"] if d["sum_bytes"] else 0.0
    lines += ["", f"arena bytes at the maximum dims: {d['arena_bytes']:,}",
              f"sum of intermediate tensor sizes: {d['sum_bytes']:,}  (reuse saves {saved:.0%})"]
    return "\n".join(lines) + "\n"


def write_reports(compiled, out_dir: Path) -> None:
    d = plan_dict(compiled)
    (Path(out_dir) / "plan.json").write_text(json.dumps(d, indent=2))
    (Path(out_dir) / "plan.txt").write_text(plan_text(d))
