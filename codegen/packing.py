"""Compile-time weight packing for the dydca C++ kernels (runtime_cpp/include/dydca/{conv,gemm}.h).

Every function returns a C-contiguous float32 array whose flat contents are what the generated C++
code passes as the ``w`` / ``b_packed`` pointer.  The layouts are part of the kernel ABI; keep them
in sync with conv.h / gemm.h.

Notation: ``Cg = C // group`` (input channels per group), ``Mg = M // group`` (output channels per
group), ``MBk = ceil(Mg / 8)`` (blocks of 8 output channels per group; the last block of every group
is zero-padded).
"""

from __future__ import annotations

import numpy as np

BLOCK = 8  # output channels per packed block (one AVX2 register)
PIXELS_BLOCK = 16  # conv2d_pixels' blocks (one AVX-512 register; conv.h: kPxBlock)
GEMM_NR = 16  # columns per packed GEMM panel (two AVX2 registers)


def _is_depthwise(m: int, cg: int, group: int) -> bool:
    # group == C == M  <=>  Cg == 1 and group == M
    return cg == 1 and group == m


def _checked(w, group: int, fn: str, layout: str, grouped: str) -> np.ndarray:
    """ONNX conv weights as float32, after checking their rank and that dim 0 splits into groups."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 4:
        raise ValueError(f"{fn} expects a 4-D {layout} tensor, got {w.shape}")
    if group <= 0 or w.shape[0] % group != 0:
        raise ValueError(f"{grouped}={w.shape[0]} not divisible by group={group}")
    return w


def _pad_to_blocks(w: np.ndarray, axis: int, block: int = BLOCK):
    """Zero-pads the output-channel axis to whole blocks; returns (array, block count)."""
    mbk = (w.shape[axis] + block - 1) // block
    widths = [(0, 0)] * w.ndim
    widths[axis] = (0, mbk * block - w.shape[axis])
    return np.pad(w, widths), mbk


def pack_conv2d(w: np.ndarray, group: int, block: int = BLOCK) -> np.ndarray:
    """Pack ONNX Conv weights ``w[M, C/group, KH, KW]`` for ``dydca::conv2d`` (``block`` = 8) or
    ``dydca::conv2d_pixels`` (``block`` = PIXELS_BLOCK, 16).

    Layouts:

    * depthwise (``group == C == M``, i.e. ``w.shape[1] == 1 and group == M``): unchanged,
      ``[M, KH, KW]`` (shape returned as ``(M, KH, KW)``).
    * otherwise (general / grouped / 1x1): ``[group, MBk, KH, KW, Cg, block]`` where
      ``out[g, b, kh, kw, c, j] = w[g*Mg + block*b + j, c, kh, kw]`` for ``block*b + j < Mg`` and 0 for the
      padding lanes (same blocked layout as pack_conv_transpose2d).  For 1x1 convs the kernel reads
      this as the GEMM A operand with rows blocked by 8.
    """
    w = _checked(w, group, "pack_conv2d", "[M, C/group, KH, KW]", "M")
    m, cg, kh, kw = w.shape
    if _is_depthwise(m, cg, group):
        return np.ascontiguousarray(w.reshape(m, kh, kw))
    mg = m // group
    wg, mbk = _pad_to_blocks(w.reshape(group, mg, cg, kh, kw), axis=1, block=block)
    # [g, b, j, c, kh, kw] -> [g, b, kh, kw, c, j]
    out = wg.reshape(group, mbk, block, cg, kh, kw).transpose(0, 1, 4, 5, 3, 2)
    return np.ascontiguousarray(out, dtype=np.float32)


# Winograd F(4x4, 3x3) weight transform G (runtime_cpp/include/dydca/winograd.h).
WINOGRAD_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


def pack_conv2d_winograd(w: np.ndarray, group: int) -> np.ndarray:
    """Transform and pack ONNX 3x3 Conv weights ``w[M, C/group, 3, 3]`` for
    ``dydca::conv2d_winograd`` (F(4x4, 3x3)).

    Layout ``[group, 36, MBk, Cg, 8]``: ``out[g, 6*u + v, b, c, j] = (G w[g*Mg + 8*b + j, c] G^T)[u, v]``
    (computed in float64), 0 for the padding lanes ``8*b + j >= Mg``.
    """
    w = _checked(w, group, "pack_conv2d_winograd", "[M, C/group, 3, 3]", "M")
    m, cg, kh, kw = w.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"pack_conv2d_winograd needs 3x3 weights, got {kh}x{kw}")
    u = np.einsum("ui,mcij,vj->mcuv", WINOGRAD_G, w.astype(np.float64), WINOGRAD_G).reshape(m, cg, 36)
    ug, mbk = _pad_to_blocks(u.reshape(group, m // group, cg, 36), axis=1)
    # [g, b, j, c, xi] -> [g, xi, b, c, j]
    out = ug.reshape(group, mbk, BLOCK, cg, 36).transpose(0, 4, 1, 3, 2)
    return np.ascontiguousarray(out, dtype=np.float32)


def pack_conv_transpose2d(w: np.ndarray, group: int) -> np.ndarray:
    """Pack ONNX ConvTranspose weights ``w[C, M/group, KH, KW]`` for ``dydca::conv_transpose2d``.

    Layout ``[group, MBk, KH, KW, Cg, 8]`` with
    ``out[g, b, kh, kw, c, j] = w[g*Cg + c, 8*b + j, kh, kw]`` (0 for padding lanes ``8*b+j >= Mg``).
    The kernel uses the gather formulation, so the kernel is not flipped.
    """
    w = _checked(w, group, "pack_conv_transpose2d", "[C, M/group, KH, KW]", "C")
    c, mg, kh, kw = w.shape
    cg = c // group
    wg, mbk = _pad_to_blocks(w.reshape(group, cg, mg, kh, kw), axis=2)
    # [g, c, b, j, kh, kw] -> [g, b, kh, kw, c, j]
    out = wg.reshape(group, cg, mbk, BLOCK, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    return np.ascontiguousarray(out, dtype=np.float32)


def pack_gemm_b(b: np.ndarray) -> np.ndarray:
    """Pack a constant GEMM B operand ``b[K, N]`` (row-major) for ``dydca::gemm``.

    Layout ``[ceil(N/16), K, 16]``: ``out[p, k, j] = b[k, 16*p + j]`` (0 where ``16*p + j >= N``).
    (For an ONNX Gemm with transB=1 pass ``B.T``.)
    """
    b = np.asarray(b, dtype=np.float32)
    if b.ndim != 2:
        raise ValueError(f"pack_gemm_b expects a 2-D [K, N] matrix, got {b.shape}")
    k, n = b.shape
    np_ = (n + GEMM_NR - 1) // GEMM_NR
    pad = np_ * GEMM_NR - n
    if pad:
        b = np.concatenate([b, np.zeros((k, pad), np.float32)], axis=1)
    out = b.reshape(k, np_, GEMM_NR).transpose(1, 0, 2)
    return np.ascontiguousarray(out, dtype=np.float32)


def packed_conv2d_size(m: int, c: int, kh: int, kw: int, group: int, block: int = BLOCK) -> int:
    """Number of floats in ``pack_conv2d`` output for ONNX weights [m, c/group, kh, kw]."""
    cg = c // group
    if _is_depthwise(m, cg, group):
        return m * kh * kw
    mg = m // group
    return group * ((mg + block - 1) // block) * block * cg * kh * kw


def packed_gemm_b_size(k: int, n: int) -> int:
    """Number of floats in ``pack_gemm_b`` output for B[k, n]."""
    return ((n + GEMM_NR - 1) // GEMM_NR) * GEMM_NR * k
