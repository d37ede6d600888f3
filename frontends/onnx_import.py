"""ONNX -> IR. Reads a model file or ModelProto, checks it, binds input dimensions to symbols with
declared ranges, and runs shape/value propagation."""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .ir import Graph, Node, Value
from .ops import ModelError
from .shape_infer import infer_shapes
from .symbolic import DEFAULT_RANGE, as_dim, sym

MIN_OPSET, MAX_OPSET = 7, 21
SUPPORTED_DTYPES = {np.dtype(t) for t in ("float32", "int64", "int32", "bool")}


def load_model(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    path = os.fspath(model)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    try:
        proto = onnx.load(path)
    except Exception as e:
        raise ModelError(None, f"{path!r} is not a readable ONNX model ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else 'truncated or corrupt'})") from e
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(None, f"{path!r} holds no graph (truncated or not an ONNX file)")
    return proto


def attr_value(a: onnx.AttributeProto):
    v = helper.get_attribute_value(a)
    if a.type == onnx.AttributeProto.TENSOR:
        return numpy_helper.to_array(v)
    if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return v  # sub-graphs: lowered by the control-flow frontend
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode("utf-8", "replace") for s in v]
    return v


def _np_dtype(elem_type: int, what: str):
    try:
        dt = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        dt = None
    if dt not in SUPPORTED_DTYPES:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        raise ModelError(None, f"{what} has element type {name}, which is not supported "
                               f"(supported: float32, int64, int32, bool)")
    return dt


def from_onnx(model, dims: dict | None = None, input_shapes: dict | None = None,
              name: str | None = None) -> Graph:
    """Imports an ONNX model. `dims` maps a symbolic dim name to (min, max); `input_shapes` maps an
    input name to a list of dims (ints or symbol names) for dims the model leaves unnamed."""
    proto = load_model(model)
    dims = dict(dims or {})
    input_shapes = dict(input_shapes or {})
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ModelError(None, f"ONNX opset {opset} is not supported (supported: {MIN_OPSET} to {MAX_OPSET})")
    g = proto.graph
    graph = Graph(name=name or (g.name or "model"), opset=opset)
    for init in g.initializer:
        try:
            arr = numpy_helper.to_array(init)
        except Exception as e:
            raise ModelError(None, f"initializer {init.name!r} cannot be read: {e}") from e
        graph.values[init.name] = Value(init.name, arr.dtype, tuple(as_dim(d) for d in arr.shape), arr)
    for vi in g.input:
        if vi.name in graph.values:
            continue  # an initializer listed as input (old exporters): a constant
        graph.inputs.append(vi.name)
        graph.values[vi.name] = _input_value(graph, vi, dims, input_shapes)
    unused = set(dims) - set(graph.dims.ranges)
    if unused:
        raise ValueError(f"--dim given for {sorted(unused)}, which no input uses "
                         f"(input dims: {graph.dims.names or 'none symbolic'})")
    for k, n in enumerate(g.node):
        graph.nodes.append(Node(n.op_type, n.name or f"{n.op_type}_{k}", list(n.input), list(n.output),
                                {a.name: attr_value(a) for a in n.attribute}, n.domain))
    graph.outputs = [o.name for o in g.output]
    infer_shapes(graph)
    for o in graph.outputs:
        v = graph.values[o]
        if v.dtype not in SUPPORTED_DTYPES:
            raise ModelError(None, f"output {o!r} has unsupported element type {v.dtype}")
    return graph


def _input_value(graph, vi, dims, input_shapes) -> Value:
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise ModelError(None, f"input {vi.name!r} is not a tensor (sequences and maps are unsupported)")
    dtype = _np_dtype(t.elem_type, f"input {vi.name!r}")
    override = input_shapes.get(vi.name)
    if override is not None:
        spec = list(override)
    elif t.HasField("shape"):
        spec = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    else:
        raise ModelError(None, f"input {vi.name!r} has no shape; give one with --input-shape "
                               f"{vi.name}=d0,d1,...")
    shape = []
    for axis, d in enumerate(spec):
        if isinstance(d, str) and d.lstrip("-").isdigit():
            d = int(d)
        if isinstance(d, (int, np.integer)) and d > 0:
            shape.append(as_dim(int(d)))
        elif isinstance(d, str) and d:
            if d not in graph.dims.ranges:
                lo, hi = dims.get(d) or DEFAULT_RANGE
                graph.dims.declare(d, lo, hi)
                if d not in dims:
                    graph.dims.defaulted.append(d)
            shape.append(sym(d))
        else:
            raise ModelError(None, f"input {vi.name!r} dimension {axis} has no size and no name; "
                                   f"name it with --input-shape {vi.name}=n,3,h,w")
    return Value(vi.name, dtype, tuple(shape))
