"""`make demo`: compiles the bundled super-resolution model, upscales the bundled photo through the
built library, writes the result as a PNG and compares time and output with onnxruntime.

Images are read and written with the small zlib-only PNG codec below rather than Pillow: the
demo needs 8-bit RGB/grey in and out, which is ~80 lines, and keeping image libraries out of the
install means `make demo` needs nothing that `make test` does not already install. Binary PPM/PGM
(the format examples/cpp_app reads and writes, having no image library either) is here too.
"""
from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODEL = EXAMPLES / "models" / "espcn_x2.onnx"
IMAGE = EXAMPLES / "data" / "astronaut_256.png"
# the dims the demo compiles for: batches up to 4 of anything from a thumbnail to a 1080p frame
DIMS = {"n": (1, 4), "h": (16, 1088), "w": (16, 1920)}

# ---------------------------------------------------------------------------------------------
# PNG: 8-bit grey / grey+alpha / RGB / RGBA / palette, not interlaced (what photos and our own
# writer produce). Alpha is dropped: the models take grey or RGB.

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def _png_chunks(data: bytes, path):
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(crc) != 4 or zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ValueError(f"{path}: corrupt PNG (chunk {kind!r} truncated or fails its CRC)")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise ValueError(f"{path}: truncated PNG (no IEND chunk)")


