"""The opencl target (codegen/opencl.py, codegen/templates/opencl, runtime_cpp/include/dydca/opencl.h)
against onnxruntime: every SR model of the zoo and every path of the N-path networks at three
shapes, the layout/pooling/resize kernels, shape classes, the CLI, the program binary cache, and
the errors (no OpenCL platform, an op the target lacks, missing headers).

Runs on any OpenCL platform (PoCL's CPU device in CI); skipped where none is installed."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import dydca
from dydca import zoo
from dydca.frontends.ops import ModelError
from dydca.zoo import Net
from tests.dydca.helpers import cli, save
from tests.oracle import assert_close, check_model, make_model, tensor


def _platform_count() -> int:
    try:
        lib = ctypes.CDLL("libOpenCL.so.1")
    except OSError:
        return 0
    n = ctypes.c_uint(0)
    rc = lib.clGetPlatformIDs(0, None, ctypes.byref(n))
    return n.value if rc == 0 else 0


pytestmark = pytest.mark.skipif(_platform_count() == 0, reason="no OpenCL platform (install PoCL: "
                                "apt install pocl-opencl-icd ocl-icd-opencl-dev)")

DIMS = {"n": (1, 2), "h": (4, 40), "w": (4, 40)}
SHAPES = [(1, 3, 8, 8), (2, 3, 13, 7), (1, 3, 40, 33)]


def _check(model, feeds_list, build_dir=None, dims=DIMS):
    built = dydca.compile(model, dims, build_dir, target="opencl")
    assert built.manifest["target"] == "opencl"
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feeds_list:
        got, ref = built.run(feeds), sess.run(None, feeds)
        assert len(got) == len(ref)
        for j, (g, r) in enumerate(zip(got, ref)):
            assert_close(g, r, what=f"output {j} at {[(k, np.shape(v)) for k, v in feeds.items()]}")
    return built


def _images(shapes=SHAPES):
    return [np.random.default_rng(k).standard_normal(s).astype(np.float32) for k, s in enumerate(shapes)]


@pytest.mark.parametrize("name", sorted(zoo.SR_MODELS))
def test_sr_model(name):
    _check(zoo.SR_MODELS[name](), [{"x": x} for x in _images()])


@pytest.mark.parametrize("paths,select", [(2, "index"), (4, "index"), (2, "bool")])
def test_multipath_every_path(paths, select):
    """Every path (and the out-of-range indices, which take the last one) at every shape: the If
    chain runs on the host, reading back one condition byte per If."""
    if select == "bool":
        sel = [{"c": np.array(v)} for v in (True, False)]
    else:
        sel = [{"path": np.array(k, np.int64)} for k in range(-1, paths + 1)]
    _check(zoo.multipath(paths, select), [{"x": x, **s} for x in _images() for s in sel])


def _ops_model():
    """Depthwise, grouped-strided and transposed convs, both pools with pads, linear Resize, Split,
    Transpose, an element-wise chain with broadcasting and a reflect Pad."""
    net = Net(1)
    x = net.conv("x", 3, 8, 3)
    d = net.conv(x, 8, 8, 3, group=8)
    g = net.conv(d, 8, 8, 3, group=2, stride=2)
    mp = net.node("MaxPool", [g], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    ap = net.node("AveragePool", [mp], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    up = net.node("Resize", [ap, "", net.const(np.array([1, 1, 4, 4], np.float32), "sc")], mode="linear")
    t = net.conv_transpose(g, 8, 8, 4, 2, 1)
    a, b = net.node("Split", [t, net.const(np.array([3, 5], np.int64), "sp")], n_out=2, axis=1)
    tr = net.node("Transpose", [a], perm=[0, 1, 3, 2])
    s = net.node("Sigmoid", [net.node("Sub", [net.node("Abs", [tr]), net.const(np.float32(0.5), "h")])])
    pad = net.node("Pad", [x, net.const(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "p")], mode="reflect")
    return net.model([("x", zoo.IMAGE)], [up, s, b, pad], "ops")


@pytest.mark.parametrize("name", ["unet", "ops"])
def test_layout_pool_resize_kernels(name):
    """unet: a Pad computed from the input's shape, strided convs, nearest Resize, Concat, Slice."""
    model = zoo.unet() if name == "unet" else _ops_model()
    _check(model, [{"x": x} for x in _images()], dims={"n": (1, 2), "h": (5, 40), "w": (5, 40)})


