"""ONNX -> dydca IR: the operator table, symbolic shapes and the importer."""
from .ir import Graph, Node, Value  # noqa: F401
from .onnx_import import from_onnx, load_model  # noqa: F401
from .ops import REGISTRY, Category, Fusion, ModelError  # noqa: F401
