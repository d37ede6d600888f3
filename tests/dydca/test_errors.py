"""What users see when something is wrong: the model file, an operator, an element type, the
inputs given at run time, the output folder; through the Python API and the CLI. Plus the two
promises about rebuilding: the same model twice is a cache hit, and dydca.load never compiles."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import dydca
from dydca.frontends import ModelError
from dydca.frontends.ops import supported
from tests.dydca.helpers import assert_user_error, cli, image_model, save
from tests.oracle import assert_close, check_model, make_model, tensor

DIMS = {"n": (1, 2), "h": (1, 64), "w": (1, 64)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The small image model, compiled once for the run-time checks."""
    return dydca.compile(image_model(), dims=DIMS, out_dir=tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save(image_model(), tmp_path_factory.mktemp("models") / "small.onnx")


# ---- the model file ----

def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dydca.compile(tmp_path / "nope.onnx", out_dir=tmp_path / "out")
    assert_user_error(cli(tmp_path / "nope.onnx", "-o", tmp_path / "out"), "nope.onnx", "does not exist")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_model_file(model_file, tmp_path, fraction):
    data = model_file.read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ModelError, match="truncated.onnx"):
        dydca.compile(bad, dims=DIMS, out_dir=tmp_path / "out")
    assert_user_error(cli(bad, "-o", tmp_path / "out"), "truncated.onnx")


def test_corrupt_model_file(tmp_path):
    bad = tmp_path / "noise.onnx"
    bad.write_bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        dydca.compile(bad, out_dir=tmp_path / "out")
    assert_user_error(cli(bad, "-o", tmp_path / "out"), "noise.onnx", "not a readable ONNX model")


# ---- what the model uses ----

def test_unknown_operator_names_node_op_and_supported_set(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first"),
             helper.make_node("Frobnicate", ["r"], ["y"], name="the_culprit")]
    model = make_model(nodes, [("x", ["n", 4])], ["y"])
    with pytest.raises(ModelError) as e:
        dydca.compile(model, dims={"n": (1, 4)}, out_dir=tmp_path / "out")
    msg = str(e.value)
    assert "'the_culprit'" in msg and "Frobnicate" in msg
    assert all(op in msg for op in supported())  # the whole supported set, so users see alternatives
    line = assert_user_error(cli(save(model, tmp_path / "m.onnx"), "-o", tmp_path / "out", "--dim", "n=1:4"),
                             "the_culprit", "Frobnicate", "Relu", "Conv")
    assert "\n" not in line


