"""Builds examples/models/espcn_x2.onnx, the demo's x2 super-resolution network (ESPCN-style):

    lr (n, 3, h, w) in [0, 1]
    Conv 5x5 3->32 + PRelu -> Conv 3x3 32->24 + Relu -> Conv 3x3 24->12 -> DepthToSpace(2)
    sr (n, 3, 2h, 2w)

No training framework is needed. The first two layers have fixed, seeded random weights (random
features, plus a pass-through of the RGB input; see feature_weights); the last layer is fitted by ridge regression on the bundled photo itself: its 2x
box-downscaled copy is the input, the photo the target (the self-similarity "zero-shot" SR uses).
The feature layers run through onnxruntime, so the script needs numpy, onnx and onnxruntime only,
and gives the same file on every run. Run from the repository root:

    .venv/bin/python examples/models/make_sr_model.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # run from a checkout without installing
from dydca.demo import IMAGE, MODEL, box_downscale, read_png, to_nchw  # noqa: E402

SCALE = 2
C1, C2, COUT = 32, 24, 3
RIDGE = 1e-3  # relative to the mean diagonal of the normal equations: keeps the fit smooth
OPSET = 17


def feature_weights(seed: int = 2024) -> dict:
    """He-initialised random features, plus a linear path: the first 3 channels of both layers pass
    the RGB input through unchanged (centre tap 1, PRelu slope 1; pixels in [0, 1] survive the
    Relu), so the head sees the plain 3x3 neighbourhood and can at least interpolate; the random
    channels add the non-linear detail. The other PRelu slopes are 0.25."""
    rng = np.random.default_rng(seed)
    he = lambda shape: (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(np.float32)  # noqa: E731
    w1, b1 = he((C1, 3, 5, 5)), (rng.standard_normal(C1) * 0.05).astype(np.float32)
    w2, b2 = he((C2, C1, 3, 3)), (rng.standard_normal(C2) * 0.05).astype(np.float32)
    slope = np.full((C1, 1, 1), 0.25, np.float32)
    for c in range(3):
        w1[c], b1[c], slope[c] = 0, 0, 1
        w1[c, c, 2, 2] = 1
        w2[c], b2[c] = 0, 0
        w2[c, c, 1, 1] = 1
    return {"conv1.w": w1, "conv1.b": b1, "prelu.slope": slope, "conv2.w": w2, "conv2.b": b2}


def build(weights: dict, with_head: bool) -> onnx.ModelProto:
    """The network; without the head it ends at the features the head is fitted on."""
    nodes = [
        helper.make_node("Conv", ["lr", "conv1.w", "conv1.b"], ["f1"], name="conv1", kernel_shape=[5, 5],
                         pads=[2, 2, 2, 2]),
        helper.make_node("PRelu", ["f1", "prelu.slope"], ["a1"], name="prelu1"),
        helper.make_node("Conv", ["a1", "conv2.w", "conv2.b"], ["f2"], name="conv2", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["f2"], ["a2"], name="relu2"),
    ]
    out_name, out_shape = "a2", ["n", C2, "h", "w"]
    if with_head:
        nodes += [
            helper.make_node("Conv", ["a2", "conv3.w", "conv3.b"], ["f3"], name="conv3", kernel_shape=[3, 3],
                             pads=[1, 1, 1, 1]),
            helper.make_node("DepthToSpace", ["f3"], ["sr"], name="pixel_shuffle", blocksize=SCALE, mode="DCR"),
        ]
        out_name, out_shape = "sr", ["n", COUT, f"{SCALE}*h", f"{SCALE}*w"]
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes, "espcn_x2",
        [helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(v, k) for k, v in weights.items() if k in used])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="dydca examples/models/make_sr_model.py")
    model.ir_version = 8  # readable by older onnxruntime releases too
    onnx.checker.check_model(model)
    return model


def fit_head(features: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression of the 3x3 head conv: features (C2, h, w), target (3, 2h, 2w).

    DepthToSpace in DCR mode puts head channel (i * SCALE + j) * COUT + c at output pixel
    (SCALE * y + i, SCALE * x + j) of colour c, so each head channel has its own target plane."""
    c, h, w = features.shape
    padded = np.pad(features, ((0, 0), (1, 1), (1, 1)))
    # im2col in the weight layout (C2, 3, 3): column index = ch * 9 + ky * 3 + kx
    cols = np.stack([padded[:, ky:ky + h, kx:kx + w] for ky in range(3) for kx in range(3)], axis=1)
    design = np.concatenate([cols.reshape(c * 9, h * w).T, np.ones((h * w, 1), np.float32)], axis=1)
    design = design.astype(np.float64)
    planes = [target[cc, i::SCALE, j::SCALE].reshape(-1)
              for i in range(SCALE) for j in range(SCALE) for cc in range(COUT)]
    y = np.stack(planes, axis=1).astype(np.float64)
    gram = design.T @ design
    gram += RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
    sol = np.linalg.solve(gram, design.T @ y)  # (C2 * 9 + 1, SCALE^2 * COUT)
    return sol[:-1].T.reshape(-1, c, 3, 3).astype(np.float32), sol[-1].astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> None:
    import onnxruntime as ort

    hr = to_nchw(read_png(IMAGE))  # (1, 3, 256, 256)
    lr = to_nchw(box_downscale(read_png(IMAGE), SCALE))
    weights = feature_weights()
    feats = ort.InferenceSession(build(weights, False).SerializeToString(),
                                 providers=["CPUExecutionProvider"]).run(None, {"lr": lr})[0]
    weights["conv3.w"], weights["conv3.b"] = fit_head(feats[0], hr[0])
    model = build(weights, True)
    sr = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"lr": lr})[0]
    nearest = lr.repeat(SCALE, axis=2).repeat(SCALE, axis=3)
    print(f"fit on {IMAGE.name}: PSNR {psnr(np.clip(sr, 0, 1), hr):.2f} dB "
          f"(nearest-neighbour upscaling: {psnr(nearest, hr):.2f} dB)")
    onnx.save(model, MODEL)
    print(f"wrote {MODEL} ({MODEL.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
