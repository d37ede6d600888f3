"""Content-aware patching: grid, per-cell complexity scores, path classes, patches with a context
margin batched per class, seamless stitching, and the split-map side file.

The Dy-DCA idea (made to work here): cut each LR frame into a coarse grid of P x P cells; score
each cell's texture complexity; hard cells go to a deeper network path and, in `depth` mode, are
split into 2^d x 2^d smaller patches (the seed routes by patch size). One network with N paths
then replaces one model per chunk.

Geometry (all in LR pixels):
- Grid: ceil(H/P) x ceil(W/P) cells. When H or W is not a multiple of P, the last row/column's
  window is shifted inward to end at the frame edge, so every network input is a full P x P of
  real pixels (static shapes for the compiled model, no padded content in the input). That cell
  owns only the pixels not owned by its neighbour, so every pixel is owned exactly once.
- Margin: each patch is cut with `margin` extra pixels of context on each side and its upscaled
  margin is cropped when stitching, so the network sees what it would see in the whole frame.
  At frame borders the context window is slid inward (not padded), so the network meets the
  frame edge exactly where whole-frame inference meets it: with enough margin, patch-wise output
  equals whole-frame output. Only frames smaller than P + 2*margin are reflect-padded.
- Batches: (N, 3, p + 2m, p + 2m) float32 in [0, 1], grouped by (path, patch size).

Split maps for a whole video travel to the device in a compact side file (save/load below), or
are recomputed there from LR with the `gradient` score (the `psnr` score needs HR, so it must
ship). Measured figures and the choice of default are in dydca/sr/README.md.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from .metrics import rgb_to_y

Upscaler = Callable[[np.ndarray], np.ndarray]      # (N, 3, h, w) -> (N, 3, h*s, w*s), float32
PathRunner = Callable[[np.ndarray, int], np.ndarray]  # (batch, path) -> upscaled batch
PSNR_CAP_DB = 100.0  # a cell reproduced exactly would score inf; cap it so quantiles stay finite


# ----------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Grid:
    """Coarse grid of P x P cells over an H x W LR frame (see the module docstring)."""
    height: int
    width: int
    patch: int

    def __post_init__(self):
        if self.patch < 1:
            raise ValueError(f"patch size must be positive, got {self.patch}")
        if self.height < self.patch or self.width < self.patch:
            raise ValueError(f"LR frames of {self.width}x{self.height} are smaller than one "
                             f"{self.patch}x{self.patch} patch: use a smaller patch size")

    @property
    def shape(self) -> tuple[int, int]:
        return -(-self.height // self.patch), -(-self.width // self.patch)

    def starts(self, size: int) -> np.ndarray:
        """Window starts along an axis of `size` pixels: i*P, the last one shifted inward."""
        return np.minimum(np.arange(-(-size // self.patch)) * self.patch, size - self.patch)

    def owned(self, index: int, size: int) -> tuple[int, int]:
        """The pixels [begin, end) that cell `index` writes along an axis of `size` pixels."""
        return index * self.patch, min((index + 1) * self.patch, size)


# ------------------------------------------------------------------------------------- scores
def _cell_means(values: np.ndarray, grid: Grid, scale: int = 1) -> np.ndarray:
    """Mean of an (H*scale, W*scale) map over every cell window (scaled), via a summed-area table."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1))
    table[1:, 1:] = values.cumsum(0).cumsum(1)
    y0 = grid.starts(grid.height)[:, None] * scale
    x0 = grid.starts(grid.width)[None, :] * scale
    y1, x1 = y0 + grid.patch * scale, x0 + grid.patch * scale
    sums = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    return sums / (grid.patch * scale) ** 2


def gradient_scores(lr_frame: np.ndarray, grid: Grid) -> np.ndarray:
    """LR-only texture complexity: mean squared luma gradient (forward differences) per cell.

    A cell's last column/row difference reaches one pixel into its right/lower neighbour, so an
    edge lying exactly on a cell boundary counts for the cell left of / above it.

    Needs nothing but the LR frame, so the device can recompute the split map itself; higher
    means harder (edges and texture are where bicubic, and small networks, lose most).
    """
    y = rgb_to_y(lr_frame)
    energy = np.zeros_like(y)
    energy[:, :-1] += np.diff(y, axis=1) ** 2
    energy[:-1, :] += np.diff(y, axis=0) ** 2
    return _cell_means(energy, grid)


