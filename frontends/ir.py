"""The graph IR: values (tensors) with dtype, symbolic shape and optional known contents; nodes in
topological order; the model's inputs and outputs; the scope of dimension symbols.

A value's `const` holds its contents when they are known at compile time: a numpy array for
initializers and folded constants, or an object array of sympy expressions for shape arithmetic
whose values depend only on input shapes (category 2 results, e.g. Shape -> Gather -> Concat).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .symbolic import SymbolScope, shape_is_static


@dataclass
class Value:
    name: str
    dtype: np.dtype | None = None
    shape: tuple | None = None  # tuple of sympy dims; None while unknown
    const: np.ndarray | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_const(self) -> bool:
        """Contents known as plain numbers at compile time."""
        return self.const is not None and self.const.dtype != object

    @property
    def is_symbolic(self) -> bool:
        """Contents known as expressions of the input dimensions."""
        return self.const is not None and self.const.dtype == object

    @property
    def static_shape(self) -> bool:
        return shape_is_static(self.shape)


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: str = ""

    def input(self, i: int) -> str:
        """Name of input i, '' when the optional input is absent."""
        return self.inputs[i] if i < len(self.inputs) else ""


@dataclass
class Graph:
    name: str = "model"
    nodes: list[Node] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    dims: SymbolScope = field(default_factory=SymbolScope)
    opset: int = 17
    public_names: dict[str, str] = field(default_factory=dict)  # internal output name -> model's

    def public(self, name: str) -> str:
        return self.public_names.get(name, name)

    def value(self, name: str) -> Value:
        return self.values[name]

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def copy(self) -> "Graph":
        """A copy passes may edit freely; constant arrays are shared (they are never mutated)."""
        g = copy.copy(self)
        g.nodes = [copy.deepcopy(n) for n in self.nodes]
        g.values = {k: copy.copy(v) for k, v in self.values.items()}
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        g.dims = copy.deepcopy(self.dims)
        g.public_names = dict(self.public_names)
        return g

    def fresh_name(self, base: str) -> str:
        name, k = base, 0
        while name in self.values:
            k += 1
            name = f"{base}_{k}"
        return name

    def add_const(self, base: str, array: np.ndarray) -> str:
        name = self.fresh_name(base)
        array = np.asarray(array)
        from .symbolic import as_dim

        self.values[name] = Value(name, array.dtype, tuple(as_dim(d) for d in array.shape), array)
        return name

    def check(self) -> None:
        """Validates the IR invariants that passes rely on; raises AssertionError on a broken graph."""
        defined = {n for n in self.inputs} | {k for k, v in self.values.items() if v.is_const}
        for node in self.nodes:
            for i in node.inputs:
                assert not i or i in defined or self.values.get(i, Value(i)).const is not None, (
                    f"node {node.name} ({node.op}) reads {i!r} before it is produced")
            for o in node.outputs:
                if o:
                    assert o in self.values, f"node {node.name} output {o!r} has no value entry"
                    defined.add(o)
        for o in self.outputs:
            assert o in defined, f"graph output {o!r} is never produced"
