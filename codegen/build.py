"""Builds generated sources into a shared library, with a content-addressed cache.

A build is keyed by a hash of the model, the compile options, the target (compiler version, host
CPU flags) and dydca's own templates and runtime headers, so compiling the same model again, in
this process or another, costs a file copy. Two artifacts are built once per cache and target and
serve every model build: the runtime headers precompiled, and the kernels every model shares
compiled into an object the libraries link.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .targets import HERE, Target, runtime_include_dir

MANIFEST = "manifest.json"


def cache_root() -> Path:
    return Path(os.environ.get("DYDCA_CACHE_DIR") or Path.home() / ".cache" / "dydca")


def _tree_hash(*roots: Path) -> str:
    h = hashlib.sha256()
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.suffix in (".j2", ".h", ".hpp", ".py", ".cl") and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(root)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()


def build_key(model_digest: str, options: dict, target: Target) -> str:
    h = hashlib.sha256()
    h.update(model_digest.encode())
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    h.update(target.identity().encode())
    h.update(_tree_hash(HERE, runtime_include_dir(), HERE.parent / "frontends", HERE.parent / "compiler").encode())
    return h.hexdigest()[:32]


def cached_build(key: str) -> Path | None:
    d = cache_root() / key
    try:
        manifest = json.loads((d / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return d if (d / manifest["library"]).exists() else None


def store_in_cache(key: str, build_dir: Path) -> None:
    """Copies a finished build into the cache atomically (a rename), so parallel builds never see
    half a folder."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
        for p in build_dir.iterdir():
            if p.is_file():
                shutil.copy2(p, tmp / p.name)
        try:
            os.rename(tmp, root / key)
        except OSError:  # another process stored it first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass  # a read-only cache only costs speed


def copy_build(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_file():
            shutil.copy2(p, dst / p.name)


PCH_NAME = "dydca_pch.h"
PREBUILT_NAME = "dydca_prebuilt.cpp"
KEEP = 4  # artifacts of each kind kept per cache (one per compiler/flags/runtime-header version)
MIN_AGE_S = 3600  # never prune one younger than this: a build elsewhere may be using it


def _key(*parts: str) -> str:
    """A cache key over text parts (each ended by a NUL, so no two splits of one text collide)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:32]


def _built_once(kind: str, target: Target, name: str, text: str, command, product: str) -> Path | None:
    """Compiles `text` (written as `name`) with command(source, product_path) once per cache, keyed
    by compiler, flags and runtime-header contents like the model builds, so a stale one is never
    picked up; returns the folder it is in. Parallel builds (pytest-xdist workers, several
    dydca-compile runs) wait for one build instead of each running their own. None when
    DYDCA_NO_PREBUILD is set, the cache is not writable or the build fails: the model source then
    builds on its own."""
    if os.environ.get("DYDCA_NO_PREBUILD"):
        return None
    root = cache_root() / kind
    d = root / _key(target.identity(), str(runtime_include_dir()), _tree_hash(runtime_include_dir()), text)
    if (d / product).exists():
        return d
    try:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (d / product).exists():
                tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
                (tmp / name).write_text(text)
                proc = subprocess.run(command(tmp / name, tmp / product), capture_output=True, text=True)
                if proc.returncode != 0:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return None
                os.rename(tmp, d)
                _prune(root, d)
        return d
    except OSError:
        return None


def _prune(root: Path, keep: Path) -> None:
    """Drops all but the KEEP newest artifacts of a kind (a precompiled header is ~60 MB)."""
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for p in dirs[KEEP:]:
        if p != keep and now - p.stat().st_mtime > MIN_AGE_S:
            shutil.rmtree(p, ignore_errors=True)


def prebuilt_object(target: Target) -> Path | None:
    """The kernels every model library shares (runtime_cpp: parallel.h, DYDCA_LIB), compiled once
    per cache into an object each model build links: most of a model's machine code, so most of
    its build time, is then built once."""
    if not target.prebuilt:
        return None
    d = _built_once("prebuilt", target, PREBUILT_NAME, target.prebuilt_source(), target.prebuilt_command,
                    PREBUILT_NAME + ".o")
    return d / (PREBUILT_NAME + ".o") if d else None


def precompiled_header(target: Target, prebuilt: bool) -> Path | None:
    """The runtime headers every model source includes, precompiled once per cache: parsing them
    is most of a small model's build (g++ itself parses the headers instead of a .gch that does
    not fit its flags)."""
    text = target.pch_source() + "// " + " ".join(target.defines(prebuilt)) + "\n"
    d = _built_once("pch", target, PCH_NAME, text, lambda h, gch: target.pch_command(h, gch, prebuilt),
                    PCH_NAME + ".gch")
    return d / PCH_NAME if d else None


def model_object(target: Target, source: Path, pch: Path | None, prebuilt: bool) -> Path:
    """The object of a model's C++ source, cached by the source's text: models that differ only in
    their weights (an SR network per chunk or per video) have the same source, so all but the
    first build link."""
    text = source.read_text()
    key = _key(target.identity(), " ".join(target.defines(prebuilt)), _tree_hash(runtime_include_dir()), text)
    obj = cache_root() / "objects" / f"{key}.o"
    if not obj.exists():
        tmp = source.with_suffix(".o")
        cmd = target.compile_command(source, tmp, pch, prebuilt)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
        try:
            obj.parent.mkdir(parents=True, exist_ok=True)
            fd, part = tempfile.mkstemp(dir=obj.parent, prefix=".tmp-", suffix=".o")
            os.close(fd)
            shutil.copy2(tmp, part)
            os.replace(part, obj)  # atomic: a parallel build never reads half a file
        except OSError:
            return tmp  # a read-only cache only costs speed: the object stays in out_dir
        tmp.unlink(missing_ok=True)
    return obj


def compile_library(target: Target, sources: dict[str, str], blob: bytes, out_dir: Path,
                    prefix: str) -> tuple[Path, float]:
    """Writes the sources and the constant blob into out_dir and builds lib<prefix>.so there: the
    model's object (cached by its source) linked with the prebuilt kernels and the constants."""
    for name, text in sources.items():
        (out_dir / name).write_text(text)
    (out_dir / "weights.bin").write_bytes(blob)
    library = out_dir / f"lib{prefix}.so"
    source, blob_asm = out_dir / f"{prefix}.cpp", out_dir / f"{prefix}_blob.S"
    t0 = time.perf_counter()
    prebuilt = prebuilt_object(target)
    pch = precompiled_header(target, prebuilt is not None)
    try:
        obj = model_object(target, source, pch, prebuilt is not None)
        cmd = target.link_command([obj, blob_asm, *([prebuilt] if prebuilt else [])], library)
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        proc = subprocess.CompletedProcess(e.cmd, e.returncode, e.output, e.stderr)
    if proc.returncode != 0:
        # the errors are reported from a plain build, so no cached or prebuilt part can be their cause
        cmd = target.build_command([source, blob_asm], library)
        proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        (out_dir / "build.log").write_text(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
        raise RuntimeError(f"building {library.name} failed (g++ exit {proc.returncode}); the first "
                           f"errors:\n{_first_errors(proc.stderr)}\nfull log: {out_dir / 'build.log'}")
    return library, seconds


def _first_errors(stderr: str, n: int = 12) -> str:
    lines = [l for l in stderr.splitlines() if "error" in l or "required from" not in l]
    return "\n".join(lines[:n])
