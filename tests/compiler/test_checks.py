"""checks.check_graph: catches broken fused programs and doubly-written values after a pass."""
import pytest
from onnx import helper

from dydca.compiler.passes import fuse_elementwise
from dydca.compiler.passes.checks import check_graph
from tests.compiler.graphs import build

node = helper.make_node


def fused():
    _, g = build([node("Relu", ["x"], ["r"]), node("Add", ["r", "x"], ["a"]), node("Neg", ["a"], ["y"])],
                 [("x", ["n", 3])], ["y"], dims={"n": (1, 4)})
    g = fuse_elementwise(g)
    check_graph(g)
    return g


@pytest.mark.parametrize("breakage,message", [
    (lambda n: n.attrs["program"][1][2].__setitem__(0, ("tmp", 1)), "before it runs"),
    (lambda n: n.attrs["program"][1][2].__setitem__(1, ("in", 5)), "missing input"),
    (lambda n: n.attrs["program"][0][2].__setitem__(0, ("acc", 0)), "ref kind"),
    (lambda n: n.attrs["program"].__setitem__(0, ("Conv", {}, [("in", 0)])), "not an element-wise op"),
])
def test_broken_programs_are_reported(breakage, message):
    g = fused()
    breakage(g.nodes[0])
    with pytest.raises(AssertionError, match=message):
        check_graph(g)


def test_a_value_written_twice_is_reported():
    g = fused()
    g.nodes.append(g.nodes[0].__class__("Relu", "again", ["x"], ["y"]))
    with pytest.raises(AssertionError, match="written by two nodes"):
        check_graph(g)