def test_standalone_layout_and_generator_kernels():
    """BatchNormalization outside a conv, DepthToSpace (DCR) as a copy, ConstantOfShape and a float
    Range sized by the input, a Slice with negative and non-unit steps."""
    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.random(shape).astype(np.float32)  # noqa: E731
    nodes = [helper.make_node("BatchNormalization", ["x", "sc", "bi", "me", "va"], ["bn"], epsilon=1e-3),
             helper.make_node("Add", ["bn", "x"], ["s"]),
             helper.make_node("DepthToSpace", ["s"], ["d2s"], blocksize=2, mode="DCR"),
             helper.make_node("Shape", ["x"], ["shp"]),
             helper.make_node("ConstantOfShape", ["shp"], ["cos"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.5])),
             helper.make_node("Mul", ["cos", "x"], ["cx"]),
             helper.make_node("Gather", ["shp", "two"], ["h"]),
             helper.make_node("Cast", ["h"], ["hf"], to=TensorProto.FLOAT),
             helper.make_node("Range", ["zero", "hf", "half"], ["rg"]),
             helper.make_node("Slice", ["x", "st", "en", "axs", "steps"], ["sl"])]
    model = make_model(nodes, [("x", ["n", 4, "h", "w"])], ["d2s", "cx", "rg", "sl"],
                       [("sc", f32(4) + 0.5), ("bi", f32(4)), ("me", f32(4)), ("va", f32(4) + 0.1),
                        ("two", np.array(2, np.int64)), ("zero", np.array(0.0, np.float32)),
                        ("half", np.array(0.5, np.float32)), ("st", np.array([-1, 1], np.int64)),
                        ("en", np.array([-1000, 1000], np.int64)), ("axs", np.array([3, 2], np.int64)),
                        ("steps", np.array([-2, 3], np.int64))])
    check_model(model, [{"x": s} for s in [(1, 4, 8, 8), (2, 4, 17, 9), (1, 4, 40, 33)]],
                dims={"n": (1, 2), "h": (8, 40), "w": (8, 40)}, target="opencl")


def test_shape_classes_pick_their_work_groups(tmp_path):
    """Batches of small patches and single frames: each class gets the work-group its widths allow
    (4x8 pixels for rows of at most 6, 16x4 otherwise), picked per call."""
    classes = [{"n": (1, 16), "h": (2, 8), "w": (2, 6)}, {"n": (1, 1), "h": (17, 48), "w": (2, 48)}]
    built = _check(zoo.espcn(), [{"x": x} for x in _images([(16, 3, 8, 6), (3, 3, 2, 5), (1, 3, 48, 30), (1, 3, 20, 2)])],
                   build_dir=tmp_path / "b", dims=classes)
    source = next((tmp_path / "b").glob("*.cpp")).read_text()
    assert source.count("work-groups of 4x8x1 or 16x4x1") == 3  # the three convs
    with pytest.raises(ValueError, match="shape class"):
        built.run({"x": np.zeros((2, 3, 40, 40), np.float32)})


def test_model_text_is_escaped_in_the_device_source():
    """Node and value names reach the device program only inside comments, and the program reaches
    the C++ source only as escaped string literals."""
    name = 'a "quoted" */ name \\ with\nnewline ??= trigraph'
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name=name),
                        helper.make_node("Tanh", ["y"], ["z"], name=name + "2")], [("x", ["n", 5])], ["z"])
    check_model(model, [{"x": (3, 5)}, {"x": (1, 5)}], dims={"n": (1, 4)}, target="opencl", cache=False)


def test_cli_target_opencl(tmp_path):
    model = zoo.espcn()
    out = tmp_path / "out"
    proc = cli(save(model, tmp_path / "espcn.onnx"), "-o", out, "--target", "opencl", "--dim", "n=1:2",
               "--dim", "h=4:24", "--dim", "w=4:24")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text())["target"] == "opencl"
    x = _images([(2, 3, 24, 5)])[0]
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert_close(dydca.load(out).run({"x": x})[0], ref)


def test_op_without_opencl_kernel_is_refused(monkeypatch):
    """Every op of the table has an opencl kernel today; one without would be refused at compile
    time naming the node, not fail in the OpenCL compiler."""
    from dydca.codegen import opencl

    monkeypatch.delitem(opencl.SUPPORTED, "lrn")
    model = make_model([helper.make_node("LRN", ["x"], ["y"], name="local norm", size=3)], [("x", ["n", 4, 5, 5])], ["y"])
    with pytest.raises(ModelError, match=r"node 'local norm' \(LRN\): operator LRN is not supported by the opencl target"):
        dydca.compile(model, {"n": (1, 4)}, target="opencl", cache=False)


