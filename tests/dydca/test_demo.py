"""`make demo` end to end, and the small PNG/PNM codec it (and the C++ example's test) uses."""
from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import numpy as np
import onnxruntime as ort
import pytest

from dydca import demo
from tests.oracle import assert_close


def _png(width, height, color, rows: bytes) -> bytes:
    """A PNG from already-filtered rows, for feeding the reader filters write_png never uses."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return demo.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filter_rows(img: np.ndarray, ftypes) -> bytes:
    """The PNG encoder's side of filters 0-4 (the spec's formulas, written out per byte)."""
    h, w, bpp = img.shape
    raw = img.reshape(h, w * bpp).astype(int)
    out = bytearray()
    for y, ft in zip(range(h), ftypes):
        out.append(ft)
        for i in range(w * bpp):
            a = raw[y, i - bpp] if i >= bpp else 0
            b = raw[y - 1, i] if y else 0
            c = raw[y - 1, i - bpp] if y and i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ft]
            out.append((raw[y, i] - pred) & 0xFF)
    return bytes(out)


def test_png_round_trip_of_the_bundled_photo(tmp_path):
    img = demo.read_png(demo.IMAGE)
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8 and img.std() > 30  # a real photo
    demo.write_png(tmp_path / "copy.png", img)
    np.testing.assert_array_equal(demo.read_png(tmp_path / "copy.png"), img)
    grey = img[..., 1]
    demo.write_png(tmp_path / "grey.png", grey)
    np.testing.assert_array_equal(demo.read_png(tmp_path / "grey.png"), grey[..., None])


@pytest.mark.parametrize("color,chans", [(2, 3), (0, 1), (6, 4)])
def test_png_reader_undoes_every_filter(tmp_path, color, chans):
    img = np.random.default_rng(chans).integers(0, 256, (10, 7, chans), dtype=np.uint8)
    img[3:6] = img[2]  # smooth rows, where Up/Average/Paeth predict well
    path = tmp_path / "f.png"
    path.write_bytes(_png(7, 10, color, _filter_rows(img, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0])))
    want = img[..., :3] if chans == 4 else img  # alpha is dropped
    np.testing.assert_array_equal(demo.read_png(path), want)


def test_png_reader_rejects_damage(tmp_path):
    good = (tmp_path / "g.png")
    demo.write_png(good, np.zeros((4, 4, 3), np.uint8))
    data = bytearray(good.read_bytes())
    data[40] ^= 0xFF  # inside IDAT: the CRC no longer matches
    (tmp_path / "crc.png").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        demo.read_png(tmp_path / "crc.png")
    (tmp_path / "short.png").write_bytes(good.read_bytes()[:30])
    with pytest.raises(ValueError, match="truncated|corrupt"):
        demo.read_png(tmp_path / "short.png")
    with pytest.raises(ValueError, match="not a PNG"):
        demo.read_png(demo.MODEL)


def test_pnm_round_trip_with_comments(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    demo.write_pnm(tmp_path / "a.ppm", img)
    np.testing.assert_array_equal(demo.read_image(tmp_path / "a.ppm"), img)
    (tmp_path / "c.pgm").write_bytes(b"P5\n# made by hand\n3 2 # w h\n255\n" + bytes(range(6)))
    np.testing.assert_array_equal(demo.read_pnm(tmp_path / "c.pgm")[..., 0], [[0, 1, 2], [3, 4, 5]])


def test_demo_runs_and_matches_onnxruntime(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dydca.demo", "--out", str(tmp_path), "--runs", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("input (n x c x h x w)"))
    rows = [line.split() for line in lines[header + 2:header + 5]]
    assert [r[0] for r in rows] == ["1x3x256x256", "1x3x154x173", "2x3x256x256"]
    for r in rows:
        ours, theirs, ratio, err = float(r[1]), float(r[2]), r[3], float(r[4])
        assert ours > 0 and theirs > 0 and ratio.endswith("x")
        assert err <= 1e-4  # outputs are images in about [0, 1]
    result = demo.read_png(tmp_path / "astronaut_256_x2.png")
    assert result.shape == (512, 512, 3)
    sess = ort.InferenceSession(str(demo.MODEL), providers=["CPUExecutionProvider"])
    (ref,) = sess.run(None, {"lr": demo.to_nchw(demo.read_png(demo.IMAGE))})
    assert np.abs(result.astype(int) - demo.from_nchw(ref).astype(int)).max() <= 1
    # the model upscales well, not just correctly: closer to the photo than pixel repetition
    hr = demo.to_nchw(demo.read_png(demo.IMAGE))
    lr = demo.to_nchw(demo.box_downscale(demo.read_png(demo.IMAGE), 2))
    (sr,) = sess.run(None, {"lr": lr})
    nearest = lr.repeat(2, axis=2).repeat(2, axis=3)
    assert np.mean((np.clip(sr, 0, 1) - hr) ** 2) < 0.7 * np.mean((nearest - hr) ** 2)
    assert_close(demo.to_nchw(result), np.clip(ref, 0, 1), rtol=1 / 255)
