"""Symbolic dimensions: input dim names become sympy symbols, every shape an expression of them.

Each symbol carries a declared range (min, max). Expressions are rendered to C++ integer arithmetic
for the generated library, evaluated in Python for checks, and bounded over the declared box for
static memory planning.
"""
from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field

import sympy
from sympy.printing.c import C99CodePrinter

Dim = sympy.Expr  # a dimension is an integer-valued sympy expression (or a plain sympy Integer)

DEFAULT_RANGE = (1, 4096)
"""Range given to a symbolic dimension that the user did not bind (documented in README)."""


def sym(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, integer=True, positive=True)


def runtime_sym(name: str) -> sympy.Symbol:
    """An execution-determined dim (a NonZero count may be 0, so it is only non-negative)."""
    return sympy.Symbol(name, integer=True, nonnegative=True)


def as_dim(v) -> Dim:
    # sympy keeps sums and products canonical on construction; full simplify() is costly and
    # rarely changes a shape expression, so it is left to the rules that need it
    if isinstance(v, sympy.Basic):
        return v
    return sympy.Integer(int(v))


@functools.lru_cache(maxsize=4096)
def _simplify(expr):
    return sympy.simplify(expr)


def simplify_dim(v) -> Dim:
    """sympy.simplify of a dimension expression, memoised: it costs tens of milliseconds per call
    on floor/Mod expressions, and shape inference and kernel lowering ask for the same ones."""
    e = as_dim(v)
    return e if e.is_Atom else _simplify(e)


@functools.lru_cache(maxsize=4096)
def _lambdify(expr, free: tuple):
    by_name = {s.name: s for s in expr.free_symbols}
    return sympy.lambdify([by_name[n] for n in free], expr, modules="math")


def is_static(d) -> bool:
    return isinstance(d, (int,)) or (isinstance(d, sympy.Basic) and d.is_Integer)


def shape_is_static(shape) -> bool:
    return shape is not None and all(is_static(d) for d in shape)


def floordiv(a, b) -> Dim:
    return sympy.floor(sympy.Rational(1, 1) * as_dim(a) / as_dim(b))


def ceildiv(a, b) -> Dim:
    return sympy.ceiling(sympy.Rational(1, 1) * as_dim(a) / as_dim(b))


def hull(classes: list[dict]) -> dict[str, tuple[int, int]]:
    """The smallest single box holding every shape class (what each dim alone may be)."""
    names = {n for c in classes for n in c}
    return {n: (min(c[n][0] for c in classes if n in c), max(c[n][1] for c in classes if n in c))
            for n in sorted(names)}


@dataclass
class SymbolScope:
    """The model's dimension symbols, with their declared ranges, in a fixed order."""

    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    defaulted: list[str] = field(default_factory=list)
    # Execution-determined dims (fourth category: a NonZero count, the extent an If's branch picks):
    # name -> upper bound, an expression of the declared dims. Their value is materialised by the
    # kernel that computes it and flows on into the shape expressions of what follows; the plan
    # sizes their tensors at the bound. Sizes grow with these dims, so bounds substitute the bound.
    runtime: dict[str, Dim] = field(default_factory=dict)
    # Shape classes: boxes of the declared dims (e.g. a batch of small patches, one full frame).
    # Empty: one box, `ranges`. Else `ranges` is their hull, a call's dims must fall in one class,
    # and every bound is the largest over the classes: a tensor is sized for 64 patches or one
    # frame, not for 64 frames.
    classes: list[dict[str, tuple[int, int]]] = field(default_factory=list)

    def declare_classes(self, classes: list[dict]) -> None:
        """Sets the shape classes over the declared dims; each must name all of them."""
        if len(classes) < 2:
            self.classes = []
            return
        out = []
        for k, c in enumerate(classes):
            if set(c) != set(self.ranges):
                raise ValueError(f"shape class {k} names {sorted(c)}; every class must name the "
                                 f"input dims {sorted(self.ranges)}")
            for name, (lo, hi) in c.items():
                if lo < 1 or hi < lo:
                    raise ValueError(f"shape class {k}: dimension {name!r} range {lo}:{hi} is empty or not positive")
            out.append({n: (int(c[n][0]), int(c[n][1])) for n in self.ranges})
        self.classes = out


    def declare(self, name: str, lo: int, hi: int) -> sympy.Symbol:
        if lo < 1 or hi < lo:
            raise ValueError(f"dimension {name!r}: range {lo}:{hi} is empty or not positive")
        self.ranges[name] = (int(lo), int(hi))
        return sym(name)

    @property
    def names(self) -> list[str]:
        """The declared (input) dims, bound from the input shapes."""
        return list(self.ranges)

    @property
    def all_names(self) -> list[str]:
        """Declared dims, then execution-determined ones: the order of the per-call symbol array."""
        return list(self.ranges) + list(self.runtime)

    def runtime_dim(self, name: str, bound) -> sympy.Symbol:
        """The execution-determined dim `name` (made once; later calls return the same symbol),
        at most `bound`, which may itself use other execution-determined dims."""
        if name in self.ranges:
            raise ValueError(f"dimension {name!r} is declared; it cannot also be execution-determined")
        if name not in self.runtime:
            self.runtime[name] = self.at_bounds(as_dim(bound))
        return runtime_sym(name)

    def is_runtime(self, d) -> bool:
        return any(s.name in self.runtime for s in as_dim(d).free_symbols)

    def at_bounds(self, expr) -> Dim:
        """`expr` with every execution-determined dim replaced by its bound."""
        expr = as_dim(expr)
        subs = {s: self.runtime[s.name] for s in expr.free_symbols if s.name in self.runtime}
        return expr.xreplace(subs) if subs else expr

    def index(self, name: str) -> int:
        return self.names.index(name)

    def symbols(self) -> list[sympy.Symbol]:
        return [sym(n) for n in self.ranges]

    def evaluate(self, expr, values: dict[str, int]) -> int:
        expr = as_dim(expr)
        if expr.is_Integer:
            return int(expr)
        return int(self.at_bounds(expr.subs({s: values[s.name] for s in expr.free_symbols
                                             if s.name in values})))

    def corners(self):
        names = self.names
        for cls in self.classes or [self.ranges]:
            for combo in itertools.product(*[cls[n] for n in names]):
                yield dict(zip(names, combo))

    def boxes(self, free) -> list[list[tuple[int, int]]]:
        """The range of each named dim, per shape class: declared ones as the class declares them;
        an execution-determined one from 0 to its bound's largest value (a superset of its values,
        so bounds over it stay safe)."""
        unknown = [n for n in free if n not in self.ranges and n not in self.runtime]
        if unknown:
            raise ValueError(f"dimension expression uses undeclared symbols {unknown}")
        runtime = {n: (0, self.upper_bound(self.runtime[n])) for n in free if n in self.runtime}
        return [[cls[n] if n in cls else runtime[n] for n in free] for cls in (self.classes or [self.ranges])]

    def upper_bound(self, expr) -> int:
        """Largest value of `expr` over the declared box.

        Shape expressions are monotone in each symbol except where floor/mod/min/max appear; the
        corners give the bound in the monotone case and a sweep of a lone symbol's range covers
        the rest.
        """
        return self._extreme(expr, max)

    def lower_bound(self, expr) -> int:
        return self._extreme(expr, min)

    def _extreme(self, expr, pick) -> int:
        expr = as_dim(expr)
        if expr.is_Integer:
            return int(expr)
        free = sorted(str(s) for s in expr.free_symbols)
        f = _lambdify(expr, tuple(free))
        sweep = len(free) == 1 and expr.has(sympy.floor, sympy.ceiling, sympy.Mod, sympy.Min, sympy.Max)
        best = []
        for box in self.boxes(free):
            best += [int(f(*c)) for c in itertools.product(*box)]
            if sweep:
                lo, hi = box[0]
                best += [int(f(v)) for v in range(lo, min(hi, lo + (1 << 16)) + 1)]
        return pick(best)