def test_missing_headers_are_named(monkeypatch):
    from dydca.codegen import targets

    monkeypatch.setattr(targets, "opencl_headers_missing", lambda cxx: "CL/cl.h: No such file or directory")
    with pytest.raises(RuntimeError, match=r"opencl target needs the OpenCL headers \(CL/cl\.h"):
        targets.get_target("opencl")


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **env}, cwd=os.getcwd())


def test_no_platform_is_a_clear_error_and_cpp_still_runs(tmp_path):
    """With an ICD loader that finds no driver the opencl library still loads; its run names the
    cause, and the cpp target keeps working in the same process."""
    build = tmp_path / "ocl"
    dydca.compile(zoo.espcn(), DIMS, build, target="opencl")
    (tmp_path / "no_vendors").mkdir()
    proc = _python(f"""
        import numpy as np, onnxruntime as ort, dydca
        from dydca import zoo
        from tests.oracle import assert_close
        m = dydca.load({str(build)!r})
        x = np.random.default_rng(0).standard_normal((1, 3, 9, 11)).astype(np.float32)
        try:
            m.run({{"x": x}})
            print("RAN")
        except RuntimeError as e:
            print("ERROR:", e)
        cpu = dydca.compile(zoo.espcn(), {DIMS!r}, target="cpp")
        ref = ort.InferenceSession(zoo.espcn().SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {{"x": x}})[0]
        assert_close(cpu.run({{"x": x}})[0], ref)
        print("CPP OK")
        """, {"OCL_ICD_VENDORS": str(tmp_path / "no_vendors"), "OCL_ICD_FILENAMES": ""})
    assert proc.returncode == 0, proc.stderr
    assert "RAN" not in proc.stdout
    assert "ERROR: opencl target: no OpenCL platform was found" in proc.stdout, proc.stdout
    assert 'target="cpp"' in proc.stdout
    assert "CPP OK" in proc.stdout


def test_program_binary_cache(tmp_path):
    """The first load builds the program and stores its binary under $DYDCA_CACHE_DIR/opencl; a
    damaged binary is rebuilt and replaced, with the same results."""
    build = tmp_path / "ocl"
    dydca.compile(zoo.fsrcnn(), DIMS, build, target="opencl")
    cache = tmp_path / "cache"

    def run(out):
        return _python(f"""
            import numpy as np, dydca
            x = np.random.default_rng(3).standard_normal((2, 3, 11, 6)).astype(np.float32)
            np.save({str(out)!r}, dydca.load({str(build)!r}).run({{"x": x}})[0])
            """, {"DYDCA_CACHE_DIR": str(cache)})

    first = run(tmp_path / "first.npy")
    assert first.returncode == 0, first.stderr
    bins = list((cache / "opencl").glob("*.bin"))
    assert len(bins) == 1 and bins[0].stat().st_size > 0
    bins[0].write_bytes(b"not a program binary")
    again = run(tmp_path / "again.npy")
    assert again.returncode == 0, again.stderr
    assert bins[0].read_bytes() != b"not a program binary"
    np.testing.assert_array_equal(np.load(tmp_path / "again.npy"), np.load(tmp_path / "first.npy"))


def test_loop_runs_on_the_host():
    """Loop: carried values and scan slices move device-to-device, the condition comes back as one
    byte per trip (a trip count from the input's shape; a run-time condition ending it early)."""
    from tests.codegen.test_loop import DIMS as LOOP_DIMS, SHAPES as LOOP_SHAPES, loop11_like, residual_loop

    check_model(residual_loop(), LOOP_SHAPES, dims=LOOP_DIMS, target="opencl")
    check_model(residual_loop(threshold=0.6), LOOP_SHAPES, dims=LOOP_DIMS, target="opencl")
    m = check_model(loop11_like(), [{"cond": (), "y": (1,)}], target="opencl")
    for start in (True, False):
        y, scans = m.run({"cond": np.array(start), "y": np.array([2], np.float32)})
        assert scans.shape == ((5, 1) if start else (0, 1))


