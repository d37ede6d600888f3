"""Shape classes: a model compiled for patch batches AND full frames sizes its arena for the larger
class, not for a full-frame batch; a call's dims must fall in one class."""
import numpy as np
import pytest

import dydca
from dydca import zoo
from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from tests.oracle import check_model

PATCHES = {"n": (1, 64), "h": (8, 32), "w": (8, 32)}
FRAMES = {"n": (1, 1), "h": (32, 256), "w": (32, 256)}


def test_arena_is_sized_for_the_largest_class_not_the_hull():
    model = zoo.espcn(scale=2, features=(16, 8))
    classes = plan(from_onnx(model, dims=[PATCHES, FRAMES])).plan.arena_bytes
    hull = plan(from_onnx(model, dims={"n": (1, 64), "h": (8, 256), "w": (8, 256)})).plan.arena_bytes
    frames = plan(from_onnx(model, dims=FRAMES)).plan.arena_bytes
    patches = plan(from_onnx(model, dims=PATCHES)).plan.arena_bytes
    assert classes <= max(frames, patches) * 1.01 and classes * 16 < hull


def test_every_class_matches_onnxruntime_and_dims_between_classes_are_refused():
    model = zoo.espcn(scale=2, features=(16, 8))
    m = check_model(model, [{"x": s} for s in [(64, 3, 32, 32), (5, 3, 8, 19), (1, 3, 256, 200), (1, 3, 40, 33)]],
                    dims=[PATCHES, FRAMES])
    assert m.manifest["shape_classes"] == [{k: list(v) for k, v in c.items()} for c in (PATCHES, FRAMES)]
    with pytest.raises(ValueError, match=r"dims n=2, h=100, w=100 fall in no shape class .*"
                                         r"\{n in \[1, 64\], h in \[8, 32\], w in \[8, 32\]\} or \{n in \[1, 1\]"):
        m.run({"x": np.zeros((2, 3, 100, 100), np.float32)})


def test_a_class_must_name_every_dim():
    with pytest.raises(ValueError, match="every class must name"):
        from_onnx(zoo.espcn(scale=2, features=(16, 8)), dims=[PATCHES, {"n": (1, 1), "h": (8, 9)}])
