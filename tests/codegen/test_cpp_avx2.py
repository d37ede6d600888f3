"""The cpp-avx2 target (codegen/targets.py): the cpp target's kernels with 8-lane vectors on an
AVX-512 CPU whose 512-bit FMAs do not pay. A model built for it matches onnxruntime on each hot
kernel path (Winograd, the 1x1 GEMM with its channel-vector tail, the few-input kernel, the row
kernel, MatMul) and its library holds no 512-bit instruction. The 8-lane kernels themselves are
checked at their tile edges by test_kernels_native.py's -mno-avx512f harness."""
from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from onnx import helper

from dydca.codegen.targets import get_target
from tests.compiler.graphs import rand
from tests.oracle import check_model, make_model

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="cpp-avx2 is an x86-64 target")


def hot_paths_model():
    """x [n,3,h,w] -> 5x5 3->16 (few inputs) + ReLU -> 3x3 16->16 (Winograd on large maps, the
    row kernel on small ones) -> 1x1 16->20 + residual-free bias (GEMM; 14x14 leaves a 4-pixel
    channel-vector tail) -> MatMul over the last axis by a 14x6 matrix."""
    node = helper.make_node
    nodes = [node("Conv", ["x", "W0", "B0"], ["c0"], pads=[2, 2, 2, 2], name="first"),
             node("Relu", ["c0"], ["r0"]),
             node("Conv", ["r0", "W1"], ["c1"], pads=[1, 1, 1, 1], name="mid"),
             node("Conv", ["c1", "W2", "B2"], ["c2"], name="pointwise"),
             node("MatMul", ["c2", "Wm"], ["y"], name="mm")]
    inits = [("W0", rand((16, 3, 5, 5), 0) * 0.2), ("B0", rand((16,), 1)), ("W1", rand((16, 16, 3, 3), 2) * 0.1),
             ("W2", rand((20, 16, 1, 1), 3) * 0.2), ("B2", rand((20,), 4)), ("Wm", rand((14, 6), 5))]
    return make_model(nodes, [("x", ["n", 3, "h", 14])], ["y"], inits)


def test_cpp_avx2_matches_onnxruntime_with_no_512_bit_code(tmp_path):
    model = hot_paths_model()
    compiled = check_model(model, [{"x": (1, 3, 14, 14)}, {"x": (2, 3, 5, 14)}, {"x": (1, 3, 33, 14)}],
                           dims={"n": (1, 2), "h": (5, 40)}, target="cpp-avx2")
    assert compiled.manifest["target"] == "cpp-avx2"
    if shutil.which("objdump"):
        library = Path(compiled.build_dir) / compiled.manifest["library"]
        asm = subprocess.run(["objdump", "-d", str(library)], capture_output=True, text=True, check=True).stdout
        assert "%zmm" not in asm


def test_unknown_target_names_the_choices():
    with pytest.raises(ValueError, match="cpp-avx2"):
        get_target("cpp-avx512")
