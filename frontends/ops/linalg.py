"""Matrix products: MatMul (N-d, broadcasting batches, 1-D operands) and Gemm, on the shared GEMM
kernel (runtime_cpp/include/dydca/gemm.h) through linalg.h. Constant B operands are packed at
compile time (codegen/packing.py); run-time ones are packed per call into arena scratch that the
planner reserves from the ops' `scratch` rules. Both take a fused element-wise epilogue
(attrs["epilogue"], the same program format as Conv's)."""
from __future__ import annotations

import numpy as np
import sympy

from ..symbolic import as_dim
from . import Category, Fusion, OpDef, register
from .elementwise import broadcast_shapes, broadcast_strides
from .shape import prod_dims as _prod

F = 4  # bytes per float


def _is_number(v) -> bool:
    """Contents known as numbers at compile time (works on Values and TensorRefs)."""
    return v is not None and v.const is not None and np.asarray(v.const).dtype != object


# ---- MatMul ----

def matmul_geometry(ctx, a_dims, b_dims):
    """Batch dims of A and B (right-aligned, 1-D operands promoted), M, K, N and the output shape."""
    a_dims, b_dims = tuple(map(as_dim, a_dims)), tuple(map(as_dim, b_dims))
    if not a_dims or not b_dims:
        ctx.fail("MatMul operands must have rank >= 1")
    a2 = (sympy.Integer(1),) + a_dims if len(a_dims) == 1 else a_dims
    b2 = b_dims + (sympy.Integer(1),) if len(b_dims) == 1 else b_dims
    M, K, K2, N = a2[-2], a2[-1], b2[-2], b2[-1]
    if K.is_Integer and K2.is_Integer and K != K2:
        ctx.fail(f"inner dimensions differ: A {tuple(map(str, a_dims))} x B {tuple(map(str, b_dims))}")
    batch = broadcast_shapes(ctx, [a2[:-2], b2[:-2]])
    out = tuple(batch) + ((M,) if len(a_dims) > 1 else ()) + ((N,) if len(b_dims) > 1 else ())
    return dict(a_batch=a2[:-2], b_batch=b2[:-2], batch=tuple(batch), M=M, K=K, N=N, out=out)


def _matmul_infer(ctx):
    a, b = ctx.ins[0], ctx.ins[1]
    return [(a.dtype, matmul_geometry(ctx, a.shape, b.shape)["out"])]


def gemm_scratch(M, N, K):
    """Bytes dydca::gemm_scratch_bytes may ask for (B packed into 16-column panels), bounded
    without a division so that the planner's bound stays exact at the corners."""
    return (as_dim(N) + 15) * as_dim(K) * F + 64


def _matmul_scratch(ctx):
    if _is_number(ctx.ins[1]):
        return 0  # B packed at compile time
    g = matmul_geometry(ctx, ctx.ins[0].shape, ctx.ins[1].shape)
    return gemm_scratch(g["M"], g["N"], g["K"])


def _batch_strides(k, batch, sub):
    """Matrix strides of an operand with batch dims `sub` over the output's batch axes."""
    out, acc = [], sympy.Integer(1)
    for j in range(len(batch) - 1, -1, -1):
        i = j - (len(batch) - len(sub))
        d = as_dim(sub[i]) if i >= 0 else sympy.Integer(1)
        out.insert(0, "INT64_C(0)" if d == 1 and as_dim(batch[j]) != 1 else k.dimexpr(acc))
        acc = acc * d
    return out


def pack_b(k, b, K, N, transposed=False):
    """Packs constant B matrices (any leading batch dims) for gemm.h; returns (pointer, stride)."""
    from dydca.codegen.packing import pack_gemm_b, packed_gemm_b_size

    mats = np.asarray(b, np.float32)
    mats = mats.reshape(-1, *mats.shape[-2:]) if mats.ndim > 1 else mats.reshape(1, -1, 1)
    if transposed:
        mats = mats.transpose(0, 2, 1)
    packed = np.concatenate([pack_gemm_b(m).reshape(-1) for m in mats])
    return k.blob(packed), packed_gemm_b_size(int(K), int(N))


