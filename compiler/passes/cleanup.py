"""Constant folding, dead-node removal and output materialisation."""
from __future__ import annotations

from collections import ChainMap

from dydca.frontends.control_flow import own_inputs, refresh_captures, rename, subgraphs, taken_branch
from dydca.frontends.ir import Graph, Node, Value
from dydca.frontends.ops import REGISTRY


def fold_constants(graph: Graph) -> Graph:
    """Drops nodes whose outputs are all known numbers at compile time (shape inference computed
    them from initializers); their outputs become constants. An If whose condition is a known
    number is replaced by the branch it takes; the branches of the others are folded too."""
    g = graph.copy()
    g.nodes = _fold_nodes(g.nodes, g.values, g.values, keep=set())
    return g


def _fold_nodes(nodes: list[Node], own: dict, scope, keep: set) -> list[Node]:
    """`own`: the values of the graph holding `nodes` (an inlined branch's values move there);
    `scope`: every value visible; `keep`: values a node must still write although known (a
    branch's outputs are the If's buffers, which the branch taken fills)."""
    out, work = [], list(nodes)
    while work:
        n = work.pop(0)
        taken = taken_branch(n, scope)
        if taken is not None:  # its nodes write the If's outputs under their names
            own.update(taken.values)
            work[:0] = taken.nodes
            continue
        for br in subgraphs(n):
            br.nodes = _fold_nodes(br.nodes, br.values, ChainMap(br.values, scope), set(br.outputs))
        if subgraphs(n):
            refresh_captures(n)
        elif all(scope[o].is_const for o in n.outputs if o):
            # a known branch output still has to be written into the If's buffer: copy it there
            for o in keep.intersection(n.outputs):
                src = o + "_value"
                while src in scope:
                    src += "_"
                own[src] = Value(src, scope[o].dtype, scope[o].shape, scope[o].const)
                out.append(Node("Identity", n.name, [src], [o]))
            continue
        out.append(n)
    return out


def runtime_reads(node: Node, values=None) -> list[str]:
    """Inputs a node's kernel reads at run time (not the ones its op consumes at compile time).
    An If reads its condition unless `values` know it (a symbolic condition is evaluated from the
    dims), a Loop its condition and initial values; both the captured values their sub-graphs
    read at run time."""
    op = REGISTRY.get(node.op)
    static = op.static_inputs if op else ()
    if subgraphs(node):
        fixed = own_inputs(node)
        reads = [i for k, i in enumerate(node.inputs[:fixed]) if i and k not in static and
                 not (node.op == "If" and values is not None and values[i].const is not None)]
        inner = set()
        for br in subgraphs(node):
            scope = ChainMap(br.values, values) if values is not None else None
            inner.update(i for n in br.nodes for i in runtime_reads(n, scope))
        return reads + [c for c in node.inputs[fixed:] if c in inner]
    return [i for k, i in enumerate(node.inputs) if i and k not in static]


def dead_node_removal(graph: Graph) -> Graph:
    """Removes nodes nothing at run time needs: whose outputs are neither graph outputs nor read
    by a live kernel. Shape sub-graphs die here once their results are folded into expressions.
    Branches are cleaned the same way, their outputs being what they must produce."""
    g = graph.copy()
    _remove_dead(g, g.values)
    return g


def _remove_dead(g: Graph, scope) -> None:
    needed = set(g.outputs)
    live = []
    for node in reversed(g.nodes):
        if any(o in needed for o in node.outputs if o):
            for br in subgraphs(node):
                _remove_dead(br, ChainMap(br.values, scope))
            if subgraphs(node):
                refresh_captures(node)
            live.append(node)
            needed.update(runtime_reads(node, scope))
    g.nodes = live[::-1]
    # values live nodes name, read at run time or compile time (packed weights, shapes, ...)
    used = {v for n in g.nodes for v in n.inputs + n.outputs} | set(g.inputs) | set(g.outputs)
    for k in [k for k in g.values if k not in used]:
        del g.values[k]


def materialize_outputs(graph: Graph) -> Graph:
    """Makes every graph output a buffer a kernel writes: an output that is an input, a constant,
    an alias of another buffer (Reshape of an intermediate) or a repeat of another output gets an
    explicit copy."""
    g = graph.copy()
    producers = g.producers()
    seen = set()
    for j, out in enumerate(g.outputs):
        node = producers.get(out)
        op = REGISTRY.get(node.op) if node else None
        aliased = op is not None and op.fusion.value == "alias"
        if node is not None and not aliased and out not in seen:
            seen.add(out)
            continue
        src = out
        if node is not None and aliased:
            src = g.fresh_name(out + "_view")
            node.outputs[node.outputs.index(out)] = src
            g.values[src] = Value(src, g.values[out].dtype, g.values[out].shape, g.values[out].const)
            for other in g.nodes:  # readers of the alias read the view, not the copy appended last
                other.inputs = [src if i == out else i for i in other.inputs]
                for br in subgraphs(other):
                    rename(br, out, src)
            new_out = out
        else:
            new_out = g.fresh_name(out + "_out")
            v = g.values[out]
            g.values[new_out] = Value(new_out, v.dtype, v.shape, None)
            g.public_names[new_out] = out
            g.outputs[j] = new_out
        g.nodes.append(Node("Identity", f"copy_{new_out}", [src], [new_out]))
        seen.add(new_out)
    return g
