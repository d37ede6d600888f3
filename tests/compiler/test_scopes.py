"""in_every_scope: the fusion passes run inside If branches (nested ones too) with the outer values
visible, and never fuse away, copy or rename a value an enclosing scope defines."""
import numpy as np
from onnx import TensorProto, helper

from dydca.compiler.passes import DEFAULT, fuse_conv_epilogue, fuse_elementwise, in_every_scope
from dydca.compiler.pipeline import optimize
from dydca.frontends import from_onnx
from dydca.frontends.control_flow import subgraphs
from tests.compiler.graphs import DIMS, rand
from tests.oracle import const, make_model, tensor

node = helper.make_node


def branch(nodes, out, inits=()):
    return helper.make_graph(nodes, "b", [], [tensor(out, TensorProto.FLOAT, None)], list(inits))


def captured_conv_model():
    """A top-level Conv whose result is read by a top-level Relu AND by both branches; the then
    branch holds a nested If; each innermost chain is Conv(outer value) -> Relu -> Sigmoid."""
    w, b = rand((3, 3, 3, 3), 1), rand((3,), 2)

    def chain(tag, src, out):
        return branch([node("Conv", [src, f"{tag}_w", f"{tag}_b"], [f"{tag}_c"], pads=[1, 1, 1, 1]),
                node("Relu", [f"{tag}_c"], [f"{tag}_r"]), node("Sigmoid", [f"{tag}_r"], [out])], out,
                      [const(f"{tag}_w", rand((3, 3, 3, 3), 3)), const(f"{tag}_b", rand((3,), 4))])

    inner = node("If", ["c2"], ["u"], then_branch=chain("i0", "conv", "u0"),
                 else_branch=branch([node("Neg", ["conv"], ["u1"])], "u1"))
    then = branch([inner, node("Abs", ["u"], ["t0"])], "t0")
    other = chain("e", "conv", "t1")
    model = make_model([node("Conv", ["x", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
                        node("Relu", ["conv"], ["top"]),
                        node("If", ["c"], ["t"], then_branch=then, else_branch=other),
                        node("Add", ["t", "top"], ["y"])],
                       [("x", ["n", 3, "h", "w"]), tensor("c", TensorProto.BOOL, []),
                        tensor("c2", TensorProto.BOOL, [])], ["y"], [("w", w), ("b", b)])
    return model


def fused(graph):
    return [n.attrs.get("fused_from", n.op) for n in graph.nodes]


def test_fusions_reach_nested_branches_and_keep_captured_values():
    g = optimize(from_onnx(captured_conv_model(), DIMS))
    # `conv` is read by the If: the top Conv keeps it and takes no epilogue
    assert fused(g) == ["Conv", "If", "Relu+Add"]
    assert "conv" in g.values and g.nodes[0].outputs == ["conv"]
    if_node = next(n for n in g.nodes if n.op == "If")
    assert if_node.inputs == ["c", "c2", "conv"]
    then, other = subgraphs(if_node)
    assert fused(other) == ["Conv+Relu+Sigmoid"] and other.nodes[0].inputs[0] == "conv"
    inner = next(n for n in then.nodes if n.op == "If")
    assert inner.inputs == ["c2", "conv"]
    assert [fused(b) for b in subgraphs(inner)] == [["Conv+Relu+Sigmoid"], ["Neg"]]
    for br in (then, other, *subgraphs(inner)):  # no outer value was copied into a branch
        assert not {"conv", "x", "w", "b", "top"} & set(br.values)


def test_wrapped_pass_keeps_its_name_and_top_level_behaviour():
    wrapped = in_every_scope(fuse_elementwise)
    assert wrapped.__name__ == "fuse_elementwise"
    assert any(getattr(p, "__wrapped__", None) is fuse_conv_epilogue for p in DEFAULT)
    model = make_model([node("Relu", ["x"], ["r"]), node("Sigmoid", ["r"], ["y"])],
                       [("x", ["n", 3, "h", "w"])], ["y"])
    g = from_onnx(model, DIMS)
    assert fused(wrapped(g)) == fused(fuse_elementwise(g)) == ["Relu+Sigmoid"]


def test_captured_model_matches_onnxruntime_on_every_path():
    from tests.codegen.test_if import run_all

    rng = np.random.default_rng(7)
    xs = [rng.standard_normal(s).astype(np.float32) for s in [(1, 3, 8, 8), (2, 3, 17, 30), (1, 3, 64, 64)]]
    run_all(captured_conv_model(), [{"x": x, "c": np.array(a), "c2": np.array(b)}
                                    for x in xs for a, b in ((True, True), (True, False), (False, False))])


def shuffled_scale_model():
    """Both branches end Conv -> DepthToSpace (DCR in one, CRD in the other) -> Mul by the same
    outer per-channel constant `k`: each branch's fused conv needs `k` re-ordered its own way."""
    def path(tag, seed, mode):
        w = rand((12, 3, 3, 3), seed)
        return helper.make_graph([node("Conv", ["x", f"{tag}W"], [f"{tag}c"], pads=[1, 1, 1, 1]),
                                  node("DepthToSpace", [f"{tag}c"], [f"{tag}d"], blocksize=2, mode=mode),
                                  node("Mul", [f"{tag}d", "k"], [f"{tag}o"])], tag, [],
                                 [tensor(f"{tag}o", TensorProto.FLOAT, None)], [const(f"{tag}W", w)])

    return make_model([node("If", ["c"], ["y"], then_branch=path("a", 5, "DCR"), else_branch=path("b", 6, "CRD"))],
                      [("x", ["n", 3, "h", "w"]), tensor("c", TensorProto.BOOL, [])], ["y"],
                      [("k", np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1))])


def test_values_a_pass_creates_in_sibling_branches_get_distinct_names():
    from tests.codegen.test_if import run_all

    model = shuffled_scale_model()
    g = optimize(from_onnx(model, DIMS))
    then, other = subgraphs(g.nodes[0])
    made = [[i for i in br.nodes[0].inputs[3:]] for br in (then, other)]
    assert [fused(br) for br in (then, other)] == [["Conv+DepthToSpace+Mul"]] * 2
    assert len(made[0]) == len(made[1]) == 1 and made[0] != made[1]
    assert not np.array_equal(then.values[made[0][0]].const, other.values[made[1][0]].const)
    rng = np.random.default_rng(10)
    run_all(model, [{"x": rng.standard_normal(s).astype(np.float32), "c": np.array(c)}
                    for s in [(1, 3, 1, 1), (2, 3, 5, 7), (3, 3, 24, 24)] for c in (True, False)], DIMS)
