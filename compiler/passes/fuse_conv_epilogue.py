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

After fuse_depth_to_space a conv's output is the shuffled tensor (attrs["store"]); the epilogue
still runs before the store, in the conv's own (m, i) space. Element-wise ops commute with the
shuffle, so a chain after the store is absorbed when its operands are scalars or per-channel
constants; the latter are re-ordered at compile time to the conv's channel order.
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


def _operands(graph: Graph, node: Node, current: str, out_shape: tuple, axis: int,
              store: dict | None) -> dict | None:
    """For an absorbable `node`: its extra operands, each mapped to the value the epilogue reads
    (itself, or a re-ordered copy); None when `node` cannot join the epilogue."""
    if not is_elementwise_step(graph, node) or not reads_at_runtime(node, current):
        return None
    res = graph.values[node.outputs[0]]
    if res.dtype != F32 or tuple(map(as_dim, res.shape)) != tuple(map(as_dim, out_shape)):
        return None
    static = REGISTRY[node.op].static_inputs
    mapping = {}
    for k, name in enumerate(node.inputs):
        if not name or name == current or k in static:
            continue
        kind = operand_kind(graph, name, out_shape, axis)
        if kind is None or (store is not None and kind == "same"):
            return None
        mapping[name] = name
        if store is not None and kind == "channel":
            # the epilogue runs before the store, indexed by the conv's own channel m
            if not graph.values[name].is_const:
                return None
            mapping[name] = None  # made when the node is absorbed
    return mapping


def _fuse_one(graph: Graph, conv: Node, consumers: dict) -> bool:
    """Absorbs the element-wise chain after `conv`; returns whether anything was absorbed."""
    op = REGISTRY[conv.op]
    axis = EPILOGUE_KERNELS[op.kernel]
    out_shape = graph.values[conv.outputs[0]].shape
    program = list(conv.attrs.get("epilogue") or [])
    inputs = list(conv.inputs) + [""] * (FIXED_INPUTS - len(conv.inputs))
    current = conv.outputs[0]
    chain: list[Node] = []
    store = conv.attrs.get("store")
    while True:
        node = sole_reader(graph, consumers, current)
        mapping = None if node is None else _operands(graph, node, current, out_shape, axis, store)
        if mapping is None:
            break
        for name, new in mapping.items():
            if new is None:
                mapping[name] = graph.add_const(name + "_prestore", pre_store_channels(
                    store, graph.values[name].const))
        cur_ref = ("tmp", len(program) - 1) if program else ("acc", 0)

        def ref_of(name, current=current, cur_ref=cur_ref, mapping=mapping):
            if name == current:
                return cur_ref
            name = mapping[name]
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


def pre_store_channels(store: dict, array: np.ndarray) -> np.ndarray:
    """A per-channel constant of the stored tensor re-indexed by the conv's own channel m
    (DepthToSpace sends channel m to stored channel c(m)), shaped [M, 1, 1]."""
    from .fuse_depth_to_space import d2s_split

    m_count = int(store["shape"][1])
    b = int(store["blocksize"])
    c, _, _ = d2s_split(store["mode"], b, np.arange(m_count), m_count // (b * b))
    return np.ascontiguousarray(array.reshape(-1)[c].reshape(m_count, 1, 1))


def fuse_conv_epilogue(graph: Graph) -> Graph:
    g = graph.copy()
    anchors = [n for n in g.nodes if REGISTRY.get(n.op) is not None
               and REGISTRY[n.op].kernel in EPILOGUE_KERNELS and g.values[n.outputs[0]].dtype == F32]
    for conv in anchors:
        # consumers change as chains are absorbed; recompute per anchor (graphs are small)
        _fuse_one(g, conv, g.consumers())
    return g
