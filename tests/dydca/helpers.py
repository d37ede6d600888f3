"""Small models and a CLI runner shared by the user-surface tests (API errors, CLI)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from tests.oracle import make_model, tensor


def image_model(x_shape=("n", 3, "h", "w"), name="small") -> onnx.ModelProto:
    """x (n, 3, h, w) -> Sigmoid(Relu(x) + b): three element-wise ops, quick to build."""
    b = np.array([1, -2, 3], np.float32).reshape(1, 3, 1, 1)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "b"], ["a"], name="add"),
             helper.make_node("Sigmoid", ["a"], ["y"], name="sigmoid")]
    return make_model(nodes, [tensor("x", TensorProto.FLOAT, list(x_shape))], ["y"], [("b", b)], name=name)


def shape_model() -> onnx.ModelProto:
    """One op of each of the first three dynamism categories: Relu (1), Shape (2), Reshape (3)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Shape", ["r"], ["s"], name="shape"),
             helper.make_node("Reshape", ["r", "flat"], ["y"], name="flatten")]
    return make_model(nodes, [("x", ["n", 3, "h", "w"])], ["y", tensor("s", TensorProto.INT64, None)],
                      [("flat", np.array([0, -1], np.int64))], name="shapes")


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def cli(*args, env=None) -> subprocess.CompletedProcess:
    """Runs dydca-compile as a user would: the installed console script (next to this Python)."""
    script = Path(sys.executable).parent / "dydca-compile"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "dydca.cli"]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, exactly one error line naming every fragment, and no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    for f in fragments:
        assert f in errors[0], (f, errors[0])
    return errors[0]
