"""Control flow: ONNX `If` as IR sub-graphs, their shape rules and their table entry.

An If node's `then_branch` / `else_branch` attributes become `Branch` graphs. A branch reads values
of the enclosing scopes by name; those names ("captures") are appended to the If node's inputs
after the condition, so that every pass sees them as reads of the If (dead-node removal keeps
their producers, fusion never hides them, the planner keeps them live through the If's step).

Each branch's outputs are renamed to the If's outputs at import: the branch taken writes the If's
buffers directly, with no copy. A branch output that no node of the branch produces (an outer
value, an initializer, a value returned twice) gets an Identity node writing it.

Names are unique across the whole model: a branch-local name that repeats an outer or sibling name
is renamed at import (ONNX requires SSA, but exporters do not always honour it across branches).
"""
from __future__ import annotations

import copy
from collections import ChainMap

import numpy as np
import sympy

from .ir import Graph, Node, Value
from .ops import BOOL, Category, Fusion, ModelError, OpDef, register
from .symbolic import as_dim

BRANCH_ATTRS = ("then_branch", "else_branch")  # in this order: subgraphs(node)[0] runs when true
SUBGRAPH_ATTRS = BRANCH_ATTRS + ("body",)  # If's branches, Loop's body (frontends/loop.py)


class Branch(Graph):
    """A sub-graph. Copying a node that holds one (Graph.copy deep-copies nodes) copies the branch
    the way Graph.copy does: constant arrays are shared, never duplicated."""

    def __deepcopy__(self, memo):
        return self.copy()


def subgraphs(node: Node) -> list[Graph]:
    return [node.attrs[a] for a in SUBGRAPH_ATTRS if isinstance(node.attrs.get(a), Graph)]


def own_inputs(node: Node) -> int:
    """How many of the node's inputs are its own (If: the condition; Loop: trip count, condition
    and initial values), before the captures its sub-graphs read."""
    if node.op == "Loop":
        return len(node.attrs["body"].inputs)
    return 1


def scoped(branch: Graph, outer_values) -> Graph:
    """A view of `branch` in which the enclosing scope's values are visible by name (the branch's
    own shadow them); values written through the view land in the branch."""
    view = copy.copy(branch)
    view.values = ChainMap(branch.values, outer_values)
    return view


def defined(branch: Graph) -> set[str]:
    """Names the branch itself defines: its initializers/constants and its nodes' outputs."""
    return set(branch.values) | {o for n in branch.nodes for o in n.outputs if o}


def captures(branch: Graph) -> list[str]:
    """Names the branch reads from enclosing scopes, in order of first read (nested If nodes list
    theirs among their inputs, so one level suffices)."""
    own, seen = defined(branch) | set(branch.inputs), []
    for n in branch.nodes:
        for i in n.inputs:
            if i and i not in own and i not in seen:
                seen.append(i)
    return seen


def refresh_captures(node: Node) -> None:
    """Sets the node's inputs to its own plus what its sub-graphs now read from outside."""
    names = []
    for br in subgraphs(node):
        names += [c for c in captures(br) if c not in names]
    node.inputs = node.inputs[:own_inputs(node)] + names


def rename(graph: Graph, old: str, new: str) -> None:
    """Renames value `old` to `new` in `graph`'s nodes, outputs and values, and in nested branches
    (which may read it)."""
    for n in graph.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
        n.outputs = [new if o == old else o for o in n.outputs]
        for br in subgraphs(n):
            rename(br, old, new)
    graph.outputs = [new if o == old else o for o in graph.outputs]
    if old in graph.values:
        v = graph.values.pop(old)
        v.name = new
        graph.values[new] = v


# ---- import ----

def import_subgraphs(graph: Graph, proto_graph) -> None:
    """Turns the GraphProto attributes of the main graph's If nodes into Branch graphs."""
    used = set(graph.values) | set(graph.inputs) | {o for n in proto_graph.node for o in n.output}
    scope = {n: n for n in used}
    for node in graph.nodes:
        if node.op in ("If", "Loop"):
            _import_control(graph, node, scope, used)


