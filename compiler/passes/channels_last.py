"""Channels-last pairs: a conv whose only reader is a pixel-tile conv stores its output channels
last ([N][H][W][C]) for it instead of NCHW.

The pixel-tile kernel (dydca::conv2d_pixels; frontends/ops/conv.py: conv_variants' "Pixels", the
3x3 convs of 128+ channels Winograd does not take: ResNet's strided ones and its 7x7 stage)
broadcasts one input value per (pixel, channel). In NCHW a tile's pixels read one cache line per
channel, a plane apart, which the hardware prefetchers do not follow; channels last, 16 channels
share a line. The producer stores through dydca::ChannelsLastStore (every conv kernel hands its
rows to a store), so the layout costs no pass of its own.

A pair: the producer is a 4-D Conv with no store layout, not on the strided 1x1 path (which takes
no store), whose epilogue reads per-channel operands and scalars only (its flat index i is the
NCHW one); its output is no graph output and has one reader, the consumer, a 4-D Conv of group 1
whose only kernel variant is Pixels and which reads the value as its input X only. The producer
gets attrs["channels_last_out"], the consumer attrs["channels_last_in"]; the value keeps its NCHW
shape and size, so the plan is unchanged.
"""
from __future__ import annotations

from dydca.frontends.ir import Graph, Node
from dydca.frontends.ops import graph_ctx
from dydca.frontends.ops.conv import conv_variants

from .common import sole_reader
from .fuse_conv_epilogue import operand_kind


def _variants(graph: Graph, node: Node) -> list[str]:
    return [label for _, label in conv_variants(graph_ctx(node, graph.values, graph.dims))]


def _conv4d(graph: Graph, node: Node) -> bool:
    return (node.op == "Conv" and node.domain in ("", "ai.onnx") and not node.attrs.get("store")
            and graph.values[node.inputs[0]].rank == 4)


def _producer(graph: Graph, node: Node) -> bool:
    if not _conv4d(graph, node) or "StridedGemm1x1" in _variants(graph, node):
        return False
    out = graph.values[node.outputs[0]].shape
    # epilogue operands (after X, W, B): one indexed by the flat index i would read NCHW order
    return all(operand_kind(graph, name, out, 1) in ("channel", "scalar") for name in node.inputs[3:] if name)


def _consumer(graph: Graph, node: Node, value: str) -> bool:
    return (_conv4d(graph, node) and int(node.attrs.get("group", 1)) == 1 and node.inputs.count(value) == 1
            and node.inputs[0] == value and _variants(graph, node) == ["Pixels"])


def channels_last(graph: Graph) -> Graph:
    g = graph.copy()
    consumers = g.consumers()
    for node in g.nodes:
        if node.op != "Conv" or node.attrs.get("channels_last_out"):
            continue
        reader = sole_reader(g, consumers, node.outputs[0])
        if reader is not None and _producer(g, node) and _consumer(g, reader, node.outputs[0]):
            node.attrs["channels_last_out"] = True
            reader.attrs["channels_last_in"] = True
    return g
