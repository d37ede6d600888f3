"""Importing If: branches become IR sub-graphs reading outer values by name (captured as the If's
inputs), with unique names, folded constants and shape rules; conditions known from the input
shapes become expressions; what is not supported yet is refused naming the node."""
import numpy as np
import pytest
import sympy
from onnx import TensorProto, helper

from dydca.compiler.passes import dead_node_removal, fold_constants, fuse_conv_epilogue
from dydca.compiler.pipeline import plan
from dydca.frontends import ModelError, from_onnx
from dydca.frontends.control_flow import subgraphs
from dydca.frontends.symbolic import sym
from tests.oracle import const, make_model, tensor

DIMS = {"n": (1, 4), "h": (8, 64), "w": (8, 64)}
X = ("x", ["n", 3, "h", "w"])
COND = tensor("c", TensorProto.BOOL, [])


def graph_of(nodes, out, inits=(), name="b"):
    return helper.make_graph(nodes, name, [], [tensor(o, TensorProto.FLOAT, None) for o in out], list(inits))


def unary_branch(op, out="t", src="x"):
    return graph_of([helper.make_node(op, [src], [out])], [out])


def test_branches_read_outer_values_which_become_if_inputs():
    inner = helper.make_node("If", ["c2"], ["u"], then_branch=unary_branch("Relu", "t1", "s"),
                             else_branch=unary_branch("Neg", "t2", "x"))
    then = graph_of([helper.make_node("Sigmoid", ["x"], ["s"]), inner], ["u"])
    model = make_model([helper.make_node("Tanh", ["x"], ["x2"]),
                        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=unary_branch("Abs", "t3", "x2"))],
                       [X, COND, tensor("c2", TensorProto.BOOL, [])], ["y"])
    g = from_onnx(model, DIMS)
    node = g.nodes[1]
    # `x` is read two scopes down, `c2` by the nested If, `x2` by the else branch
    assert node.inputs == ["c", "x", "c2", "x2"]
    then_g, else_g = subgraphs(node)
    assert then_g.outputs == else_g.outputs == ["y"]  # branches write the If's output themselves
    nested = next(n for n in then_g.nodes if n.op == "If")
    assert nested.inputs == ["c2", "s", "x"]
    assert g.values["y"].shape == (sym("n"), 3, sym("h"), sym("w"))


def test_repeated_local_names_are_renamed_per_scope():
    """Both branches define `t` and the then branch redefines the outer `x2`: each scope's reads
    resolve to its own definition, and no name is written twice."""
    then = graph_of([helper.make_node("Relu", ["x"], ["x2"]), helper.make_node("Neg", ["x2"], ["t"]),
                     helper.make_node("Add", ["t", "x2"], ["o1"])], ["o1"])
    other = graph_of([helper.make_node("Neg", ["x2"], ["t"]), helper.make_node("Abs", ["t"], ["o2"])], ["o2"])
    model = make_model([helper.make_node("Tanh", ["x"], ["x2"]),
                        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)], [X, COND], ["y"])
    g = from_onnx(model, DIMS)
    then_g, else_g = subgraphs(g.nodes[1])
    # each path writes every name once (the If's output `y` is written by whichever branch runs)
    for br in (then_g, else_g):
        path = [o for n in g.nodes + br.nodes for o in n.outputs if n.op != "If"]
        assert len(path) == len(set(path)), path
    local_x2 = then_g.nodes[0].outputs[0]
    assert local_x2 != "x2" and then_g.nodes[2].inputs == [then_g.nodes[1].outputs[0], local_x2]
    assert else_g.nodes[0].inputs == ["x2"]  # the else branch reads the outer x2
    assert then_g.nodes[1].outputs[0] != else_g.nodes[0].outputs[0]
    assert g.nodes[1].inputs == ["c", "x", "x2"]


def test_branch_constants_fold_and_dead_branch_nodes_go():
    then = graph_of([helper.make_node("Constant", [], ["k"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [2.0])),
                     helper.make_node("Mul", ["k", "k"], ["k2"]),  # folded: known at compile time
                     helper.make_node("Sigmoid", ["x"], ["unused"]),  # read by nothing
                     helper.make_node("Mul", ["x", "k2"], ["t"])], ["t"])
    model = make_model([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=unary_branch("Neg"))],
                       [X, COND], ["y"])
    g = from_onnx(model, DIMS)
    then_g = subgraphs(g.nodes[0])[0]
    assert float(then_g.values["k2"].const) == 4.0
    folded = dead_node_removal(fold_constants(g))
    then_g = subgraphs(folded.nodes[0])[0]
    assert [n.op for n in then_g.nodes] == ["Mul"] and "unused" not in then_g.values


def test_values_read_only_by_a_branch_stay_alive_and_unfused():
    """A conv output read by a top-level Relu AND inside a branch: fusing the Relu into the conv
    would hide it, dead-node removal would drop a producer only the branch reads."""
    w = const("W", np.ones((3, 3, 1, 1), np.float32))
    model = make_model([helper.make_node("Conv", ["x", "W"], ["cv"]),
                        helper.make_node("Relu", ["cv"], ["r"]),
                        helper.make_node("Sigmoid", ["x"], ["only_branch"]),
                        helper.make_node("If", ["c"], ["y"], then_branch=graph_of([helper.make_node("Add", ["cv", "r"], ["t"])], ["t"]),
                                         else_branch=unary_branch("Neg", "t2", "only_branch"))],
                       [X, COND], ["y"], [w])
    g = plan(from_onnx(model, DIMS), [fold_constants, fuse_conv_epilogue, dead_node_removal]).graph
    assert [n.op for n in g.nodes] == ["Conv", "Relu", "Sigmoid", "If"]
    assert g.nodes[0].attrs.get("epilogue") is None