def _unfilter(raw: np.ndarray, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undoes PNG's per-row filters. None/Sub/Up are vectorised; Average and Paeth depend on the
    previous byte of the same row, so they run as a scalar loop (only foreign PNGs use them much;
    write_png never does)."""
    rows = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int64)
    for y in range(height):
        ftype, line = int(rows[y, 0]), rows[y, 1:].astype(np.int64)
        if ftype == 0:
            cur = line
        elif ftype == 1:  # Sub: a running sum per channel, modulo 256
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 0xFF
        elif ftype == 2:
            cur = (line + prev) & 0xFF
        elif ftype in (3, 4):
            cur_l, up = line.tolist(), prev.tolist()
            for i in range(stride):
                a = cur_l[i - bpp] if i >= bpp else 0
                b = up[i]
                if ftype == 3:
                    pred = (a + b) >> 1
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur_l[i] = (cur_l[i] + pred) & 0xFF
            cur = np.array(cur_l, np.int64)
        else:
            raise ValueError(f"corrupt PNG: unknown row filter {ftype}")
        out[y] = cur
        prev = cur
    return out


def read_png(path) -> np.ndarray:
    """PNG file -> uint8 array (H, W, C), C = 1 (grey) or 3 (RGB)."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    header, palette, idat = None, None, []
    for kind, body in _png_chunks(data, path):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise ValueError(f"{path}: corrupt PNG (no IHDR)")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in _CHANNELS or interlace:
        raise ValueError(f"{path}: only 8-bit, non-interlaced PNGs are supported "
                         f"(this one: bit depth {depth}, colour type {color}, interlace {interlace})")
    chans = _CHANNELS[color]
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as e:
        raise ValueError(f"{path}: corrupt PNG image data ({e})") from None
    if raw.size != height * (width * chans + 1):
        raise ValueError(f"{path}: corrupt PNG (image data has {raw.size} bytes, expected "
                         f"{height * (width * chans + 1)})")
    img = _unfilter(raw, height, width * chans, chans).reshape(height, width, chans)
    if color == 3:
        if palette is None:
            raise ValueError(f"{path}: corrupt PNG (palette image without PLTE)")
        return palette[img[..., 0]]
    return img[..., :3] if color == 6 else img[..., :1] if color == 4 else img


def write_png(path, img: np.ndarray) -> None:
    """uint8 (H, W), (H, W, 1) or (H, W, 3) -> PNG. Each row takes whichever of the None, Sub and
    Up filters leaves the smallest sum of signed bytes (libpng's heuristic), all vectorised."""
    img = np.asarray(img, np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    height, width, chans = img.shape
    if chans not in (1, 3):
        raise ValueError(f"write_png takes grey or RGB images, got {chans} channels")
    rows = img.reshape(height, width * chans).astype(np.int16)
    sub = rows.copy()
    sub[:, chans:] -= rows[:, :-chans]
    up = rows.copy()
    up[1:] -= rows[:-1]
    cands = np.stack([rows, sub, up]) & 0xFF  # (3, H, stride)
    cost = np.abs(cands.astype(np.int8).astype(np.int64)).sum(axis=2)
    best = cost.argmin(axis=0)
    filtered = np.concatenate([best[:, None], cands[best, np.arange(height)]], axis=1).astype(np.uint8)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0 if chans == 1 else 2, 0, 0, 0)
    Path(path).write_bytes(PNG_SIGNATURE + chunk(b"IHDR", ihdr) +
                           chunk(b"IDAT", zlib.compress(filtered.tobytes(), 9)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------------------------------------
# Binary PPM (P6, RGB) and PGM (P5, grey), 8-bit.

def read_pnm(path) -> np.ndarray:
    data = Path(path).read_bytes()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; '#' comments between them
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        if end == pos:
            raise ValueError(f"{path}: truncated PPM/PGM header")
        fields.append(data[pos:end])
        pos = end
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic not in (b"P5", b"P6") or maxval != 255:
        raise ValueError(f"{path}: only binary 8-bit PPM (P6) and PGM (P5) are supported")
    chans = 3 if magic == b"P6" else 1
    body = data[pos + 1:pos + 1 + width * height * chans]
    if len(body) != width * height * chans:
        raise ValueError(f"{path}: truncated PPM/PGM pixel data")
    return np.frombuffer(body, np.uint8).reshape(height, width, chans)


def write_pnm(path, img: np.ndarray) -> None:
    img = np.asarray(img, np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    height, width, chans = img.shape
    magic = {1: b"P5", 3: b"P6"}[chans]
    Path(path).write_bytes(magic + f"\n{width} {height}\n255\n".encode() + img.tobytes())


def read_image(path) -> np.ndarray:
    head = Path(path).read_bytes()[:8]
    return read_png(path) if head.startswith(PNG_SIGNATURE) else read_pnm(path)


def write_image(path, img) -> None:
    (write_png if str(path).lower().endswith(".png") else write_pnm)(path, img)


def to_nchw(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) -> float32 (1, C, H, W) in [0, 1], the models' input convention."""
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)


def from_nchw(x: np.ndarray) -> np.ndarray:
    """float32 (1, C, H, W) in [0, 1] -> uint8 (H, W, C)."""
    return (np.clip(x[0].transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)


def box_downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks (crops any remainder)."""
    h, w, c = img.shape
    h, w = h - h % factor, w - w % factor
    blocks = img[:h, :w].reshape(h // factor, factor, w // factor, factor, c).astype(np.float64)
    return (blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------

def median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows])


def main(argv=None) -> int:
    import dydca

    ap = argparse.ArgumentParser(prog="python -m dydca.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(MODEL), help="ONNX model taking (n, C, h, w) in [0, 1]")
    ap.add_argument("--image", default=str(IMAGE), help="PNG or binary PPM/PGM to upscale")
    ap.add_argument("--out", default="build/demo", help="build folder and result image folder")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per engine (the median is shown)")
    ap.add_argument("--threads", type=int, default=2, help="threads for both engines")
    args = ap.parse_args(argv)

    out = Path(args.out)
    img = read_image(args.image)
    x = to_nchw(img)
    print(f"model  {args.model}\nimage  {args.image} ({img.shape[1]}x{img.shape[0]}, {img.shape[2]} channels)")
    t0 = time.perf_counter()
    model = dydca.compile(args.model, dims=DIMS, out_dir=out / "lib", name="espcn_x2",
                          progress=lambda m: print(f"  compile: {m}", file=sys.stderr))
    print(f"built  {model.build_dir / model.manifest['library']} in {time.perf_counter() - t0:.1f} s "
          f"(dims {', '.join(f'{k} in [{a}, {b}]' for k, (a, b) in model.manifest['dims'].items())})")
    model.set_threads(args.threads)

    (y,) = model.run({model.inputs[0]: x})
    result = out / (Path(args.image).stem + "_x2.png")
    write_png(result, from_nchw(y))
    print(f"wrote  {result} ({y.shape[3]}x{y.shape[2]})\n")

    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed (pip install onnxruntime): no comparison")
        return 0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = args.threads, 1
    sess = ort.InferenceSession(str(args.model), opts, providers=["CPUExecutionProvider"])
    # the same library serves every shape in its ranges: the photo, a crop of odd size, a batch
    h, w = x.shape[2:]
    inputs = [x, np.ascontiguousarray(x[:, :, : h * 3 // 5 + 1, : w * 2 // 3 + 3]),
              np.ascontiguousarray(np.concatenate([x, x[:, :, ::-1, ::-1]]))]
    rows = []
    for xi in inputs:
        feeds = {model.inputs[0]: xi}
        ours = median_ms(lambda: model.run(feeds), args.runs)
        theirs = median_ms(lambda: sess.run(None, feeds), args.runs)
        err = float(np.abs(model.run(feeds)[0] - sess.run(None, feeds)[0]).max())
        rows.append(["x".join(map(str, xi.shape)), f"{ours:.2f}", f"{theirs:.2f}",
                     f"{theirs / ours:.2f}x", f"{err:.2e}"])
    print(_table(rows, ["input (n x c x h x w)", "dydca ms", "onnxruntime ms", "speed-up", "max abs err"]))
    print(f"\nmedian of {args.runs} runs after 2 warm-up runs, {args.threads} threads each "
          f"(onnxruntime {ort.__version__}, CPUExecutionProvider)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
