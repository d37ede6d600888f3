"""dydca.zoo.resnet50: the whole network compiled once (batch 1 and 2 at 64x64, small enough to
keep the test's run time to its build) and checked against onnxruntime."""
import pytest

from dydca import zoo
from tests.oracle import check_model


@pytest.mark.slow
def test_resnet50_matches_onnxruntime():
    model = zoo.resnet50()
    # check_model compares the (n, 1000) logits with onnxruntime's at each batch size
    check_model(model, [{"x": (1, 3, 64, 64)}, {"x": (2, 3, 64, 64)}],
                dims={"n": (1, 2), "h": (64, 64), "w": (64, 64)})
