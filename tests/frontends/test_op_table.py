"""The operator table: every entry is complete, and internal ops are never taken from a model."""
import pytest
from onnx import helper

from dydca.frontends import REGISTRY, Category, ModelError, from_onnx
from dydca.frontends.ops import supported
from tests.oracle import make_model


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_entry_names_its_facts(name):
    op = REGISTRY[name]
    assert isinstance(op.category, Category) and callable(op.infer)
    assert op.kernel is not None or op.fusion.value == "alias" or name == "Constant", name


def test_internal_ops_are_refused_from_models_and_not_listed():
    model = make_model([helper.make_node("FusedElementwise", ["x"], ["y"])], [("x", [2])], ["y"])
    with pytest.raises(ModelError, match="operator FusedElementwise is not supported"):
        from_onnx(model)
    assert "FusedElementwise" not in supported() and "Conv" in supported()
