"""Whole SR-style networks, each compiled ONCE with symbolic n, h, w and checked against
onnxruntime at three or more shapes inside the compiled ranges (patch batches and frames)."""
import pytest

from dydca import zoo
from tests.oracle import check_model

DIMS = {"n": (1, 16), "h": (8, 96), "w": (8, 128)}
SHAPES = [{"x": (1, 3, 96, 128)}, {"x": (16, 3, 8, 8)}, {"x": (3, 3, 21, 37)}, {"x": (2, 3, 48, 9)}]


@pytest.mark.parametrize("name,build", [
    ("espcn_x3", lambda: zoo.espcn(scale=3)),
    ("fsrcnn_x2", lambda: zoo.fsrcnn(scale=2)),
    ("fsrcnn_x3", lambda: zoo.fsrcnn(scale=3)),
    ("edsr_x2", lambda: zoo.edsr(scale=2)),
    ("wdsr_x4", lambda: zoo.wdsr(scale=4, blocks=2)),
    ("srresnet_x4", lambda: zoo.srresnet(scale=4, blocks=2)),
    ("unet", zoo.unet),
])
def test_sr_model_matches_onnxruntime_at_many_shapes(name, build):
    compiled = check_model(build(), SHAPES, dims=DIMS)
    assert compiled.manifest["arena_bytes"] <= compiled.manifest["sum_bytes"]


def test_unet_padding_is_folded_into_expressions():
    """The U-Net's pad amounts come from its input's own shape; they must become expressions of
    h and w at compile time, leaving no Shape/Gather/Mod kernels at run time."""
    from dydca.compiler.pipeline import plan
    from dydca.frontends import from_onnx

    compiled = plan(from_onnx(zoo.unet(), DIMS))
    ops = {n.op for n in compiled.graph.nodes}
    assert not ops & {"Shape", "Gather", "Mod", "Sub", "Concat"} - {"Concat"}, ops
    pad = next(n for n in compiled.graph.nodes if n.op == "Pad")
    pads = compiled.graph.values[pad.inputs[1]].const
    assert {str(s) for p in pads.reshape(-1) for s in getattr(p, "free_symbols", ())} == {"h", "w"}