def _fresh(name: str, used: set) -> str:
    k, out = 1, name
    while out in used:
        out, k = f"{name}__{k}", k + 1
    return out


def _import_control(graph: Graph, node: Node, scope: dict, used: set) -> None:
    for a in (BRANCH_ATTRS if node.op == "If" else ("body",)):
        proto = node.attrs.get(a)
        if proto is None or isinstance(proto, Graph):
            if proto is None:
                raise ModelError(node, f"attribute {a} is missing")
            continue
        node.attrs[a] = _import_branch(graph, node, a, proto, scope, used)
    refresh_captures(node)


def _import_branch(graph: Graph, owner: Node, which: str, proto, scope: dict, used: set) -> Branch:
    from onnx import numpy_helper

    from .onnx_import import attr_value

    if len(proto.input) and owner.op == "If":
        raise ModelError(owner, f"{which} declares inputs; an If branch takes none")
    local = dict(scope)

    def define(name: str) -> str:
        internal = _fresh(name, used)
        used.add(internal)
        local[name] = internal
        return internal

    def resolve(name: str) -> str:
        if not name:
            return ""
        if name not in local:
            raise ModelError(owner, f"{which} reads {name!r}, which no enclosing scope defines")
        return local[name]

    br = Branch(name=f"{owner.name}/{which}", dims=graph.dims, opset=graph.opset)
    br.inputs = [define(i.name) for i in proto.input]  # a Loop body's parameters
    for init in proto.initializer:
        arr = numpy_helper.to_array(init)
        name = define(init.name)
        br.values[name] = Value(name, arr.dtype, tuple(as_dim(d) for d in arr.shape), arr)
    for k, p in enumerate(proto.node):
        inputs = [resolve(i) for i in p.input]
        seen = dict(local)  # a nested If's branches see this branch's values defined before it
        node = Node(p.op_type, f"{owner.name}/{which}/{p.name or f'{p.op_type}_{k}'}", inputs,
                    [define(o) if o else "" for o in p.output],
                    {a.name: attr_value(a) for a in p.attribute}, p.domain)
        if node.op in ("If", "Loop"):
            _import_control(graph, node, seen, used)
        br.nodes.append(node)
    srcs = [resolve(o.name) for o in proto.output]
    if owner.op == "Loop":  # the body's outputs are its own buffers, which the loop copies on
        dsts = [_fresh(f"{owner.outputs[0] or owner.name}.body_out{k}", used) for k in range(len(srcs))]
        used.update(dsts)
    elif len(srcs) != len(owner.outputs):
        raise ModelError(owner, f"{which} has {len(srcs)} outputs, the If node {len(owner.outputs)}")
    else:
        dsts = owner.outputs
    _bind_outputs(br, srcs, dsts)
    return br


def _bind_outputs(br: Branch, srcs: list[str], dsts: list[str]) -> None:
    """Makes the branch write the If's outputs `dsts` itself: the producing node of each source is
    renamed to write the If's output; a source no node of the branch writes (or one already bound)
    is copied by an Identity node."""
    produced = {o for n in br.nodes for o in n.outputs if o}
    bound: dict[str, str] = {}  # source -> the If output it now is
    for src, dst in zip(srcs, dsts):
        if src in produced and src not in bound:
            rename(br, src, dst)
            bound[src] = dst
        else:
            br.nodes.append(Node("Identity", f"{br.name}/output_{dst}", [bound.get(src, src)], [dst]))
    br.outputs = list(dsts)


# ---- shape inference ----

def decide(cond: Value):
    """The branch a condition takes when it is known at compile time: True/False, else None (a
    run-time value, or an expression of the input dims that differs across the declared ranges)."""
    if cond is None or cond.const is None:
        return None
    c = np.asarray(cond.const).reshape(-1)
    if c.size != 1:
        return None
    if cond.is_const:
        return bool(c[0])
    e = c[0]
    if e in (sympy.true, sympy.false) or isinstance(e, (bool, np.bool_)):
        return bool(e)
    return None


