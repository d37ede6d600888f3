"""Builds generated sources into a shared library, with a content-addressed cache.

A build is keyed by a hash of the model, the compile options, the target (compiler version, host
CPU flags) and dydca's own templates and runtime headers, so compiling the same model again, in
this process or another, costs a file copy.
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
PCH_KEEP = 4  # precompiled headers kept per cache (one per compiler/flags/runtime-header version)
PCH_MIN_AGE_S = 3600  # never prune one younger than this: a build elsewhere may be using it


def precompiled_header(target: Target) -> Path | None:
    """The runtime headers every model source includes, precompiled once per cache: parsing them
    is most of a small model's build. Keyed by compiler, flags and header contents like the builds,
    so a stale .gch is never picked up (and g++ itself parses the headers instead of a .gch that
    does not fit its flags). None, for a plain build, when DYDCA_NO_PCH is set, the cache is not
    writable or precompiling fails."""
    if os.environ.get("DYDCA_NO_PCH"):
        return None
    text = target.pch_source()
    h = hashlib.sha256()
    for part in (target.identity(), str(runtime_include_dir()), _tree_hash(runtime_include_dir()), text):
        h.update(part.encode() + b"\0")
    root = cache_root() / "pch"
    d = root / h.hexdigest()[:32]
    if (d / (PCH_NAME + ".gch")).exists():
        return d / PCH_NAME
    try:
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock", "w") as lock:
            # parallel builds (pytest-xdist workers) wait for one precompile instead of each
            # running their own
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (d / (PCH_NAME + ".gch")).exists():
                tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
                (tmp / PCH_NAME).write_text(text)
                proc = subprocess.run(target.pch_command(tmp / PCH_NAME, tmp / (PCH_NAME + ".gch")),
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return None
                os.rename(tmp, d)
                _prune_pch(root, d)
        return d / PCH_NAME
    except OSError:
        return None


def _prune_pch(root: Path, keep: Path) -> None:
    """Drops all but the PCH_KEEP newest precompiled headers (each is ~60 MB)."""
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for p in dirs[PCH_KEEP:]:
        if p != keep and now - p.stat().st_mtime > PCH_MIN_AGE_S:
            shutil.rmtree(p, ignore_errors=True)


def compile_library(target: Target, sources: dict[str, str], blob: bytes, out_dir: Path,
                    prefix: str) -> tuple[Path, float]:
    """Writes the sources and the constant blob into out_dir and compiles lib<prefix>.so there."""
    for name, text in sources.items():
        (out_dir / name).write_text(text)
    (out_dir / "weights.bin").write_bytes(blob)
    library = out_dir / f"lib{prefix}.so"
    t0 = time.perf_counter()
    pch = precompiled_header(target)
    cmd = target.build_command(out_dir / f"{prefix}.cpp", library, pch)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 and pch is not None:
        # the errors are reported from a plain build, so no precompiled header can be their cause
        cmd = target.build_command(out_dir / f"{prefix}.cpp", library)
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
