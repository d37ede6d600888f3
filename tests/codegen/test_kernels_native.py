"""Native tests for the dydca C++ conv / gemm kernels (runtime_cpp/include/dydca/{conv,gemm}.h).

Compiles tests/codegen/kernels/harness.cpp with the production flags into a temp dir, runs it over
a batch of seeded random cases (tile edges, odd widths, groups, strides, dilations, pads, batch,
threads) and compares against a float64 numpy reference with
max |err| <= 1e-4 * (max(ref) - min(ref)).

The harness also checks that the epilogue is called exactly once per output element with the right
(m, i) / (row, col) indices, that no heap allocation happens inside a kernel call and that GEMM
padding columns (ldc > N) are left untouched. Depth-to-space stores are checked against the numpy
pixel shuffle of the reference (the epilogue keeps the conv's own indices), and the C++ run-time
weight packing against codegen/packing.py, bit for bit.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = Path(__file__).resolve().parent / "kernels"
INCLUDE = ROOT / "runtime_cpp" / "include"
CXXFLAGS = ["-O3", "-march=native", "-fopenmp", "-std=c++17", "-fPIC"]


def _load_packing():
    spec = importlib.util.spec_from_file_location("dydca_packing", ROOT / "codegen" / "packing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


packing = _load_packing()

# Must match CONV_COMBOS / CONVT_COMBOS in harness.cpp: (KH, KW, SH, SW, DH, DW)
CONV_COMBOS = [
    (1, 1, 1, 1, 1, 1), (1, 1, 2, 2, 1, 1), (3, 3, 1, 1, 1, 1), (3, 3, 2, 2, 1, 1),
    (3, 3, 1, 1, 2, 2), (5, 5, 1, 1, 1, 1), (2, 3, 2, 1, 1, 2), (3, 1, 1, 2, 3, 1),
    (9, 9, 1, 1, 1, 1), (7, 7, 2, 2, 1, 1),
]
CONVT_COMBOS = [
    (3, 3, 2, 2, 1, 1), (9, 9, 3, 3, 1, 1), (9, 9, 2, 2, 1, 1), (2, 2, 3, 3, 1, 1), (4, 4, 2, 2, 1, 1),
    (3, 3, 1, 1, 1, 1), (2, 3, 2, 3, 1, 2), (5, 5, 2, 1, 2, 1),
]
# Must match D2S_COMBOS (conv) and the D2S_STORES instantiation of convt in harness.cpp
D2S_COMBOS = [(1, 1, 1, 1, 1, 1), (3, 3, 1, 1, 1, 1), (3, 3, 2, 2, 1, 1), (5, 5, 1, 1, 1, 1)]
D2S_CONVT_COMBOS = [(3, 3, 2, 2, 1, 1)]


def depth_to_space(y, b, mode):
    """numpy DepthToSpace (ONNX semantics) of an NCHW array."""
    n, m, h, w = y.shape
    c = m // (b * b)
    if mode == "DCR":
        return y.reshape(n, b, b, c, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c, h * b, w * b)
    return y.reshape(n, c, b, b, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c, h * b, w * b)


# ----------------------------------------------------------------------------------------------
# numpy references (float64)
# ----------------------------------------------------------------------------------------------
def ref_conv(x, w, b, group, k, pads, oh, ow):
    kh, kw, sh, sw, dh, dw = k
    n, c, h, wd = x.shape
    m = w.shape[0]
    cg, mg = c // group, m // group
    pt, pl = pads
    # pad generously then slice
    hp = max(h + pt, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(wd + pl, (ow - 1) * sw + (kw - 1) * dw + 1)
    xp = np.zeros((n, c, hp, wp), np.float64)
    xp[:, :, pt:pt + h, pl:pl + wd] = x
    y = np.zeros((n, m, oh, ow), np.float64)
    for g in range(group):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * mg:(g + 1) * mg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xg[:, :, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw]
                y[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, wg[:, :, i, j])
    if b is not None:
        y += b[None, :, None, None]
    return y


def ref_convt(x, w, b, group, k, pads, oh, ow):
    kh, kw, sh, sw, dh, dw = k
    n, c, h, wd = x.shape
    mg = w.shape[1]
    m = mg * group
    cg = c // group
    pt, pl = pads
    fh = (h - 1) * sh + (kh - 1) * dh + 1
    fw = (wd - 1) * sw + (kw - 1) * dw + 1
    full = np.zeros((n, m, max(fh, pt + oh), max(fw, pl + ow)), np.float64)
    for g in range(group):
        xg = x[:, g * cg:(g + 1) * cg].astype(np.float64)
        wg = w[g * cg:(g + 1) * cg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nchw,cm->nmhw", xg, wg[:, :, i, j])
                full[:, g * mg:(g + 1) * mg, i * dh: i * dh + (h - 1) * sh + 1: sh,
                     j * dw: j * dw + (wd - 1) * sw + 1: sw] += contrib
    y = full[:, :, pt:pt + oh, pl:pl + ow].copy()
    if b is not None:
        y += b[None, :, None, None]
    return y


# ----------------------------------------------------------------------------------------------
# case generation
# ----------------------------------------------------------------------------------------------
class Cases:
    def __init__(self, root: Path):
        self.root = root
        self.lines = []
        self.checks = []  # (dir, ref, tag)
        self.rng = np.random.default_rng(1234)

    def _dir(self):
        d = self.root / f"c{len(self.lines)}"
        d.mkdir()
        return d

    def conv(self, k, n, c, h, w, m, group, pads=(0, 0, 0, 0), threads=2, bias=True, transpose=False,
             store=None):
        """store: None (plain NCHW) or (blocksize, "DCR" | "CRD") for a depth-to-space store."""
        kh, kw, sh, sw, dh, dw = k
        if store is None:
            assert k in (CONVT_COMBOS if transpose else CONV_COMBOS), k
        else:
            assert k in (D2S_CONVT_COMBOS if transpose else D2S_COMBOS), k
        pt, pl, pb, pr = pads
        rng = self.rng
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        if transpose:
            out_pad_h, out_pad_w = pb, pr  # reuse: for convT, pads[2:] are output_padding
            oh = (h - 1) * sh + (kh - 1) * dh + 1 - pt - pt + out_pad_h
            ow = (w - 1) * sw + (kw - 1) * dw + 1 - pl - pl + out_pad_w
            wt = rng.standard_normal((c, m // group, kh, kw), dtype=np.float32)
            packed = packing.pack_conv_transpose2d(wt, group)
        else:
            oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
            ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
            wt = rng.standard_normal((m, c // group, kh, kw), dtype=np.float32)
            packed = packing.pack_conv2d(wt, group)
        assert oh > 0 and ow > 0, (k, h, w, pads)
        b = rng.standard_normal(m, dtype=np.float32)
        r = rng.standard_normal((n, m, oh, ow), dtype=np.float32)
        d = self._dir()
        x.tofile(d / "x.bin")
        packed.tofile(d / "w.bin")
        b.tofile(d / "b.bin")
        r.tofile(d / "r.bin")
        fn = ref_convt if transpose else ref_conv
        ref = fn(x, wt, b if bias else None, group, k, (pt, pl), oh, ow)
        ref = ref + r + 0.01 * np.arange(m)[None, :, None, None]
        op = "convt" if transpose else "conv"
        tail = []
        if store is not None:
            ref = depth_to_space(ref, *store)
            tail = ["d2s", *store]
        self.lines.append(" ".join(map(str, [op, *k, n, c, h, w, m, oh, ow, pt, pl, group, threads, int(bias), d,
                                             *tail])))
        self.checks.append((d, ref, self.lines[-1]))

    def pixels(self, k, n, c, h, w, m, group=1, pads=(1, 1, 1, 1), threads=2):
        """One conv2d_pixels call (harness `pix`, PIX_COMBOS): the plane as one run of pixel tiles."""
        kh, kw, sh, sw, dh, dw = k
        pt, pl, pb, pr = pads
        oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
        ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
        rng = self.rng
        x = rng.standard_normal((n, c, h, w), dtype=np.float32)
        wt = rng.standard_normal((m, c // group, kh, kw), dtype=np.float32)
        b = rng.standard_normal(m, dtype=np.float32)
        r = rng.standard_normal((n, m, oh, ow), dtype=np.float32)
        d = self._dir()
        for name, a in (("x", x), ("w", packing.pack_conv2d(wt, group, packing.PIXELS_BLOCK)), ("b", b), ("r", r)):
            a.tofile(d / f"{name}.bin")
        ref = ref_conv(x, wt, b, group, k, (pt, pl), oh, ow) + r + 0.01 * np.arange(m)[None, :, None, None]
        self.lines.append(" ".join(map(str, ["pix", *k, n, c, h, w, m, oh, ow, pt, pl, group, threads, 1, d])))
        self.checks.append((d, ref, self.lines[-1]))

    def pack(self, w, group, transpose=False, threads=2):
        """C++ run-time packing of ONNX weights `w`, expected equal to codegen/packing.py's."""
        d = self._dir()
        w.tofile(d / "w.bin")
        a, b, kh, kw = w.shape
        if transpose:
            ref = packing.pack_conv_transpose2d(w, group)
        else:
            ref = packing.pack_conv2d(w, group)
            assert ref.size == packing.packed_conv2d_size(a, b * group, kh, kw, group)
        op = "packt" if transpose else "pack"
        self.lines.append(" ".join(map(str, [op, a, b, kh, kw, group, threads, d])))
        self.checks.append((d, ref.reshape(-1).astype(np.float64), self.lines[-1], "exact"))

    def gemm(self, m, n, k, packed=True, threads=2, pad=(0, 0, 0), use_scratch=True):
        rng = self.rng
        lda, ldb, ldc = k + pad[0], n + pad[1], n + pad[2]
        a = rng.standard_normal((m, lda), dtype=np.float32)
        bm = rng.standard_normal((k, ldb), dtype=np.float32)
        r = rng.standard_normal((m, n), dtype=np.float32)
        d = self._dir()
        a.tofile(d / "a.bin")
        bm.tofile(d / "b.bin")
        packing.pack_gemm_b(bm[:, :n]).tofile(d / "bp.bin")
        r.tofile(d / "r.bin")
        ref = a[:, :k].astype(np.float64) @ bm[:, :n].astype(np.float64) + r + 0.01 * np.arange(m)[:, None]
        full = np.full((m, ldc), np.nan)
        full[:, :n] = ref
        self.lines.append(" ".join(map(str, ["gemm", m, n, k, lda, ldb, ldc, int(packed), threads, int(use_scratch), d])))
        self.checks.append((d, full, self.lines[-1]))


