"""Graph -> Graph passes, each a plain function with its own tests. `DEFAULT` is the pipeline's order."""
from .cleanup import dead_node_removal, fold_constants, materialize_outputs

DEFAULT = [fold_constants, dead_node_removal]
"""Optimising passes, in order; `materialize_outputs` runs last, right before planning."""

__all__ = ["DEFAULT", "dead_node_removal", "fold_constants", "materialize_outputs"]
