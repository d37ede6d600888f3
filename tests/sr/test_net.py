"""The N-path SR network: torch module == exported ONNX (onnxruntime) == dydca-compiled library,
on every path, routed by an index input or by the input's size. The export needs no torch, so the
tests of the ONNX graph and of the compiled library run on numpy weights where torch is absent."""
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

import dydca
from dydca.sr.export import PathSpec, SRConfig, conv_shapes, export_onnx, size_thresholds
from tests.oracle import assert_close

SHAPES = [(1, 3, 8, 8), (3, 3, 13, 21), (2, 3, 24, 24)]
DIMS = {"n": (1, 4), "h": (8, 24), "w": (8, 24)}
CONFIG = SRConfig(2, (PathSpec(8, 1, 2), PathSpec(12, 2, 2), PathSpec(16, 3, 2)))
SIZES = [24, 16, 8]  # patch heights of split depths 0..2 of a 24 px cell


def random_weights(config: SRConfig, seed=0) -> dict:
    """Plain (already folded) conv weights for every layer, He-scaled and halved so that the
    deep paths' outputs stay in a moderate range."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, (cout, cin, k) in conv_shapes(config).items():
        weights[name + ".weight"] = (rng.standard_normal((cout, cin, k, k)) * 0.5 * np.sqrt(2 / (cin * k * k))).astype(np.float32)
        weights[name + ".bias"] = (rng.standard_normal(cout) * 0.05).astype(np.float32)
    return weights


def images(seed=0, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.random(s, dtype=np.float32) for s in shapes]


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run_path(sess, x, k):
    return sess.run(None, {"x": x, "path": np.array(k, np.int64)})[0]


# ------------------------------------------------------------------ the ONNX graph, without torch
def test_paths_compute_different_functions():
    sess = session(export_onnx(random_weights(CONFIG), CONFIG))
    x = images()[1]
    outs = [run_path(sess, x, k) for k in range(CONFIG.n_paths)]
    assert all(o.shape == (3, 3, 26, 42) for o in outs)
    for i in range(len(outs)):
        for j in range(i):
            assert np.abs(outs[i] - outs[j]).max() > 1e-2, (i, j)


def test_index_outside_the_paths_takes_the_last_path():
    sess = session(export_onnx(random_weights(CONFIG), CONFIG))
    x = images()[0]
    last = run_path(sess, x, CONFIG.n_paths - 1)
    for k in (-1, CONFIG.n_paths, 99):
        assert_close(run_path(sess, x, k), last, what=f"path index {k}")


def test_size_route_sends_smaller_patches_to_deeper_paths():
    """Every height from 8 to 24 goes to the path of the nearest patch size, and computes what
    the index-routed model computes on that path."""
    assert size_thresholds(SIZES) == [20, 12]
    weights = random_weights(CONFIG, seed=1)
    by_size = session(export_onnx(weights, CONFIG, route="size", sizes=SIZES))
    by_index = session(export_onnx(weights, CONFIG))
    assert [i.name for i in by_size.get_inputs()] == ["x"]
    for h, path in [(24, 0), (20, 0), (19, 1), (16, 1), (12, 1), (11, 2), (8, 2)]:
        x = images(h, [(2, 3, h, 10)])[0]
        (got,) = by_size.run(None, {"x": x})
        assert_close(got, run_path(by_index, x, path), what=f"height {h}")


def test_compiled_library_matches_onnxruntime_on_every_path():
    """One library for all paths, compiled once, run at several batch and patch sizes."""
    model = export_onnx(random_weights(CONFIG, seed=7), CONFIG)
    compiled = dydca.compile(model, dims=DIMS)
    sess = session(model)
    for x in images(7):
        for k in range(CONFIG.n_paths):
            got = compiled.run({"x": x, "path": np.array(k, np.int64)})[0]
            assert got.shape == (x.shape[0], 3, 2 * x.shape[2], 2 * x.shape[3])
            assert_close(got, run_path(sess, x, k), what=f"path {k} at {x.shape}")


def test_compiled_size_routed_library_matches_onnxruntime():
    model = export_onnx(random_weights(CONFIG, seed=8), CONFIG, route="size", sizes=SIZES)
    compiled = dydca.compile(model, dims=DIMS)
    sess = session(model)
    for x in images(8, [(1, 3, 8, 8), (4, 3, 16, 16), (2, 3, 24, 24), (3, 3, 13, 22)]):
        (got,), (ref,) = compiled.run({"x": x}), sess.run(None, {"x": x})
        assert_close(got, ref, what=f"at {x.shape}")


def test_export_imports_no_torch():
    code = "import sys, dydca.sr.export, dydca.zoo; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("make", [
    lambda: SRConfig(5, CONFIG.paths),
    lambda: SRConfig(2, ()),
    lambda: SRConfig(2, CONFIG.paths, skip_kernel=4),
    lambda: PathSpec(0, 1),
    lambda: export_onnx(random_weights(CONFIG), CONFIG, route="size", sizes=[8, 16, 24]),
    lambda: export_onnx(random_weights(CONFIG), CONFIG, route="size"),
    lambda: export_onnx(random_weights(CONFIG), CONFIG, route="shape"),
    lambda: export_onnx(random_weights(CONFIG), SRConfig(3, CONFIG.paths)),  # weights of a x2 network
])
def test_bad_configurations_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_missing_weights_are_named():
    weights = random_weights(CONFIG)
    del weights["paths.1.tail.bias"]
    with pytest.raises(KeyError, match="paths.1.tail"):
        export_onnx(weights, CONFIG)


def test_config_round_trips_through_a_dict():
    assert SRConfig.from_dict(CONFIG.to_dict()) == CONFIG
    default = SRConfig.default(3, n_paths=3, features=32, blocks=4)
    assert [(p.features, p.blocks) for p in default.paths] == [(32, 4), (40, 6), (48, 8)]


# --------------------------------------------------------------------- against the torch module
@pytest.fixture
def torch():
    module = pytest.importorskip("torch")
    module.set_num_threads(1)
    return module


def trained_like(torch, config: SRConfig, seed=0):
    """A DynamicSR whose every weight is perturbed: at init the bodies' tails are zero, so all
    paths would agree and a wrong route would go unnoticed."""
    from dydca.sr.net import DynamicSR
    torch.manual_seed(seed)
    model = DynamicSR(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def torch_out(torch, model, x: np.ndarray, path: int) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x), path).numpy()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_exported_onnx_matches_torch_on_every_path(torch, scale):
    from dydca.sr.net import numpy_weights
    config = SRConfig(scale, CONFIG.paths)
    model = trained_like(torch, config, seed=scale)
    sess = session(export_onnx(numpy_weights(model), config))
    outs = []
    for x in images(scale):
        for k in range(config.n_paths):
            ref = torch_out(torch, model, x, k)
            assert_close(run_path(sess, x, k), ref, what=f"x{scale} path {k} at {x.shape}")
            outs.append(ref)
    assert np.abs(outs[0] - outs[1]).max() > 1e-2  # the perturbed paths differ


def test_weight_norm_is_folded_the_way_torch_computes_it(torch):
    """Exports from the weight-norm pairs and from torch's own folded weights agree."""
    from dydca.sr.net import numpy_weights
    model = trained_like(torch, CONFIG, seed=3)
    folded = {name + ".weight": m.weight.detach().numpy() for name, m in model.named_modules()
              if hasattr(m, "parametrizations")}
    folded.update({name: p.detach().numpy() for name, p in model.named_parameters() if name.endswith(".bias")})
    x = images(3)[1]
    a = run_path(session(export_onnx(numpy_weights(model), CONFIG)), x, 2)
    b = run_path(session(export_onnx(folded, CONFIG)), x, 2)
    assert_close(a, b, rtol=1e-6)