def _build_conv_cases(cs: Cases):
    K33 = (3, 3, 1, 1, 1, 1)
    # 16x6 / 8x12 register tiles: output widths around 6, 12, 96 (chunk) and odd sizes
    for m in (8, 16, 24, 32, 40):
        for w in (1, 2, 3, 5, 6, 7, 12, 13, 17):
            cs.conv(K33, 1, 5, 4, w, m, 1, pads=(1, 1, 1, 1))
    for w in (95, 96, 97, 193, 200):
        cs.conv(K33, 1, 16, 3, w, 32, 1, pads=(1, 1, 1, 1))
    cs.conv(K33, 1, 32, 24, 40, 32, 1, pads=(1, 1, 1, 1), threads=1)
    cs.conv(K33, 1, 32, 24, 40, 32, 1, pads=(1, 1, 1, 1), threads=2, bias=False)
    cs.conv(K33, 3, 32, 9, 11, 32, 1, pads=(0, 0, 0, 0))
    cs.conv(K33, 2, 3, 17, 19, 32, 1, pads=(1, 1, 1, 1))      # 3 -> 32
    # few output channels (width-vectorised path): 32->3, 8->1, ESPCN/FSRCNN-like
    for m in (1, 2, 3, 4, 5, 7):
        for w in (1, 3, 8, 9, 23, 24, 25, 47, 49, 100):
            cs.conv(K33, 1, 6, 3, w, m, 1, pads=(1, 1, 1, 1))
    cs.conv(K33, 2, 32, 10, 33, 3, 1, pads=(1, 1, 1, 1))
    cs.conv((5, 5, 1, 1, 1, 1), 1, 1, 12, 30, 12, 1, pads=(2, 2, 2, 2))   # 1 -> 12 (FSRCNN-ish)
    cs.conv((5, 5, 1, 1, 1, 1), 1, 12, 12, 30, 1, 1, pads=(2, 2, 2, 2))   # 12 -> 1
    cs.conv((5, 5, 1, 1, 1, 1), 1, 8, 9, 10, 12, 1, pads=(0, 2, 4, 1))    # asymmetric pads
    cs.conv((9, 9, 1, 1, 1, 1), 1, 1, 20, 27, 16, 1, pads=(4, 4, 4, 4))
    cs.conv((9, 9, 1, 1, 1, 1), 1, 16, 6, 7, 3, 1, pads=(4, 4, 4, 4))     # kernel wider than image
    # strides / dilations, incl. width stride with few outputs (channel-vectorised fallback)
    for m in (3, 8, 16, 20):
        for w in (1, 4, 7, 15, 30):
            cs.conv((3, 3, 2, 2, 1, 1), 1, 4, 7, w, m, 1, pads=(1, 1, 1, 1))
    cs.conv((3, 3, 2, 2, 1, 1), 2, 16, 16, 16, 32, 1, pads=(0, 0, 1, 1))
    cs.conv((3, 3, 1, 1, 2, 2), 1, 8, 12, 21, 16, 1, pads=(2, 2, 2, 2))
    cs.conv((3, 3, 1, 1, 2, 2), 1, 8, 12, 21, 5, 1, pads=(2, 2, 2, 2))
    cs.conv((3, 3, 1, 1, 2, 2), 1, 8, 5, 5, 16, 1, pads=(0, 0, 0, 0))
    cs.conv((2, 3, 2, 1, 1, 2), 1, 6, 9, 14, 16, 1, pads=(1, 2, 0, 3))
    cs.conv((2, 3, 2, 1, 1, 2), 1, 6, 9, 14, 3, 1, pads=(1, 2, 0, 3))
    cs.conv((3, 1, 1, 2, 3, 1), 1, 6, 13, 14, 24, 1, pads=(3, 0, 3, 0))
    cs.conv((3, 1, 1, 2, 3, 1), 1, 6, 13, 14, 2, 1, pads=(3, 0, 3, 0))
    cs.conv((7, 7, 2, 2, 1, 1), 1, 3, 30, 31, 16, 1, pads=(3, 3, 3, 3))
    cs.conv((5, 5, 1, 1, 1, 1), 1, 4, 3, 3, 8, 1, pads=(4, 4, 4, 4))       # huge padding
    # groups
    cs.conv(K33, 2, 16, 8, 13, 32, 4, pads=(1, 1, 1, 1))      # Cg=4, Mg=8
    cs.conv(K33, 1, 12, 8, 13, 18, 3, pads=(1, 1, 1, 1))      # Mg=6 (width path, per group)
    cs.conv(K33, 1, 32, 8, 29, 64, 2, pads=(1, 1, 1, 1))      # Mg=32
    cs.conv(K33, 1, 8, 8, 9, 40, 2, pads=(1, 1, 1, 1))        # Mg=20 (pair + single block)
    cs.conv((3, 3, 2, 2, 1, 1), 1, 12, 9, 9, 12, 3, pads=(1, 1, 1, 1))
    # depthwise
    for w in (1, 5, 8, 31, 32, 33, 70, 100):
        cs.conv(K33, 1, 6, 5, w, 6, 6, pads=(1, 1, 1, 1))
    cs.conv((3, 3, 2, 2, 1, 1), 2, 8, 15, 17, 8, 8, pads=(1, 1, 1, 1))
    cs.conv((3, 3, 2, 2, 1, 1), 1, 8, 16, 100, 8, 8, pads=(0, 0, 1, 1))
    cs.conv((5, 5, 1, 1, 1, 1), 1, 4, 9, 40, 4, 4, pads=(2, 2, 2, 2))
    cs.conv((3, 3, 1, 1, 2, 2), 1, 4, 9, 40, 4, 4, pads=(2, 2, 2, 2))
    cs.conv((7, 7, 2, 2, 1, 1), 1, 4, 20, 45, 4, 4, pads=(3, 3, 3, 3))
    cs.conv(K33, 1, 1, 6, 20, 1, 1, pads=(1, 1, 1, 1))        # C == M == group == 1
    # 1x1 (GEMM path) and 1x1 strided / padded (direct path)
    for m, c in ((1, 3), (5, 7), (6, 16), (7, 8), (13, 32), (16, 16), (32, 32), (40, 24), (100, 9)):
        for hw in ((1, 1), (3, 5), (4, 4), (7, 9), (16, 17)):
            cs.conv((1, 1, 1, 1, 1, 1), 1, c, hw[0], hw[1], m, 1)
    cs.conv((1, 1, 1, 1, 1, 1), 4, 16, 5, 7, 24, 1, threads=2)
    # GEMM row blocks that start mid 8-row block (gemm_tiling shrinks them by 12 rows for more
    # tasks): M 50 in one thread splits 14 + 14 + 14 + 8, whose second block's 8-row shared
    # remainder tile starts 2 rows before a block boundary; M 38 and 62 in 2 and 3 threads
    for m, t in ((50, 1), (38, 2), (62, 3), (74, 1)):
        cs.conv((1, 1, 1, 1, 1, 1), 1, 20, 4, 4, m, 1, threads=t)
    cs.conv((1, 1, 1, 1, 1, 1), 1, 16, 10, 10, 24, 4)         # grouped 1x1
    cs.conv((1, 1, 1, 1, 1, 1), 1, 16, 5, 6, 16, 1, pads=(1, 1, 0, 2))   # padded 1x1
    cs.conv((1, 1, 2, 2, 1, 1), 2, 16, 9, 11, 24, 1)
    cs.conv((1, 1, 2, 2, 1, 1), 1, 16, 9, 11, 3, 1)
    # 1x1 with long dot products (the channel-vector kernel, gemm1x1_cv): planes ending mid-tile,
    # output channels ending mid-block and mid-block-group
    for c in (256, 512):
        for m, hw in ((8, (1, 1)), (24, (3, 5)), (40, (4, 4)), (72, (7, 7)), (32, (2, 13))):
            cs.conv((1, 1, 1, 1, 1, 1), 1, c, hw[0], hw[1], m, 1)
    cs.conv((1, 1, 2, 2, 1, 1), 1, 512, 9, 11, 40, 1)
    # ... and K in batches over runs of pixels (gemm1x1_cv_kb, AVX-512: K >= 512, no more pixels
    # than output channels): two runs of a 221-pixel plane (120 + 101: a 5-pixel tail), 203
    # channels (the last block of 32 holds 11); K 1100 ends mid-batch; two images, two groups
    cs.conv((1, 1, 1, 1, 1, 1), 1, 512, 13, 17, 203, 1, threads=2)
    cs.conv((1, 1, 1, 1, 1, 1), 2, 1024, 3, 5, 64, 2, threads=2)
    # gemm_block's sources of B panels: copied to the stack per column group (K 600; K 20 and 256
    # on planes of 1,295 pixels, the last panel 15 columns wide), read in place past K = 1024 (a
    # masked last panel); row blocks of 40, 50 and 26 output channels
    for c, m, hw in ((600, 40, (7, 9)), (1100, 50, (4, 5)), (2048, 26, (3, 7)), (20, 40, (35, 37)),
                     (256, 26, (35, 37))):
        cs.conv((1, 1, 1, 1, 1, 1), 1, c, hw[0], hw[1], m, 1, threads=2)
    # batch of small patches
    cs.conv(K33, 8, 8, 4, 4, 16, 1, pads=(1, 1, 1, 1), threads=2)


