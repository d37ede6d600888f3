"""dydca as an `onnx.backend.base.Backend`: the interface ONNX's conformance suites drive.

prepare() compiles the model ahead of time with every input shape fixed: from the model's declared
static shapes, or from the arrays given for dims the model leaves symbolic or unnamed. Inputs that
an operator reads at compile time (a Reshape's shape, a Slice's starts, Pad's pads, ...: the
operator table's `static_inputs`) are compiled in as constants when their values are given; the
prepared model then checks that later runs pass the same values. Builds go
to a temporary folder and are cached by content hash (dydca.compile's build cache), so preparing
the same model again, in this process or another, costs a file copy, not a g++ run.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from . import api


def _declared_shape(vi: onnx.ValueInfoProto) -> list | None:
    """An input's declared shape as ints and dim names ('' for unnamed); None when it has none."""
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller feeds: graph inputs that are not initializers (old exporters list both)."""
    inits = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def input_shapes_for(model: onnx.ModelProto, inputs: Mapping | None) -> dict:
    """input name -> concrete shape for every input whose declared shape is not fully static: from
    the given arrays. Static declared shapes are kept; an array contradicting one is an error."""
    shapes = {}
    for vi in graph_inputs(model):
        declared = _declared_shape(vi)
        given = None if inputs is None or vi.name not in inputs else tuple(np.shape(inputs[vi.name]))
        if declared is not None and all(isinstance(d, int) and d > 0 for d in declared):
            if given is not None and tuple(declared) != given:
                raise ValueError(f"input {vi.name!r} is declared {tuple(declared)} but given {given}")
            continue
        if given is not None:
            shapes[vi.name] = list(given)
    return shapes


def compile_time_inputs(model: onnx.ModelProto) -> set[str]:
    """Graph inputs whose values some node needs at compile time: read directly as one of its
    `static_inputs` (the operator table's shapes, axes, pads, scales, bounds, ...), or through a
    chain of nodes computing such a value. The walk stops at ops that read only their inputs'
    shapes (Shape, Size): their inputs' contents are not needed."""
    from .frontends import REGISTRY, Category

    names = {vi.name for vi in graph_inputs(model)}
    producer = {o: n for n in model.graph.node for o in n.output if o}
    todo = []
    for n in model.graph.node:
        op = REGISTRY.get(n.op_type)
        if op is not None and n.domain in ("", "ai.onnx"):
            todo += [n.input[i] for i in op.static_inputs if i < len(n.input) and n.input[i]]
    seen, out = set(), set()
    while todo:
        v = todo.pop()
        if v in seen:
            continue
        seen.add(v)
        if v in names:
            out.add(v)
        n = producer.get(v)
        op = REGISTRY.get(n.op_type) if n is not None else None
        if n is not None and not (op is not None and op.category == Category.VALUE_FROM_SHAPES):
            todo += [i for i in n.input if i]
    return out


def bake_inputs(model: onnx.ModelProto, values: Mapping) -> onnx.ModelProto:
    """A copy of `model` in which the given graph inputs are initializers with these values."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    kept = [vi for vi in m.graph.input if vi.name not in values]
    del m.graph.input[:]
    m.graph.input.extend(kept)
    m.graph.initializer.extend(numpy_helper.from_array(np.asarray(v), k) for k, v in values.items())
    return m


class DydcaRep(BackendRep):
    """A compiled model; run() takes arrays in the order of the model's inputs (or a dict) and
    returns the outputs in the model's order. Inputs baked in at prepare() time (`baked`) may be
    passed again but must hold the same values."""

    def __init__(self, compiled: api.Model, input_names: Sequence[str], baked: Mapping | None = None):
        self.model = compiled
        self.input_names = list(input_names)
        self.baked = dict(baked or {})

    def run(self, inputs, **kwargs) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, Mapping):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            inputs = list(inputs)
            if len(inputs) != len(self.input_names):
                raise ValueError(f"the model takes {len(self.input_names)} inputs "
                                 f"({self.input_names}), {len(inputs)} given")
            feeds = dict(zip(self.input_names, inputs))
        for name, value in self.baked.items():
            given = feeds.pop(name, None)
            if given is not None and not (np.shape(given) == value.shape and np.array_equal(given, value)):
                raise ValueError(f"input {name!r} was compiled in as a constant ({value.tolist()}); "
                                 f"prepare the model again for other values")
        return tuple(self.model.run({k: _canonical(v) for k, v in feeds.items()}))


def _canonical(x):
    """The array with numpy's own dtype object: the runtime compares dtypes by identity, and an
    unpickled array (test data crossing a process pool) carries an equal but distinct one."""
    x = np.asarray(x)
    return x.view(np.dtype(x.dtype.name)) if x.dtype.kind in "biuf" else x


class DydcaBackend(Backend):
    """CPU only: dydca generates C++ for the host."""

    # one build per (model bytes, fixed shapes) per process; the on-disk cache spans processes
    _prepared: dict = {}

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU

    @classmethod
    def prepare(cls, model, device: str = "CPU", *, inputs: Mapping | None = None,
                input_shapes: Mapping | None = None, dims: Mapping | None = None, **kwargs) -> DydcaRep:
        """Compiles `model` (ModelProto, bytes or path). `inputs`: arrays whose shapes fix the
        dims the model leaves open; `input_shapes`: the same as explicit shapes; `dims`: symbolic
        dim ranges for a build that stays dynamic. Other keywords go to dydca.compile."""
        if not cls.supports_device(device):
            raise RuntimeError(f"dydca runs on CPU only, not {device!r}")
        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_from_string(bytes(model))
        elif not isinstance(model, onnx.ModelProto):
            model = onnx.load(model)
        names = [vi.name for vi in graph_inputs(model)]
        # an AOT build needs shapes, axes, pads, ... as constants; given ones are compiled in
        baked = {k: np.asarray(inputs[k]) for k in sorted(compile_time_inputs(model)) if inputs and k in inputs}
        if baked:
            model = bake_inputs(model, baked)
        shapes = input_shapes_for(model, inputs)
        shapes.update({k: list(v) for k, v in (input_shapes or {}).items()})
        key = (model.SerializeToString(deterministic=True), repr(sorted(shapes.items())),
               repr(sorted((dims or {}).items())), repr(sorted(kwargs.items())))
        compiled = cls._prepared.get(key)
        if compiled is None:
            out_dir = tempfile.mkdtemp(prefix="dydca-backend-")
            compiled = api.compile(model, dims=dims, out_dir=out_dir, input_shapes=shapes or None, **kwargs)
            # the library is loaded and embeds its constants: the folder is not needed past this
            # process (a later prepare() hits the content-hash build cache instead)
            weakref.finalize(compiled, shutil.rmtree, out_dir, True)
            cls._prepared[key] = compiled
        return DydcaRep(compiled, names, baked)

    @classmethod
    def run_model(cls, model, inputs, device: str = "CPU", **kwargs) -> tuple[np.ndarray, ...]:
        if isinstance(model, (bytes, bytearray)):
            model = onnx.load_from_string(bytes(model))
        names = [vi.name for vi in graph_inputs(model)]
        feeds = dict(inputs) if isinstance(inputs, Mapping) else dict(zip(names, inputs))
        return cls.prepare(model, device, inputs=feeds, **kwargs).run(feeds)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs, device: str = "CPU", outputs_info=None,
                 **kwargs) -> tuple[np.ndarray, ...]:
        """Runs one node on arrays: wraps it in a model whose input shapes are the arrays'."""
        super().run_node(node, inputs, device=device, outputs_info=outputs_info)
        names = [n for n in node.input if n]
        if isinstance(inputs, Mapping):
            arrays = [np.asarray(inputs[n]) for n in names]
        else:
            arrays = [np.asarray(a) for a in inputs]
        ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
               for n, a in zip(names, arrays)]
        outs = [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in node.output if n]
        opset = kwargs.pop("opset_version", onnx.defs.onnx_opset_version())
        model = helper.make_model(helper.make_graph([node], "run_node", ins, outs),
                                  opset_imports=[helper.make_opsetid("", opset)])
        return cls.run_model(model, dict(zip(names, arrays)), device, **kwargs)


prepare = DydcaBackend.prepare
run_model = DydcaBackend.run_model
run_node = DydcaBackend.run_node
supports_device = DydcaBackend.supports_device
