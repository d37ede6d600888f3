"""MatMul and Gemm against onnxruntime: each model compiled once, run at several shapes (symbolic
dims included), with run-time and constant B, broadcast batches, 1-D operands and transposes."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import dydca
from tests.oracle import check_model, make_model, tensor

rng = np.random.default_rng(11)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def node(op, ins, out, **attrs):
    return helper.make_node(op, ins, [out], **attrs)


def test_matmul_runtime_operands_broadcast_batches():
    """Both operands at run time: batched, broadcast batch axes, plain 2-D and 1-D operands."""
    nodes = [node("MatMul", ["a", "b"], "batched"),      # [n, h, m, k] x [n, h, k, p]
             node("MatMul", ["a", "b1"], "bcast"),       # [n, h, m, k] x [h, k, p]
             node("MatMul", ["a2", "b2"], "plain"),      # [m, k] x [k, p]
             node("MatMul", ["v", "b2"], "vec_left"),    # [k] x [k, p]
             node("MatMul", ["a2", "v"], "vec_right"),   # [m, k] x [k]
             node("MatMul", ["a2", "b3"], "a2_batched_b")]  # [m, k] x [2, k, p]
    ins = [("a", ["n", 3, "m", "k"]), ("b", ["n", 3, "k", "p"]), ("b1", [3, "k", "p"]), ("a2", ["m", "k"]),
           ("b2", ["k", "p"]), ("v", ["k"]), ("b3", [2, "k", "p"])]
    model = make_model(nodes, ins, [n.output[0] for n in nodes])

    def shapes(n, m, k, p):
        return {"a": (n, 3, m, k), "b": (n, 3, k, p), "b1": (3, k, p), "a2": (m, k), "b2": (k, p), "v": (k,),
                "b3": (2, k, p)}
    check_model(model, [shapes(1, 1, 1, 1), shapes(2, 7, 33, 17), shapes(1, 64, 40, 100), shapes(3, 13, 5, 16)],
                {"n": (1, 3), "m": (1, 64), "k": (1, 64), "p": (1, 128)})


def test_matmul_constant_b():
    """Constant B packed at compile time: 2-D weight (batch folded into rows), batched weight, 1-D."""
    nodes = [node("MatMul", ["x", "w"], "proj"), node("MatMul", ["x", "wb"], "batched_w"),
             node("MatMul", ["x", "wv"], "to_vec"), node("MatMul", ["x2", "w"], "two_d")]
    model = make_model(nodes, [("x", ["b", "t", 24]), ("x2", ["t", 24])], [n.output[0] for n in nodes],
                       [("w", f32(24, 40)), ("wb", f32(3, 1, 24, 5)), ("wv", f32(24))])
    check_model(model, [{"x": (1, 1, 24), "x2": (1, 24)}, {"x": (2, 19, 24), "x2": (19, 24)},
                        {"x": (3, 64, 24), "x2": (64, 24)}], {"b": (1, 3), "t": (1, 64)})


def test_matmul_constant_a():
    model = make_model([node("MatMul", ["w", "x"], "y")], [("x", [16, "p"])], ["y"], [("w", f32(2, 9, 16))])
    check_model(model, [{"x": (16, 1)}, {"x": (16, 31)}, {"x": (16, 200)}], {"p": (1, 256)})


GEMM_CASES = [
    dict(),
    dict(alpha=0.5, beta=2.0),
    dict(transA=1),
    dict(transB=1, alpha=-1.5),
    dict(transA=1, transB=1, beta=0.25),
]


def test_gemm_runtime_b():
    nodes, outs = [], []
    for i, a in enumerate(GEMM_CASES):
        ai = "at" if a.get("transA") else "a"
        bi = "bt" if a.get("transB") else "b"
        nodes.append(node("Gemm", [ai, bi, ["c_full", "c_row", "c_col", "c_scalar", "c_full"][i]], f"y{i}", **a))
        outs.append(f"y{i}")
    nodes.append(node("Gemm", ["a", "b"], "no_c"))
    outs.append("no_c")
    ins = [("a", ["m", "k"]), ("at", ["k", "m"]), ("b", ["k", "n"]), ("bt", ["n", "k"]), ("c_full", ["m", "n"]),
           ("c_row", ["n"]), ("c_col", ["m", 1]), ("c_scalar", [1])]
    model = make_model(nodes, ins, outs, opset=13)

    def shapes(m, k, n):
        return {"a": (m, k), "at": (k, m), "b": (k, n), "bt": (n, k), "c_full": (m, n), "c_row": (n,),
                "c_col": (m, 1), "c_scalar": (1,)}
    check_model(model, [shapes(1, 1, 1), shapes(9, 17, 33), shapes(50, 64, 20), shapes(13, 8, 100)],
                {"m": (1, 64), "k": (1, 64), "n": (1, 128)})


def test_gemm_constant_b_and_c():
    """The classifier-head form: constant B (transB=1, packed transposed) and constant bias."""
    nodes = [node("Gemm", ["x", "w", "bias"], "fc", transB=1),
             node("Gemm", ["x", "w2", "bias2"], "fc2", alpha=2.0, beta=0.5),
             node("Gemm", ["wa", "xt", "bias"], "const_a", transA=1)]
    init = [("w", f32(10, 32)), ("bias", f32(10)), ("w2", f32(32, 7)), ("bias2", f32(1, 7)), ("wa", f32(32, 6))]
    model = make_model(nodes, [("x", ["n", 32]), ("xt", [32, 10])], ["fc", "fc2", "const_a"], init)
    check_model(model, [{"x": (1, 32), "xt": (32, 10)}, {"x": (5, 32), "xt": (32, 10)},
                        {"x": (64, 32), "xt": (32, 10)}], {"n": (1, 64)})


def test_matmul_scratch_is_planned():
    """A run-time B reserves arena scratch for the packing; a constant B needs none."""
    from dydca.compiler.pipeline import plan
    from dydca.frontends.onnx_import import from_onnx

    rt = make_model([node("MatMul", ["a", "b"], "y")], [("a", ["m", 64]), ("b", [64, "n"])], ["y"])
    cp = plan(from_onnx(rt, {"m": (1, 32), "n": (1, 100)}))
    (scratch,) = cp.plan.scratch.values()
    assert scratch.bytes >= ((100 + 15) // 16) * 16 * 64 * 4
    assert cp.plan.arena_bytes >= scratch.bytes
    const_b = make_model([node("MatMul", ["a", "w"], "y")], [("a", ["m", 64])], ["y"], [("w", f32(64, 8))])
    assert not plan(from_onnx(const_b, {"m": (1, 32)})).plan.scratch


def test_matmul_inner_dims_mismatch():
    from dydca.frontends.ops import ModelError
    model = make_model([node("MatMul", ["a", "b"], "y")], [("a", [2, 3]), ("b", [4, 5])], ["y"])
    with pytest.raises(ModelError, match="inner dimensions differ"):
        dydca.compile(model)


def test_encoder_block():
    """Transformer-encoder-style: token-id Gather, self-attention (MatMul, Softmax), residual Add,
    LayerNormalization; symbolic batch and sequence length."""
    d, heads, vocab = 32, 4, 50
    dh = d // heads
    init = [("emb", f32(vocab, d)), ("wq", f32(d, d) * 0.2), ("wk", f32(d, d) * 0.2), ("wv", f32(d, d) * 0.2),
            ("wo", f32(d, d) * 0.2), ("bo", f32(d)), ("g", f32(d)), ("beta", f32(d)),
            ("split", np.array([0, 0, heads, dh], np.int64)), ("merge", np.array([0, 0, d], np.int64)),
            ("scale", np.array(1 / np.sqrt(dh), np.float32))]
    nodes = [
        node("Gather", ["emb", "ids"], "x"),
        node("MatMul", ["x", "wq"], "q0"), node("MatMul", ["x", "wk"], "k0"), node("MatMul", ["x", "wv"], "v0"),
        node("Reshape", ["q0", "split"], "q1"), node("Reshape", ["k0", "split"], "k1"),
        node("Reshape", ["v0", "split"], "v1"),
        node("Transpose", ["q1"], "q", perm=[0, 2, 1, 3]), node("Transpose", ["k1"], "kt", perm=[0, 2, 3, 1]),
        node("Transpose", ["v1"], "v", perm=[0, 2, 1, 3]),
        node("MatMul", ["q", "kt"], "s0"), node("Mul", ["s0", "scale"], "s"),
        node("Softmax", ["s"], "p", axis=-1),
        node("MatMul", ["p", "v"], "o0"), node("Transpose", ["o0"], "o1", perm=[0, 2, 1, 3]),
        node("Reshape", ["o1", "merge"], "o2"),
        node("MatMul", ["o2", "wo"], "o3"), node("Add", ["o3", "bo"], "o4"), node("Add", ["o4", "x"], "r"),
        node("LayerNormalization", ["r", "g", "beta"], "y", axis=-1),
    ]
    model = make_model(nodes, [tensor("ids", TensorProto.INT64, ["b", "t"])], ["y"], init)
    check_model(model, [{"ids": (1, 1)}, {"ids": (2, 9)}, {"ids": (3, 40)}], {"b": (1, 3), "t": (1, 64)})


def _fuse_by_hand(graph, anchor_op, extra, program):
    """The fusion passes' output format, built by hand: the anchor node takes the chain after it."""
    anchor = next(n for n in graph.nodes if n.op == anchor_op)
    last = graph.nodes[-1]
    anchor.inputs = anchor.inputs + [""] * (3 - len(anchor.inputs)) + extra
    anchor.attrs["epilogue"] = program
    graph.values.pop(anchor.outputs[0])
    anchor.outputs = list(last.outputs)
    graph.nodes = [n for n in graph.nodes if n is anchor or n.op not in ("Add", "Relu", "Mul")]
    return graph