def _build_pixels_cases(cs: Cases):
    # planes ending mid-tile (6 or 12 pixels), 1-4 8-channel blocks per block group, groups, batch
    for m, (h, w) in ((8, (1, 1)), (16, (3, 5)), (24, (7, 7)), (32, (5, 9)), (40, (4, 13)), (72, (6, 6))):
        cs.pixels((3, 3, 1, 1, 1, 1), 1, 24, h, w, m)
    cs.pixels((3, 3, 1, 1, 1, 1), 2, 16, 9, 10, 20, threads=3)
    cs.pixels((3, 3, 1, 1, 1, 1), 1, 32, 8, 11, 48, group=2)
    cs.pixels((3, 3, 1, 1, 1, 1), 1, 16, 6, 7, 16, pads=(0, 0, 0, 0))  # read in place
    cs.pixels((3, 3, 2, 2, 1, 1), 1, 24, 13, 15, 40)
    cs.pixels((3, 3, 2, 2, 1, 1), 2, 16, 14, 14, 32, pads=(0, 0, 1, 1))


def _build_convt_cases(cs: Cases):
    # pads=(pt, pl, output_pad_h, output_pad_w)
    for k in CONVT_COMBOS:
        for m in (1, 3, 8, 12, 16, 32):
            cs.conv(k, 1, 5, 4, 7, m, 1, pads=(0, 0, 0, 0), transpose=True)
    cs.conv((3, 3, 2, 2, 1, 1), 1, 16, 9, 13, 16, 1, pads=(1, 1, 1, 1), transpose=True)
    cs.conv((3, 3, 2, 2, 1, 1), 2, 16, 5, 50, 24, 1, pads=(1, 1, 0, 1), transpose=True)
    cs.conv((9, 9, 3, 3, 1, 1), 1, 8, 6, 17, 1, 1, pads=(4, 4, 2, 2), transpose=True)   # FSRCNN x3 deconv
    cs.conv((9, 9, 3, 3, 1, 1), 1, 12, 7, 40, 3, 1, pads=(3, 4, 0, 1), transpose=True)
    cs.conv((4, 4, 2, 2, 1, 1), 1, 8, 8, 33, 16, 1, pads=(1, 1, 0, 0), transpose=True)
    cs.conv((4, 4, 2, 2, 1, 1), 1, 8, 8, 9, 16, 2, pads=(1, 1, 0, 0), transpose=True)
    cs.conv((3, 3, 1, 1, 1, 1), 1, 8, 8, 101, 16, 1, pads=(1, 1, 0, 0), transpose=True)
    cs.conv((3, 3, 1, 1, 1, 1), 1, 8, 6, 6, 8, 8, pads=(1, 1, 0, 0), transpose=True)    # depthwise-like
    cs.conv((2, 3, 2, 3, 1, 2), 1, 6, 5, 9, 20, 2, pads=(1, 2, 1, 2), transpose=True)
    cs.conv((5, 5, 2, 1, 2, 1), 1, 6, 5, 9, 10, 1, pads=(2, 3, 1, 0), transpose=True)
    cs.conv((3, 3, 2, 2, 1, 1), 3, 4, 1, 1, 8, 1, pads=(0, 0, 1, 1), transpose=True)
    # Mg <= 4, undilated: the stride-phase kernel (ct_wv_row), each phase a stride-1 conv of
    # ceil((K - r) / S) taps (K < S: phases without a tap, bias only) through FewChannels' tiles of
    # 24 (3-4 channels) or 32 (1-2) pixels, per-phase chunks of 96; widths below / at / above a tile
    # and a chunk, groups, batches, output padding (Mg 5-7: the general kernel, Auto's choice).
    K92, K22 = (9, 9, 2, 2, 1, 1), (2, 2, 3, 3, 1, 1)
    for w, m in ((1, 3), (7, 1), (12, 2), (24, 3), (25, 4), (33, 5), (50, 7), (97, 3), (131, 1)):
        cs.conv(K92, 1, 6, 5, w, m, 1, pads=(4, 4, 1, 1), transpose=True)   # FSRCNN x2's deconv
    cs.conv(K92, 2, 12, 9, 40, 6, 2, pads=(3, 2, 0, 1), transpose=True)
    cs.conv(K92, 1, 5, 3, 4, 3, 1, pads=(0, 0, 0, 0), transpose=True)       # taps past every edge
    for w, m in ((1, 1), (9, 3), (30, 2), (40, 7)):
        cs.conv(K22, 2, 4, 3, w, m, 1, pads=(0, 1, 2, 1), transpose=True)
    cs.conv((9, 9, 3, 3, 1, 1), 1, 8, 4, 45, 3, 1, pads=(4, 3, 2, 1), transpose=True)
    cs.conv((4, 4, 2, 2, 1, 1), 3, 6, 4, 30, 4, 2, pads=(1, 1, 0, 0), transpose=True)
    cs.conv((3, 3, 1, 1, 1, 1), 1, 6, 5, 61, 3, 1, pads=(1, 1, 0, 0), transpose=True)