def test_torch_refuses_a_path_it_does_not_have(torch):
    model = trained_like(torch, CONFIG)
    with pytest.raises(IndexError):
        model(torch.zeros(1, 3, 8, 8), CONFIG.n_paths)


def test_untrained_network_is_bicubic_upscaling(torch):
    """The init: skip = bicubic kernel, bodies' tails zero; away from the border (the conv pads
    with zeros, PIL replicates the edge) the output is PIL's bicubic up to PIL's 8-bit rounding
    between its two passes."""
    from dydca.sr.net import DynamicSR
    Image = pytest.importorskip("PIL.Image")
    y, x = np.mgrid[0:20, 0:20]
    frame = np.stack([128 + 60 * np.sin(x / 3 + y / 4), 128 + 60 * np.cos(y / 2.5),
                      128 + 50 * np.sin((x - y) / 3)], -1).astype(np.uint8)
    lr = frame.transpose(2, 0, 1)[None].astype(np.float32) / 255
    for scale in (2, 3, 4):
        model = DynamicSR(SRConfig.default(scale, n_paths=2, features=8, blocks=1))
        ref = np.asarray(Image.fromarray(frame).resize((20 * scale,) * 2, Image.BICUBIC), np.float64)
        b = 3 * scale
        for k in range(2):
            out = torch_out(torch, model, lr, k)[0].transpose(1, 2, 0) * 255
            assert np.abs(out[b:-b, b:-b] - ref[b:-b, b:-b]).max() <= 1.0
