"""onnxruntime as the oracle: build small ONNX models, compile them once, compare at many shapes."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import dydca

OPSET = 17


def tensor(name, elem_type=TensorProto.FLOAT, shape=None):
    return helper.make_tensor_value_info(name, elem_type, shape)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def make_model(nodes, inputs, outputs, initializers=(), opset=OPSET, name="test") -> onnx.ModelProto:
    """inputs/outputs: ValueInfoProtos or (name, shape) pairs (float32); outputs may omit shapes."""
    def vi(x, default_shape=None):
        if isinstance(x, onnx.ValueInfoProto):
            return x
        n, shape = (x, default_shape) if isinstance(x, str) else x
        return tensor(n, TensorProto.FLOAT, shape)
    graph = helper.make_graph(list(nodes), name, [vi(i) for i in inputs], [vi(o) for o in outputs],
                              [i if isinstance(i, onnx.TensorProto) else const(*i) for i in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 9)
    return model


def random_feeds(model: onnx.ModelProto, shapes: dict, seed=0) -> dict:
    """Random inputs (seeded) for the given input shapes; int inputs get small non-negative ints."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.input:
        if vi.name not in shapes:
            continue
        dt = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        shape = shapes[vi.name]
        if np.issubdtype(dt, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(dt)
        elif dt == np.bool_:
            feeds[vi.name] = np.asarray(rng.random(shape) > 0.5)
        else:
            feeds[vi.name] = rng.integers(0, 4, shape).astype(dt)
    return feeds


def assert_close(got, ref, rtol=1e-4, what=""):
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != onnxruntime's {ref.shape}"
    assert got.dtype == ref.dtype, f"{what}: dtype {got.dtype} != onnxruntime's {ref.dtype}"
    if got.size == 0:
        return
    if np.issubdtype(ref.dtype, np.floating):
        scale = max(float(np.nanmax(ref) - np.nanmin(ref)), 1.0) if np.isfinite(ref).any() else 1.0
        err = float(np.nanmax(np.abs(got.astype(np.float64) - ref))) if got.size else 0.0
        assert np.array_equal(np.isnan(got), np.isnan(ref)), f"{what}: NaN positions differ"
        assert err <= rtol * scale, f"{what}: max abs error {err:.3g} > {rtol:g} x range {scale:.3g}"
    else:
        np.testing.assert_array_equal(got, ref, err_msg=what)


def check_model(model: onnx.ModelProto, shapes_list: list[dict], dims: dict | None = None,
                rtol=1e-4, seed=0, **compile_kw) -> dydca.Model:
    """Compiles `model` ONCE and checks it against onnxruntime at every set of input shapes."""
    compiled = dydca.compile(model, dims=dims, **compile_kw)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for k, shapes in enumerate(shapes_list):
        feeds = random_feeds(model, shapes, seed=seed + k)
        got = compiled.run(feeds)
        ref = sess.run(None, feeds)
        assert len(got) == len(ref)
        for j, (g, r) in enumerate(zip(got, ref)):
            assert_close(g, r, rtol, what=f"output {j} at shapes {shapes}")
    return compiled