def test_operator_from_another_domain_is_unsupported(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"], name="custom", domain="com.example")
    model = make_model([node], [("x", [4])], ["y"])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(ModelError, match=r"'custom'.*com\.example::Relu is not supported"):
        dydca.compile(model, out_dir=tmp_path / "out")


@pytest.mark.parametrize("elem_type,name", [(TensorProto.FLOAT16, "FLOAT16"), (TensorProto.STRING, "STRING"),
                                            (TensorProto.DOUBLE, "DOUBLE")])
def test_unsupported_input_element_type(tmp_path, elem_type, name):
    model = make_model([helper.make_node("Identity", ["x"], ["y"], name="id")],
                       [tensor("x", elem_type, ["n", 4])], [tensor("y", elem_type, None)])
    with pytest.raises(ModelError, match=f"input 'x' has element type {name}, which is not supported"):
        dydca.compile(model, dims={"n": (1, 4)}, out_dir=tmp_path / "out")
    assert_user_error(cli(save(model, tmp_path / "m.onnx"), "-o", tmp_path / "out"), "'x'", name)


def test_arena_too_big_for_memory_names_its_size_and_the_dims(tmp_path):
    """Dims declared far too wide (or left at their default) plan an arena no machine has: loading
    says so, with the size and the ranges to narrow, instead of a bare out-of-memory."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Concat", ["r", "r"], ["y"], axis=1, name="twice")]
    model = make_model(nodes, [tensor("x", TensorProto.FLOAT, ["n", 3, "h", "w"])], ["y"])
    with pytest.raises(MemoryError, match=r"cannot allocate the model's \d+\.\d GiB arena, planned for the largest "
                                          r"shapes of n=1:4096 \(default\), h=1:100000, w=1:100000: declare narrower"):
        dydca.compile(model, dims={"h": (1, 100_000), "w": (1, 100_000)}, out_dir=tmp_path / "huge")
    path = save(model, tmp_path / "huge.onnx")
    assert_user_error(cli(path, "-o", tmp_path / "cli", "--dim", "h=1:100000", "--dim", "w=1:100000"),
                      "GiB arena", "h=1:100000", "declare narrower dims")


# ---- the output folder ----

def test_output_folder_not_writable(model_file, tmp_path):
    """Root may write anywhere permissions allow, so the folder is made impossible instead: its
    parent is a regular file."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "build"
    with pytest.raises(PermissionError, match="is not writable"):
        dydca.compile(model_file, dims=DIMS, out_dir=out)
    assert_user_error(cli(model_file, "-o", out, "--dim", "n=1:2"), str(out), "not writable")


# ---- run time ----

def test_input_outside_compiled_range_names_input_dim_and_range(built):
    with pytest.raises(ValueError) as e:
        built.run({"x": np.zeros((1, 3, 65, 8), np.float32)})
    msg = str(e.value)
    assert '"x"' in msg and "dimension 2" in msg and "(h)" in msg and "65" in msg and "[1, 64]" in msg
    with pytest.raises(ValueError, match=r"dimension 0 \(n\) is 3, outside the compiled range \[1, 2\]"):
        built.run({"x": np.zeros((3, 3, 4, 4), np.float32)})


def test_fixed_dim_mismatch(built):
    with pytest.raises(ValueError, match='"x" dimension 1 is 4, the model fixes it to 3'):
        built.run({"x": np.zeros((1, 4, 4, 4), np.float32)})


def test_wrong_dtype_rank_and_names(built):
    with pytest.raises(ValueError, match="input 'x' must be float32, got float64"):
        built.run({"x": np.zeros((1, 3, 4, 4))})
    with pytest.raises(ValueError, match="input 'x' must have rank 4, got 3"):
        built.run({"x": np.zeros((3, 4, 4), np.float32)})
    with pytest.raises(ValueError, match=r"missing: \['x'\], unknown: \['y'\]"):
        built.run({"y": np.zeros((1, 3, 4, 4), np.float32)})
    with pytest.raises(TypeError):
        built.run(np.zeros((1, 3, 4, 4), np.float32))
    # the model is still usable after every refusal
    x = np.ones((1, 3, 2, 2), np.float32)
    np.testing.assert_allclose(built.run({"x": x})[0][0, :, 0, 0], 1 / (1 + np.exp(-np.array([2, -1, 4]))),
                               rtol=1e-6)


# ---- names from the model never reach the generated source unescaped ----

HOSTILE = ['x "quoted"\n*/ #include <evil>', 'node */ "\\\n/* ??=', "out\n// \"*/\u00e9"]


def test_hostile_names_compile_and_run(tmp_path):
    x_name, node_name, y_name = HOSTILE
    nodes = [helper.make_node("Relu", [x_name], ["mid"], name=node_name),
             helper.make_node("Neg", ["mid"], [y_name], name=node_name + "2")]
    model = make_model(nodes, [(x_name, ["n */", 5])], [y_name], name='graph "*/\n')
    out = tmp_path / "out"
    compiled = check_model(model, [{x_name: (3, 5)}, {x_name: (1, 5)}], dims={"n */": (1, 4)}, out_dir=out)
    assert compiled.inputs == [x_name] and compiled.outputs == [y_name]
    with pytest.raises(ValueError) as e:  # the range message quotes the name, escaped and intact
        compiled.run({x_name: np.zeros((5, 5), np.float32)})
    assert x_name in str(e.value)
    # the build succeeding shows no name broke the syntax; these show none smuggled code in: no
    # comment closed by a name, no line begun by one, no name verbatim (they all hold newlines)
    for src in [out / f"{compiled.manifest['name']}.cpp", out / f"{compiled.manifest['name']}.h"]:
        text = src.read_text()
        assert not any(line.lstrip().startswith("#include <evil>") for line in text.splitlines())
        for name in HOSTILE:
            assert name not in text
            for fragment in name.split("\n"):
                if "*/" in fragment:
                    assert fragment not in text, (src.name, fragment)


# ---- rebuilding ----

def test_same_model_twice_is_a_cache_hit(tmp_path, monkeypatch):
    """Asserted through the progress messages and the manifest, not through timing."""
    monkeypatch.setenv("DYDCA_CACHE_DIR", str(tmp_path / "cache"))
    model = image_model(name="cached")
    first, second, third = [], [], []
    m1 = dydca.compile(model, dims=DIMS, out_dir=tmp_path / "a", progress=first.append)
    m2 = dydca.compile(model, dims=DIMS, out_dir=tmp_path / "b", progress=second.append)
    m3 = dydca.compile(model, dims=DIMS, out_dir=tmp_path / "b", progress=third.append)
    assert any(msg.startswith("building") for msg in first), first
    assert len(second) == 1 and second[0].startswith("from the build cache"), second
    assert len(third) == 1 and third[0].startswith("up to date"), third
    assert m1.manifest["key"] == m2.manifest["key"] == m3.manifest["key"]
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 9)).astype(np.float32)
    np.testing.assert_array_equal(m1.run({"x": x})[0], m2.run({"x": x})[0])
    # another range is another library
    other = []
    dydca.compile(model, dims={**DIMS, "h": (1, 32)}, out_dir=tmp_path / "c", progress=other.append)
    assert any(msg.startswith("building") for msg in other), other


def test_load_in_fresh_process_does_not_recompile(built, tmp_path):
    """No C++ compiler on PATH, and nothing of the compiler imported: the library just loads."""
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    lib = built.build_dir / built.manifest["library"]
    mtime = lib.stat().st_mtime_ns
    script = textwrap.dedent(f"""
        import sys, numpy as np, dydca
        m = dydca.load({str(built.build_dir)!r})
        y = m.run({{"x": np.load({str(tmp_path / 'x.npy')!r})}})[0]
        np.save({str(tmp_path / 'y.npy')!r}, y)
        compiler = [k for k in sys.modules if k.startswith(("dydca.codegen", "dydca.compiler"))]
        print("compiler modules:", compiler)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/nonexistent", "CXX": "/nonexistent/g++", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "compiler modules: []" in proc.stdout
    assert lib.stat().st_mtime_ns == mtime
    sess = ort.InferenceSession(image_model().SerializeToString(), providers=["CPUExecutionProvider"])
    assert_close(np.load(tmp_path / "y.npy"), sess.run(None, {"x": x})[0])


def test_load_of_a_folder_without_build(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json missing"):
        dydca.load(tmp_path)


def test_manifest_records_ranges_and_defaults(built):
    manifest = json.loads((built.build_dir / "manifest.json").read_text())
    assert manifest["dims"] == {k: list(v) for k, v in DIMS.items()}
    assert manifest["defaulted_dims"] == []
