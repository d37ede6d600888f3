"""Code-generation targets: a template folder plus a build recipe. `cpp` renders C++ kernels over
the header-only runtime; `opencl` renders host C++ (the cpp model template, extended) that runs
OpenCL C kernels through the OpenCL API (codegen/opencl.py)."""
from __future__ import annotations

import dataclasses
import functools
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


def runtime_include_dir() -> Path:
    """runtime_cpp/include, in the source tree or installed as dydca/runtime_cpp/include."""
    for base in (HERE.parent / "runtime_cpp", HERE.parent / "dydca" / "runtime_cpp"):
        if (base / "include" / "dydca" / "runtime.h").exists():
            return base / "include"
    raise FileNotFoundError("dydca runtime headers not found (runtime_cpp/include)")


@functools.lru_cache(maxsize=None)
def compiler_id(cxx: str) -> str:
    """The C++ compiler's version line and the host CPU flags it will target (-march=native)."""
    try:
        ver = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"C++ compiler {cxx!r} is not usable: {e}") from e
    flags = ""
    try:
        flags = subprocess.run([cxx, "-march=native", "-Q", "--help=target"], capture_output=True,
                               text=True).stdout
    except OSError:
        pass
    import hashlib
    return ver.splitlines()[0] + " " + hashlib.sha1(flags.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Target:
    name: str
    template_dir: Path
    headers: tuple = ()  # runtime kernel headers the model source includes
    std_headers: tuple = ()  # standard headers the model source includes
    cxxflags: tuple = ()
    ldflags: tuple = ()
    cxx: str = field(default_factory=lambda: os.environ.get("CXX", "g++"))
    template_path: tuple = ()  # more template folders, searched after template_dir
    emitter: str = "emit:Emitter"  # the code generator: module (in this package):class
    prebuilt: bool = True  # its headers hold prebuilt kernels (parallel.h: DYDCA_LIB)

    def emitter_class(self):
        import importlib
        module, cls = self.emitter.split(":")
        return getattr(importlib.import_module(f".{module}", __package__), cls)

    def includes(self) -> list[str]:
        """Every #include of a generated model source, in order (also the precompiled header)."""
        return ([f"<{h}>" for h in self.std_headers] + ['"dydca/api.h"', '"dydca/runtime.h"']
                + [f'"dydca/{h}"' for h in self.headers])

    def build_command(self, sources: list[Path], library: Path) -> list[str]:
        """g++ command building `library` from the model's sources alone (C++ and the constants'
        assembly), every kernel included."""
        return [self.cxx, *self.cxxflags, f"-I{runtime_include_dir()}", *map(str, sources), "-o", str(library),
                *self.ldflags]

    def compile_command(self, source: Path, obj: Path, pch: Path | None, prebuilt: bool) -> list[str]:
        """g++ command compiling a model source to `obj`; `pch`: a header precompiled with
        pch_command, included first (g++ reads its .gch instead of parsing the runtime headers
        again); `prebuilt`: the source only declares the kernels of prebuilt_command's object."""
        pre = ["-include", str(pch)] if pch is not None else []
        return [self.cxx, *self.compile_flags(), *self.defines(prebuilt), f"-I{runtime_include_dir()}", *pre, "-c",
                str(source), "-o", str(obj)]

    def link_command(self, inputs: list[Path], library: Path) -> list[str]:
        """Links objects (the prebuilt kernels among them: compiled with -ffunction-sections, so
        the ones a model does not call are dropped) and the constants' assembly into `library`."""
        return [self.cxx, *self.cxxflags, *map(str, inputs), "-Wl,--gc-sections", "-o", str(library), *self.ldflags]

    @staticmethod
    def defines(prebuilt: bool) -> list[str]:
        return ["-DDYDCA_PREBUILT"] if prebuilt else []

    def pch_source(self) -> str:
        return "// dydca: the runtime headers of generated model sources, precompiled.\n" + "".join(
            f"#include {h}\n" for h in self.includes())

    def pch_command(self, header: Path, gch: Path, prebuilt: bool = False) -> list[str]:
        """Precompiles `header` with exactly the flags of compile_command (g++ rejects a .gch built
        with other code-generation flags or macros), minus the link-only ones."""
        return [self.cxx, *self.compile_flags(), *self.defines(prebuilt), f"-I{runtime_include_dir()}",
                "-x", "c++-header", str(header), "-o", str(gch)]

    def prebuilt_source(self) -> str:
        """The model-independent kernels of the runtime headers (parallel.h: DYDCA_LIB), defined."""
        return ("// dydca: the kernels every model library shares, compiled once per target.\n"
                "#define DYDCA_PREBUILT_IMPL\n" + "".join(f"#include {h}\n" for h in self.includes()))

    def prebuilt_command(self, source: Path, obj: Path) -> list[str]:
        return [self.cxx, *self.compile_flags(), "-ffunction-sections", f"-I{runtime_include_dir()}", "-c",
                "-x", "c++", str(source), "-o", str(obj)]

    def compile_flags(self) -> list[str]:
        return [f for f in self.cxxflags if f != "-shared"]

    def identity(self) -> str:
        return f"{self.name} {compiler_id(self.cxx)} {' '.join(self.cxxflags)}"


CPP = Target(
    name="cpp",
    template_dir=HERE / "templates" / "cpp",
    headers=("conv.h", "gemm.h", "kernels.h"),  # kernels.h pulls in every family header
    std_headers=("algorithm", "atomic", "chrono", "cstdint", "cstdlib", "exception", "iterator", "new",
                 "stdexcept", "string", "thread"),
    # -fopenmp-simd: `#pragma omp simd` only. Threads come from our own pool (parallel.h), so the
    # library links no libgomp, and an app or a process that unloads a model has no OpenMP
    # runtime's idle threads to outlive it
    cxxflags=("-O3", "-march=native", "-std=c++17", "-fPIC", "-shared", "-fopenmp-simd",
              "-fvisibility=hidden", "-fno-math-errno", "-fno-trapping-math", "-Wno-unused-variable", "-Wno-unused-but-set-variable"),
    ldflags=(),
)

# Host code (the kernels are OpenCL C, compiled by the driver): the enqueueing, control flow and the
# host-run selection ops (NonZero, TopK: selection.h, on the thread pool like the cpp target); no
# -march=native. libOpenCL is opened with dlopen when a model is created
# (runtime_cpp/include/dydca/opencl.h), so the library needs the OpenCL headers to build but no
# OpenCL driver to load.
OPENCL = Target(
    name="opencl",
    template_dir=HERE / "templates" / "opencl",
    template_path=(HERE / "templates", HERE / "templates" / "cpp"),
    headers=("opencl.h", "selection.h"),
    std_headers=CPP.std_headers + ("vector",),
    cxxflags=("-O2", "-std=c++17", "-fPIC", "-shared", "-fopenmp-simd", "-fvisibility=hidden", "-Wno-unused-variable",
              "-Wno-unused-but-set-variable", "-Wno-deprecated-declarations"),
    ldflags=("-ldl",),
    emitter="opencl:OpenCLEmitter",
    prebuilt=False,  # the kernels are OpenCL C: an object of the host headers would be empty
)

# The cpp target with 8-lane (256-bit) vectors on an AVX-512 CPU: for cores with one 512-bit FMA
# unit, or that lower their clock under AVX-512, where the 16-lane kernels run no faster than 8
# lanes or slower (bench/kernels/fma_peak.cpp tells which case a machine is in: 16 lanes at about
# twice the 8-lane rate pay).  Same kernels, their AVX2 code (runtime_cpp: `#ifdef __AVX512F__`).
CPP_AVX2 = dataclasses.replace(CPP, name="cpp-avx2", cxxflags=CPP.cxxflags + ("-mno-avx512f",))

TARGETS = {"cpp": CPP, "cpp-avx2": CPP_AVX2, "opencl": OPENCL}


@functools.lru_cache(maxsize=None)
def opencl_headers_missing(cxx: str) -> str:
    """Why `cxx` cannot compile against the OpenCL C API headers (CL/cl.h), or ""."""
    try:
        proc = subprocess.run([cxx, "-x", "c++", "-fsyntax-only", "-"], input="#include <CL/cl.h>\n",
                              capture_output=True, text=True)
    except OSError as e:
        return str(e)
    return "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[0]


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise ValueError(f"unknown target {name!r}; available: {', '.join(TARGETS)}")
    if name == "cpp-avx2" and platform.machine().lower() not in ("x86_64", "amd64"):
        raise ValueError(f"the cpp-avx2 target is for x86-64 CPUs; this machine is {platform.machine()}")
    if shutil.which(TARGETS[name].cxx) is None:
        raise RuntimeError(f"the {name} target needs the C++ compiler {TARGETS[name].cxx!r} on PATH")
    if name == "opencl" and (why := opencl_headers_missing(TARGETS[name].cxx)):
        raise RuntimeError(f"the opencl target needs the OpenCL headers (CL/cl.h; Debian/Ubuntu: "
                           f"apt install ocl-icd-opencl-dev) to build model libraries: {why}")
    return TARGETS[name]
