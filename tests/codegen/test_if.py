"""If end to end: N-path SR networks whose path is picked per call (by a bool, an int index through
a chain of If, nested If, or the input's size) compiled into ONE library, every path run at several
shapes against onnxruntime; one arena shared by the paths."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import dydca
from dydca.compiler.pipeline import plan
from dydca.frontends import from_onnx
from dydca.frontends.control_flow import subgraphs
from tests.oracle import assert_close, const, make_model, tensor

DIMS = {"n": (1, 4), "h": (8, 64), "w": (8, 64)}
SHAPES = [(1, 3, 8, 8), (4, 3, 21, 37), (2, 3, 64, 64)]
SCALE = 2


def sr_path(tag: str, x: str, widths: list[int], seed: int):
    """An ESPCN-like path: 3x3 conv stack of the given widths with ReLU, a conv to 3*SCALE^2
    channels, and a pixel shuffle. Every path maps (n,3,h,w) to (n,3,2h,2w)."""
    rng = np.random.default_rng(seed)
    nodes, inits, c = [], [], 3
    for i, w in enumerate(list(widths) + [3 * SCALE * SCALE]):
        W = (rng.standard_normal((w, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
        b = (rng.standard_normal(w) * 0.1).astype(np.float32)
        inits += [const(f"{tag}_W{i}", W), const(f"{tag}_B{i}", b)]
        nodes.append(helper.make_node("Conv", [x, f"{tag}_W{i}", f"{tag}_B{i}"], [f"{tag}_c{i}"], pads=[1, 1, 1, 1]))
        x = f"{tag}_c{i}"
        if i < len(widths):
            nodes.append(helper.make_node("Relu", [x], [f"{tag}_r{i}"]))
            x = f"{tag}_r{i}"
        c = w
    nodes.append(helper.make_node("DepthToSpace", [x], [f"{tag}_y"], blocksize=SCALE))
    return nodes, inits, f"{tag}_y"


def branch(tag, nodes, inits, out):
    return helper.make_graph(nodes, tag, [], [tensor(out, TensorProto.FLOAT, None)], inits)


def path_branch(tag, widths, seed, x="x"):
    return branch(tag, *sr_path(tag, x, widths, seed))


PATHS = [[8], [16, 8], [4, 4, 4]]  # depth and width differ per path


def two_path_model():
    node = helper.make_node("If", ["c"], ["y"], then_branch=path_branch("p0", PATHS[0], 0),
                            else_branch=path_branch("p1", PATHS[1], 1))
    return make_model([node], [("x", ["n", 3, "h", "w"]), tensor("c", TensorProto.BOOL, [])], ["y"])


def index_model():
    """Three paths picked by an int index: If(idx == 0, p0, If(idx == 1, p1, p2)). The inner
    condition is computed inside the else branch, from a Constant node of that branch."""
    inner_nodes = [helper.make_node("Constant", [], ["one"], value=helper.make_tensor("v", TensorProto.INT64, [], [1])),
                   helper.make_node("Equal", ["idx", "one"], ["is1"]),
                   helper.make_node("If", ["is1"], ["y_else"], then_branch=path_branch("p1", PATHS[1], 1),
                                    else_branch=path_branch("p2", PATHS[2], 2))]
    nodes = [helper.make_node("Equal", ["idx", "zero"], ["is0"]),
             helper.make_node("If", ["is0"], ["y"], then_branch=path_branch("p0", PATHS[0], 0),
                              else_branch=branch("rest", inner_nodes, [], "y_else"))]
    return make_model(nodes, [("x", ["n", 3, "h", "w"]), tensor("idx", TensorProto.INT64, [])], ["y"],
                      [("zero", np.array(0, np.int64))])


def nested_model():
    """A then-branch that computes a value and holds an If whose branches read it and read `x`
    from two scopes up; paths: (c1, c2) = (T, T), (T, F), (F, *)."""
    def head_then(tag, seed, src):
        nodes, inits, y = sr_path(tag, src, PATHS[seed], seed)
        nodes.append(helper.make_node("Add", [y, "x_up"], [f"{tag}_sum"]))
        return branch(tag, nodes, inits, f"{tag}_sum")

    inner = helper.make_node("If", ["c2"], ["t_out"], then_branch=head_then("q0", 0, "pre"),
                             else_branch=head_then("q1", 1, "x"))
    then_nodes = [helper.make_node("Sigmoid", ["x"], ["pre"]),
                  helper.make_node("Resize", ["x", "", "scales"], ["x_up"], mode="nearest"), inner]
    node = helper.make_node("If", ["c1"], ["y"], then_branch=branch("outer_then", then_nodes, [], "t_out"),
                            else_branch=path_branch("p2", PATHS[2], 2))
    return make_model([node], [("x", ["n", 3, "h", "w"]), tensor("c1", TensorProto.BOOL, []),
                               tensor("c2", TensorProto.BOOL, [])], ["y"],
                      [("scales", np.array([1, 1, SCALE, SCALE], np.float32))])


def size_routed_model(threshold=48):
    """Patches smaller than `threshold` rows take one path, larger ones another: the condition is
    Less(Gather(Shape(x), 2), threshold), known from the input's shape."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "two"], ["rows"], axis=0),
             helper.make_node("Less", ["rows", "limit"], ["small"]),
             helper.make_node("If", ["small"], ["y"], then_branch=path_branch("p0", PATHS[0], 0),
                              else_branch=path_branch("p1", PATHS[1], 1))]
    return make_model(nodes, [("x", ["n", 3, "h", "w"])], ["y"],
                      [("two", np.array(2, np.int64)), ("limit", np.array(threshold, np.int64))])