def _build_d2s_cases(cs: Cases):
    # every kernel path under the depth-to-space store: general 16x6 / 8x12 tiles (M = 12, 27, 48),
    # few-channel width path (M = 4: 1 channel after the shuffle), strided, 1x1 (GEMM path is
    # bypassed), depthwise, grouped, batch > 1, odd widths across the 96-column chunk
    K33 = (3, 3, 1, 1, 1, 1)
    for b in (2, 3):
        for mode in ("DCR", "CRD"):
            st = (b, mode)
            for m in (b * b, 3 * b * b, 48 if b == 2 else 36):
                cs.conv(K33, 2, 5, 7, 13, m, 1, pads=(1, 1, 1, 1), store=st)
            cs.conv(K33, 1, 8, 3, 101, 4 * b * b, 1, pads=(1, 1, 1, 1), store=st)
            cs.conv((3, 3, 2, 2, 1, 1), 1, 6, 9, 11, 2 * b * b, 1, pads=(1, 1, 1, 1), store=st)
            cs.conv((1, 1, 1, 1, 1, 1), 1, 16, 5, 7, 4 * b * b, 1, store=st)
            cs.conv((5, 5, 1, 1, 1, 1), 1, 1, 6, 9, 8 * b * b if b == 2 else 9, 1, pads=(2, 2, 2, 2), store=st)
            cs.conv(K33, 1, b * b * 2, 5, 6, b * b * 2, b * b * 2, pads=(1, 1, 1, 1), store=st)  # depthwise
            cs.conv(K33, 1, 8, 5, 6, 2 * b * b, 2, pads=(1, 1, 1, 1), store=st)                  # grouped
            cs.conv((3, 3, 2, 2, 1, 1), 1, 4, 4, 7, 2 * b * b, 1, pads=(1, 1, 1, 1), transpose=True, store=st)
            # M = 4 (b = 2): the stride-phase kernel under the store
            cs.conv((3, 3, 2, 2, 1, 1), 2, 4, 4, 29, b * b, 1, pads=(1, 1, 1, 1), transpose=True, store=st)


