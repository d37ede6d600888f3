"""The Dy-DCA N-path SR network as ONE ONNX model, written without torch.

The architecture (SRConfig) lives here, not in net.py, because the device side needs it without
torch: net.py builds the torch module from it, this module writes the ONNX graph from it and the
trained weights (numpy arrays named as the torch module's state_dict names them).

Graph (WDSR-A, Yu et al. 2018, with N bodies):

    x (n,3,h,w) ──Conv 5x5 (shared skip)──────────────────────────┐
      └─ If(path==0, body0, If(path==1, body1, ... body N-1)):     │
           head Conv 3x3 -> blocks (Conv 3x3 expand, Relu,         │
           Conv 3x3 reduce, + residual) -> tail Conv 3x3 ── Add ◄──┘ -> DepthToSpace(s, CRD)

Every body maps (n,3,h,w) to (n,3,s*h,s*w). The skip is outside the If because every path shares
it; the Add and the pixel shuffle sit inside each branch, right after the tail conv, so that the
compiler fuses them into the tail conv's store (one kernel, no extra pass over the output).
Routing: route="index" takes an int64 scalar input `path` (an index outside 0..N-2 falls through
the chain to the last path); route="size" takes no selector and routes on the input's height, as
the seed does (smaller patches -> deeper path): with the per-path patch heights `sizes` (strictly
decreasing), path k serves heights >= the midpoint between sizes[k] and sizes[k+1].

Weight norm (w = g * v / ||v||, the norm over all axes but the output channel) is folded into
plain conv weights here; weights may also come already folded (key "<layer>.weight").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from dydca.zoo import IMAGE, Net

ROUTES = ("index", "size")


@dataclass(frozen=True)
class PathSpec:
    """One body: `features` channels, `blocks` wide-activation blocks of `features * expand`."""
    features: int
    blocks: int
    expand: int = 4

    def __post_init__(self):
        if self.features < 1 or self.blocks < 0 or self.expand < 1:
            raise ValueError(f"bad path spec {self}: need features >= 1, blocks >= 0, expand >= 1")


@dataclass(frozen=True)
class SRConfig:
    """Scale (2..4), the paths (index 0 = the easiest content) and the shared skip's kernel size."""
    scale: int
    paths: tuple[PathSpec, ...]
    skip_kernel: int = 5

    def __post_init__(self):
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if not self.paths:
            raise ValueError("an SR network needs at least one path")
        if self.skip_kernel < 1 or self.skip_kernel % 2 == 0:
            raise ValueError(f"skip_kernel must be odd and positive, got {self.skip_kernel}")
        object.__setattr__(self, "paths", tuple(PathSpec(**p) if isinstance(p, Mapping) else p for p in self.paths))

    @classmethod
    def default(cls, scale: int, n_paths: int = 2, features: int = 32, blocks: int = 4, expand: int = 4):
        """Path k is 8k channels wider and 2k blocks deeper than path 0: harder content (the
        seed's smaller, split patches) gets more capacity."""
        return cls(scale, tuple(PathSpec(features + 8 * k, blocks + 2 * k, expand) for k in range(n_paths)))

    @property
    def n_paths(self) -> int:
        return len(self.paths)

    def to_dict(self) -> dict:
        return {"scale": self.scale, "skip_kernel": self.skip_kernel,
                "paths": [{"features": p.features, "blocks": p.blocks, "expand": p.expand} for p in self.paths]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "SRConfig":
        return cls(int(data["scale"]), tuple(PathSpec(**p) for p in data["paths"]), int(data.get("skip_kernel", 5)))


def conv_shapes(config: SRConfig) -> dict[str, tuple[int, int, int]]:
    """Every conv layer's name -> (out channels, in channels, kernel size): the contract with
    net.py, whose module tree uses exactly these names (torch state_dict keys are
    "<name>.bias" and "<name>.parametrizations.weight.original0/1")."""
    s2 = 3 * config.scale ** 2
    shapes = {"skip": (s2, 3, config.skip_kernel)}
    for k, p in enumerate(config.paths):
        shapes[f"paths.{k}.head"] = (p.features, 3, 3)
        for b in range(p.blocks):
            shapes[f"paths.{k}.blocks.{b}.expand"] = (p.features * p.expand, p.features, 3)
            shapes[f"paths.{k}.blocks.{b}.reduce"] = (p.features, p.features * p.expand, 3)
        shapes[f"paths.{k}.tail"] = (s2, p.features, 3)
    return shapes


def fold_weight_norm(g: np.ndarray, v: np.ndarray) -> np.ndarray:
    """w = g * v / ||v||, the norm over every axis but 0 (torch's weight_norm with dim=0)."""
    v64 = np.asarray(v, np.float64)
    norm = np.sqrt((v64 ** 2).reshape(v64.shape[0], -1).sum(axis=1)).reshape((-1,) + (1,) * (v64.ndim - 1))
    return (np.asarray(g, np.float64).reshape(norm.shape) * v64 / norm).astype(np.float32)


def conv_params(weights: Mapping[str, np.ndarray], layer: str, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(W, b) of one conv of (out, in, kernel) `shape`, float32, weight norm folded. Accepts the
    keys of torch's parametrizations.weight_norm, of the legacy nn.utils.weight_norm, or a plain
    weight."""
    pairs = [(".parametrizations.weight.original0", ".parametrizations.weight.original1"), (".weight_g", ".weight_v")]
    if layer + ".weight" in weights:
        w = np.asarray(weights[layer + ".weight"], np.float32)
    else:
        found = [(g, v) for g, v in pairs if layer + g in weights and layer + v in weights]
        if not found:
            raise KeyError(f"no weights for conv layer {layer!r} (expected {layer}.weight or a weight-norm pair)")
        g, v = found[0]
        w = fold_weight_norm(weights[layer + g], weights[layer + v])
    if layer + ".bias" not in weights:
        raise KeyError(f"no bias for conv layer {layer!r}")
    b = np.asarray(weights[layer + ".bias"], np.float32)
    cout, cin, k = shape
    if w.shape != (cout, cin, k, k) or b.shape != (cout,):
        raise ValueError(f"conv layer {layer!r}: weights {w.shape} and bias {b.shape} do not fit the "
                         f"configuration's {(cout, cin, k, k)}: weights and SRConfig are of different networks")
    return w, b


def size_thresholds(sizes: Sequence[int]) -> list[int]:
    """Heights at which routing switches path: path k serves heights >= thresholds[k]."""
    sizes = [int(s) for s in sizes]
    if any(a <= b for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"route='size' needs strictly decreasing per-path patch heights, got {sizes}")
    return [(a + b + 1) // 2 for a, b in zip(sizes, sizes[1:])]


class _Writer:
    """Adds the network's convs, with the given weights, to a dydca.zoo.Net graph builder."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: SRConfig):
        self.weights, self.config, self.net = weights, config, Net()
        self.shapes = conv_shapes(config)

    def conv(self, x: str, layer: str) -> str:
        w, b = conv_params(self.weights, layer, self.shapes[layer])
        base = layer.replace("paths.", "p").replace("blocks.", "b").replace(".", "_")
        pad = w.shape[-1] // 2
        return self.net.node("Conv", [x, self.net.const(w, base + "_W"), self.net.const(b, base + "_B")],
                             kernel_shape=list(w.shape[-2:]), pads=[pad] * 4)

    def body(self, k: int, x: str, skip: str) -> str:
        """Body k plus the shared skip, pixel-shuffled: the branch's (n,3,s*h,s*w) output."""
        spec = self.config.paths[k]
        h = self.conv(x, f"paths.{k}.head")
        for b in range(spec.blocks):
            r = self.net.node("Relu", [self.conv(h, f"paths.{k}.blocks.{b}.expand")])
            h = self.net.node("Add", [h, self.conv(r, f"paths.{k}.blocks.{b}.reduce")])
        y = self.net.node("Add", [self.conv(h, f"paths.{k}.tail"), skip])
        return self.net.pixel_shuffle(y, self.config.scale)

    def chain(self, conds: Sequence[Callable[[], str]], x: str, skip: str, k: int = 0) -> str:
        """If(conds[k](), body k, If(conds[k+1](), ...)); the last body takes what no condition
        picked. Each condition is built inside the else branch that tests it."""
        if k == self.config.n_paths - 1:
            return self.body(k, x, skip)
        then = self.net.subgraph(lambda: self.body(k, x, skip), f"path{k}")
        rest = self.net.subgraph(lambda: self.chain(conds, x, skip, k + 1), f"paths{k + 1}_up")
        return self.net.node("If", [conds[k]()], then_branch=then, else_branch=rest)


def export_onnx(weights: Mapping[str, np.ndarray], config: SRConfig, route: str = "index",
                sizes: Sequence[int] | None = None, name: str = "dydca_sr") -> onnx.ModelProto:
    """The N-path network as one ONNX model (see the module docstring for the graph).

    weights: torch state_dict names -> numpy arrays (net.numpy_weights(model) gives them).
    route: "index" (input `path`, int64 scalar) or "size" (by input height; needs `sizes`, the
    patch height each path is trained on, strictly decreasing). Output `y`: (n,3,s*h,s*w)."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    wr = _Writer(weights, config)
    net = wr.net
    skip = wr.conv("x", "skip")
    inputs: list = [("x", IMAGE)]
    if route == "index":
        inputs.append(helper.make_tensor_value_info("path", TensorProto.INT64, []))
        conds = [lambda k=k: net.node("Equal", ["path", net.const(np.array(k, np.int64), "k")])
                 for k in range(config.n_paths - 1)]
    else:
        if sizes is None or len(sizes) != config.n_paths:
            raise ValueError(f"route='size' needs one patch height per path ({config.n_paths}), got {sizes}")
        limits = size_thresholds(sizes)
        rows = net.node("Gather", [net.node("Shape", ["x"]), net.const(np.array(2, np.int64), "axis")], axis=0)
        conds = [lambda t=t: net.node("GreaterOrEqual", [rows, net.const(np.array(t, np.int64), "rows")])
                 for t in limits]
    out = wr.chain(conds, "x", skip)
    model = net.model(inputs, [out], name)
    _rename_output(model, out, "y")
    return model


def _rename_output(model: onnx.ModelProto, old: str, new: str) -> None:
    """Gives the graph output a stable name (`y`) for the runtimes' callers."""
    for node in model.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
    model.graph.output[0].name = new


def save_onnx(weights: Mapping[str, np.ndarray], config: SRConfig, path, **kw) -> onnx.ModelProto:
    model = export_onnx(weights, config, **kw)
    onnx.save(model, str(path))
    return model