def test_reductions_and_normalisations():
    nodes = [helper.make_node("Softmax", ["x"], ["sm"], axis=1),
             helper.make_node("LayerNormalization", ["t", "ls", "lb"], ["ln"], axis=-1, epsilon=1e-3),
             helper.make_node("LRN", ["x"], ["lrn"], size=3, alpha=1e-3, beta=0.7, bias=1.5),
             helper.make_node("ReduceMean", ["x"], ["a"], axes=[1, 3], keepdims=1),
             helper.make_node("ReduceMax", ["x"], ["b"], axes=[0, 2], keepdims=0),
             helper.make_node("ReduceSum", ["x", "ax"], ["c"], keepdims=0),
             helper.make_node("GlobalAveragePool", ["x"], ["d"]),
             helper.make_node("GlobalMaxPool", ["x"], ["e"])]
    rng = np.random.default_rng(1)
    model = make_model(nodes, [("x", ["n", 4, "h", "w"]), ("t", ["n", 5, 8])], ["sm", "ln", "lrn", "a", "b", "c", "d", "e"],
                       [("ax", np.array([3], np.int64)), ("ls", rng.random(8).astype(np.float32) + 0.5),
                        ("lb", rng.random(8).astype(np.float32))])
    check_model(model, [{"x": s, "t": (s[0], 5, 8)} for s in [(1, 4, 8, 8), (2, 4, 17, 9), (1, 4, 40, 33)]],
                dims={"n": (1, 2), "h": (8, 40), "w": (8, 40)}, target="opencl")


def test_gather_where_routing_and_index_errors():
    """Run-time Gather indices (negative ones too) and Where; an index out of range fails the run
    with ValueError naming the node, as on the cpp target."""
    nodes = [helper.make_node("Gather", ["x", "idx"], ["g"], axis=1, name="pick"),
             helper.make_node("Greater", ["g", "zero"], ["c"]),
             helper.make_node("Where", ["c", "g", "x2"], ["y"]),
             helper.make_node("Gather", ["x", "k"], ["z"], axis=-1)]
    model = make_model(nodes, [("x", ["n", 4, "h"]), tensor("idx", TensorProto.INT64, [3]), ("x2", [1, 3, "h"])],
                       ["y", "z"], [("zero", np.float32(0)), ("k", np.array([[0, -1], [1, 1]], np.int64))])
    built = check_model(model, [{"x": (2, 4, 5), "idx": (3,), "x2": (1, 3, 5)},
                                {"x": (1, 4, 9), "idx": (3,), "x2": (1, 3, 9)},
                                {"x": (3, 4, 16), "idx": (3,), "x2": (1, 3, 16)}],
                        dims={"n": (1, 3), "h": (1, 16)}, target="opencl")
    feeds = {"x": np.ones((1, 4, 5), np.float32), "x2": np.zeros((1, 3, 5), np.float32)}
    with pytest.raises(ValueError, match=r'index 7 is out of range for an axis of size 4 \(in Gather node "pick"\)'):
        built.run({**feeds, "idx": np.array([0, 7, 1])})
    y, _ = built.run({**feeds, "idx": np.array([0, -4, 1])})  # the next run starts clean
    np.testing.assert_array_equal(y, np.ones((1, 3, 5), np.float32))


def test_device_choice_by_environment(tmp_path):
    build = tmp_path / "ocl"
    dydca.compile(zoo.espcn(), DIMS, build, target="opencl")
    code = f"""
        import numpy as np, dydca
        try:
            dydca.load({str(build)!r}).run({{"x": np.zeros((1, 3, 5, 5), np.float32)}})
            print("RAN")
        except RuntimeError as e:
            print("ERROR:", e)
        """
    assert "RAN" in _python(code, {"DYDCA_OPENCL_DEVICE": "0:0"}).stdout
    out = _python(code, {"DYDCA_OPENCL_DEVICE": "no such device"}).stdout
    assert "DYDCA_OPENCL_DEVICE=no such device matches no OpenCL device; the devices are:\n  0:0 " in out, out


def _routing_feeds(name, xs):
    if name in ("index", "stacked", "where"):
        return [{"x": x, "idx": np.array(i, np.int64)} for x in xs for i in range(3)]
    if name == "nested":
        return [{"x": x, "c1": np.array(a), "c2": np.array(b)} for x in xs for a, b in ((True, True), (True, False), (False, True))]
    return [{"x": x} for x in xs]  # size-routed: the dims decide


@pytest.mark.parametrize("name", ["index", "nested", "size", "stacked", "where"])
def test_routing_models_of_the_if_tests(name):
    """tests/codegen/test_if.py's path networks: a chain of If with a condition computed inside a
    branch, nested If reading every enclosing scope, an If decided from the input size, and the
    If-free exports that run every path and pick one with Gather or Where."""
    from tests.codegen import test_if as t

    build = {"index": t.index_model, "nested": t.nested_model, "size": lambda: t.size_routed_model(48),
             "stacked": t.stacked_paths_model, "where": t.where_paths_model}[name]
    shapes = [(1, 3, 8, 8), (2, 3, 47, 20), (1, 3, 48, 9), (3, 3, 64, 33)] if name == "size" else t.SHAPES
    built = _check(build(), _routing_feeds(name, _images(shapes)), dims=t.DIMS)
    if name == "stacked":
        with pytest.raises(ValueError, match=r'index 3 is out of range for an axis of size 3 \(in Gather node "pick_path"\)'):
            built.run({"x": _images(t.SHAPES)[0], "idx": np.array(3, np.int64)})