def _build_pack_cases(cs: Cases):
    rng = np.random.default_rng(7)
    for (m, cg, kh, kw, group) in [(1, 1, 1, 1, 1), (3, 32, 3, 3, 1), (8, 5, 3, 3, 1), (20, 3, 2, 5, 2),
                                   (64, 64, 3, 3, 1), (12, 1, 3, 3, 12), (12, 1, 5, 5, 3),
                                   (6, 4, 1, 7, 3), (18, 4, 3, 3, 3)]:
        cs.pack(rng.standard_normal((m, cg, kh, kw), dtype=np.float32), group)
    for (c, mg, kh, kw, group) in [(5, 1, 3, 3, 1), (16, 16, 3, 3, 1), (6, 5, 3, 4, 2), (8, 1, 3, 3, 8),
                                   (64, 40, 4, 4, 1)]:
        cs.pack(rng.standard_normal((c, mg, kh, kw), dtype=np.float32), group, transpose=True)
    cs.pack(rng.standard_normal((64, 64, 3, 3), dtype=np.float32), 1, threads=1)


def _build_gemm_cases(cs: Cases):
    sizes = [(1, 1, 1), (1, 16, 5), (5, 15, 3), (6, 16, 16), (7, 17, 9), (12, 32, 7), (13, 33, 64),
             (64, 64, 64), (97, 130, 75), (200, 50, 300), (3, 1000, 40), (130, 3, 20), (1, 513, 100)]
    for (m, n, k) in sizes:
        cs.gemm(m, n, k, packed=True)
        cs.gemm(m, n, k, packed=False)
        cs.gemm(m, n, k, packed=False, use_scratch=False)
    cs.gemm(50, 37, 29, packed=True, pad=(3, 5, 7))
    cs.gemm(50, 37, 29, packed=False, pad=(3, 5, 7))
    cs.gemm(50, 37, 29, packed=False, pad=(3, 5, 7), use_scratch=False)
    cs.gemm(96, 130, 33, packed=True, threads=1)
    cs.gemm(256, 256, 256, packed=True, threads=2)
    cs.gemm(256, 256, 256, packed=False, threads=2)


