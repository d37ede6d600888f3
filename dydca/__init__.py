"""dydca: an ahead-of-time compiler for dynamic DNNs, and the video super-resolution system on it."""
__version__ = "0.1.0"

from .api import Model, compile, load  # noqa: E402,F401
from .frontends.symbolic import DEFAULT_RANGE  # noqa: E402,F401
