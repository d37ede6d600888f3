"""ONNX conformance inside `make test`: every in-scope onnx backend test case (see dydca.conformance)
is one test, so xdist spreads the report; the work is shared.

Cases are built in merged batches (one g++ run per batch). The first conformance test a worker
runs evaluates batches cooperatively with the other xdist workers: each batch is claimed with a
file lock in a folder shared by this session's workers, evaluated once (in a child process, so a
crashing kernel fails its cases instead of the worker), and its per-case outcomes are written
there; every test then reads its own case's outcome.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os

import numpy as np
import pytest
from onnx import TensorProto, helper

from dydca import conformance as C
from dydca.onnx_backend import DydcaBackend, input_shapes_for

CASES = C.collect()
SEL = C.select(CASES)
BY_NAME = {c.name: c for c in CASES}
RUN = {c.name for c in SEL.run}
PARAMS = sorted(RUN) + sorted(c.name for c, _ in SEL.listed) + sorted(c.name for c, _ in SEL.by_rule)
SKIPPED = {c.name: r for c, r in SEL.listed}
RULED = {c.name for c, _ in SEL.by_rule}


def _batch_id(batch) -> str:
    return hashlib.sha1("\n".join(c.name for c in batch).encode()).hexdigest()[:16]


class SharedResults:
    """Outcomes of the session's selected cases, computed once across the xdist workers."""

    def __init__(self, names, folder):
        self.work = C.batches([BY_NAME[n] for n in names])
        self.folder = folder
        self.outcomes: dict | None = None

    def _evaluate(self, pool, batch, path):
        results = []
        for rs in pool.map([batch]):
            results += rs
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({r.name: [r.status, r.message] for r in results}))
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    def get(self, name: str):
        if self.outcomes is None:
            self.outcomes = {}
            pool = C.Pool(1)
            try:
                waiting = []
                for batch in self.work:  # first pass: take every batch no one else holds
                    lock, path = self._paths(batch)
                    f = open(lock, "w")
                    try:
                        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        waiting.append((f, path))
                        continue
                    if not path.exists():
                        self._evaluate(pool, batch, path)
                    f.close()
                    self.outcomes.update(json.loads(path.read_text()))
                for f, path in waiting:  # then wait for the batches the other workers hold
                    fcntl.flock(f, fcntl.LOCK_EX)
                    f.close()
                    self.outcomes.update(json.loads(path.read_text()))
            finally:
                pool.close()
        return self.outcomes[name]

    def _paths(self, batch):
        bid = _batch_id(batch)
        return self.folder / f"{bid}.lock", self.folder / f"{bid}.json"


@pytest.fixture(scope="session")
def conformance(request, tmp_path_factory):
    # the session's selected cases (after -k / deselection), the same list in every worker
    names = sorted({item.callspec.params["name"] for item in request.session.items
                    if getattr(item, "originalname", None) == "test_case" and
                    item.module.__name__ == __name__ and item.callspec.params["name"] in RUN})
    base = tmp_path_factory.getbasetemp()
    # xdist workers' temp folders sit in one per-session folder: the place to share outcomes
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "conformance"
    folder.mkdir(exist_ok=True)
    return SharedResults(names, folder)


@pytest.mark.parametrize("name", PARAMS)
def test_case(name, conformance):
    if name in RULED:
        pytest.skip(f"dtype rule: {C.DTYPE_RULE}")
    if name in SKIPPED:
        pytest.skip(f"conformance_skips.txt: {SKIPPED[name]}")
    status, message = conformance.get(name)
    assert status == "passed", f"{name} ({'+'.join(BY_NAME[name].ops)}): {message}"


def test_skip_list_is_reviewed():
    """Each entry names an in-scope case the dtype rule does not already skip, with a reason."""
    skips = C.read_skips()
    assert not SEL.stale_skips, f"entries naming no in-scope case: {SEL.stale_skips}"
    assert not set(skips) & RULED, f"entries the dtype rule skips anyway: {sorted(set(skips) & RULED)}"
    assert all(len(reason) >= 10 for reason in skips.values())


def test_compare_tolerances():
    """A float output passes within the case's rtol/atol or within 1e-4 x its range; NaN/inf
    positions, shapes, dtypes and integer values must match exactly."""
    e = np.array([0.0, 100.0, np.nan, np.inf], np.float32)
    assert C.compare(e.copy(), e, 1e-3, 1e-7) is None
    assert C.compare(e + np.float32(5e-3), e, 1e-3, 1e-7) is None  # 5e-3 <= 1e-4 x range 100
    assert C.compare(e + np.float32(0.5), e, 1e-3, 1e-7) is not None
    assert C.compare(np.array([0.0, 100.0, 1.0, np.inf], np.float32), e, 1e-3, 1e-7) == "NaN positions differ"
    assert C.compare(e.astype(np.float64), e, 1e-3, 1e-7).startswith("dtype")
    assert C.compare(np.array([1, 2]), np.array([1, 3]), 1e-3, 1e-7) == "1 of 2 elements differ"


def test_backend_interface():
    """prepare/run with list and dict inputs, dims the model leaves open fixed from the arrays,
    run_node, and the device check."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    s = helper.make_tensor_value_info("s", TensorProto.INT64, None)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Shape", ["x"], ["s"])], "g", [x], [y, s]),
        opset_imports=[helper.make_opsetid("", 17)])
    a = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    y_got, s_got = DydcaBackend.run_model(model, [a])
    np.testing.assert_array_equal(y_got, np.maximum(a, 0))
    np.testing.assert_array_equal(s_got, [5, 3])
    rep = DydcaBackend.prepare(model, "CPU", inputs={"x": a})
    np.testing.assert_array_equal(rep.run({"x": -a})[0], np.maximum(-a, 0))
    (z,) = DydcaBackend.run_node(helper.make_node("Add", ["p", "q"], ["r"]), [a, a[0]])
    np.testing.assert_array_equal(z, a + a[0])
    assert DydcaBackend.supports_device("CPU") and not DydcaBackend.supports_device("CUDA")
    static = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [y]), opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ValueError, match="declared"):
        input_shapes_for(static, {"x": np.zeros((4, 3), np.float32)})