def run_all(model, feed_sets, dims=DIMS):
    """Compiles ONCE and compares every feed set with onnxruntime."""
    compiled = dydca.compile(model, dims=dims)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for feeds in feed_sets:
        got, ref = compiled.run(feeds), sess.run(None, feeds)
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert_close(g, r, what=f"at {[(k, np.shape(v)) for k, v in feeds.items()]} "
                                    f"{ {k: v for k, v in feeds.items() if v.size == 1} }")
    return compiled


def images(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def test_two_paths_by_bool_from_one_library():
    model = two_path_model()
    feeds = [{"x": x, "c": np.array(c)} for x in images() for c in (True, False)]
    compiled = run_all(model, feeds)
    # one arena for both paths: no bigger than the bigger path alone needs
    assert compiled.arena_bytes <= max(path_arena(w, k) for k, w in enumerate(PATHS[:2]))


def path_arena(widths, seed):
    """Arena of one path compiled alone, with the same passes as a branch gets."""
    nodes, inits, y = sr_path("p", "x", widths, seed)
    model = make_model(nodes, [("x", ["n", 3, "h", "w"])], [y], inits)
    return plan(from_onnx(model, DIMS)).plan.arena_bytes


def test_branches_get_the_fusion_passes():
    """Conv+Relu and Conv+DepthToSpace become single kernels inside both branches, as they do in a
    graph without control flow; the fused library still matches onnxruntime on both paths."""
    model = two_path_model()
    compiled = plan(from_onnx(model, DIMS))
    node = next(n for n in compiled.graph.nodes if n.op == "If")
    for br, widths in zip(subgraphs(node), PATHS):
        assert [n.attrs.get("fused_from") for n in br.nodes] == \
            ["Conv+Relu"] * len(widths) + ["Conv+DepthToSpace"]
    for _, sub in compiled.plan.branches[node.outputs[0]]:  # the planned schedules are the fused ones
        assert [n.op for n in sub.schedule] == ["Conv"] * len(sub.schedule)
    run_all(model, [{"x": x, "c": np.array(c)} for x in images(6) for c in (True, False)])


def test_branches_share_one_region_and_if_outputs_live_outside_it():
    model = make_model([helper.make_node("If", ["c"], ["t"], then_branch=path_branch("p0", PATHS[0], 0),
                                         else_branch=path_branch("p1", PATHS[1], 1)),
                        helper.make_node("Sigmoid", ["t"], ["y"])],
                       [("x", ["n", 3, "h", "w"]), tensor("c", TensorProto.BOOL, [])], ["y"])
    compiled = plan(from_onnx(model, DIMS))
    p = compiled.plan
    node = next(n for n in p.schedule if n.op == "If")
    step = p.schedule.index(node)
    region = p.scratch[step]
    subs = [sub for _, sub in p.branches[node.outputs[0]]]
    assert region.bytes >= max(s.arena_bytes for s in subs)
    for sub in subs:  # every buffer of either branch lies in the region
        for b in sub.buffers.maps[0].values():
            if b.kind == "arena":
                assert region.offset <= b.offset and b.offset + b.bytes <= region.offset + region.bytes
    t = p.storage("t")  # the If's output is an arena buffer of the outer plan, apart from the region
    assert t.kind == "arena" and (t.offset + t.bytes <= region.offset or region.offset + region.bytes <= t.offset)
    assert p.arena_bytes <= region.bytes + t.bytes + 64
    feeds = [{"x": x, "c": np.array(c)} for x in images(1) for c in (True, False)]
    run_all(model, feeds)


def test_three_paths_by_index_through_a_chain_of_if():
    feeds = [{"x": x, "idx": np.array(k, np.int64)} for x in images(2) for k in (0, 1, 2, 7)]
    run_all(index_model(), feeds)


def test_nested_if_reads_values_of_every_enclosing_scope():
    feeds = [{"x": x, "c1": np.array(a), "c2": np.array(b)} for x in images(3)
             for a, b in ((True, True), (True, False), (False, True))]
    run_all(nested_model(), feeds)


def test_route_by_input_size_is_decided_from_the_dims():
    model = size_routed_model(48)
    compiled = plan(from_onnx(model, DIMS))
    # the condition is an expression of h: no Shape/Gather/Less kernel survives, the If reads no tensor
    assert [n.op for n in compiled.graph.nodes] == ["If"]
    rng = np.random.default_rng(4)
    feeds = [{"x": rng.standard_normal(s).astype(np.float32)}
             for s in [(1, 3, 8, 8), (2, 3, 47, 20), (1, 3, 48, 9), (3, 3, 64, 33)]]
    run_all(model, feeds)


def test_size_condition_fixed_over_the_declared_range_is_decided_at_compile_time():
    """With h in [8, 40] every patch is smaller than 48 rows: only the then path is compiled."""
    dims = dict(DIMS, h=(8, 40))
    model = size_routed_model(48)
    compiled = plan(from_onnx(model, dims))
    assert [n.attrs.get("fused_from") for n in compiled.graph.nodes] == ["Conv+Relu", "Conv+DepthToSpace"]
    assert [n.inputs[1] for n in compiled.graph.nodes] == ["p0_W0", "p0_W1"]
    rng = np.random.default_rng(8)
    run_all(model, [{"x": rng.standard_normal(s).astype(np.float32)}
                    for s in [(1, 3, 8, 8), (3, 3, 40, 17), (4, 3, 23, 64)]], dims)


def test_constant_condition_inlines_the_branch_taken():
    model = make_model([helper.make_node("If", ["c"], ["y"], then_branch=path_branch("p0", PATHS[0], 0),
                                         else_branch=path_branch("p1", PATHS[1], 1))],
                       [("x", ["n", 3, "h", "w"])], ["y"], [("c", np.array(False))])
    compiled = plan(from_onnx(model, DIMS))
    assert [n.inputs[1] for n in compiled.graph.nodes] == ["p1_W0", "p1_W1", "p1_W2"]  # p1's convs, fused
    run_all(model, [{"x": x} for x in images(5)])


@pytest.mark.parametrize("bad", [np.array(1, np.int64), np.array(1.0, np.float32), np.array([True, False])])
def test_condition_of_wrong_dtype_or_size_is_refused(bad):
    compiled = dydca.compile(two_path_model(), dims=DIMS)
    with pytest.raises(ValueError):
        compiled.run({"x": images()[0], "c": bad})


def copies_model(repeat: bool):
    """then returns one value twice (`repeat`) or it and an explicit copy; else returns a branch
    initializer and a sum. Static shapes: the initializer's."""
    then_nodes = [helper.make_node("Neg", ["x"], ["nx"])]
    if not repeat:
        then_nodes.append(helper.make_node("Identity", ["nx"], ["nx2"]))
    then = helper.make_graph(then_nodes, "t", [], [tensor("nx", TensorProto.FLOAT, None),
                                                   tensor("nx" if repeat else "nx2", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Add", ["x", "k"], ["s"])], "e", [],
                              [tensor("k", TensorProto.FLOAT, None), tensor("s", TensorProto.FLOAT, None)],
                              [const("k", np.full((1, 3, 1, 1), 0.5, np.float32))])
    return make_model([helper.make_node("If", ["c"], ["a", "b"], then_branch=then, else_branch=other)],
                      [("x", [1, 3, 1, 1]), tensor("c", TensorProto.BOOL, [])], ["a", "b"])


def test_branch_outputs_that_no_branch_node_writes_are_copied():
    """The If's outputs are buffers the branch taken writes, also where the branch returns a
    constant or one value twice (an Identity is added). onnxruntime returns zeros for a value
    returned twice from a branch, so its answer comes from the same model with the copy explicit."""
    check_copies_model("cpp")


def check_copies_model(target: str) -> None:
    compiled = dydca.compile(copies_model(repeat=True), target=target)
    sess = ort.InferenceSession(copies_model(repeat=False).SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.arange(3, dtype=np.float32).reshape(1, 3, 1, 1) - 1
    for c in (True, False):
        feeds = {"x": x, "c": np.array(c)}
        for g, r in zip(compiled.run(feeds), sess.run(None, feeds)):
            assert_close(g, r, what=f"c={c}")


def stacked_paths_model():
    """The torch export of `torch.stack([p(x) for p in paths])[idx]`: every path runs, the index
    picks one output with a Gather (no If)."""
    nodes, inits, outs = [], [], []
    for k, widths in enumerate(PATHS):
        n, i, y = sr_path(f"p{k}", "x", widths, k)
        nodes += n + [helper.make_node("Unsqueeze", [y, "ax0"], [f"u{k}"])]
        inits += i
        outs.append(f"u{k}")
    nodes += [helper.make_node("Concat", outs, ["stack"], axis=0),
              helper.make_node("Gather", ["stack", "idx"], ["y"], axis=0, name="pick_path")]
    return make_model(nodes, [("x", ["n", 3, "h", "w"]), tensor("idx", TensorProto.INT64, [])], ["y"],
                      inits + [const("ax0", np.array([0], np.int64))])


def test_path_picked_by_gather_over_stacked_outputs_and_index_out_of_range_refused():
    feeds = [{"x": x, "idx": np.array(i, np.int64)} for x in images() for i in range(len(PATHS))]
    compiled = run_all(stacked_paths_model(), feeds)
    for bad in (len(PATHS), -len(PATHS) - 1):
        with pytest.raises(ValueError, match=r"index -?\d+ is out of range for an axis of size 3 \(in Gather node \"pick_path\"\)"):
            compiled.run({"x": images()[0], "idx": np.array(bad, np.int64)})


def where_paths_model():
    """The other torch export of per-index routing: Where(idx == 0, p0, Where(idx == 1, p1, p2))."""
    nodes, inits, outs = [], [], []
    for k, widths in enumerate(PATHS):
        n, i, y = sr_path(f"p{k}", "x", widths, k)
        nodes, inits, outs = nodes + n, inits + i, outs + [y]
    nodes += [helper.make_node("Equal", ["idx", "zero"], ["is0"]), helper.make_node("Equal", ["idx", "one"], ["is1"]),
              helper.make_node("Where", ["is1", outs[1], outs[2]], ["rest"]),
              helper.make_node("Where", ["is0", outs[0], "rest"], ["y"])]
    return make_model(nodes, [("x", ["n", 3, "h", "w"]), tensor("idx", TensorProto.INT64, [])], ["y"],
                      inits + [const("zero", np.array(0, np.int64)), const("one", np.array(1, np.int64))])


def test_path_picked_by_where_over_path_outputs():
    feeds = [{"x": x, "idx": np.array(i, np.int64)} for x in images() for i in range(len(PATHS))]
    run_all(where_paths_model(), feeds)


def test_profile_times_the_kernels_inside_the_branch_that_ran():
    compiled = dydca.compile(two_path_model(), dims=DIMS)
    rows = compiled.profile({"x": images()[1], "c": np.array(True)}, runs=3, warmup=1)
    (k_if,) = [k for k, r in enumerate(rows) if r["kernel"].startswith("If ")]
    inside = [r for r in rows if r["parent"] == k_if]
    assert not rows[k_if]["leaf"] and all(r["leaf"] for r in inside)
    then = [r for r in inside if "/then_branch/" in r["kernel"]]
    other = [r for r in inside if "/else_branch/" in r["kernel"]]
    assert then and other and all(r["ms"] > 0 for r in then) and all(r["ms"] == 0 for r in other)
    assert sum(r["ms"] for r in then) <= rows[k_if]["ms"]
    table = dydca.Model.profile_table(rows).splitlines()
    assert not any(line.startswith("If ") for line in table) and any("/then_branch/" in line for line in table)
