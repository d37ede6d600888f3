"""Symbolic dims: expressions print to C++ integer arithmetic and are bounded over declared ranges."""
import pytest
import sympy

from dydca.frontends.symbolic import SymbolScope, ceildiv, floordiv, sym, to_cpp

h, w = sym("h"), sym("w")
NAMES = {"h": "H", "w": "W"}


@pytest.mark.parametrize("expr,cpp", [
    (h, "H"),
    (h * w, "(H * W)"),
    (2 * h, "(INT64_C(2) * H)"),
    (floordiv(h - 1, 2) + 1, "dydca::floordiv(H - INT64_C(1), INT64_C(2)) + INT64_C(1)"),
    (ceildiv(h, 3), "dydca::ceildiv(H, INT64_C(3))"),
    (sympy.Mod(h, 8), "dydca::pymod(H, INT64_C(8))"),
    (sympy.Max(0, 3 - h), "std::max<int64_t>(INT64_C(0), INT64_C(3) - H)"),
])
def test_cpp_forms(expr, cpp):
    assert to_cpp(expr, NAMES) == cpp


@pytest.mark.parametrize("expr,values", [
    (floordiv(h + 2 - 3, 2) + 1, {"h": 17}),
    (sympy.Mod(8 - sympy.Mod(h, 8), 8) + h, {"h": 13}),
    (ceildiv(h * w, 7), {"h": 5, "w": 9}),
])
def test_cpp_matches_python_semantics(expr, values, tmp_path):
    """The printed C++ computes the same integers as sympy (floor/mod on negatives included)."""
    import subprocess
    from dydca.codegen.targets import runtime_include_dir

    src = tmp_path / "e.cpp"
    src.write_text('#include "dydca/runtime.h"\n#include <cstdio>\nint main(){'
                   + "".join(f"int64_t {NAMES[k]}={v};" for k, v in values.items())
                   + f'std::printf("%lld", (long long)({to_cpp(expr, NAMES)}));}}')
    exe = tmp_path / "e"
    subprocess.run(["g++", "-std=c++17", "-fopenmp", f"-I{runtime_include_dir()}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    scope = SymbolScope()
    for k in values:
        scope.declare(k, 1, 100)
    assert int(out) == scope.evaluate(expr, values)


def test_bounds_over_declared_ranges():
    s = SymbolScope()
    s.declare("h", 16, 1088)
    s.declare("w", 16, 1920)
    assert s.upper_bound(h * w) == 1088 * 1920
    assert s.lower_bound(h * w) == 256
    # not monotone: the sweep finds the true maximum of a padding amount
    assert s.upper_bound(sympy.Mod(32 - sympy.Mod(h, 32), 32)) == 31


def test_declare_rejects_empty_ranges():
    with pytest.raises(ValueError, match="empty"):
        SymbolScope().declare("n", 5, 4)
