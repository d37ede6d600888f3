"""Convolutions: Conv and ConvTranspose (1-D and 2-D, groups incl. depthwise, strides, dilations,
pads, auto_pad). Constant weights are packed at compile time for the kernel (codegen/packing.py);
weights known only at run time (graph inputs, computed tensors) are packed per call by the C++
twin of packing.py into arena scratch the planner reserves (the op's `scratch` rule), then run
through the same kernels. A run-time bias is just a pointer.
The kernel takes a fused element-wise epilogue (attrs["epilogue"], see compiler/passes) and an
optional store layout (attrs["store"], a DepthToSpace folded in by fuse_depth_to_space).
3x3 stride-1 convs of 12+ channels on large enough outputs take Winograd F(4x4, 3x3) per call
(conv_variants), with weights transformed at compile time and per-worker scratch; strided 1x1
convs without padding the 1x1 GEMM over their input gathered into scratch. A ConvTranspose with
few output channels runs its stride phases as stride-1 convs (conv_transpose_path, variants by
row width)."""
from __future__ import annotations

import numpy as np
import sympy

from ..symbolic import as_dim, ceildiv, floordiv, simplify_dim
from . import Category, Fusion, ModelError, OpDef, register


def conv_geometry(ctx_or_k, x_dims, w_shape, transpose=False):
    """Resolves kernel size, strides, dilations, begin/end pads (sympy) and output spatial dims."""
    a = ctx_or_k.attrs
    spatial = len(x_dims) - 2
    kernel = list(a.get("kernel_shape") or w_shape[2:])
    strides = list(a.get("strides") or [1] * spatial)
    dil = list(a.get("dilations") or [1] * spatial)
    pads = list(a.get("pads") or [0] * (2 * spatial))
    auto = a.get("auto_pad", "NOTSET") or "NOTSET"
    if not (len(kernel) == len(strides) == len(dil) == spatial and len(pads) == 2 * spatial):
        ctx_or_k.fail(f"kernel_shape/strides/dilations/pads do not match {spatial} spatial dims")
    begin, end, out = [], [], []
    for i in range(spatial):
        n, k, s, d = as_dim(x_dims[2 + i]), int(kernel[i]), int(strides[i]), int(dil[i])
        dk = (k - 1) * d + 1
        if not transpose:
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                o = ceildiv(n, s)
                total = sympy.Max(0, (o - 1) * s + dk - n)
                small = floordiv(total, 2)
                b = small if auto == "SAME_UPPER" else total - small
                e = total - b
            elif auto == "VALID":
                b, e = sympy.Integer(0), sympy.Integer(0)
                o = floordiv(n - dk, s) + 1
            else:
                b, e = as_dim(pads[i]), as_dim(pads[spatial + i])
                o = floordiv(n + b + e - dk, s) + 1
        else:
            out_pad = list(a.get("output_padding") or [0] * spatial)[i]
            out_shape = a.get("output_shape")
            if out_shape:
                o = as_dim(out_shape[-spatial + i])
            elif auto in ("SAME_UPPER", "SAME_LOWER"):
                o = n * s
            else:
                o = None
            if o is not None:
                total = s * (n - 1) + out_pad + dk - o
                half = floordiv(total, 2)
                # ONNX (and onnxruntime): only SAME_UPPER puts the odd pad at the end
                b, e = (half, total - half) if auto == "SAME_UPPER" else (total - half, half)
            else:
                b, e = as_dim(pads[i]), as_dim(pads[spatial + i])
                o = s * (n - 1) + out_pad + dk - b - e
        begin.append(simplify_dim(b))
        end.append(simplify_dim(e))
        out.append(simplify_dim(o))
    return dict(kernel=kernel, strides=strides, dilations=dil, begin=begin, end=end, out=out)


