"""Conv epilogue fusion: the element-wise chain after a convolution runs inside its store.

Conv (its bias already inside) followed by element-wise nodes (activation: Relu, LeakyRelu, Clip,
Sigmoid, Tanh, PRelu; residual Add/Sub/Mul; ... any op the table marks element-wise) becomes the
Conv node alone, with attrs["epilogue"] = a program in the fused-program format (see common.py)
where ("acc", 0) is the convolution's result after bias and ("in", k) is the Conv node's input k.
Extra operands are appended after X, W, B ("" stands for an absent B, so indices stay fixed).
The conv kernel applies the program to each accumulator as it stores it, so the activation and
the residual cost no extra pass over memory.

A node is absorbed when the value it continues has exactly one reader (that node) and is not a
graph output, its result keeps the conv output's shape and float32 type, and every other operand
is indexable from the kernel's (channel m, flat index i): the same shape as the conv output
(indexed by i), per-channel (all dims 1 but the channel axis, indexed by m) or a scalar.
The fused Conv takes the place of the last absorbed node, so every operand is produced before it.
"""
from __future__ import annotations

import numpy as np

from dydca.frontends.ir import Graph, Node
from dydca.frontends.ops import REGISTRY
from dydca.frontends.symbolic import as_dim

from .common import (drop_values, fused_from, is_elementwise_step, make_step, reads_at_runtime,
                     replace_nodes, sole_reader)

EPILOGUE_KERNELS = {"conv": 1}
"""Kernel templates that apply attrs["epilogue"], with the axis their `m` indexes (channels)."""

F32 = np.dtype("float32")
FIXED_INPUTS = 3  # X, W, B: epilogue operands start at input 3


def operand_kind(graph: Graph, name: str, out_shape: tuple, axis: int) -> str | None:
    """How the kernel indexes operand `name` against the conv output: "same" (flat index i),
    "channel" (channel index m), "scalar", or None when it cannot."""
    v = graph.values[name]
    if v.dtype != F32 or v.rank > len(out_shape):
        return None
    dims = [as_dim(d) for d in v.shape]
    if all(d == 1 for d in dims):
        return "scalar"
    if tuple(dims) == tuple(as_dim(d) for d in out_shape):
        return "same"
    c = axis - (len(out_shape) - v.rank)  # the operand's axis aligned with the channel axis
    if c >= 0 and dims[c] == as_dim(out_shape[axis]) and all(d == 1 for j, d in enumerate(dims) if j != c):
        return "channel"
    return None


def _absorbable(graph: Graph, node: Node, current: str, out_shape: tuple, axis: int) -> bool:
    if not is_elementwise_step(graph, node) or not reads_at_runtime(node, current):
        return False
    res = graph.values[node.outputs[0]]
    if res.dtype != F32 or tuple(map(as_dim, res.shape)) != tuple(map(as_dim, out_shape)):
        return False
    static = REGISTRY[node.op].static_inputs
    return all(operand_kind(graph, i, out_shape, axis) is not None
               for k, i in enumerate(node.inputs) if i and i != current and k not in static)


def _fuse_one(graph: Graph, conv: Node, consumers: dict) -> bool:
    """Absorbs the element-wise chain after `conv`; returns whether anything was absorbed."""
    op = REGISTRY[conv.op]
    axis = EPILOGUE_KERNELS[op.kernel]
    out_shape = graph.values[conv.outputs[0]].shape
    program = list(conv.attrs.get("epilogue") or [])
    inputs = list(conv.inputs) + [""] * (FIXED_INPUTS - len(conv.inputs))
    current = conv.outputs[0]
    chain: list[Node] = []
    while True:
        node = sole_reader(graph, consumers, current)
        if node is None or not _absorbable(graph, node, current, out_shape, axis):
            break
        cur_ref = ("tmp", len(program) - 1) if program else ("acc", 0)

        def ref_of(name, current=current, cur_ref=cur_ref):
            if name == current:
                return cur_ref
            if name not in inputs[FIXED_INPUTS:]:
                inputs.append(name)
            return ("in", FIXED_INPUTS + inputs[FIXED_INPUTS:].index(name))

        program.append(make_step(graph, node, ref_of))
        chain.append(node)
        current = node.outputs[0]
    if not chain:
        return False
    fused = Node(conv.op, conv.name, inputs, [current], dict(conv.attrs), conv.domain)
    fused.attrs["epilogue"] = program
    fused.attrs["fused_from"] = fused_from([conv] + chain) if "fused_from" not in conv.attrs else \
        "+".join([conv.attrs["fused_from"]] + [n.op for n in chain])
    replace_nodes(graph, [conv] + chain, fused, at=chain[-1])
    drop_values(graph, [conv.outputs[0]] + [n.outputs[0] for n in chain[:-1]])
    return True


def fuse_conv_epilogue(graph: Graph) -> Graph:
    g = graph.copy()
    anchors = [n for n in g.nodes if REGISTRY.get(n.op) is not None
               and REGISTRY[n.op].kernel in EPILOGUE_KERNELS and "store" not in n.attrs
               and g.values[n.outputs[0]].dtype == F32]
    for conv in anchors:
        # consumers change as chains are absorbed; recompute per anchor (graphs are small)
        _fuse_one(g, conv, g.consumers())
    return g
