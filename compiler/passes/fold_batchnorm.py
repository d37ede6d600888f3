"""BatchNormalization folding: an inference BN right after a convolution with constant weights
becomes new constant weights and bias of that convolution.

    BN(conv(x)) = s * (W*x + B - mean) + beta,   s = scale / sqrt(var + epsilon)
                = (s*W) * x + (s*(B - mean) + beta)

so W' = W scaled per output channel by s and B' = s*(B - mean) + beta (B = 0 when absent). The
fold needs the conv output to have no other reader (it would otherwise still need the unscaled
result) and BN in inference mode (training_mode=0, no running-statistics outputs).
"""
from __future__ import annotations

import numpy as np

from dydca.frontends.ir import Graph, Node

from .common import drop_values, sole_reader


def _scaled_weights(op: str, w: np.ndarray, s: np.ndarray, group: int) -> np.ndarray:
    """W with output channel m multiplied by s[m]. Conv weights are [M, C/group, k...];
    ConvTranspose weights are [C, M/group, k...] with output channel m = g*(M/group) + j."""
    if op == "Conv":
        return w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    c, mg = w.shape[0], w.shape[1]
    wg = w.reshape((group, c // group, mg) + w.shape[2:])
    sg = s.reshape((group, 1, mg) + (1,) * (w.ndim - 2))
    return (wg * sg).reshape(w.shape)


def _foldable(graph: Graph, bn: Node, conv: Node | None) -> bool:
    if conv is None or conv.op not in ("Conv", "ConvTranspose") or "epilogue" in conv.attrs \
            or "store" in conv.attrs:
        return False
    if int(bn.attrs.get("training_mode", 0)) or any(o for o in bn.outputs[1:]):
        return False
    params = [bn.input(k) for k in range(1, 5)]
    if not all(p and graph.values[p].is_const for p in params):
        return False
    w, b = conv.input(1), conv.input(2)
    if not graph.values[w].is_const or (b and not graph.values[b].is_const):
        return False
    return graph.values[w].dtype == np.float32 and graph.values[bn.outputs[0]].dtype == np.float32


def fold_batchnorm(graph: Graph) -> Graph:
    g = graph.copy()
    producers, consumers = g.producers(), g.consumers()
    folded = []
    for bn in [n for n in g.nodes if n.op == "BatchNormalization"]:
        conv = producers.get(bn.input(0))
        if conv is None or sole_reader(g, consumers, bn.input(0)) is not bn or not _foldable(g, bn, conv):
            continue
        scale, beta, mean, var = (g.values[bn.input(k)].const.astype(np.float64) for k in range(1, 5))
        s = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        w = g.values[conv.input(1)].const.astype(np.float64)
        bias = g.values[conv.input(2)].const.astype(np.float64) if conv.input(2) else np.zeros_like(s)
        group = int(conv.attrs.get("group", 1))
        new_w = _scaled_weights(conv.op, w, s, group).astype(np.float32)
        new_b = (s * (bias - mean) + beta).astype(np.float32)
        old_out = conv.outputs[0]
        conv.inputs = [conv.inputs[0], g.add_const(conv.name + "_w_bn", new_w),
                       g.add_const(conv.name + "_b_bn", new_b)] + conv.inputs[3:]
        conv.outputs = [bn.outputs[0]]
        conv.attrs["fused_from"] = conv.attrs.get("fused_from", conv.op) + "+BatchNormalization"
        drop_values(g, [old_out])
        folded.append(bn)
    dropped = {id(n) for n in folded}
    g.nodes = [n for n in g.nodes if id(n) not in dropped]
    return g