def geometry_2d(ctx_or_k, x_dims, w_shape, transpose=False):
    """conv_geometry as the 2-D kernels see it: a 1-D conv is a 2-D one over a height of 1
    (kernel, stride and dilation 1, no pads, output height 1)."""
    g = conv_geometry(ctx_or_k, x_dims, w_shape, transpose)
    if len(x_dims) != 3:
        return g
    first = {"kernel": 1, "strides": 1, "dilations": 1, "out": sympy.Integer(1)}
    return {key: [first.get(key, sympy.Integer(0))] + v for key, v in g.items()}


def _check(ctx, transpose):
    x, w = ctx.ins[0], ctx.ins[1]
    if x.rank not in (3, 4):
        ctx.fail(f"{x.rank - 2}-D convolution is not supported (1-D and 2-D are)")
    if w.rank != x.rank:
        ctx.fail(f"weight rank {w.rank} does not match input rank {x.rank}")
    group = int(ctx.attrs.get("group", 1))
    c = as_dim(x.shape[1])
    if not c.is_Integer:
        ctx.fail("the channel dimension must be fixed")
    cin = int(w.shape[0]) if transpose else int(w.shape[1]) * group
    if int(c) != cin:
        ctx.fail(f"input has {int(c)} channels but the weights expect {cin} (group={group})")
    return group


def _conv_infer(ctx):
    group = _check(ctx, False)
    x, w = ctx.ins[0], ctx.ins[1]
    g = conv_geometry(ctx, x.shape, w.shape)
    return [(x.dtype, (x.shape[0], w.shape[0], *g["out"]))]


def _conv_transpose_infer(ctx):
    group = _check(ctx, True)
    x, w = ctx.ins[0], ctx.ins[1]
    g = conv_geometry(ctx, x.shape, w.shape, transpose=True)
    return [(x.dtype, (x.shape[0], int(w.shape[1]) * group, *g["out"]))]


def epilogue(k, out_dims, acc="v", m="m", i="i", streams=None):
    """C++ expression applying attrs["epilogue"] (a fused element-wise program, see
    compiler/passes) to the kernel's accumulator `acc` of output channel `m` at flat index `i` of
    the conv's own output (dims `out_dims`, before any store layout), plus the operand
    declarations it reads. Operands are indexed by i (same shape as the output), by m (per
    channel) or as a scalar; the names of those indexed by i are appended to `streams`."""
    from .elementwise import epilogue_expr

    program = k.attrs.get("epilogue") or []
    decls = []
    names = {}
    for _, _, refs in program:
        for kind, idx in refs:
            if kind == "in" and idx not in names:
                ref = k.ins[idx]
                if ref is None:
                    k.fail(f"epilogue operand {idx} is not a run-time tensor")
                name = f"e{idx}"
                numel = 1
                for d in ref.dims:
                    numel = numel * as_dim(d)
                if as_dim(numel) == 1:
                    names[idx] = f"{name}[0]"
                elif len(ref.dims) == len(out_dims) and all(
                        as_dim(a) == as_dim(b) for a, b in zip(ref.dims, out_dims)):
                    names[idx] = f"{name}[{i}]"
                    if streams is not None:
                        streams.append(name)
                elif sum(1 for d in ref.dims if as_dim(d) != 1) == 1 and \
                        as_dim(ref.dims[len(ref.dims) - len(out_dims) + 1]) == as_dim(out_dims[1]):
                    names[idx] = f"{name}[{m}]"
                else:
                    k.fail(f"epilogue operand of shape {ref.dims} is neither per-element, "
                           f"per-channel nor scalar")
                decls.append(f"const {ref.ctype}* {name} = {ref.ptr};")
    return epilogue_expr(program, acc, names), decls


def _is_number(v) -> bool:
    """Contents known as numbers at compile time (Values and TensorRefs alike)."""
    return v is not None and v.const is not None and np.asarray(v.const).dtype != object