_IDENT = re.compile(r"[^A-Za-z0-9_]")


class CppPrinter(C99CodePrinter):
    """Prints dimension expressions as int64_t arithmetic over the per-call symbol array."""

    def __init__(self, symbol_names: dict[str, str]):
        super().__init__()
        self._names = symbol_names

    def _print_Symbol(self, s):
        return self._names[s.name]

    def _print_Integer(self, e):
        # a leading '-' lets the Add printer write a - b instead of a + -b
        return f"-INT64_C({-int(e)})" if e < 0 else f"INT64_C({int(e)})"

    def _print_floor(self, e):
        num, den = sympy.fraction(sympy.together(e.args[0]))
        if den == 1:
            return self._print(num)
        return f"dydca::floordiv({self._print(num)}, {self._print(den)})"

    def _print_ceiling(self, e):
        num, den = sympy.fraction(sympy.together(e.args[0]))
        if den == 1:
            return self._print(num)
        return f"dydca::ceildiv({self._print(num)}, {self._print(den)})"

    def _print_Mod(self, e):
        a, b = e.args
        return f"dydca::pymod({self._print(a)}, {self._print(b)})"

    def _print_Max(self, e):
        out = self._print(e.args[0])
        for a in e.args[1:]:
            out = f"std::max<int64_t>({out}, {self._print(a)})"
        return out

    def _print_Min(self, e):
        out = self._print(e.args[0])
        for a in e.args[1:]:
            out = f"std::min<int64_t>({out}, {self._print(a)})"
        return out

    def _print_Mul(self, e):
        if e.could_extract_minus_sign():
            return "-" + self._print(-e)
        num, den = sympy.fraction(e)
        if den != 1:
            # an exact division left by simplification, e.g. h*w/4 where 4 divides h*w
            return f"(({self._print(num)}) / ({self._print(den)}))"
        # a sum inside a product needs its own parentheses: w*(h + 1), not w * h + 1
        return "(" + " * ".join(f"({self._print(a)})" if a.is_Add else self._print(a) for a in e.args) + ")"

    def _print_Pow(self, e):
        base, exp = e.args
        if exp.is_Integer and exp > 0:
            return "(" + " * ".join([f"({self._print(base)})"] * int(exp)) + ")"
        raise ValueError(f"dimension expression {e} is not integer arithmetic")

    def _print_Rational(self, e):
        raise ValueError(f"dimension expression has a fraction {e}")


def to_cpp(expr, symbol_names: dict[str, str]) -> str:
    """C++ int64 expression of a dimension; `symbol_names` maps symbol name -> C++ lvalue."""
    return CppPrinter(symbol_names).doprint(as_dim(expr))