def decide_over_range(expr, dims) -> bool | None:
    """The value a condition on the input dims has over the WHOLE declared box, or None when it
    changes inside the box (or cannot be bounded). A comparison is decided from the bounds of
    lhs - rhs (as the planner bounds sizes: corners, plus a sweep where floor/mod appear); a
    non-monotone difference of several dims is never decided, since corners would not bound it."""
    if expr in (sympy.true, sympy.false):
        return bool(expr)
    if isinstance(expr, sympy.Not):
        inner = decide_over_range(expr.args[0], dims)
        return None if inner is None else not inner
    if isinstance(expr, (sympy.And, sympy.Or)):
        parts = [decide_over_range(a, dims) for a in expr.args]
        short = isinstance(expr, sympy.Or)  # the value that settles it from one part
        if short in parts:
            return short
        return None if None in parts else not short
    if not isinstance(expr, sympy.core.relational.Relational):
        return None
    d = sympy.sympify(expr.lhs - expr.rhs)
    free = [str(x) for x in d.free_symbols]
    if any(f not in dims.ranges for f in free) or \
            (len(free) > 1 and d.has(sympy.floor, sympy.ceiling, sympy.Mod)):
        return None
    hi, lo = dims.upper_bound(d), -dims.upper_bound(-d)
    rules = {sympy.StrictLessThan: (hi < 0, lo >= 0), sympy.LessThan: (hi <= 0, lo > 0),
             sympy.StrictGreaterThan: (lo > 0, hi <= 0), sympy.GreaterThan: (lo >= 0, hi < 0),
             sympy.Eq: (lo == hi == 0, lo > 0 or hi < 0), sympy.Ne: (lo > 0 or hi < 0, lo == hi == 0)}
    always, never = rules.get(type(expr), (False, False))
    return True if always else False if never else None


def settle_condition(values, node: Node, dims) -> None:
    """A condition on the dims whose outcome is the same over the whole declared box becomes that
    known bool (so the branch it never takes is dropped at compile time, like a constant's)."""
    cond = values.get(node.inputs[0])
    if cond is None or not cond.is_symbolic or decide(cond) is not None or np.size(cond.const) != 1:
        return
    known = decide_over_range(sympy.sympify(np.asarray(cond.const).reshape(-1)[0]), dims)
    if known is not None:
        cond.const = np.full(np.shape(cond.const), known)


def taken_branch(node: Node, values) -> Graph | None:
    """The branch an If runs when its condition is known as a number; None otherwise."""
    if node.op != "If":
        return None
    t = decide(values.get(node.inputs[0]))
    return None if t is None else subgraphs(node)[0 if t else 1]


def infer_subgraphs(graph: Graph, node: Node) -> None:
    """Infers an If's branches in the enclosing scope, before the If's own rule reads their output
    shapes. A branch a numeric condition never takes is left alone: exported models often guard
    shapes it could not handle."""
    from .shape_infer import infer_node

    branches = subgraphs(node)
    if not branches:
        return
    if node.op == "Loop":
        from .loop import infer_body
        return infer_body(graph, node)
    settle_condition(graph.values, node, graph.dims)
    taken = taken_branch(node, graph.values)
    for br in branches:
        if taken is not None and br is not taken:
            continue
        for o in br.outputs:  # the branch's own version of the If's outputs, not the outer one
            if o not in br.values:
                br.values[o] = Value(o)
        view = scoped(br, graph.values)
        for n in br.nodes:
            infer_node(view, n)
        for o in br.outputs:
            if br.values[o].shape is None:
                raise ModelError(node, f"{br.name} never produces its output {o!r}")


def _same_dim(a, b) -> bool:
    a, b = as_dim(a), as_dim(b)
    return a == b or sympy.simplify(a - b) == 0