def test_numeric_condition_inlines_the_branch_taken():
    model = make_model([helper.make_node("If", ["c"], ["y"], then_branch=unary_branch("Relu"),
                                         else_branch=graph_of([helper.make_node("Shape", ["x"], ["bad"])], ["bad"]))],
                       [X], ["y"], [("c", np.array([True]))])
    # the branch not taken is never inferred (its output is not even a float tensor)
    g = fold_constants(from_onnx(model, DIMS))
    assert [(n.op, n.outputs) for n in g.nodes] == [("Relu", ["y"])]


def test_condition_from_input_shape_is_an_expression():
    model = make_model([helper.make_node("Shape", ["x"], ["s"]),
                        helper.make_node("Gather", ["s", "two"], ["h_"], axis=0),
                        helper.make_node("Less", ["h_", "lim"], ["lt"]),
                        helper.make_node("GreaterOrEqual", ["h_", "lim"], ["ge"]),
                        helper.make_node("Not", ["ge"], ["nge"]),
                        helper.make_node("And", ["lt", "nge"], ["both"]),
                        helper.make_node("If", ["both"], ["y"], then_branch=unary_branch("Relu"),
                                         else_branch=unary_branch("Neg", "t2"))],
                       [X], ["y"], [("two", np.array(2, np.int64)), ("lim", np.array(48, np.int64))])
    g = from_onnx(model, DIMS)
    h = sym("h")
    assert g.values["lt"].const.reshape(-1)[0] == (h < 48)
    assert sympy.simplify(g.values["both"].const.reshape(-1)[0]) == (h < 48)
    assert g.values["y"].shape == (sym("n"), 3, h, sym("w"))


@pytest.mark.parametrize("expr, known", [
    ("h < 48", None), ("h < 65", True), ("h < 8", False), ("h <= 8", None), ("h >= 8", True),
    ("h > 64", False), ("Eq(h, 100)", False), ("Ne(h, 100)", True), ("Eq(h, 20)", None),
    ("(h < 65) & (w > 7)", True), ("(h < 48) & (w > 64)", False), ("(h < 48) | (w > 7)", True),
    ("~(n > 4)", True), ("n*h < 257", True), ("n*h < 256", None),
    ("Eq(Mod(h, 2), 0)", None), ("Mod(h, 65) < 64", None), ("Mod(h, 65) < 65", True),
    ("Mod(h*w, 2) < 1", None),  # several dims under a mod: corners bound nothing, never decided
])
def test_conditions_on_dims_are_decided_only_when_fixed_over_the_whole_range(expr, known):
    from dydca.frontends.control_flow import decide_over_range

    g = from_onnx(make_model([helper.make_node("Relu", ["x"], ["y"])], [X], ["y"]), DIMS)
    names = {k: sym(k) for k in ("n", "h", "w")}
    assert decide_over_range(sympy.sympify(expr, locals=names), g.dims) is known


def test_size_condition_fixed_over_the_range_drops_the_other_branch():
    model = make_model([helper.make_node("Shape", ["x"], ["s"]),
                        helper.make_node("Gather", ["s", "two"], ["h_"], axis=0),
                        helper.make_node("Less", ["h_", "lim"], ["small"]),
                        helper.make_node("If", ["small"], ["y"], then_branch=unary_branch("Relu"),
                                         else_branch=unary_branch("Neg", "t2"))],
                       [X], ["y"], [("two", np.array(2, np.int64)), ("lim", np.array(48, np.int64))])
    for h_range, ops in (((8, 40), ["Relu"]), ((48, 64), ["Neg"]), ((8, 64), ["If"])):
        g = plan(from_onnx(model, dict(DIMS, h=h_range))).graph
        assert [n.op for n in g.nodes] == ops, h_range


def test_branches_of_different_ranks_are_refused_naming_the_node():
    other = graph_of([helper.make_node("ReduceSum", ["x"], ["t2"], keepdims=0)], ["t2"])
    model = make_model([helper.make_node("If", ["c"], ["y"], name="route", then_branch=unary_branch("Relu"),
                                         else_branch=other)], [X, COND], ["y"])
    with pytest.raises(ModelError, match=r"'route' \(If\).*output 0 .*rank 4 in then_branch and 0"):
        from_onnx(model, DIMS)


@pytest.mark.parametrize("cond", [tensor("c", TensorProto.FLOAT, []), tensor("c", TensorProto.BOOL, [2])])
def test_condition_must_be_one_bool(cond):
    model = make_model([helper.make_node("If", ["c"], ["y"], name="gate", then_branch=unary_branch("Relu"),
                                         else_branch=unary_branch("Neg", "t2"))], [X, cond], ["y"])
    with pytest.raises(ModelError, match="'gate' .*condition"):
        from_onnx(model, DIMS)


def test_branch_reading_an_undefined_name_is_refused():
    model = make_model([helper.make_node("If", ["c"], ["y"], name="gate", then_branch=unary_branch("Relu", src="nowhere"),
                                         else_branch=unary_branch("Neg", "t2"))], [X, COND], ["y"])
    with pytest.raises(ModelError, match="'gate' .*'nowhere'"):
        from_onnx(model, DIMS)
