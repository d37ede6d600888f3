"""FLOPs of an ONNX model at given input shapes: 2 x the multiply-adds of its Conv, ConvTranspose,
Gemm and MatMul nodes (the element-wise ops are a rounding error next to them in the networks we
benchmark), with every extent from onnx shape inference at those shapes.

    node_flops(model, {"x": (1, 3, 540, 960)})  ->  {node name: Layer(op, flops, kernel, cin, cout)}
    total_flops(model, {"x": (1, 3, 540, 960)}) ->  float

Control flow: a run takes one branch of each If; `branch` names which ("then_branch" or
"else_branch", the same at every If). In dydca.zoo.multipath the deepest path is the else branch
at every level, for the bool selector and the index chain alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import onnx
from onnx import helper, shape_inference


@dataclass(frozen=True)
class Layer:
    op: str
    flops: float
    kernel: tuple[int, ...] = ()
    cin: int = 0
    cout: int = 0


def with_input_shapes(model: onnx.ModelProto, shapes: dict) -> onnx.ModelProto:
    """A copy of `model` whose inputs have the given fixed shapes, shapes inferred throughout."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape
            dims.ClearField("dim")
            for d in shapes[vi.name]:
                dims.dim.add().dim_value = int(d)
    return shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)


def _shapes_of(graph: onnx.GraphProto, outer: dict) -> dict:
    """Name -> tuple of ints for every value whose shape inference made static, this graph's and
    the enclosing graphs' (If branches read outer values)."""
    known = dict(outer)
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            known[vi.name] = tuple(d.dim_value for d in dims)
    for init in graph.initializer:
        known[init.name] = tuple(init.dims)
    return known


def _layer(node: onnx.NodeProto, shape: dict) -> Layer | None:
    """The multiply-adds of one node, or None for ops that do none worth counting."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in ("Conv", "ConvTranspose"):
        w = shape[node.input[1]]  # Conv (cout, cin/g, k...); ConvTranspose (cin, cout/g, k...)
        k, group = w[2:], attrs.get("group", 1)
        if node.op_type == "Conv":
            out = shape[node.output[0]]
            macs = math.prod(out) * w[1] * math.prod(k)
            cin, cout = w[1] * group, w[0]
        else:  # every input pixel scatters a cout/g x k window
            x = shape[node.input[0]]
            macs = math.prod(x) * w[1] * math.prod(k)
            cin, cout = w[0], w[1] * group
        return Layer(node.op_type, 2.0 * macs, tuple(k), cin, cout)
    if node.op_type == "Gemm":
        a, b = shape[node.input[0]], shape[node.input[1]]
        m_, k_ = a[::-1] if attrs.get("transA", 0) else a
        n_ = b[0] if attrs.get("transB", 0) else b[1]
        return Layer("Gemm", 2.0 * m_ * n_ * k_, cin=k_, cout=n_)
    if node.op_type == "MatMul":
        a, b, out = shape[node.input[0]], shape[node.input[1]], shape[node.output[0]]
        return Layer("MatMul", 2.0 * math.prod(out) * a[-1], cin=a[-1], cout=b[-1])
    return None


def _walk(graph: onnx.GraphProto, outer: dict, branch: str, found: dict) -> None:
    shape = _shapes_of(graph, outer)
    for node in graph.node:
        if node.op_type == "If":
            sub = next(a.g for a in node.attribute if a.name == branch)
            _walk(sub, shape, branch, found)
            continue
        layer = _layer(node, shape)
        if layer is not None:
            found[node.name] = layer


def node_flops(model: onnx.ModelProto, shapes: dict, branch: str = "else_branch") -> dict[str, Layer]:
    """Per node name (nodes that run at these shapes, through `branch` of each If), its Layer."""
    found: dict[str, Layer] = {}
    _walk(with_input_shapes(model, shapes).graph, {}, branch, found)
    return found


def total_flops(model: onnx.ModelProto, shapes: dict, branch: str = "else_branch") -> float:
    return sum(layer.flops for layer in node_flops(model, shapes, branch).values())

