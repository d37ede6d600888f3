"""Overfitting: a tiny N-path network fitted to a tiny synthetic clip beats bicubic on it within
seconds; training is deterministic under a seed, resumes exactly from a checkpoint, and honours
its wall-clock budget."""
import numpy as np
import pytest

from dydca.sr.export import PathSpec, SRConfig

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")
from dydca.sr.train import (batch_stream, epoch_batches, evaluate, load_checkpoint, train)  # noqa: E402

SCALE = 2
TINY = SRConfig(SCALE, (PathSpec(8, 1, 2), PathSpec(8, 1, 2)))


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def textured_clip(frames=4, size=48, seed=0):
    """Moving texture bicubic cannot recover: fine sinusoids, hard diagonal stripes, rings, noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    out = []
    for t in range(frames):
        r = 128 + 90 * np.sin((x + 2 * t) / 2.3) * np.cos(y / 4.1)
        g = 128 + 80 * np.sign(np.sin((x - y + 3 * t) / 3.0))
        b = 128 + 70 * np.sin(((x - size / 2) ** 2 + (y - size / 2 + t) ** 2) / 40.0)
        frame = np.stack([r, g, b], -1) + rng.normal(0, 3, (size, size, 3))
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(out)


def resize(frames, size):
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BICUBIC)) for f in frames])


def psnr(a, b, shave=SCALE):
    """Over the whole clip, border shaved by the scale as the SR literature does."""
    a, b = (v[:, shave:-shave, shave:-shave].astype(np.float64) for v in (a, b))
    return 10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2))


def nchw(frames):
    return frames.transpose(0, 3, 1, 2)


def quadrants(batch, size):
    return np.concatenate([batch[:, :, i:i + size, j:j + size] for i in (0, size) for j in (0, size)])


@pytest.fixture(scope="module")
def clip():
    """HR 4 x 48x48, LR by PIL bicubic down x2. Path 0 trains on whole LR frames, path 1 on their
    12x12 quadrants (the seed's split patches)."""
    hr = textured_clip()
    lr = resize(hr, 48 // SCALE)
    patches = {0: nchw(lr), 1: quadrants(nchw(lr), 12)}
    targets = {0: nchw(hr), 1: quadrants(nchw(hr), 24)}
    return hr, lr, patches, targets


def upscale(model, lr_frames, path=0):
    with torch.no_grad():
        out = model(torch.from_numpy(nchw(lr_frames)).float() / 255, path).clamp(0, 1)
    return (out * 255).round().numpy().astype(np.uint8).transpose(0, 2, 3, 1)


def test_tiny_model_overfits_a_tiny_clip_beyond_bicubic(clip):
    hr, lr, patches, targets = clip
    result = train(patches, targets, SCALE, TINY, steps=400, minutes=1.0, batch_size=4, lr=3e-3,
                   seed=0, threads=1, progress=False)
    assert result.stopped_by == "steps" and result.steps == 400
    bicubic = psnr(resize(lr, 48), hr)
    fitted = psnr(upscale(result.model, lr), hr)
    print(f"overfit: bicubic {bicubic:.2f} dB, model {fitted:.2f} dB in {result.seconds:.1f} s "
          f"({result.steps_per_second:.0f} steps/s)")
    assert fitted > bicubic + 0.5
    # the deep path learnt too: on the quadrants it also beats bicubic
    quads = quadrants(nchw(lr), 12).transpose(0, 2, 3, 1)
    hr_quads = quadrants(nchw(hr), 24).transpose(0, 2, 3, 1)
    assert psnr(upscale(result.model, quads, path=1), hr_quads) > psnr(resize(quads, 24), hr_quads)
    # loss went down and the batches alternated between the paths
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-40:]) < 0.8 * np.mean(losses[:40])
    assert {h["path"] for h in result.history} == {0, 1}


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_same_seed_same_weights(clip):
    _, _, patches, targets = clip
    runs = [train(patches, targets, SCALE, TINY, steps=15, batch_size=4, seed=s, threads=1, progress=False)
            for s in (3, 3, 4)]
    a, b, c = (state(r.model) for r in runs)
    assert_same_weights(a, b)
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    assert any(not torch.equal(a[k], c[k]) for k in a)  # another seed: other init, other batches