def _isas() -> dict:
    """Instruction sets to build the harness for: the host's, and AVX2 alone where the host has
    AVX-512 (the kernels hold 16-lane code beside their 8-lane code; both must be right)."""
    isas = {"native": []}
    if shutil.which("g++") is not None:
        macros = subprocess.run(["g++", "-march=native", "-dM", "-E", "-x", "c++", os.devnull],
                                capture_output=True, text=True).stdout
        if "__AVX512F__" in macros:
            isas["avx2"] = ["-mno-avx512f"]
    return isas


ISAS = _isas()


@pytest.fixture(scope="module", params=list(ISAS))
def harness(request, tmp_path_factory):
    """The harness built for one instruction set, once per test session: the build (about a
    minute) is shared by the modules that use it and by pytest-xdist's workers, whose base temp
    folders have one parent, through a lock file there."""
    import fcntl
    import hashlib

    if shutil.which("g++") is None:
        pytest.skip("g++ not available")
    cmd = ["g++", *CXXFLAGS, *ISAS[request.param], f"-I{INCLUDE}", str(HARNESS_DIR / "harness.cpp")]
    key = hashlib.sha1(" ".join(cmd).encode())
    for f in sorted([HARNESS_DIR / "harness.cpp", *(INCLUDE / "dydca").glob("*.h")]):
        key.update(f.read_bytes())
    shared = tmp_path_factory.getbasetemp().parent
    exe = shared / f"harness-{request.param}-{key.hexdigest()[:16]}"
    with open(shared / f"{exe.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not exe.exists():
            tmp = exe.with_suffix(".tmp")
            res = subprocess.run([*cmd, "-o", str(tmp)], capture_output=True, text=True)
            assert res.returncode == 0, res.stderr[-5000:]
            tmp.rename(exe)
    return exe


def _run(harness, tmp_path, build):
    cs = Cases(tmp_path)
    build(cs)
    casefile = tmp_path / "cases.txt"
    casefile.write_text("\n".join(cs.lines) + "\n")
    res = subprocess.run([str(harness), str(casefile)], capture_output=True, text=True, timeout=300)
    failures = [l for l in res.stdout.splitlines() if not l.startswith("DONE")]
    for d, ref, tag, *exact in cs.checks:
        y = np.fromfile(d / "y.bin", dtype=np.float32)
        if y.size != ref.size:
            failures.append(f"SIZE {y.size} != {ref.size}: {tag}")
            continue
        y = y.reshape(ref.shape).astype(np.float64)
        if exact:
            if not np.array_equal(y, ref):
                failures.append(f"NOT_EQUAL at {np.argwhere(y != ref)[:3].tolist()}: {tag}")
            continue
        valid = ~np.isnan(ref)
        # tolerance scale: range of the output (max |ref| for single-element / constant outputs)
        rng = float(ref[valid].max() - ref[valid].min()) if valid.any() else 1.0
        if rng == 0.0 and valid.any():
            rng = float(np.abs(ref[valid]).max())
        err = float(np.abs(y[valid] - ref[valid]).max()) if valid.any() else 0.0
        if not err <= 1e-4 * max(rng, 1e-6):
            failures.append(f"MISMATCH err={err:.3g} range={rng:.3g}: {tag}")
    assert res.returncode == 0 or failures, res.stderr[-3000:]
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} failures of {len(cs.lines)} cases)"
    return len(cs.lines)