def _if_infer(ctx):
    cond, node = ctx.ins[0], ctx.node
    if cond.dtype != BOOL:
        ctx.fail(f"condition {cond.name!r} is {cond.dtype}; If needs a bool")
    if cond.static_shape and int(np.prod([int(d) for d in cond.shape])) != 1:
        ctx.fail(f"condition {cond.name!r} has shape {tuple(map(int, cond.shape))}; If needs one element")
    branches = [ctx.attrs.get(a) for a in BRANCH_ATTRS]
    if not all(isinstance(b, Graph) for b in branches):
        ctx.fail("branches were not imported (frontends/control_flow.import_subgraphs)")
    taken = decide(cond)
    if taken is not None:
        br = branches[0 if taken else 1]
        return [(br.values[o].dtype, br.values[o].shape) for o in br.outputs]
    results = []
    for k, o in enumerate(node.outputs):
        a, b = (br.values[o] for br in branches)
        if a.dtype != b.dtype:
            ctx.fail(f"output {k} ({o!r}) is {a.dtype} in then_branch and {b.dtype} in else_branch")
        if len(a.shape) != len(b.shape):
            ctx.fail(f"output {k} ({o!r}) has rank {len(a.shape)} in then_branch and {len(b.shape)} "
                     f"in else_branch; a rank chosen at run time is not supported")
        results.append((a.dtype, tuple(da if _same_dim(da, db) else _branch_dim(ctx, o, d, da, db)
                                       for d, (da, db) in enumerate(zip(a.shape, b.shape)))))
    return results


def _branch_dim(ctx, output: str, axis: int, then_dim, else_dim):
    """An extent the branch taken decides (fourth category): an execution-determined dim, bounded
    by the larger of the two; the branch that runs sets it (lower_if)."""
    return ctx.dims.runtime_dim(branch_dim_name(output, axis), sympy.Max(as_dim(then_dim), as_dim(else_dim)))


def branch_dim_name(output: str, axis: int) -> str:
    return f"{output}.dim{axis}"


def if_contents(ctx) -> list:
    """Contents of an If's outputs: those of the branch a known condition takes, else unknown."""
    taken = decide(ctx.ins[0])
    if taken is None:
        return [None] * len(ctx.node.outputs)
    br = ctx.attrs[BRANCH_ATTRS[0 if taken else 1]]
    return [br.values[o].const for o in br.outputs]


# ---- code generation ----

def lower_if(k) -> dict:
    """Template parameters of `if.j2`: the condition as C++ and each branch's kernels, rendered by
    an emitter over the branch's own plan (its buffers lie in the If's region of the arena)."""
    node = k.node
    cond = k.emitter.graph.values[node.inputs[0]]
    if cond.is_symbolic:  # routing by input shape: evaluated from the dims, no tensor read
        expr = k.dimexpr(np.asarray(cond.const).reshape(-1)[0])
    elif cond.is_const:
        expr = "true" if decide(cond) else "false"
    else:
        expr = f"{k.ins[0].ptr}[0]"
    plans = k.emitter.plan.branches[node.outputs[0]]
    then_k, else_k = (k.emitter.branch(view, sub).kernels() for view, sub in plans)
    then_s, else_s = (_branch_dims(k, node, view) for view, _ in plans)
    return {"cond": expr, "then_kernels": then_k, "else_kernels": else_k,
            "then_dims": then_s, "else_dims": else_s}


def _branch_dims(k, node: Node, view: Graph) -> list[tuple[str, str]]:
    """(symbol slot, value) of each execution-determined dim of the If's outputs, as the branch
    `view` makes it."""
    dims, sets = k.emitter.graph.dims, []
    for o in node.outputs:
        for axis, d in enumerate(k.emitter.graph.values[o].shape):
            name = branch_dim_name(o, axis)
            if name in dims.runtime and as_dim(d).free_symbols == {dims.runtime_dim(name, 0)}:
                sets.append((k.dimexpr(d), k.dimexpr(view.values[o].shape[axis])))
    return sets


# Category: the output shapes are fixed by the input shapes when the branches agree on them (or the
# condition is decided at compile time); where they differ, the dim is execution-determined.
register(OpDef("If", Category.SHAPE_FROM_SHAPES, _if_infer, Fusion.OPAQUE, "if",
               value=if_contents, dtypes=("float32", "int64", "int32", "bool"), lower=lower_if))

from . import loop  # noqa: E402,F401  (registers Loop)
