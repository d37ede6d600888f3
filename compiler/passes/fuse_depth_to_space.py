"""DepthToSpace fusion: a convolution stores its result directly in depth-to-space order.

Conv -> DepthToSpace (the pixel-shuffle of sub-pixel super-resolution) becomes the Conv alone with
attrs["store"] = {"op": "DepthToSpace", "blocksize": b, "mode": "DCR" | "CRD", "shape": the conv's
own output dims [N, M, H, W]}; the Conv's output value becomes the DepthToSpace output (its shape),
and the rearranging pass over memory disappears. The conv kernel (frontends/ops/conv.py,
dydca::DepthToSpaceStore in conv.h) computes over "shape" and writes each element where
`d2s_store_index` says; an epilogue already on the conv still runs in the conv's own (m, i) space.

Store index mapping. The conv computes y[n, m, h, w] with M channels over H x W; the stored
tensor is z of shape [N, C', H*b, W*b] with C' = M / b^2:

    DCR:  m = (bi*b + bj)*C' + c   ->  c = m % C',       bi = m / (b*C'),   bj = (m / C') % b
    CRD:  m = c*b*b + bi*b + bj    ->  c = m / (b*b),    bi = (m / b) % b,  bj = m % b

    z flat index = ((n*C' + c)*(H*b) + h*b + bi)*(W*b) + w*b + bj

The fold needs the conv output to have no other reader and not be a graph output.
"""
from __future__ import annotations

from dydca.frontends.ir import Graph

from .common import drop_values, sole_reader


def d2s_split(mode: str, b: int, m, cp):
    """(stored channel c, row phase bi, column phase bj) of conv channel m; cp = M / b^2."""
    if mode == "DCR":
        return m % cp, m // (b * cp), (m // cp) % b
    if mode == "CRD":
        return m // (b * b), (m // b) % b, m % b
    raise ValueError(f"DepthToSpace mode {mode!r} (DCR or CRD expected)")


def d2s_store_index(mode: str, b: int, n, m, h, w, M, H, W):
    """Flat index in the DepthToSpace output where conv element y[n, m, h, w] goes (conv output
    [N, M, H, W], blocksize b, mode "DCR" or "CRD"). Works on Python ints, numpy integer arrays
    and sympy expressions alike; all quantities are non-negative, so `//` is C++'s `/`."""
    cp = M // (b * b)
    c, bi, bj = d2s_split(mode, b, m, cp)
    return ((n * cp + c) * (H * b) + h * b + bi) * (W * b) + w * b + bj


def fuse_depth_to_space(graph: Graph) -> Graph:
    g = graph.copy()
    producers, consumers = g.producers(), g.consumers()
    dropped = []
    for d2s in [n for n in g.nodes if n.op == "DepthToSpace"]:
        src = d2s.input(0)
        conv = producers.get(src)
        if conv is None or conv.op != "Conv" or "store" in conv.attrs or g.values[src].rank != 4:
            continue
        if sole_reader(g, consumers, src) is not d2s:
            continue
        conv.attrs["store"] = {"op": "DepthToSpace", "blocksize": int(d2s.attrs["blocksize"]),
                               "mode": str(d2s.attrs.get("mode", "DCR")).upper(),
                               "shape": tuple(g.values[src].shape)}
        conv.attrs["fused_from"] = conv.attrs.get("fused_from", conv.op) + "+DepthToSpace"
        conv.outputs = [d2s.outputs[0]]
        drop_values(g, [src])
        dropped.append(d2s)
    ids = {id(n) for n in dropped}
    g.nodes = [n for n in g.nodes if id(n) not in ids]
    return g
