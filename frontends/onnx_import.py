"""ONNX -> IR. Reads a model file or ModelProto, checks it, binds input dimensions to symbols with
declared ranges, and runs shape/value propagation."""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .control_flow import import_subgraphs
from .ir import Graph, Node, Value
from .ops import ModelError
from .shape_infer import infer_shapes
from .symbolic import DEFAULT_RANGE, as_dim, hull, sym

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
    """Imports an ONNX model. `dims` maps a symbolic dim name to (min, max), or is a list of such
    maps: shape classes (e.g. patch batches and full frames), each naming every symbolic dim;
    `input_shapes` maps an input name to a list of dims (ints or symbol names) for dims the model
    leaves unnamed."""
    proto = load_model(model)
    classes = [dict(c) for c in dims] if isinstance(dims, (list, tuple)) else []
    dims = hull(classes) if classes else dict(dims or {})
    input_shapes = dict(input_shapes or {})
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ModelError(None, "the model imports no ai.onnx opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        _check_opset_compat(proto.graph, opset, min(max(opset, MIN_OPSET), MAX_OPSET))
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
    graph.dims.declare_classes(classes)
    for k, n in enumerate(g.node):
        graph.nodes.append(Node(n.op_type, n.name or f"{n.op_type}_{k}", list(n.input), list(n.output),
                                {a.name: attr_value(a) for a in n.attribute}, n.domain))
    graph.outputs = [o.name for o in g.output]
    import_subgraphs(graph, g)
    infer_shapes(graph)
    for o in graph.outputs:
        v = graph.values[o]
        if v.dtype not in SUPPORTED_DTYPES:
            raise ModelError(None, f"output {o!r} has unsupported element type {v.dtype}")
    return graph


def _signature(schema):
    """What a node can say to an operator version: its attributes (with defaults) and the
    optionality of its inputs/outputs (their names are documentation only)."""
    attrs = {k: (a.type, a.default_value.SerializeToString()) for k, a in schema.attributes.items()}
    return attrs, [x.option for x in schema.inputs], [x.option for x in schema.outputs]


def _check_opset_compat(g: onnx.GraphProto, opset: int, ref: int) -> None:
    """A model declaring an opset outside MIN_OPSET..MAX_OPSET is accepted when each of its
    operators means, as the node uses it, the same at that opset as at `ref` (the nearest supported
    opset). Versions after MAX_OPSET mostly only widen the element types (bfloat16, float8, float4:
    rejected by the dtype check); versions before MIN_OPSET mostly lack attributes added since,
    which ONNX adds with defaults reproducing the previous behaviour. Refused: a different input or
    output list, an attribute whose default changed, or a node setting an attribute that the
    `ref` version does not have (added after MAX_OPSET, or dropped since an old opset)."""
    from onnx import defs

    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        try:
            mine = defs.get_schema(node.op_type, opset, "")
            theirs = defs.get_schema(node.op_type, ref, "")
        except defs.SchemaError:
            continue  # an operator unknown at `ref`: the operator table rejects it by name
        if mine.since_version == theirs.since_version:
            continue
        (a_m, i_m, o_m), (a_r, i_r, o_r) = _signature(mine), _signature(theirs)
        unknown = {a.name for a in node.attribute} - set(a_r)
        changed = sorted(k for k in set(a_m) & set(a_r) if a_m[k] != a_r[k])
        if (i_m, o_m) != (i_r, o_r) or unknown or changed:
            why = (f"sets attribute(s) {sorted(unknown)} unknown to" if unknown else
                   f"has other defaults for {changed} than" if changed else "has other inputs/outputs than")
            raise ModelError(None, f"node {node.name or node.op_type!r} ({node.op_type}) of opset {opset} "
                                   f"{why} version {theirs.since_version} of the operator, the one "
                                   f"supported (opsets {MIN_OPSET} to {MAX_OPSET})")


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