def test_resumed_run_equals_the_uninterrupted_one(clip, tmp_path):
    """Checkpoints every 5 steps (one file per step through the {step} field); a run resumed
    from step 5 ends with the weights of the run that was never interrupted."""
    _, _, patches, targets = clip
    kw = dict(steps=12, batch_size=4, seed=1, threads=1, progress=False)
    whole = train(patches, targets, SCALE, TINY, checkpoint=tmp_path / "ck-{step}.pt", checkpoint_every=5, **kw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck-10.pt", "ck-12.pt", "ck-5.pt"]
    model, ck = load_checkpoint(tmp_path / "ck-5.pt")
    assert ck["step"] == 5 and len(ck["history"]) == 5
    resumed = train(patches, targets, SCALE, TINY, resume=tmp_path / "ck-5.pt", **kw)
    assert resumed.steps == 12 and resumed.steps_run == 7
    assert_same_weights(state(resumed.model), state(whole.model))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]


def test_budget_in_minutes_stops_the_run(clip):
    _, _, patches, targets = clip
    result = train(patches, targets, SCALE, TINY, minutes=0.5 / 60, batch_size=4, seed=0, threads=1,
                   progress=False)
    assert result.stopped_by == "minutes"
    assert result.steps >= 1 and result.seconds < 0.5 + 2.0
    assert result.history[-1]["lr"] < result.history[0]["lr"]  # cosine over the time budget


def test_progress_shows_loss_and_psnr(clip, capsys):
    _, _, patches, targets = clip
    train(patches, targets, SCALE, TINY, steps=3, batch_size=4, seed=0, threads=1, progress=True)
    err = capsys.readouterr().err
    assert "loss" in err and "psnr" in err


def test_validation_psnr_is_recorded(clip):
    _, _, patches, targets = clip
    held_out = ({0: patches[0][-1:]}, {0: targets[0][-1:]})
    result = train({0: patches[0][:-1]}, {0: targets[0][:-1]}, SCALE, TINY, steps=4, batch_size=2, seed=0,
                   threads=1, progress=False, validation=held_out, eval_every=2)
    vals = [h["val_psnr"] for h in result.history if "val_psnr" in h]
    assert len(vals) == 3  # steps 2 and 4, and the final evaluation
    assert vals[-1] == pytest.approx(evaluate(result.model, *held_out)["psnr"])


def test_batches_come_from_one_path_and_cover_every_patch_each_epoch():
    sizes = [10, 0, 7]
    batches = epoch_batches(sizes, 4, seed=0, epoch=0)
    assert len(batches) == 3 + 2
    for k, n in enumerate(sizes):
        seen = np.concatenate([idx for p, idx in batches if p == k] or [np.array([], int)])
        assert sorted(seen) == list(range(n))
    stream = batch_stream(sizes, 4, seed=0, start=3)
    rest = [next(stream) for _ in range(2 + 5)]
    expected = epoch_batches(sizes, 4, 0, 0)[3:] + epoch_batches(sizes, 4, 0, 1)
    assert all(p == q and np.array_equal(i, j) for (p, i), (q, j) in zip(rest, expected))


@pytest.mark.parametrize("kwargs, error", [
    (dict(steps=None, minutes=None), "budget"),
    (dict(steps=1, batch_size=0), "batch_size"),
])
def test_bad_arguments_are_refused(clip, kwargs, error):
    _, _, patches, targets = clip
    with pytest.raises(ValueError, match=error):
        train(patches, targets, SCALE, TINY, progress=False, **kwargs)


def test_mismatched_targets_are_refused(clip):
    _, _, patches, targets = clip
    with pytest.raises(ValueError, match="x3"):
        train(patches, targets, 3, steps=1, progress=False)
