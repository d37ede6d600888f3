"""The Dy-DCA N-path SR network in PyTorch (training side only; the device never imports this).

WDSR-A (Yu et al. 2018) with N bodies of different width and depth sharing one 5x5 conv skip;
every conv is weight-normalised (torch.nn.utils.parametrizations.weight_norm), the bodies end in a
conv to 3*s^2 channels that is added to the skip and pixel-shuffled. The architecture is described
by dydca.sr.export.SRConfig and the module names follow export.conv_shapes, so that export_onnx
can write the same network from numpy weights without torch.

Initialisation, chosen so that overfitting starts from bicubic rather than from noise:
- the skip conv holds the bicubic interpolation kernel (a = -0.5, as PIL and MATLAB use) for each
  output sub-pixel phase, so the untrained network is bicubic upscaling (away from the borders,
  where the conv's zero padding replaces bicubic's edge replication);
- each body's tail conv has weight-norm gain g = 0 and bias 0 (as zero-initialised residual branches in
  Fixup/ReZero), so the bodies start as no-ops and learn only the correction to bicubic.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .export import PathSpec, SRConfig


def wn_conv(cin: int, cout: int, k: int) -> nn.Module:
    return weight_norm(nn.Conv2d(cin, cout, k, padding=k // 2))


def cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel."""
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                    np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0.0))


def bicubic_skip_weights(scale: int, k: int) -> np.ndarray:
    """(3*s^2, 3, k, k) conv weights that, pixel-shuffled (CRD), upscale bicubically: HR pixel
    s*y + i sits at LR coordinate y + (i + 0.5)/s - 0.5, weighted over the LR taps y-k//2..y+k//2."""
    taps = np.arange(k) - k // 2
    phases = [cubic(taps - ((i + 0.5) / scale - 0.5)) for i in range(scale)]
    w = np.zeros((3, scale, scale, 3, k, k))
    for c in range(3):
        for i in range(scale):
            for j in range(scale):
                w[c, i, j, c] = np.outer(phases[i], phases[j])
    return w.reshape(3 * scale * scale, 3, k, k).astype(np.float32)


class Block(nn.Module):
    """Wide activation: expand to features*expand with ReLU, reduce back, add the input."""

    def __init__(self, features: int, expand: int):
        super().__init__()
        self.expand = wn_conv(features, features * expand, 3)
        self.reduce = wn_conv(features * expand, features, 3)

    def forward(self, x):
        return x + self.reduce(torch.relu(self.expand(x)))


class Body(nn.Module):
    """One path: head conv, blocks, tail conv to 3*s^2 channels (before the pixel shuffle)."""

    def __init__(self, spec: PathSpec, scale: int):
        super().__init__()
        self.head = wn_conv(3, spec.features, 3)
        self.blocks = nn.Sequential(*[Block(spec.features, spec.expand) for _ in range(spec.blocks)])
        self.tail = wn_conv(spec.features, 3 * scale * scale, 3)
        with torch.no_grad():
            self.tail.parametrizations.weight.original0.zero_()
            self.tail.bias.zero_()

    def forward(self, x):
        return self.tail(self.blocks(self.head(x)))


class DynamicSR(nn.Module):
    """forward(x, path): x (N,3,h,w) in [0,1] -> (N,3,s*h,s*w) through body `path` + shared skip."""

    def __init__(self, config: SRConfig):
        super().__init__()
        self.config = config
        self.paths = nn.ModuleList([Body(spec, config.scale) for spec in config.paths])
        self.skip = wn_conv(3, 3 * config.scale ** 2, config.skip_kernel)
        with torch.no_grad():
            self.skip.weight = torch.from_numpy(bicubic_skip_weights(config.scale, config.skip_kernel))
            self.skip.bias.zero_()
        self.shuffle = nn.PixelShuffle(config.scale)

    def forward(self, x: torch.Tensor, path: int) -> torch.Tensor:
        if not 0 <= path < len(self.paths):
            raise IndexError(f"path {path} out of range: the network has {len(self.paths)} paths")
        return self.shuffle(self.paths[path](x) + self.skip(x))


def numpy_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """state_dict as float32 numpy arrays: what dydca.sr.export.export_onnx takes."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
