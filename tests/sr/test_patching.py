"""Grid, coverage, batches, stitching exactness, margins, scores and path classes."""
import numpy as np
import pytest

from dydca.sr import patching as pt
from dydca.sr.video import bicubic_upscale_batch

from .synth import conv_stack, nearest, random_frame

# (height, width, patch): multiples of P, ragged edges on one or both axes, frames barely larger
# than one patch, and frames smaller than patch + 2*margin (the reflect-padded case)
SHAPES = [(64, 96, 32), (70, 101, 32), (33, 40, 32), (32, 32, 32), (45, 77, 16)]


def random_depth(grid, max_depth, seed=0):
    return np.random.default_rng(seed).integers(0, max_depth + 1, grid.shape).astype(np.uint8)


def coverage(plan):
    counts = np.zeros((plan.grid.height, plan.grid.width), np.int64)
    for group in plan.groups.values():
        for y0, y1, x0, x1 in group.owned:
            counts[y0:y1, x0:x1] += 1
    return counts


@pytest.mark.parametrize("height,width,patch", SHAPES)
@pytest.mark.parametrize("margin", [0, 3, 8])
def test_every_pixel_owned_exactly_once(height, width, patch, margin):
    grid = pt.Grid(height, width, patch)
    depth = random_depth(grid, 2, seed=height + width)
    plan = pt.plan_patches(grid, depth, depth, margin)
    assert (coverage(plan) == 1).all()


@pytest.mark.parametrize("height,width,patch", SHAPES)
@pytest.mark.parametrize("margin", [0, 2, 5])
def test_identity_model_stitches_losslessly(height, width, patch, margin):
    frame = random_frame(height, width, seed=1)
    grid = pt.Grid(height, width, patch)
    depth = random_depth(grid, 2, seed=2)
    plan = pt.plan_patches(grid, depth, depth, margin)
    out = pt.upscale_frame(frame, plan, pt.per_path(nearest(3)), 3)
    whole = nearest(3)(pt.to_batch(frame))[0].transpose(1, 2, 0)
    assert np.array_equal(out, whole)
    assert np.array_equal(pt.to_uint8(out), frame.repeat(3, 0).repeat(3, 1))


def test_batches_have_the_network_layout():
    frame = random_frame(70, 101, seed=3)
    grid = pt.Grid(70, 101, 32)
    depth = random_depth(grid, 1, seed=4)
    plan = pt.plan_patches(grid, depth, depth, margin=4)
    batches = pt.extract_patches(frame, plan)
    assert set(batches) == {(0, 32), (1, 16)}
    for (path, size), batch in batches.items():
        assert batch.dtype == np.float32 and batch.shape[1:] == (3, size + 8, size + 8)
        assert batch.min() >= 0.0 and batch.max() <= 1.0
        assert batch.shape[0] == len(plan.groups[(path, size)].windows)


def test_max_batch_chunks_give_the_same_frame():
    frame = random_frame(64, 96, seed=5)
    grid = pt.Grid(64, 96, 16)
    plan = pt.plan_patches(grid, random_depth(grid, 1), np.zeros(grid.shape, np.uint8), 2)
    calls = []

    def run(batch, path):
        calls.append(len(batch))
        return nearest(2)(batch)
    chunked = pt.upscale_frame(frame, plan, run, 2, max_batch=5)
    assert max(calls) <= 5
    assert np.array_equal(chunked, pt.upscale_frame(frame, plan, pt.per_path(nearest(2)), 2))


@pytest.mark.parametrize("layers", [1, 4])
def test_margin_equal_to_receptive_field_is_exact(layers):
    # the context window slides inward at frame edges, so the CNN zero-pads where it would on
    # the whole frame: margin >= receptive radius reproduces whole-frame output exactly
    frame = random_frame(45, 77, seed=6)
    grid = pt.Grid(45, 77, 16)
    depth = random_depth(grid, 1, seed=7)
    model = conv_stack(layers, 2)
    whole = model(pt.to_batch(frame))[0].transpose(1, 2, 0)
    exact = pt.upscale_frame(frame, pt.plan_patches(grid, depth, depth, layers), pt.per_path(model), 2)
    short = pt.upscale_frame(frame, pt.plan_patches(grid, depth, depth, layers - 1),
                             pt.per_path(model), 2)
    assert np.array_equal(exact, whole)
    assert not np.array_equal(short, whole)


