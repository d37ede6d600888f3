"""IR -> C++ (and later OpenCL) sources through Jinja templates, and the build of a shared library."""
from .targets import TARGETS, Target, get_target  # noqa: F401
