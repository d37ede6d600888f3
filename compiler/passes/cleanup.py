"""Constant folding, dead-node removal and output materialisation."""
from __future__ import annotations

from dydca.frontends.ir import Graph, Node, Value
from dydca.frontends.ops import REGISTRY


def fold_constants(graph: Graph) -> Graph:
    """Drops nodes whose outputs are all known numbers at compile time (shape inference computed
    them from initializers); their outputs become constants."""
    g = graph.copy()
    g.nodes = [n for n in g.nodes if not all(g.values[o].is_const for o in n.outputs if o)]
    return g


def runtime_reads(node: Node) -> list[str]:
    """Inputs a node's kernel reads at run time (not the ones its op consumes at compile time)."""
    op = REGISTRY.get(node.op)
    static = op.static_inputs if op else ()
    return [i for k, i in enumerate(node.inputs) if i and k not in static]


def dead_node_removal(graph: Graph) -> Graph:
    """Removes nodes nothing at run time needs: whose outputs are neither graph outputs nor read
    by a live kernel. Shape sub-graphs die here once their results are folded into expressions."""
    g = graph.copy()
    needed = set(g.outputs)
    live = []
    for node in reversed(g.nodes):
        if any(o in needed for o in node.outputs if o):
            live.append(node)
            needed.update(runtime_reads(node))
    g.nodes = live[::-1]
    # values live nodes name, read at run time or compile time (packed weights, shapes, ...)
    used = {v for n in g.nodes for v in n.inputs + n.outputs} | set(g.inputs) | set(g.outputs)
    g.values = {k: v for k, v in g.values.items() if k in used}
    return g


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
