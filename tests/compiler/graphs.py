"""Helpers for pass tests: hand-built ONNX graphs imported to IR, passes run with the consistency
check, and what a compiled model's plan scheduled."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dydca.compiler.passes.checks import check_graph
from dydca.frontends import from_onnx
from dydca.frontends.ops import REGISTRY
from tests.oracle import make_model

DIMS = {"n": (1, 3), "h": (1, 24), "w": (1, 24)}


def build(nodes, inputs, outputs, inits=(), dims=DIMS, opset=17):
    """(ONNX model, imported IR graph) of a hand-built graph."""
    model = make_model(nodes, inputs, outputs, inits, opset=opset)
    used = {d for x in inputs if not isinstance(x, str) for d in (x[1] or []) if isinstance(d, str)}
    return model, from_onnx(model, {k: v for k, v in dims.items() if k in used})


def apply(pass_fn, graph):
    out = pass_fn(graph)
    check_graph(out)
    return out


def ops(graph) -> list[str]:
    return [n.op for n in graph.nodes]


def planned(compiled) -> list[tuple[str, str]]:
    """(op, fused_from) of each scheduled kernel of a compiled model, from its plan report."""
    plan = json.loads((compiled.build_dir / "plan.json").read_text())
    return [(s["op"], s["fused"]) for s in plan["schedule"]]


def requires_ops(*names):
    missing = [n for n in names if n not in REGISTRY]
    return pytest.mark.skipif(bool(missing), reason=f"operators {missing} are not in the table yet")


def rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