def _matmul_lower(k):
    a, b, y = k.ins[0], k.ins[1], k.outs[0]
    g = matmul_geometry(k, a.dims, b.dims)
    batch, M = list(g["batch"]), g["M"]
    # B shared by every batch (a weight): A's batches are consecutive rows of one taller product
    fold = all(as_dim(d) == 1 for d in g["b_batch"]) and batch
    if fold:
        M, batch = M * _prod(g["a_batch"]), []
    nb = max(len(batch), 1)
    params = dict(nb=nb, M=k.dimexpr(M), N=k.dimexpr(g["N"]), K=k.dimexpr(g["K"]),
                  bn=[k.dimexpr(d) for d in batch] or ["INT64_C(1)"],
                  sa=_batch_strides(k, batch, g["a_batch"]) or ["INT64_C(0)"],
                  sb=_batch_strides(k, batch, g["b_batch"]) or ["INT64_C(0)"])
    if _is_number(b):
        if not (as_dim(g["K"]).is_Integer and as_dim(g["N"]).is_Integer):
            k.fail("a constant B must have fixed K and N")
        params["b_packed"], params["packed_stride"] = pack_b(k, b.const, g["K"], g["N"])
        params["b"] = "nullptr"
    else:
        params.update(b=b.ptr, b_packed="nullptr", packed_stride=0)
    params["epi_expr"], params["epi_decls"] = epilogue(k, y, M_rows=g["M"], folded=bool(fold))
    return params


register(OpDef("MatMul", Category.SHAPE_FROM_SHAPES, _matmul_infer, Fusion.ANCHOR, "matmul",
               lower=_matmul_lower, scratch=_matmul_scratch))


# ---- Gemm ----

def _gemm_dims(ctx, a_shape, b_shape):
    if len(a_shape) != 2 or len(b_shape) != 2:
        ctx.fail("Gemm operands must be 2-D")
    ta, tb = int(ctx.attrs.get("transA", 0)), int(ctx.attrs.get("transB", 0))
    M, K = (a_shape[1], a_shape[0]) if ta else (a_shape[0], a_shape[1])
    K2, N = (b_shape[1], b_shape[0]) if tb else (b_shape[0], b_shape[1])
    if as_dim(K).is_Integer and as_dim(K2).is_Integer and as_dim(K) != as_dim(K2):
        ctx.fail(f"inner dimensions differ: {K} vs {K2}")
    return as_dim(M), as_dim(K), as_dim(N), ta, tb


def _gemm_infer(ctx):
    a, b = ctx.ins[0], ctx.ins[1]
    M, K, N, _, _ = _gemm_dims(ctx, a.shape, b.shape)
    c = ctx.ins[2] if len(ctx.ins) > 2 else None
    if c is not None:
        broadcast_shapes(ctx, [(M, N), c.shape])  # C must broadcast to [M, N]
        if len(c.shape) > 2:
            ctx.fail("C must have rank <= 2")
    return [(a.dtype, (M, N))]


def _gemm_scratch(ctx):
    a, b = ctx.ins[0], ctx.ins[1]
    M, K, N, ta, tb = _gemm_dims(ctx, a.shape, b.shape)
    need = sympy.Integer(0)
    if ta and not _is_number(a):
        need += M * K * F + 64  # A transposed per call
    if not _is_number(b):
        need += gemm_scratch(M, N, K)
        if tb:
            need += K * N * F + 64  # B transposed per call
    return need


