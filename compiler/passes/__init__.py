"""Graph -> Graph passes, each a plain function with its own tests. `DEFAULT` is the pipeline's order."""
from .channels_last import channels_last
from .cleanup import dead_node_removal, fold_constants, materialize_outputs
from .fold_batchnorm import fold_batchnorm
from .fuse_conv_epilogue import fuse_conv_epilogue
from .fuse_depth_to_space import fuse_depth_to_space
from .fuse_elementwise import fuse_elementwise
from .scopes import in_every_scope

# fold_constants and dead_node_removal walk If branches themselves (they inline or drop them)
DEFAULT = [fold_constants] + [in_every_scope(p) for p in (fold_batchnorm, fuse_conv_epilogue, fuse_depth_to_space,
                                                          fuse_conv_epilogue, fuse_elementwise, channels_last)] + [
    dead_node_removal]
"""Optimising passes, in order; `materialize_outputs` runs last, right before planning.
BN folds into conv weights before the conv takes its epilogue; the epilogue takes the chain after a
conv before element-wise fusion could turn that chain into a separate kernel. A DepthToSpace after
a conv then folds into the conv's store (attrs["store"]), after the epilogue so that the epilogue
(applied before the shuffle) is already in place; the second fuse_conv_epilogue takes the chain
after the shuffle (e.g. SRResNet's PRelu after each pixel-shuffle). channels_last pairs convs once every kernel is
fused (it needs each conv's final epilogue and sole reader). The fusions run in every If branch
too (scopes.in_every_scope)."""

__all__ = ["DEFAULT", "channels_last", "dead_node_removal", "fold_batchnorm", "fold_constants", "fuse_conv_epilogue",
           "fuse_depth_to_space", "fuse_elementwise", "in_every_scope", "materialize_outputs"]
