"""The static memory plan: offsets fixed at compile time, reuse after the last reader, in-place
element-wise ops, aliases, and no two live buffers overlapping — at every declared shape."""
import numpy as np
from onnx import helper

from dydca.compiler.passes import dead_node_removal, fold_constants
from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from tests.oracle import make_model

DIMS = {"n": (1, 4), "h": (8, 64), "w": (8, 64)}
UNFUSED = [fold_constants, dead_node_removal]  # keep Conv and Relu apart: these tests plan their buffers


def chain_model(depth=6):
    rng = np.random.default_rng(0)
    nodes, inits, x = [], [], "x"
    for i in range(depth):
        inits.append((f"W{i}", (rng.standard_normal((8, 8 if i else 3, 3, 3)) * 0.2).astype(np.float32)))
        nodes.append(helper.make_node("Conv", [x, f"W{i}"], [f"c{i}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x = f"r{i}"
    nodes.append(helper.make_node("Flatten", [x], ["y"]))
    return make_model(nodes, [("x", ["n", 3, "h", "w"])], ["y"], inits)


def test_buffers_are_reused_and_never_overlap_while_live():
    compiled = plan(from_onnx(chain_model(), DIMS))
    p = compiled.plan
    arena = [b for b in p.buffers.values() if b.kind == "arena"]
    for a in arena:
        for b in arena:
            if a is not b and not (a.last < b.first or b.last < a.first):
                assert a.offset + a.bytes <= b.offset or b.offset + b.bytes <= a.offset, (a, b)
    # a chain needs two live buffers at a time, whatever its depth
    biggest = max(b.bytes for b in arena)
    assert p.arena_bytes <= 2 * biggest < p.sum_bytes


def test_elementwise_runs_in_place_and_reshape_aliases():
    compiled = plan(from_onnx(chain_model(2), DIMS), UNFUSED)
    p = compiled.plan
    assert p.buffers["r0"].kind == "alias" and p.storage("r0").value == "c0"
    # the Flatten output is a graph output: materialised as a copy, never an alias of the arena
    assert p.buffers["y"].kind == "output"


def test_sizes_are_bounded_at_the_largest_declared_dims():
    compiled = plan(from_onnx(chain_model(1), DIMS), UNFUSED)
    assert compiled.plan.buffers["c0"].bytes >= 4 * 8 * 64 * 64 * 4
