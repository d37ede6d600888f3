"""The operator table: one entry per ONNX operator, holding every fact the compiler needs about it.

An entry names its dynamism category, its shape rule (`infer`), its symbolic value rule for shape
arithmetic (`value`), its fusion class, the kernel template that implements it and the C++
expression of element-wise ops. Passes and code generation ask the table; nothing else lists ops.
Entries live in family modules (elementwise, conv, shape, ...) imported at the bottom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, Callable

import numpy as np


class Category(IntEnum):
    """What decides an operator's output (SoD2's four classes)."""

    SHAPE_FROM_SHAPES = 1  # Conv, Add: output shape fixed by input shapes
    VALUE_FROM_SHAPES = 2  # Shape, Size: output values fixed by input shapes
    SHAPE_FROM_VALUES = 3  # Reshape, Slice, Resize, Expand, Range: shape needs input values too
    EXECUTION = 4  # NonZero, data-dependent control flow: known only after running


class Fusion(Enum):
    ELEMENTWISE = "elementwise"  # one output element from the same-index input elements
    ANCHOR = "anchor"  # conv/gemm-like: takes an element-wise epilogue into its store
    ALIAS = "alias"  # no data movement: output is the input's buffer with another shape
    LAYOUT = "layout"  # moves data (transpose, depth-to-space, concat, pad, ...)
    REDUCE = "reduce"
    OPAQUE = "opaque"


F32 = np.dtype("float32")
I64 = np.dtype("int64")
BOOL = np.dtype("bool")


class ModelError(ValueError):
    """A malformed or unsupported model: names the node, its op type and what is wrong."""

    def __init__(self, node, message: str):
        self.node = node
        where = f"node {node.name!r} ({node.op})" if node is not None else "model"
        super().__init__(f"{where}: {message}")


@dataclass
class InferCtx:
    """What a shape or value rule sees of one node."""

    node: Any
    ins: list  # list[Value | None], None for absent optional inputs
    attrs: dict
    dims: Any  # SymbolScope
    out_shapes: list = field(default_factory=list)  # filled after the shape rule, for value rules

    def fail(self, message: str):
        raise ModelError(self.node, message)

    def const(self, i: int, what: str = "input"):
        """Contents of input i, which this op needs at compile time (numeric or symbolic)."""
        v = self.ins[i] if i < len(self.ins) else None
        if v is None:
            return None
        if v.const is None:
            self.fail(f"{what} {v.name!r} must be known at compile time (from initializers or "
                      f"input shapes); a run-time value here is not supported")
        return v.const


Rule = Callable[[InferCtx], list]


@dataclass(frozen=True)
class OpDef:
    name: str
    category: Category
    infer: Rule  # -> [(dtype, shape), ...] per output
    fusion: Fusion = Fusion.OPAQUE
    kernel: str | None = None  # template under codegen/templates/<target>/kernels/
    value: Rule | None = None  # -> [array, ...] contents when inputs' contents are known
    attrs: dict = field(default_factory=dict)  # spec defaults
    expr: str | None = None  # element-wise C++ expression over a, b, c (inputs) for codegen
    dtypes: tuple = ("float32",)  # element types the kernel is generated for
    data_input: int = 0  # the input whose element type `dtypes` constrains (Where: 1)
    internal: bool = False  # made by passes, never accepted from a model
    static_inputs: tuple = ()  # inputs read at compile time only (shape, axes, pads, ...)
    lower: Callable | None = None  # (KernelCtx) -> extra template parameters (packed weights, ...)
    # (InferCtx) -> bytes (int or dim expression) of working memory one call needs, or 0; the planner
    # reserves it in the arena, live during this node only; the template receives it as `scratch`
    scratch: Callable | None = None
    # (InferCtx) -> [(condition or None, label), ...]: the kernel variants a node compiles, where the
    # best code differs across the declared dims (e.g. narrow rows versus wide ones). Each call runs
    # the first variant whose condition (a sympy relation over the dims) holds; None: otherwise.
    # The rule lists only what the declared box can take, so the lowering emits just those and the
    # plan report lists them; None: one kernel for every shape
    variants: Callable | None = None
    since: int = 1  # min opset (informational)


REGISTRY: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    assert op.name not in REGISTRY, f"operator {op.name} registered twice"
    REGISTRY[op.name] = op
    return op


def lookup(node) -> OpDef:
    op = REGISTRY.get(node.op)
    if op is None or op.internal or node.domain not in ("", "ai.onnx"):
        raise ModelError(node, f"operator {node.domain + '::' if node.domain else ''}{node.op} is "
                               f"not supported; supported operators: {', '.join(supported())}")
    return op


def supported() -> list[str]:
    """The ONNX operators a model may use (the table less the compiler's internal ops)."""
    return sorted(n for n, op in REGISTRY.items() if not op.internal)


def with_defaults(op: OpDef, node) -> dict:
    attrs = dict(op.attrs)
    attrs.update(node.attrs)
    return attrs


def graph_ctx(node, values: dict, dims) -> InferCtx:
    """What a node's rules (variants, scratch) see of it in a planned graph: its input values
    (None for absent ones), its attributes with the spec defaults and the graph's dims."""
    return InferCtx(node, [values.get(i) if i else None for i in node.inputs], with_defaults(REGISTRY[node.op], node),
                    dims)


from . import elementwise, shape, conv, layout, reduce, linalg, selection  # noqa: E402,F401  (fills REGISTRY)