def weight_block(paths) -> int:
    """Output channels per block of the packed weights the direct kernel among a node's variant
    `paths` reads: 16 for the pixel-tile kernel, 8 for the others (Winograd has weights of its own;
    a node never compiles Pixels beside another direct path)."""
    from dydca.codegen.packing import BLOCK, PIXELS_BLOCK

    direct = {p for p in paths if p != "Winograd"}
    assert "Pixels" not in direct or len(direct) == 1, f"Pixels beside other direct paths: {paths}"
    return PIXELS_BLOCK if "Pixels" in direct else BLOCK


def _packed_floats(w_shape, group, transpose, block=None):
    """Floats of the packed weights in blocks of `block` output channels (default 8) (0: depthwise
    conv, read in the ONNX layout in place)."""
    from dydca.codegen.packing import BLOCK

    block = block or BLOCK
    a, b = int(w_shape[0]), int(w_shape[1])
    taps = int(np.prod([int(d) for d in w_shape[2:]]))
    if transpose:  # [C, Mg, k...]
        cg, mg = a // group, b
    else:  # [M, Cg, k...]
        if b == 1 and group == a:
            return 0
        cg, mg = b, a // group
    return group * -(-mg // block) * block * cg * taps


def _pack_bytes(w_static, group, transpose, block=None) -> int:
    """Scratch bytes for weights packed per call (+64 for alignment; 0: constant or depthwise)."""
    n = _packed_floats(w_static, group, transpose, block)
    return n * 4 + 64 if n else 0


def _scratch(ctx, transpose):
    """Run-time weights are packed per call: scratch for the packed copy (+64 for alignment).
    Winograd keeps each worker's transformed input tiles in scratch (winograd_scratch_bytes); a
    strided 1x1 conv on the GEMM path its gathered input, and the pixel-tile kernel its zero-padded
    input, after any packed weights."""
    w = ctx.ins[1]
    labels = [] if transpose else [label for _, label in conv_variants(ctx)]
    pack = 0 if _is_number(w) else _pack_bytes(w.shape, int(ctx.attrs.get("group", 1)), transpose,
                                                weight_block(labels))
    if "Pixels" in labels:
        x = ctx.ins[0]
        pixels = pack + pixels_scratch_bytes(x.shape[0], x.shape[1], geometry_2d(ctx, x.shape, w.shape))
        return sympy.Max(pixels, winograd_scratch_bytes(int(w.shape[1]))) if "Winograd" in labels else pixels
    if "Winograd" in labels:
        return winograd_scratch_bytes(int(w.shape[1]))
    if "StridedGemm1x1" in labels:
        x = ctx.ins[0]
        return pack + strided_1x1_scratch_bytes(x.shape[0], x.shape[1], geometry_2d(ctx, x.shape, w.shape)["out"])
    return pack


def _store(k, y):
    """The conv's own output dims [N, M, OH(, OW)] and the C++ store object (or None)."""
    store = k.attrs.get("store")
    if k.attrs.get("channels_last_out"):  # compiler/passes/channels_last.py
        if store or y.rank != 4:
            k.fail("a channels-last output needs a 4-D conv without a store layout")
        n, m, oh, ow = (k.dimexpr(d) for d in y.dims)
        return tuple(y.dims), f"dydca::ChannelsLastStore{{ {m}, {oh}, {ow} }}"
    if not store:
        return tuple(y.dims), None
    if store.get("op") != "DepthToSpace" or store.get("mode") not in ("DCR", "CRD"):
        k.fail(f"unsupported conv store {store!r}")
    dims = tuple(store["shape"])
    b = int(store["blocksize"])
    if len(dims) != 4 or int(as_dim(dims[1])) % (b * b):
        k.fail(f"DepthToSpace store of blocksize {b} over conv output {dims}")
    obj = (f"dydca::DepthToSpaceStore<{b}, {'true' if store['mode'] == 'DCR' else 'false'}>"
           f"{{ {k.dimexpr(dims[1])}, {k.dimexpr(dims[2])}, {k.dimexpr(dims[3])} }}")
    return dims, obj


def general_path(mg: int) -> str:
    """The general kernel's kind for mg output channels per group: it computes them in pairs of
    8-channel blocks, so one block (General8) or an even number (General16) needs one tile width."""
    from dydca.codegen.packing import BLOCK

    blocks = -(-mg // BLOCK)
    return "General8" if blocks == 1 else "General16" if blocks % 2 == 0 else "General"


# ConvTranspose with few output channels per group and no dilation takes the stride-phase kernel
# (runtime_cpp/include/dydca/conv.h: ct_wv_row, each phase a stride-1 conv through FewChannels'
# width-vectorised tiles), the general kernel otherwise, which fills Mg of its 8 lanes.  Measured
# (1 thread, thread CPU time, median of 5, 32 input channels, stride 2), the phases against General8:
#   Mg 1-4: 9x9 kernels +14..+144% (inputs 24x24 and 6x6); 3x3 / 4x4 (at most 2 taps per phase
#           and axis) +14..+126% on inputs 24-48 wide, -5..-35% on inputs 6-8 wide (output rows of
#           12-16 pixels), whence the narrow-row variant below (phases of 1 tap, with still fewer
#           FMAs per pixel, take the same limit, unmeasured);
#   Mg 5-7: (two passes of the phases, one channel group of 4 and the rest) -5..-65% (+2% once).
# FSRCNN x2's 9x9 stride-2 56->3 upscale at 16x3x96x96, 2 threads: 56 ms against the general
# kernel's 154 in the model profile.
CT_FEW_CHANNELS_MAX = 4  # dydca::detail::kCtFewChannelsMax
CT_NARROW_ROW = 16  # widest output row on which General8 runs a ConvTranspose of 1-2 taps per phase


def conv_transpose_path(mg: int, dilations) -> str:
    """The dydca::ConvPath of a ConvTranspose (the same choice conv_transpose2d's Auto makes; on
    narrow rows conv_variants may add General8)."""
    if mg <= CT_FEW_CHANNELS_MAX and all(int(d) == 1 for d in dilations):
        return "FewChannels"
    return general_path(mg)


# Convs with few input channels per group (the RGB first layers of the SR nets) take the panel
# micro-kernel (runtime_cpp/include/dydca/conv.h: fi_row) instead of the general kernel, whose
# channel loop is only Cg long and whose border pixels run one at a time.  Measured (bench/kernels/
# bench.cpp `first`, 1 thread, CPU time, best of 9, load ~3.5-4.5 on 2 cores), FewInputs against the
# general kernel: 5x5 3->64 on 64x3x48x48 +16%, 5x5 3->56 on 16x3x96x96 +9%, 3x3 3->64 on
# 64x3x48x48 +14%, 3x3 3->32 / 3->16 / 5x5 3->12 on 16x3x96x96 +0..2%, 5x5 3->64 on a 270x480
# frame -2% (noise level).  In the models (Model.profile, 2 threads, median of 7, load ~3.8): ESPCN
# x2's 5x5 3->64 at 64x3x48x48 19.4 -> 17.0 ms, FSRCNN x2's 5x5 3->56 at 16x3x96x96 16.9 -> 15.3 ms,
# EDSR x2's 3x3 3->32 at 64x3x48x48 5.8 -> 5.1 ms.
FEW_INPUTS_MAX = 3  # dydca::detail::kFewInputsMax


def conv_path(kernel, strides, begin, end, m, cg, group, store, dilations=(1, 1)) -> str:
    """The dydca::ConvPath a Conv node's static facts select (the same choice conv2d's Auto makes
    at run time), so the node compiles only that kernel path (conv_variants may add a narrow-row
    variant). The 1x1 GEMM path needs pads known to be 0; symbolic pads take the direct kernels
    (correct for any pads)."""
    from dydca.codegen.packing import _is_depthwise

    if _is_depthwise(m, cg, group):
        return "Depthwise"
    if (list(kernel) == [1, 1] and list(strides) == [1, 1] and store is None
            and all(as_dim(p) == 0 for p in (*begin, *end))):
        return "Gemm1x1"
    if m // group < 8 and strides[1] == 1:
        return "FewChannels"
    if cg <= FEW_INPUTS_MAX and all(int(d) == 1 for d in dilations):
        return "FewInputs"
    return general_path(m // group)


# Per-call kernel variants (OpDef.variants).  Where conv_path picks FewChannels (Mg < 8, unit width
# stride), the channel-vectorised General8 kernel can be faster on narrow output rows: FewChannels
# sweeps the input once per 4 output channels (twice for Mg 5-7), General8 takes all Mg <= 8 in
# one pass but wastes 8 - Mg lanes.  Measured (bench/kernels/bench.cpp `variants`, 1 thread, CPU
# time, 32 input channels, rows of 6..48 and 64..512 pixels, 64 rows per image) with FewChannels'
# border pixels vectorised (masked edge tiles), General8 versus FewChannels:
#   Mg 1-3: FewChannels wins everywhere (3x3 and 5x5), but for one +19% row (3x3 Mg 3, width 9);
#   Mg 4:   3x3 +2..38% on rows of 6-13 pixels, losses from 14 (-7..-50%); 5x5: losses (but +3% at 9);
#   Mg 5-7: 3x3 +10..150% on rows up to 48 (losses where a 64-row plane is 4 KiB-aliased), -7..-25%
#           from 64 up and on 270x480 / 540x960 frames; 5x5 (Mg 6) +22..59% on rows of 9-36.
# 1-D convs (a kernel of height 1) take the same limits, unmeasured.
def narrow_row_limit(mg: int, border: int) -> int:
    """Widest output row (pixels) on which General8 beats FewChannels, for mg output channels per
    group and `border` = (KW-1)*DW border pixels per row (0 for 1-wide kernels: never)."""
    if border == 0 or mg <= 3:
        return 0
    if mg == 4:
        return 13 if border <= 2 else 0
    return 48 if border <= 2 else 36


# Winograd F(4x4, 3x3) (runtime_cpp/include/dydca/winograd.h) for 3x3 stride-1 dilation-1 convs
# with constant weights and at least WINOGRAD_MIN_CHANNELS input and output channels per group,
# on outputs of at least WINOGRAD_MIN_SIDE rows and columns.  Measured (bench/kernels/bench.cpp
# `winograd`, 1 thread, CPU time, best of 7), Winograd versus the direct kernel:
#   32->32: 1x270x480 +47%, 16x48x48 +47%, 64x32x32 +74%, 64x16x16 +86%, 64x12x12 +31%,
#           64x8x8 +12%, 64x6x6 -21% (4x4 tiles pad 6 to 8), 1x2x600 -34% (2 of 4 tile rows);
#   64->64: 1x270x480 +125%, 16x48x48 +112%, 64x32x32 +146%, 64x8x8 +66%;
#   16->16: 64x32x32 +16%, 64x8x8 -28%;  24->24 64x24x24 +30%;  32->16 / 16->32 64x32x32 +26% / +46%;
#   12->12: 1x270x480 +47%, 64x48x48 +22%, 64x16x16 +32%;  12->32 +16%, 32->12 +31% (1x270x480);
#   8->8 +6%, 8->32 +0% (1x270x480);  32->3 -17..-23% on frames and 48x48+ patches, 32->1 -37%.
# Full 540x960 frames (the same bench, 1 thread): 32->32 +70%, 32->12 +45%, 16->12 +29%, 12->12 +26%,
#   24->16 +21%, 16->16 +12%; 8->32 (no Winograd: under 12 channels) -3%.
# Wide convs on small maps, batch 1 (ResNet's last stages): 512->512 7x7 -18%, 256->256 7x7 -32%,
#   512->512 6x6 -37%, 4x4 -59%; 128->128 10x10 +56%, 64->64 10x10 +8%, 32->32 10x10 -19%;
#   256->256 14x14 +119%; a batch of four 512->512 7x7 maps +152% (blocks of 16 tiles fill up).
# Sides of 12 and more keep every measured loss out (sides 9-11 pad like 6: 3 tiles for 9-11);
# under 12 channels in or out the transforms cost what the GEMMs save.
WINOGRAD_MIN_SIDE = 12
WINOGRAD_MIN_CHANNELS = 12
WINOGRAD_MAX_WORKERS = 16  # dydca::kWinogradMaxWorkers: threads one call uses at most
WINOGRAD_TILES = 16  # tiles per block (one GEMM panel)


# Strided 1x1 convs without padding (ResNet's projection shortcuts) take the 1x1 GEMM path with
# their input pixels gathered into scratch first (dydca::conv2d_1x1_strided, variant
# "StridedGemm1x1") instead of the direct kernel.  Measured (bench/kernels/bench.cpp `resnet` and
# the same calls at other sizes: 1 thread, CPU time, interleaved calls, weights cold as in a model;
# stride 2, batch 1), GEMM versus the direct kernel: ResNet-50's 256->512 56->28 +23..38%,
# 512->1024 28->14 +36..65%, 1024->2048 14->7 +25..58%; 256->512 on 5x5, 4x4, 3x3 outputs +15%,
# +35..67%, +20..30%; 32->64 10x10 and 5x5 +18..33%, 16->24 3x3 +6%.  (Before the GEMM's few-pixel
# tail kernel, 7x7 outputs lost 5-12%.)
def strided_1x1_fits(kernel, strides, begin, end, store) -> bool:
    """Whether a conv is a strided 1x1 one without padding (dydca::conv2d_1x1_strided)."""
    return (list(kernel) == [1, 1] and list(strides) != [1, 1] and store is None
            and all(as_dim(p) == 0 for p in (*begin, *end)))


def strided_1x1_scratch_bytes(n, c, out) -> object:
    """dydca::conv2d_1x1_strided_scratch_bytes: the gathered input, N x C x OH x OW floats + 64."""
    return as_dim(n) * as_dim(c) * as_dim(out[0]) * as_dim(out[1]) * 4 + 64


# The pixel-tile direct kernel (dydca::conv2d_pixels, variant "Pixels") for general 3x3 convs of
# 128+ input channels per group that Winograd does not take: the output plane cut into 6-pixel
# tiles across rows over a zero-padded input copy (the node's scratch), instead of the row
# kernel's per-row tiles and one-pixel border and remainder tiles.  Measured (bench/kernels/
# bench.cpp `pixels`: best of 40 interleaved calls, batch 1 unless noted), Pixels versus the row
# kernel, 2 threads / 1 thread: 512->512 7x7 +33% / +18%, batch 4 +40% / +38%; 256->256 14x14
# +7% / +13%; 128->128 28x28 +21% / +21%; stride 2: 128 56->28 +8% / +13%, 256 28->14 +20% /
# +21%, 512 14->7 +5% / +7%; 128->128 10x10 +16% / +33%.  Below 128 channels it ties or loses at
# 2 threads: 64->64 10x10 +5% (-11% in another run) / +24%, 32->32 8x8 -38% / -11% (batch 64:
# -23% / -14%).  Since its tile is 32 channels wide with AVX-512VL (conv.h: kCvNB), the same
# bench at 2 threads: 512->512 7x7 +45% (batch 4 +46%), 256->256 14x14 +10%, 128->128 28x28 +34%,
# stride 2 +29% / +39% / +25%, 128->128 10x10 +24%, 64->64 10x10 +7%, 32->32 8x8 -42% (batch 64
# -20%).  1x1 convs keep their own kernels (conv.h: the GEMM and gemm1x1_cv).
PIXELS_MIN_CHANNELS = 128


def pixels_fits(kernel, m, cg, group) -> bool:
    """Whether a Conv's static facts select the pixel-tile kernel (over the row kernel)."""
    return list(kernel) == [3, 3] and cg >= PIXELS_MIN_CHANNELS and m // group >= 8


def pixels_scratch_bytes(n, c, g) -> object:
    """dydca::conv2d_pixels_scratch_bytes: 0 where no pad is possible (the input read in place),
    else the zero-padded input, N x C x Hp x Wp floats + 64 (Hp, Wp: what the taps reach)."""
    if all(as_dim(p) == 0 for p in (*g["begin"], *g["end"])):
        return 0
    hp, wp = ((as_dim(o) - 1) * s + (k - 1) * d + 1
              for o, s, k, d in zip(g["out"], g["strides"], g["kernel"], g["dilations"]))
    return as_dim(n) * as_dim(c) * hp * wp * 4 + 64


def winograd_scratch_bytes(cg: int) -> int:
    """dydca::winograd_scratch_bytes: each worker's transformed input, 36 x Cg x 16 floats."""
    return WINOGRAD_MAX_WORKERS * 36 * cg * WINOGRAD_TILES * 4 + 64


def winograd_fits(kernel, strides, dilations, m, cg, group, const_weights) -> bool:
    """Whether a Conv's static facts allow the Winograd variant."""
    return (list(kernel) == [3, 3] and list(strides) == [1, 1] and list(dilations) == [1, 1]
            and const_weights and cg >= WINOGRAD_MIN_CHANNELS and m // group >= WINOGRAD_MIN_CHANNELS)


def settle_variants(variants, dims) -> list:
    """The variants [(condition or None, label), ...] (the first whose condition holds runs; None:
    always) that the declared box can take: a condition false over the whole box drops its
    variant, one true over it ends the list (as the unconditional last variant)."""
    from ..control_flow import decide_over_range

    out = []
    for cond, label in variants:
        known = True if cond is None else decide_over_range(cond, dims)
        if known is False:
            continue
        out.append((None if known else cond, label))
        if known:
            break
    return out


def conv_variants(ctx) -> list:
    """OpDef.variants of Conv and ConvTranspose: [(dims condition or None, dydca::ConvPath name)],
    the kernels a node compiles and the condition on the call's dims that picks each."""
    x, w = ctx.ins[0], ctx.ins[1]
    group = int(ctx.attrs.get("group", 1))
    g = geometry_2d(ctx, x.shape, w.shape, ctx.node.op == "ConvTranspose")
    if ctx.node.op == "ConvTranspose":  # weights [C, Mg, k...]; both paths read one packing
        mg = int(w.shape[1])
        path = conv_transpose_path(mg, g["dilations"])
        if path != "FewChannels" or -(-g["kernel"][-1] // g["strides"][-1]) > 2:
            return [(None, path)]
        return settle_variants([(sympy.Le(g["out"][-1], CT_NARROW_ROW), general_path(mg)), (None, path)],
                               ctx.dims)
    m, cg = int(w.shape[0]), int(w.shape[1])
    path = conv_path(g["kernel"], g["strides"], g["begin"], g["end"], m, cg, group, ctx.attrs.get("store"),
                     g["dilations"])
    if path.startswith("General") and pixels_fits(g["kernel"], m, cg, group):
        path = "Pixels"
    if winograd_fits(g["kernel"], g["strides"], g["dilations"], m, cg, group, _is_number(w)):
        oh, ow = g["out"]
        big = sympy.And(sympy.Ge(oh, WINOGRAD_MIN_SIDE), sympy.Ge(ow, WINOGRAD_MIN_SIDE))
        return settle_variants([(big, "Winograd"), (None, path)], ctx.dims)
    if strided_1x1_fits(g["kernel"], g["strides"], g["begin"], g["end"], ctx.attrs.get("store")):
        return [(None, "StridedGemm1x1")]
    if path != "FewChannels":
        return [(None, path)]
    limit = narrow_row_limit(m // group, (g["kernel"][-1] - 1) * g["dilations"][-1])
    if limit == 0:
        return [(None, path)]
    return settle_variants([(sympy.Le(g["out"][-1], limit), "General8"), (None, path)], ctx.dims)


def _lower(k, transpose):
    from dydca.codegen.packing import pack_conv2d, pack_conv2d_winograd, pack_conv_transpose2d

    from .layout import node_ctx

    x, wt, y = k.ins[0], k.ins[1], k.outs[0]
    if wt.static is None:
        k.fail("convolution weights must have a fixed shape")
    group = int(k.attrs.get("group", 1))
    g = geometry_2d(k, x.dims, wt.static, transpose)
    dims, store = _store(k, y)
    if x.rank == 3:
        h, wd, oh, ow = "INT64_C(1)", x.shape[2], "INT64_C(1)", k.dimexpr(dims[2])
    else:
        h, wd, oh, ow = x.shape[2], x.shape[3], k.dimexpr(dims[2]), k.dimexpr(dims[3])
    params = {}
    variants = [dict(cond=None if c is None else k.dimexpr(c), path=p)
                for c, p in conv_variants(node_ctx(k))]
    direct = any(v["path"] != "Winograd" for v in variants)
    block = weight_block([v["path"] for v in variants])
    if any(v["path"] == "Pixels" for v in variants):  # after any per-call packed weights
        pack = 0 if _is_number(wt) else _pack_bytes(wt.static, group, transpose, block)
        params["padded"] = f"static_cast<void*>(static_cast<char*>({k.params['scratch']}) + {pack})"
    if any(v["path"] == "StridedGemm1x1" for v in variants):  # after any per-call packed weights
        pack = 0 if _is_number(wt) else _pack_bytes(wt.static, group, transpose)
        params["gather"] = f"static_cast<void*>(static_cast<char*>({k.params['scratch']}) + {pack})"
    if _is_number(wt):
        w = np.asarray(wt.const, np.float32)
        w = w[:, :, None, :] if x.rank == 3 else w
        # only the kernels the node compiles get their weights
        packed = pack_conv_transpose2d(w, group) if transpose else pack_conv2d(w, group, block)
        weights = k.blob(packed) if direct else "nullptr"
        if any(v["path"] == "Winograd" for v in variants):
            params["winograd"] = dict(weights=k.blob(pack_conv2d_winograd(w, group)), scratch=k.params["scratch"])
    else:  # packed per call into the planner's scratch (depthwise: read in place)
        a, b = wt.static[0], wt.static[1]
        params["pack"] = dict(fn="pack_conv_transpose2d_weights" if transpose else "pack_conv2d_weights",
                              src=wt.ptr, a=a, b=b, scratch=k.params["scratch"], block=block,
                              needs_scratch=_packed_floats(wt.static, group, transpose, block) > 0)
        weights = "wpk"
    bias = k.ins[2] if len(k.ins) > 2 else None
    streams = []
    expr, decls = epilogue(k, dims, streams=streams)
    return dict(
        params, fn_name="conv_transpose2d" if transpose else "conv2d",
        kh=g["kernel"][0], kw=g["kernel"][1], sh=g["strides"][0], sw=g["strides"][1],
        dh=g["dilations"][0], dw=g["dilations"][1], group=group,
        pad_t=k.dimexpr(g["begin"][0]), pad_l=k.dimexpr(g["begin"][1]),
        h=h, wd=wd, oh=oh, ow=ow, m=k.dimexpr(dims[1]),
        weights=weights, bias=bias.ptr if bias is not None else "nullptr",
        epi_expr=expr, epi_decls=decls, epi_streams=streams, store=store, variants=variants,
        channels_last_in=bool(k.attrs.get("channels_last_in")),
    )


for _name, _infer, _t in (("Conv", _conv_infer, False), ("ConvTranspose", _conv_transpose_infer, True)):
    register(OpDef(_name, Category.SHAPE_FROM_SHAPES, _infer, Fusion.ANCHOR, "conv",
                   attrs={"group": 1, "auto_pad": "NOTSET"},
                   lower=(lambda t: lambda k: _lower(k, t))(_t), variants=conv_variants,
                   scratch=(lambda t: lambda ctx: _scratch(ctx, t))(_t)))