def test_if_outputs_no_branch_node_writes_are_copied():
    from tests.codegen.test_if import check_copies_model

    check_copies_model("opencl")


def test_matmul_and_gemm():
    """A MatMul with a fused bias and ReLU, a batched product with a broadcast run-time B, a Gemm with
    transB, alpha, beta and a broadcast C under a Sigmoid, and a 1-D operand."""
    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]), helper.make_node("Add", ["mm", "bias"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("MatMul", ["r", "x2"], ["bm"]),
             helper.make_node("Gemm", ["g", "gw", "gc"], ["gy"], transB=1, alpha=0.5, beta=2.0),
             helper.make_node("Sigmoid", ["gy"], ["gs"]),
             helper.make_node("MatMul", ["v", "w"], ["vm"])]
    model = make_model(nodes, [("x", ["n", "h", 8]), ("x2", [1, 6, 5]), ("g", ["h", 8]), ("v", [8])], ["bm", "gs", "vm"],
                       [("w", f32(8, 6)), ("bias", f32(6)), ("gw", f32(7, 8)), ("gc", f32(1, 7))])
    check_model(model, [{"x": (2, 3, 8), "x2": (1, 6, 5), "g": (3, 8), "v": (8,)},
                        {"x": (1, 17, 8), "x2": (1, 6, 5), "g": (17, 8), "v": (8,)},
                        {"x": (3, 1, 8), "x2": (1, 6, 5), "g": (1, 8), "v": (8,)}],
                dims={"n": (1, 3), "h": (1, 20)}, target="opencl")


def test_execution_determined_dims():
    """NonZero runs its cpp kernel on the host (its input read back, its output written at the count
    it found), and the count flows into the Gather and element-wise kernels after it; an If whose
    branches differ in shape sets the extent the kernels after it read."""
    from tests.codegen import test_execution_dims as t

    m = check_model(t.nonzero_gather_model(), [{"x": (n, 8)} for n in (1, 7, 64, 100)], dims={"n": (1, 100)},
                    target="opencl")
    for x in (-np.ones((5, 8), np.float32), np.ones((5, 8), np.float32)):  # none and all selected
        y, nz = m.run({"x": x})
        assert y.shape == (0 if x[0, 0] < 0 else 5, 8) and nz.shape == (1, y.shape[0])
    feeds = [{"x": x, "c": np.array(c)} for x in _images([(1, 3, 2, 2), (2, 3, 17, 30), (4, 3, 64, 64)])
             for c in (True, False)]
    _check(t.differing_branches_model(), feeds, dims=t.DIMS)


def test_topk_runs_on_the_host():
    """TopK with a run-time k on every axis (ties and NaNs as onnxruntime orders them) and with a
    constant k; a k out of range fails the run as on the cpp target."""
    from tests.codegen import test_topk as t

    model = t.runtime_k_model(np.float32)
    built = dydca.compile(model, t.DIMS3, target="opencl")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 1), (3, 7, 2), (6, 300, 5)]:
        choices = [t.k_choices(shape[axis]) for axis, _, _ in t.CONFIGS]
        for step in range(max(map(len, choices))):
            ks = {f"k{j}": np.array([c[min(step, len(c) - 1)]], np.int64) for j, c in enumerate(choices)}
            feeds = {"x": t.sample(shape, np.float32, rng, ties=step % 2 == 0), **ks}
            for g, r in zip(built.run(feeds), sess.run(None, feeds)):
                np.testing.assert_array_equal(g, r, err_msg=f"{shape} {ks}")
    with pytest.raises(ValueError, match=r"k = 9 is out of range for an axis of size 7"):
        built.run({"x": np.ones((3, 7, 2), np.float32), **{f"k{j}": np.array([1], np.int64) for j in range(6)},
                   "k1": np.array([9], np.int64)})
    check_model(t.const_k_model(3), [{"x": (1, 3, 2)}, {"x": (6, 300, 5)}, {"x": (2, 17, 3)}],
                {"a": (1, 6), "n": (3, 300), "c": (2, 5)}, target="opencl")