@pytest.mark.parametrize("b_const", [False, True])
def test_matmul_fused_epilogue(b_const):
    """attrs["epilogue"] on MatMul: a per-column bias, an output-shaped residual, Relu; with the
    batch folded into rows (constant B) and per batch (run-time B)."""
    import onnxruntime as ort
    from dydca.frontends.onnx_import import from_onnx
    from tests.oracle import assert_close, random_feeds

    nodes = [node("MatMul", ["x", "w"], "mm"), node("Add", ["mm", "bias"], "t"), node("Add", ["t", "res"], "u"),
             node("Relu", ["u"], "y")]
    ins = [("x", ["b", "t", 16]), ("res", ["b", "t", 24])] + ([] if b_const else [("w", ["b", 16, 24])])
    inits = [("bias", f32(24))] + ([("w", f32(16, 24))] if b_const else [])
    model = make_model(nodes, ins, ["y"], inits)
    dims = {"b": (1, 3), "t": (1, 40)}
    g = _fuse_by_hand(from_onnx(model, dims), "MatMul", ["bias", "res"],
                      [("Add", {}, [("acc", 0), ("in", 3)]), ("Add", {}, [("tmp", 0), ("in", 4)]),
                       ("Relu", {}, [("tmp", 1)])])
    assert [n.op for n in g.nodes] == ["MatMul"]
    compiled = dydca.compile(g)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for i, (b, t) in enumerate([(1, 1), (2, 17), (3, 40)]):
        shapes = {"x": (b, t, 16), "res": (b, t, 24), "w": (b, 16, 24)}
        feeds = random_feeds(model, shapes, seed=i)
        assert_close(compiled.run(feeds)[0], sess.run(None, feeds)[0], what=f"b={b} t={t}")


def test_gemm_fused_epilogue():
    import onnxruntime as ort
    from dydca.frontends.onnx_import import from_onnx
    from tests.oracle import assert_close, random_feeds

    nodes = [node("Gemm", ["x", "w", "c"], "g", transB=1, alpha=0.5), node("Mul", ["g", "s"], "y")]
    model = make_model(nodes, [("x", ["n", 12]), ("s", ["n", 1])], ["y"], [("w", f32(9, 12)), ("c", f32(9))])
    g = _fuse_by_hand(from_onnx(model, {"n": (1, 50)}), "Gemm", ["s"], [("Mul", {}, [("acc", 0), ("in", 3)])])
    compiled = dydca.compile(g)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for i, n in enumerate([1, 7, 50]):
        feeds = random_feeds(model, {"x": (n, 12), "s": (n, 1)}, seed=i)
        assert_close(compiled.run(feeds)[0], sess.run(None, feeds)[0], what=f"n={n}")