def _gemm_lower(k):
    a, b = k.ins[0], k.ins[1]
    M, K, N, ta, tb = _gemm_dims(k, a.dims, b.dims)
    params = dict(M=k.dimexpr(M), N=k.dimexpr(N), K=k.dimexpr(K), trans_a=False, trans_b=False,
                  a=a.ptr, b=b.ptr, b_packed="nullptr")
    if ta:
        if _is_number(a):
            params["a"] = k.blob(np.ascontiguousarray(np.asarray(a.const, np.float32).T))
        else:
            params["trans_a"] = True
    if _is_number(b):
        params["b_packed"], _ = pack_b(k, b.const, K, N, transposed=bool(tb))
    elif tb:
        params["trans_b"] = True
    expr, decls = gemm_epilogue(k, M)
    params.update(epi_expr=expr, epi_decls=decls)
    return params


def gemm_epilogue(k, M):
    """Gemm's store expression for the product `v` at (r, c): alpha * v + beta * C (C broadcast
    over the output), then the fused epilogue; and the declarations it reads. Both targets use it."""
    y = k.outs[0]
    alpha, beta = float(k.attrs.get("alpha", 1.0)), float(k.attrs.get("beta", 1.0))
    c = k.ins[2] if len(k.ins) > 2 else None
    acc = "v" if alpha == 1.0 else f"({c_float(alpha)} * v)"
    decls = []
    if c is not None and beta != 0.0:
        st = broadcast_strides(c, 2, y.dims)
        decls.append(f"const float* cm = {c.ptr};")
        term = f"cm[r * {st[0]} + c * {st[1]}]"
        acc = f"({acc} + {term})" if beta == 1.0 else f"({acc} + {c_float(beta)} * {term})"
    expr, more = epilogue(k, y, acc=acc, M_rows=M, folded=False)
    return expr, decls + more


def c_float(x):
    from dydca.codegen.emit import c_float as cf
    return cf(x)


register(OpDef("Gemm", Category.SHAPE_FROM_SHAPES, _gemm_infer, Fusion.ANCHOR, "gemm",
               attrs={"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0},
               lower=_gemm_lower, scratch=_gemm_scratch))


# ---- fused epilogue ----

def epilogue(k, out, acc="v", M_rows=None, folded=False):
    """C++ expression applying attrs["epilogue"] (a fused element-wise program, see compiler/passes)
    to the product's element `acc` at (batch b, row r, col c) of the output, and the declarations
    of the operands it reads. An operand may be shaped like the output, or broadcast over the
    batch axes (then indexed by row and column only)."""
    from .elementwise import epilogue_expr

    program = k.attrs.get("epilogue") or []
    decls, names = [], {}
    R = out.rank
    for _, _, refs in program:
        for kind, idx in refs:
            if kind != "in" or idx in names:
                continue
            ref = k.ins[idx]
            if ref is None:
                k.fail(f"epilogue operand {idx} is not a run-time tensor")
            st = broadcast_strides(ref, R, out.dims) if R else ["INT64_C(0)"]
            name = f"e{idx}"
            decls.append(f"const {ref.ctype}* {name} = {ref.ptr};")
            same = len(ref.dims) == R and all(as_dim(p) == as_dim(q) for p, q in zip(ref.dims, out.dims))
            if same:  # output-shaped: the output's own flat index
                names[idx] = f"{name}[(b * M + r) * N + c]"
                continue
            # the product's matrix axes are the output's last two; a 1-D MatMul operand drops one
            has_row = len(k.ins[0].dims) > 1
            has_col = len(k.ins[1].dims) > 1
            n_mat = int(has_row) + int(has_col)
            if any(s != "INT64_C(0)" for s in st[:R - n_mat]):
                k.fail(f"epilogue operand of shape {tuple(map(str, ref.dims))} varies along batch "
                       f"axes without matching the output shape")
            row = st[R - n_mat] if has_row else "INT64_C(0)"
            col = st[R - 1] if has_col else "INT64_C(0)"
            if folded and row != "INT64_C(0)" and not any(d.startswith("const int64_t Mm") for d in decls):
                decls.insert(0, f"const int64_t Mm = {k.dimexpr(M_rows)};  // rows of one product")
            r = "(r % Mm)" if folded and row != "INT64_C(0)" else "r"
            names[idx] = f"{name}[{r} * {row} + c * {col}]"
    return epilogue_expr(program, acc, names), decls
