"""The split-map side file: round trip, compactness, and refusals of files for another video."""
import numpy as np
import pytest

from dydca.sr import patching as pt


def make_maps(frames=12, height=90, width=160, patch=32, scale=4, seed=0):
    rows, cols = pt.Grid(height, width, patch).shape
    paths = np.random.default_rng(seed).integers(0, 3, (frames, rows, cols)).astype(np.uint8)
    return pt.SplitMaps(height, width, patch, scale, paths.copy(), paths)


def test_round_trip(tmp_path):
    maps = make_maps()
    size = pt.save_split_maps(tmp_path / "split.bin", maps)
    assert size == (tmp_path / "split.bin").stat().st_size
    back = pt.load_split_maps(tmp_path / "split.bin", frame_size=(90, 160), scale=4, frames=12)
    assert (back.height, back.width, back.patch, back.scale) == (90, 160, 32, 4)
    assert np.array_equal(back.depth, maps.depth) and np.array_equal(back.path, maps.path)


def test_constant_maps_are_compact():
    maps = make_maps(frames=200)
    maps.path[:] = 1
    maps.depth[:] = 1
    # 200 frames x 15 cells, one class: the zlib payload is a few bytes beyond the header
    assert len(pt.encode_split_maps(maps)) < 80


@pytest.mark.parametrize("kwargs,message", [
    ({"frame_size": (180, 320)}, "are for 160x90 LR frames, this video's are 320x180"),
    ({"scale": 2}, "are for x4, not x2"),
    ({"frames": 13}, "cover 12 frames, the video has 13"),
])
def test_mismatch_is_refused(tmp_path, kwargs, message):
    pt.save_split_maps(tmp_path / "split.bin", make_maps())
    with pytest.raises(ValueError, match=message):
        pt.load_split_maps(tmp_path / "split.bin", **kwargs)


def test_not_a_side_file(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"not a split map at all")
    with pytest.raises(ValueError, match="not a dydca split-map file"):
        pt.load_split_maps(tmp_path / "junk.bin")


def test_corrupt_payload_and_wrong_version():
    data = bytearray(pt.encode_split_maps(make_maps()))
    corrupt = bytes(data[:-4]) + b"\0\0\0\0"
    with pytest.raises(ValueError, match="corrupt split-map payload"):
        pt.decode_split_maps(corrupt)
    data[8] = 99  # the version field follows the 8-byte magic
    with pytest.raises(ValueError, match="version 99"):
        pt.decode_split_maps(bytes(data))