def psnr_scores(lr_frame: np.ndarray, hr_frame: np.ndarray, grid: Grid, scale: int,
                upscaler: Upscaler) -> np.ndarray:
    """The seed's score: per-cell Y PSNR (dB) of a generic upscaler's output against HR.

    `upscaler` maps an (N, 3, h, w) float32 batch in [0, 1] to (N, 3, h*s, w*s): bicubic, or a
    generic pretrained model. The whole frame is upscaled once and the PSNR taken per cell, so
    no patch-border artefact enters the score (the seed upscaled patches and shaved borders).
    Lower means harder. Needs HR: the server computes it and ships the split map.
    """
    batch = to_batch(lr_frame)
    sr = np.clip(upscaler(batch)[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0
    if sr.shape[:2] != hr_frame.shape[:2]:
        raise ValueError(f"upscaled frame is {sr.shape[1]}x{sr.shape[0]}, HR is "
                         f"{hr_frame.shape[1]}x{hr_frame.shape[0]}: wrong scale or uncropped HR")
    mse = _cell_means((rgb_to_y(sr) - rgb_to_y(hr_frame)) ** 2, grid, scale)
    floor = 255.0 ** 2 / 10 ** (PSNR_CAP_DB / 10)
    return 10.0 * np.log10(255.0 ** 2 / np.maximum(mse, floor))


@dataclass(frozen=True)
class Score:
    name: str
    higher_is_harder: bool
    needs_hr: bool


SCORES = {"gradient": Score("gradient", higher_is_harder=True, needs_hr=False),
          "psnr": Score("psnr", higher_is_harder=False, needs_hr=True)}
DEFAULT_SCORE = "gradient"  # why: dydca/sr/README.md (agrees with the psnr score, no HR needed)


def _difficulty(values, score: str) -> np.ndarray:
    """Scores in a common orientation where larger means harder."""
    values = np.asarray(values, np.float64)
    return values if _score(score).higher_is_harder else -values


def _score(name: str) -> Score:
    if name not in SCORES:
        raise ValueError(f"unknown score {name!r}; choose one of {sorted(SCORES)}")
    return SCORES[name]


def fit_thresholds(scores: np.ndarray, n_paths: int, score: str = DEFAULT_SCORE) -> tuple[float, ...]:
    """N-1 thresholds at the score quantiles k/N (over every cell of every frame given), in the
    score's own unit, from easiest to hardest boundary: N classes of about equal size, as STDO."""
    if n_paths < 1:
        raise ValueError(f"n_paths must be at least 1, got {n_paths}")
    difficulty = _difficulty(scores, score).ravel()
    cuts = np.quantile(difficulty, np.arange(1, n_paths) / n_paths) if n_paths > 1 else []
    sign = 1.0 if _score(score).higher_is_harder else -1.0
    return tuple(float(sign * c) for c in cuts)


def assign_paths(scores: np.ndarray, thresholds: Iterable[float], score: str = DEFAULT_SCORE) -> np.ndarray:
    """Path class per cell: how many thresholds the cell is harder than (0 = easiest, uint8).

    The seed's rule is assign_paths(psnr, [40.0], "psnr"): cells under 40 dB take path 1.
    """
    difficulty = _difficulty(scores, score)
    cuts = np.sort(_difficulty(list(thresholds), score))
    return (difficulty[..., None] > cuts).sum(axis=-1).astype(np.uint8)


# ------------------------------------------------------------------------------ split policy
@dataclass(frozen=True)
class SplitPolicy:
    """How a video's cells become path classes; JSON-able (to_dict) to sit beside the model.

    mode "depth": path k cells are split k times (patch P / 2^k), as the seed routes by size.
    mode "quantile": every patch is P x P and only the path differs (STDO-style classes).
    """
    patch: int = 32
    n_paths: int = 2
    mode: str = "depth"
    score: str = DEFAULT_SCORE
    thresholds: tuple[float, ...] = ()

    def __post_init__(self):
        _score(self.score)
        if self.mode not in ("depth", "quantile"):
            raise ValueError(f"mode must be 'depth' or 'quantile', got {self.mode!r}")
        if not 1 <= self.n_paths <= 15:
            raise ValueError(f"n_paths must be in 1..15, got {self.n_paths}")
        if self.thresholds and len(self.thresholds) != self.n_paths - 1:
            raise ValueError(f"{self.n_paths} paths need {self.n_paths - 1} thresholds, "
                             f"got {len(self.thresholds)}")
        smallest = self.patch >> (self.max_depth)
        if smallest < 1 or smallest << self.max_depth != self.patch:
            raise ValueError(f"patch {self.patch} cannot be halved {self.max_depth} times "
                             f"(mode 'depth' with {self.n_paths} paths)")

    @property
    def max_depth(self) -> int:
        return self.n_paths - 1 if self.mode == "depth" else 0

    def patch_sizes(self) -> dict[int, int]:
        """Patch size per path: what the compiled model's dims must cover."""
        return {k: self.patch >> (k if self.mode == "depth" else 0) for k in range(self.n_paths)}

    def depth_of(self, paths: np.ndarray) -> np.ndarray:
        return paths.copy() if self.mode == "depth" else np.zeros_like(paths)

    def fitted(self, scores: np.ndarray) -> "SplitPolicy":
        """This policy with thresholds at the quantiles of `scores` (all frames of the video)."""
        return SplitPolicy(self.patch, self.n_paths, self.mode, self.score,
                           fit_thresholds(scores, self.n_paths, self.score))

    def to_dict(self) -> dict:
        return {"patch": self.patch, "n_paths": self.n_paths, "mode": self.mode,
                "score": self.score, "thresholds": list(self.thresholds)}

    @classmethod
    def from_dict(cls, data: dict) -> "SplitPolicy":
        return cls(data["patch"], data["n_paths"], data["mode"], data["score"],
                   tuple(data["thresholds"]))


# --------------------------------------------------------------------------- split maps
@dataclass
class SplitMaps:
    """Per frame and cell: split depth and path class, for one video at one LR size and scale."""
    height: int
    width: int
    patch: int
    scale: int
    depth: np.ndarray  # (T, rows, cols) uint8
    path: np.ndarray   # (T, rows, cols) uint8

    def __post_init__(self):
        expected = (self.depth.shape[0],) + self.grid.shape
        if self.depth.shape != expected or self.path.shape != expected:
            raise ValueError(f"split maps of shape {self.depth.shape}/{self.path.shape} do not fit "
                             f"a {self.grid.shape} grid")
        if max(self.depth.max(initial=0), self.path.max(initial=0)) > 15:
            raise ValueError("split depth and path must be below 16 (4 bits each in the side file)")

    @property
    def grid(self) -> Grid:
        return Grid(self.height, self.width, self.patch)

    def __len__(self) -> int:
        return self.depth.shape[0]


def score_frame(lr_frame: np.ndarray, grid: Grid, score: str = DEFAULT_SCORE, *, hr_frame=None,
                scale: int | None = None, upscaler: Upscaler | None = None) -> np.ndarray:
    """Per-cell scores of one frame with the named score."""
    if not _score(score).needs_hr:
        return gradient_scores(lr_frame, grid)
    if hr_frame is None or scale is None or upscaler is None:
        raise ValueError(f"the {score!r} score needs hr_frame, scale and upscaler (HR exists only "
                         "on the server: ship its split map in the side file)")
    return psnr_scores(lr_frame, hr_frame, grid, scale, upscaler)


def compute_split_maps(lr_frames, policy: SplitPolicy, scale: int, *, hr_frames=None,
                       upscaler: Upscaler | None = None) -> tuple[SplitMaps, SplitPolicy]:
    """Scores every frame, fits the thresholds when the policy has none, assigns paths.

    Returns the maps and the policy actually used (with thresholds): ship that policy beside the
    model so the device can recompute the same maps from LR (gradient score).
    """
    lr_frames = np.asarray(lr_frames)
    grid = Grid(lr_frames.shape[1], lr_frames.shape[2], policy.patch)
    hr_iter = hr_frames if hr_frames is not None else [None] * len(lr_frames)
    scores = np.stack([score_frame(lr, grid, policy.score, hr_frame=hr, scale=scale,
                                   upscaler=upscaler) for lr, hr in zip(lr_frames, hr_iter)])
    if not policy.thresholds and policy.n_paths > 1:
        policy = policy.fitted(scores)
    paths = assign_paths(scores, policy.thresholds, policy.score)
    maps = SplitMaps(grid.height, grid.width, policy.patch, scale, policy.depth_of(paths), paths)
    return maps, policy


# --------------------------------------------------------------------------- the side file
SIDE_MAGIC = b"DYDCASPM"
SIDE_VERSION = 1
# magic, version, scale, LR height, LR width, patch, frames, compressed payload bytes
_HEADER = struct.Struct("<8sHHIIHII")


def encode_split_maps(maps: SplitMaps) -> bytes:
    """Header + zlib of one byte per cell (depth << 4 | path): classes repeat across neighbouring
    cells and frames, so zlib gets close to their entropy; measured sizes in the README."""
    codes = (maps.depth.astype(np.uint8) << 4) | maps.path.astype(np.uint8)
    payload = zlib.compress(np.ascontiguousarray(codes).tobytes(), 9)
    header = _HEADER.pack(SIDE_MAGIC, SIDE_VERSION, maps.scale, maps.height, maps.width,
                          maps.patch, len(maps), len(payload))
    return header + payload


def decode_split_maps(data: bytes, source: str = "<bytes>") -> SplitMaps:
    if len(data) < _HEADER.size or data[:8] != SIDE_MAGIC:
        raise ValueError(f"{source} is not a dydca split-map file")
    magic, version, scale, height, width, patch, frames, size = _HEADER.unpack_from(data)
    if version != SIDE_VERSION:
        raise ValueError(f"{source}: split-map file version {version}, this dydca reads "
                         f"{SIDE_VERSION}")
    try:
        raw = zlib.decompress(data[_HEADER.size:_HEADER.size + size])
    except zlib.error as e:
        raise ValueError(f"{source}: corrupt split-map payload ({e})") from e
    rows, cols = Grid(height, width, patch).shape
    if len(raw) != frames * rows * cols:
        raise ValueError(f"{source}: payload holds {len(raw)} cells, header says "
                         f"{frames}x{rows}x{cols}")
    codes = np.frombuffer(raw, np.uint8).reshape(frames, rows, cols)
    return SplitMaps(height, width, patch, scale, codes >> 4, codes & 15)


def save_split_maps(path, maps: SplitMaps) -> int:
    """Writes the side file; returns its size in bytes."""
    data = encode_split_maps(maps)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def load_split_maps(path, frame_size: tuple[int, int] | None = None, scale: int | None = None,
                    frames: int | None = None) -> SplitMaps:
    """Reads a side file; with `frame_size` (LR height, width), `scale` or `frames`, refuses a file
    made for another video instead of silently upscaling the wrong cells."""
    with open(path, "rb") as f:
        maps = decode_split_maps(f.read(), repr(str(path)))
    if frame_size is not None and tuple(frame_size) != (maps.height, maps.width):
        raise ValueError(f"split maps {str(path)!r} are for {maps.width}x{maps.height} LR frames, "
                         f"this video's are {frame_size[1]}x{frame_size[0]}")
    if scale is not None and scale != maps.scale:
        raise ValueError(f"split maps {str(path)!r} are for x{maps.scale}, not x{scale}")
    if frames is not None and frames != len(maps):
        raise ValueError(f"split maps {str(path)!r} cover {len(maps)} frames, the video has {frames}")
    return maps


# ---------------------------------------------------------------------- patches and stitching
@dataclass
class PatchGroup:
    """Patches of one (path, size): where each context window starts and which pixels it owns."""
    path: int
    size: int
    windows: np.ndarray  # (N, 2) window top-left (y, x) in canvas coordinates
    owned: np.ndarray    # (N, 4) owned pixels y0, y1, x0, x1 in frame coordinates


@dataclass
class PatchPlan:
    grid: Grid
    margin: int
    pad: tuple[int, int, int, int]  # top, bottom, left, right: non-zero only for tiny frames
    groups: dict[tuple[int, int], PatchGroup]

    def window(self, size: int) -> int:
        return size + 2 * self.margin


def _pads(size: int, window: int) -> tuple[int, int]:
    missing = max(0, window - size)
    return missing // 2, missing - missing // 2


def _axis_blocks(grid: Grid, index: int, size: int, depth: int) -> list[tuple[int, int, int]]:
    """Sub-blocks of a cell along one axis: (block start, owned begin, owned end); blocks that own
    nothing (inside the overlap of a shifted edge cell) are dropped, which saves their compute."""
    start = int(grid.starts(size)[index])
    own0, own1 = grid.owned(index, size)
    step = grid.patch >> depth
    blocks = []
    for k in range(1 << depth):
        b0 = start + k * step
        o0, o1 = max(b0, own0), min(b0 + step, own1)
        if o0 < o1:
            blocks.append((b0, o0, o1))
    return blocks


def plan_patches(grid: Grid, depth: np.ndarray, path: np.ndarray, margin: int) -> PatchPlan:
    """Lays out one frame's patches from its split map (depth and path per cell)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if depth.shape != grid.shape or path.shape != grid.shape:
        raise ValueError(f"split map of shape {depth.shape} does not fit the {grid.shape} grid of "
                         f"{grid.width}x{grid.height} frames")
    deepest = int(depth.max(initial=0))
    if (grid.patch >> deepest) << deepest != grid.patch or grid.patch >> deepest == 0:
        raise ValueError(f"split depth {deepest} needs a patch size divisible by {1 << deepest}, "
                         f"got {grid.patch}")
    big = grid.patch + 2 * margin
    pad = _pads(grid.height, big) + _pads(grid.width, big)
    canvas_h, canvas_w = grid.height + pad[0] + pad[1], grid.width + pad[2] + pad[3]
    entries: dict[tuple[int, int], tuple[list, list]] = {}
    for (r, c), d in np.ndenumerate(depth):
        size = grid.patch >> int(d)
        win = size + 2 * margin
        windows, owned = entries.setdefault((int(path[r, c]), size), ([], []))
        for by, y0, y1 in _axis_blocks(grid, r, grid.height, int(d)):
            # slide the context window inside the canvas rather than padding: see module doc
            wy = min(max(by + pad[0] - margin, 0), canvas_h - win)
            for bx, x0, x1 in _axis_blocks(grid, c, grid.width, int(d)):
                wx = min(max(bx + pad[2] - margin, 0), canvas_w - win)
                windows.append((wy, wx))
                owned.append((y0, y1, x0, x1))
    groups = {key: PatchGroup(key[0], key[1], np.array(w, np.int64).reshape(-1, 2),
                              np.array(o, np.int64).reshape(-1, 4))
              for key, (w, o) in sorted(entries.items())}
    return PatchPlan(grid, margin, pad, groups)


def to_batch(frame: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> (1, 3, H, W) float32 in [0, 1], the network's input layout."""
    return (np.asarray(frame, np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] (HxWx3) -> uint8, rounding to nearest."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def extract_patches(frame: np.ndarray, plan: PatchPlan) -> dict[tuple[int, int], np.ndarray]:
    """Patch batches per (path, size): (N, 3, size + 2*margin, same) float32 in [0, 1]."""
    if frame.shape[:2] != (plan.grid.height, plan.grid.width):
        raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, the plan is for "
                         f"{plan.grid.width}x{plan.grid.height}")
    canvas = to_batch(frame)[0]
    top, bottom, left, right = plan.pad
    if any(plan.pad):
        canvas = np.pad(canvas, ((0, 0), (top, bottom), (left, right)), mode="reflect")
    batches = {}
    for key, group in plan.groups.items():
        win = plan.window(group.size)
        views = np.lib.stride_tricks.sliding_window_view(canvas, (win, win), axis=(1, 2))
        picked = views[:, group.windows[:, 0], group.windows[:, 1]]  # (3, N, win, win)
        batches[key] = np.ascontiguousarray(picked.transpose(1, 0, 2, 3))
    return batches


def stitch(upscaled: dict[tuple[int, int], np.ndarray], plan: PatchPlan, scale: int) -> np.ndarray:
    """Writes each upscaled patch's owned part (margin cropped) into an (H*s, W*s, 3) float32."""
    grid = plan.grid
    out = np.zeros((grid.height * scale, grid.width * scale, 3), np.float32)
    for key, group in plan.groups.items():
        batch = upscaled[key]
        win = plan.window(group.size) * scale
        if batch.shape != (len(group.windows), 3, win, win):
            raise ValueError(f"upscaled batch for path {key[0]}, size {key[1]} has shape "
                             f"{batch.shape}, expected {(len(group.windows), 3, win, win)}")
        origin = group.windows - np.array([plan.pad[0], plan.pad[2]])  # frame coordinates
        for patch, (fy, fx), (y0, y1, x0, x1) in zip(batch, origin, group.owned):
            src = patch[:, (y0 - fy) * scale:(y1 - fy) * scale, (x0 - fx) * scale:(x1 - fx) * scale]
            out[y0 * scale:y1 * scale, x0 * scale:x1 * scale] = src.transpose(1, 2, 0)
    return out


def per_path(upscaler: Upscaler) -> PathRunner:
    """Adapts a single-path upscaler (bicubic, a generic model) to the (batch, path) interface."""
    return lambda batch, path: upscaler(batch)


def upscale_frame(frame: np.ndarray, plan: PatchPlan, run: PathRunner, scale: int,
                  max_batch: int | None = None) -> np.ndarray:
    """Patch, run each (path, size) batch (in chunks of max_batch, the compiled model's largest
    batch dim), stitch. Returns (H*s, W*s, 3) float32 in the network's [0, 1] range, unclipped."""
    upscaled = {}
    for key, batch in extract_patches(frame, plan).items():
        step = max_batch or len(batch)
        upscaled[key] = np.concatenate([run(batch[i:i + step], key[0])
                                        for i in range(0, len(batch), step)])
    return stitch(upscaled, plan, scale)


# ------------------------------------------------------------------------- margin measurement
def margin_sweep(lr_frame: np.ndarray, hr_frame: np.ndarray, depth: np.ndarray,
                 upscaler: Upscaler, scale: int, patch: int, margins: Iterable[int]) -> Iterator[dict]:
    """Lazily, for each margin: Y PSNR (shave=scale) vs HR of whole-frame and of patch-wise upscaling
    with the same upscaler, their gap, and PSNR of patch-wise against whole-frame output."""
    from .metrics import psnr
    grid = Grid(lr_frame.shape[0], lr_frame.shape[1], patch)
    whole = to_uint8(upscaler(to_batch(lr_frame))[0].transpose(1, 2, 0))
    whole_db = psnr(whole, hr_frame, scale)
    for margin in margins:
        plan = plan_patches(grid, depth, np.zeros_like(depth), margin)
        patched = to_uint8(upscale_frame(lr_frame, plan, per_path(upscaler), scale))
        patch_db = psnr(patched, hr_frame, scale)
        yield {"margin": margin, "psnr_whole": whole_db, "psnr_patched": patch_db,
               "gap_db": abs(whole_db - patch_db), "psnr_patched_vs_whole": psnr(patched, whole, 0)}


def min_margin(lr_frame, hr_frame, depth, upscaler: Upscaler, scale: int, patch: int,
               tol_db: float = 0.05, max_margin: int = 32) -> int:
    """Smallest margin whose patch-wise PSNR is within tol_db of whole-frame (same weights)."""
    for row in margin_sweep(lr_frame, hr_frame, depth, upscaler, scale, patch,
                            range(max_margin + 1)):
        if row["gap_db"] <= tol_db:
            return row["margin"]
    raise ValueError(f"no margin up to {max_margin} brings patch-wise within {tol_db} dB")
