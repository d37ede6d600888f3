"""Dy-DCA N-path networks from dydca.zoo.multipath: each model compiled ONCE, every path run at
three shapes (the range's corners and an odd size) and matched against onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest

import dydca
from dydca import zoo
from tests.oracle import assert_close, random_feeds

DIMS = {"n": (1, 4), "h": (8, 64), "w": (8, 64)}
SHAPES = [(1, 3, 8, 8), (3, 3, 21, 37), (4, 3, 64, 64)]


def check_paths(model, selector: str, values):
    """Compiles `model` once; runs it with every value of its path selector input at every SHAPE,
    on the library and on onnxruntime."""
    compiled = dydca.compile(model, dims=DIMS)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for k, shape in enumerate(SHAPES):
        for v in values:
            feeds = dict(random_feeds(model, {"x": shape}, seed=k), **{selector: np.array(v)})
            (got,), (ref,) = compiled.run(feeds), sess.run(None, feeds)
            assert got.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
            assert_close(got, ref, what=f"{selector}={v} at {shape}")
    return compiled


def test_two_paths_picked_by_a_bool():
    check_paths(zoo.multipath(paths=2, select="bool"), "c", [True, False])


def test_four_paths_picked_by_an_index_through_a_chain_of_if():
    """Indexes 0..3 pick their path; -1 and 9 fall through the chain to the last path, as the
    ONNX graph says."""
    check_paths(zoo.multipath(paths=4, select="index"), "path", np.arange(-1, 5, dtype=np.int64))


def test_paths_differ_in_depth_and_width():
    """The default paths are distinct networks (k+1 convs deep): their outputs differ on one input,
    so a wrong branch taken could not pass the comparison above."""
    model = zoo.multipath(paths=4)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = random_feeds(model, {"x": SHAPES[1]})["x"]
    outs = [sess.run(None, {"x": x, "path": np.array(k, np.int64)})[0] for k in range(4)]
    assert [len(w) for w in zoo._default_widths(4)] == [1, 2, 3, 4]
    for i in range(4):
        for j in range(i):
            assert np.abs(outs[i] - outs[j]).max() > 1e-2, (i, j)


def test_custom_widths_and_scale():
    model = zoo.multipath(paths=3, widths=[[8], [8, 8], [4]], scale=3, seed=5)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.zeros((2, 3, 5, 7), np.float32), "path": np.array(2, np.int64)})
    assert y.shape == (2, 3, 15, 21)


@pytest.mark.parametrize("kwargs", [dict(paths=3, select="bool"), dict(paths=1), dict(paths=2, widths=[[8]]),
                                    dict(paths=2, select="mask")])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        zoo.multipath(**kwargs)
