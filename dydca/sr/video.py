"""Video in and out (PyAV), the low-resolution stream a server would send, and the bicubic baseline.

Frames are HxWx3 uint8 RGB numpy arrays everywhere in dydca.sr; a clip is a (T, H, W, 3) array or an
iterable of frames. PyAV (FFmpeg bindings, `pip install av`) is the video library: it decodes what
real clips use (H.264 in MP4) and encodes H.264 through libx264, which is how the LR stream is made
to look like what a streaming service sends.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable, Iterator, NamedTuple, Union

import numpy as np

SCALES = (2, 3, 4)
DEFAULT_FPS = Fraction(25)
PathOrFile = Union[str, os.PathLike, io.IOBase]


def _av():
    # Imported lazily so that patching and metrics work without PyAV; the message names the package.
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("dydca.sr.video needs PyAV: pip install av") from e
    return av


def _name(source: PathOrFile) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<in-memory video>"


def _openable(source: PathOrFile):
    """av.open takes str paths or file objects, not pathlib paths."""
    return os.fspath(source) if isinstance(source, os.PathLike) else source


def check_scale(scale: int) -> int:
    """The SR literature (and Dy-DCA) uses x2, x3, x4; other factors are refused, not guessed."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return int(scale)


def check_frame(frame: np.ndarray, what: str = "frame") -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"{what} must be an HxWx3 uint8 RGB array, got shape {frame.shape} "
                         f"dtype {frame.dtype}")
    return frame


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream."""
    width: int
    height: int
    fps: Fraction
    frames: int          # from the container; estimated from duration x fps when it does not say
    frames_exact: bool   # False when `frames` is such an estimate
    codec: str
    source: str


class VideoReader:
    """Iterates the decoded frames of a video as HxWx3 uint8 RGB; `info` holds the metadata.

    Use as a context manager (or exhaust it) so the container is closed. Every FFmpeg failure, at
    open or mid-stream, becomes a ValueError naming the file, so callers catch one thing.
    """

    def __init__(self, source: PathOrFile):
        av = _av()
        self.source = _name(source)
        if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
            raise ValueError(f"cannot read video {self.source!r}: no such file")
        try:
            self._container = av.open(_openable(source))
        except (av.error.FFmpegError, OSError) as e:
            raise ValueError(f"cannot read video {self.source!r}: {e}") from e
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"cannot read video {self.source!r}: it has no video stream")
        self._stream = self._container.streams.video[0]
        self.info = self._probe()

    def _probe(self) -> VideoInfo:
        s = self._stream
        fps = Fraction(s.average_rate) if s.average_rate else DEFAULT_FPS
        frames, exact = int(s.frames or 0), bool(s.frames)
        if not exact and s.duration and s.time_base:
            frames = int(round(float(s.duration * s.time_base * fps)))
        return VideoInfo(width=s.width, height=s.height, fps=fps, frames=frames,
                         frames_exact=exact, codec=s.codec_context.name, source=self.source)

    def __iter__(self) -> Iterator[np.ndarray]:
        av = _av()
        try:
            for frame in self._container.decode(self._stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise ValueError(f"cannot decode video {self.source!r}: {e}") from e
        finally:
            self.close()

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe(source: PathOrFile) -> VideoInfo:
    with VideoReader(source) as reader:
        return reader.info


def read_video(source: PathOrFile, max_frames: int | None = None) -> tuple[np.ndarray, VideoInfo]:
    """All frames (or the first `max_frames`) as one (T, H, W, 3) uint8 array, and the metadata."""
    reader = VideoReader(source)
    frames = []
    for frame in reader:
        frames.append(frame)
        if max_frames is not None and len(frames) >= max_frames:
            break
    reader.close()
    if not frames:
        raise ValueError(f"video {reader.source!r} has no decodable frames")
    return np.stack(frames), reader.info


def write_video(target: PathOrFile, frames: Iterable[np.ndarray], fps=DEFAULT_FPS, crf: int = 18,
                preset: str = "medium", pix_fmt: str = "yuv420p") -> int:
    """Encodes frames with H.264 (libx264) at constant quality `crf` into an MP4; returns the count.

    yuv420p is what players and streaming services use; it halves chroma, so width and height
    must be even (make_lr crops so that they are). crf=0 with pix_fmt="yuv444p" is near-lossless
    (only the RGB->YUV rounding is lost), useful for intermediate files.
    """
    av = _av()
    if not 0 <= int(crf) <= 51:
        raise ValueError(f"crf must be in 0..51 (libx264), got {crf}")
    name = _name(target)
    container = av.open(_openable(target), "w", format="mp4")
    stream, count = None, 0
    try:
        for frame in frames:
            frame = check_frame(frame)
            if stream is None:
                stream = _open_stream(container, frame.shape, fps, crf, preset, pix_fmt, name)
            elif frame.shape[:2] != (stream.height, stream.width):
                raise ValueError(f"frame {count} of {name!r} is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"the first was {stream.width}x{stream.height}")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            count += 1
        if stream is None:
            raise ValueError(f"no frames to write to {name!r}")
        container.mux(stream.encode())  # flush the encoder's delayed frames
    finally:
        container.close()
    return count


def _open_stream(container, shape, fps, crf, preset, pix_fmt, name):
    height, width = shape[:2]
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"{name!r}: H.264 4:2:0 needs even width and height, got {width}x{height}"
                         " (crop the frames, or pass pix_fmt='yuv444p')")
    stream = container.add_stream("libx264", rate=Fraction(fps))
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.options = {"crf": str(int(crf)), "preset": preset}
    return stream


def reencode(frames: Iterable[np.ndarray], crf: int, fps=DEFAULT_FPS,
             preset: str = "medium") -> tuple[np.ndarray, bytes]:
    """H.264-encodes in memory and decodes back: the frames a phone would see, and the bytes sent."""
    buffer = io.BytesIO()
    write_video(buffer, frames, fps=fps, crf=crf, preset=preset)
    data = buffer.getvalue()
    decoded, _ = read_video(io.BytesIO(data))
    return decoded, data


def _as_clip(frames) -> np.ndarray:
    clip = np.asarray(frames) if isinstance(frames, np.ndarray) else np.stack(list(frames))
    if clip.ndim == 3:
        clip = clip[None]
    if clip.ndim != 4 or clip.shape[0] == 0:
        raise ValueError(f"expected frames as (T, H, W, 3) or a non-empty list of HxWx3, got "
                         f"shape {clip.shape}")
    check_frame(clip[0], "each frame")
    return clip


def crop_to_multiple(clip: np.ndarray, multiple: int) -> np.ndarray:
    """Crops bottom/right so H and W are multiples: the HR reference must match LR x scale exactly."""
    h, w = clip.shape[-3] // multiple * multiple, clip.shape[-2] // multiple * multiple
    return clip[..., :h, :w, :]


class LowRes(NamedTuple):
    hr: np.ndarray      # (T, H, W, 3): the input cropped so that H and W are multiples of 2*scale
    lr: np.ndarray      # (T, H/scale, W/scale, 3): what the device receives (decoded, if crf)
    stream: bytes | None  # the H.264 MP4 bytes when crf was given (what a server would send)


def make_lr(frames, scale: int, crf: int | None = None, fps=DEFAULT_FPS,
            preset: str = "medium") -> LowRes:
    """The LR stream of SR datasets: Pillow BICUBIC downscale by `scale`, optionally H.264 at `crf`.

    HR is cropped (bottom/right) to a multiple of 2*scale first: a multiple of scale so that LR x
    scale lines up with HR pixel for pixel, and of 2 more so the LR frame has even sides, which
    H.264 4:2:0 needs to write lr.mp4. Pillow's BICUBIC widens its kernel by the factor when
    shrinking (antialiasing), which is what MATLAB imresize does for the standard SR datasets.
    The returned `hr` is the cropped reference to evaluate against.
    """
    scale = check_scale(scale)
    clip = _as_clip(frames)
    hr = crop_to_multiple(clip, 2 * scale)
    if hr.shape[1] == 0 or hr.shape[2] == 0:
        raise ValueError(f"frames of {clip.shape[2]}x{clip.shape[1]} are too small for x{scale}: "
                         f"each side must be at least {2 * scale} pixels")
    lr = np.stack([resize(f, hr.shape[2] // scale, hr.shape[1] // scale) for f in hr])
    if crf is None:
        return LowRes(hr, lr, None)
    decoded, data = reencode(lr, crf, fps=fps, preset=preset)
    return LowRes(hr, decoded, data)


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image
    image = Image.fromarray(check_frame(frame))
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC))


def bicubic_upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: one HxWx3 uint8 frame to (H*scale)x(W*scale)x3 uint8 (Pillow)."""
    scale = check_scale(scale)
    frame = check_frame(frame)
    return resize(frame, frame.shape[1] * scale, frame.shape[0] * scale)


def bicubic_upscale_batch(batch: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic on an (N, C, h, w) float32 batch, the network's layout: an 'upscaler' callable.

    Works per channel in Pillow's float mode, so no uint8 rounding happens between patches and
    a patch-wise result can be compared exactly with a whole-frame one.
    """
    from PIL import Image
    scale = check_scale(scale)
    batch = np.asarray(batch, dtype=np.float32)
    n, c, h, w = batch.shape
    out = np.empty((n, c, h * scale, w * scale), np.float32)
    for i in range(n):
        for j in range(c):
            image = Image.fromarray(batch[i, j])  # float32 -> mode "F"
            out[i, j] = np.asarray(image.resize((w * scale, h * scale), Image.Resampling.BICUBIC))
    return out