def test_bicubic_patchwise_within_005_db_of_whole_frame():
    # Pillow's bicubic reads 2 LR pixels each side when upscaling: margin 2 is the measured need
    rng = np.random.default_rng(8)
    hr = np.clip(np.kron(random_frame(24, 40, 9), np.ones((4, 4, 1))) + rng.normal(0, 8, (96, 160, 3)),
                 0, 255).astype(np.uint8)
    lr = hr[::2, ::2].copy()
    grid = pt.Grid(48, 80, 16)
    depth = random_depth(grid, 1, seed=10)
    upscaler = lambda b: bicubic_upscale_batch(b, 2)  # noqa: E731
    rows = list(pt.margin_sweep(lr, hr, depth, upscaler, 2, 16, [0, 2]))
    assert rows[0]["psnr_patched_vs_whole"] < rows[1]["psnr_patched_vs_whole"]
    assert rows[1]["gap_db"] <= 0.05 and rows[1]["psnr_patched_vs_whole"] == float("inf")
    assert pt.min_margin(lr, hr, depth, upscaler, 2, 16, tol_db=0.0) <= 2


def test_frames_smaller_than_a_patch_are_refused():
    with pytest.raises(ValueError, match="smaller than one 32x32 patch"):
        pt.Grid(20, 100, 32)


def test_split_map_must_fit_the_grid():
    grid = pt.Grid(64, 64, 32)
    with pytest.raises(ValueError, match="does not fit"):
        pt.plan_patches(grid, np.zeros((3, 2), np.uint8), np.zeros((3, 2), np.uint8), 0)
    too_deep = np.full((2, 2), 6, np.uint8)  # 32 px cannot be halved 6 times
    with pytest.raises(ValueError, match="split depth 6 needs a patch size divisible by 64"):
        pt.plan_patches(grid, too_deep, too_deep, 0)


def test_gradient_score_ranks_texture_above_flat():
    # texture on the left: forward differences of the flat right cell stay inside it
    frame = np.full((32, 64, 3), 128, np.uint8)
    frame[:, :32] = random_frame(32, 32, seed=11)
    scores = pt.gradient_scores(frame, pt.Grid(32, 64, 32))
    assert scores[0, 1] == 0.0 and scores[0, 0] > 100.0
    assert pt.assign_paths(scores, [1.0], "gradient").tolist() == [[1, 0]]


def test_psnr_score_and_the_seed_rule():
    lr = random_frame(32, 64, seed=12)
    hr = lr.repeat(2, 0).repeat(2, 1)
    hr[:64, 64:] = 255 - hr[:64, 64:]  # the right cell is badly reproduced by nearest x2
    grid = pt.Grid(32, 64, 32)
    scores = pt.psnr_scores(lr, hr, grid, 2, nearest(2))
    assert scores[0, 0] == pt.PSNR_CAP_DB and scores[0, 1] < 20.0
    assert pt.assign_paths(scores, [40.0], "psnr").tolist() == [[0, 1]]  # under 40 dB -> path 1


def test_quantile_thresholds_make_balanced_classes():
    scores = np.random.default_rng(13).random((10, 6, 8))
    for n in (2, 3, 4):
        for score in ("gradient", "psnr"):
            paths = pt.assign_paths(scores, pt.fit_thresholds(scores, n, score), score)
            counts = np.bincount(paths.ravel(), minlength=n)
            assert counts.min() >= scores.size // n - 1


def test_compute_split_maps_depth_and_quantile_modes():
    frames = np.stack([random_frame(64, 96, seed=s) for s in range(3)])
    frames[:, :32, :32] = 100  # a flat cell: must land on the easy path
    for mode, sizes in (("depth", {0: 32, 1: 16, 2: 8}), ("quantile", {0: 32, 1: 32, 2: 32})):
        policy = pt.SplitPolicy(patch=32, n_paths=3, mode=mode)
        maps, fitted = pt.compute_split_maps(frames, policy, scale=2)
        assert len(fitted.thresholds) == 2 and policy.patch_sizes() == sizes
        assert maps.path.shape == (3, 2, 3) and (maps.path[:, 0, 0] == 0).all()
        assert np.array_equal(maps.depth, maps.path if mode == "depth" else 0 * maps.path)
        again, _ = pt.compute_split_maps(frames, fitted, scale=2)  # device side, from LR only
        assert np.array_equal(again.path, maps.path)
        assert pt.SplitPolicy.from_dict(fitted.to_dict()) == fitted


def test_psnr_policy_needs_hr():
    frames = np.stack([random_frame(32, 32)])
    with pytest.raises(ValueError, match="needs hr_frame"):
        pt.compute_split_maps(frames, pt.SplitPolicy(patch=32, score="psnr"), scale=2)


def test_policy_validation():
    with pytest.raises(ValueError, match="cannot be halved"):
        pt.SplitPolicy(patch=24, n_paths=5)
    with pytest.raises(ValueError, match="unknown score"):
        pt.SplitPolicy(score="entropy")
    with pytest.raises(ValueError, match="need 1 thresholds"):
        pt.SplitPolicy(n_paths=2, thresholds=(1.0, 2.0))