def test_conv2d(harness, tmp_path):
    _run(harness, tmp_path, _build_conv_cases)


def test_conv2d_pixels(harness, tmp_path):
    _run(harness, tmp_path, _build_pixels_cases)


def test_conv_transpose2d(harness, tmp_path):
    _run(harness, tmp_path, _build_convt_cases)


def test_conv_depth_to_space_store(harness, tmp_path):
    _run(harness, tmp_path, _build_d2s_cases)


def test_runtime_weight_packing(harness, tmp_path):
    _run(harness, tmp_path, _build_pack_cases)


def test_gemm(harness, tmp_path):
    _run(harness, tmp_path, _build_gemm_cases)


def test_packing_layouts():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((20, 3, 2, 5)).astype(np.float32)
    p = packing.pack_conv2d(w, 2)  # Mg = 10 -> MBk = 2
    assert p.shape == (2, 2, 2, 5, 3, 8) and p.flags.c_contiguous and p.dtype == np.float32
    assert p.size == packing.packed_conv2d_size(20, 6, 2, 5, 2)
    assert p[1, 1, 1, 4, 2, 1] == w[10 + 8 + 1, 2, 1, 4]
    assert np.all(p[:, 1, ..., 2:] == 0)
    dw = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    assert packing.pack_conv2d(dw, 6).shape == (6, 3, 3)
    wt = rng.standard_normal((6, 5, 3, 4)).astype(np.float32)   # C=6, group=2, Mg=5
    pt = packing.pack_conv_transpose2d(wt, 2)
    assert pt.shape == (2, 1, 3, 4, 3, 8)
    assert pt[1, 0, 2, 3, 1, 4] == wt[3 + 1, 4, 2, 3]
    b = rng.standard_normal((7, 35)).astype(np.float32)
    pb = packing.pack_gemm_b(b)
    assert pb.shape == (3, 7, 16) and pb.size == packing.packed_gemm_b_size(7, 35)
    assert pb[2, 6, 2] == b[6, 34] and pb[2, 6, 3] == 0
