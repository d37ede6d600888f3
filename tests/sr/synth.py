"""Small synthetic inputs and reference upscalers shared by the tests/sr files."""
import numpy as np


def smooth_clip(frames=6, height=48, width=64, seed=0):
    """Moving colour gradients plus mild texture: compresses well, so codec round trips are
    near-lossless and PSNR thresholds are meaningful."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = []
    for t in range(frames):
        r = 128 + 100 * np.sin((x + 3 * t) / 9.0)
        g = 128 + 100 * np.cos((y - 2 * t) / 7.0)
        b = 128 + 60 * np.sin((x + y + t) / 11.0)
        frame = np.stack([r, g, b], axis=-1) + rng.normal(0, 2, (height, width, 3))
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(out)


def random_frame(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.uint8)


def nearest(scale):
    """The identity model of the tests: every LR pixel becomes a scale x scale block."""
    return lambda batch: batch.repeat(scale, axis=2).repeat(scale, axis=3)


def conv_stack(layers, scale):
    """A 'network' with a known receptive field: `layers` zero-padded 3x3 averaging convs (radius
    `layers` LR px, zero padding at the frame edge like a CNN's), then nearest upscaling."""
    def run(batch):
        x = batch.astype(np.float64)
        for _ in range(layers):
            p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
            h, w = x.shape[2], x.shape[3]
            x = sum(p[:, :, i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0
        return nearest(scale)(x.astype(np.float32))
    return run
