"""Training: a real (tiny) run that checkpoints, resumes where it stopped, and exports usable weights."""

from __future__ import annotations

import numpy as np
from PIL import Image

import gancodec
from gancodec.train import TrainConfig, train
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from gancodec.train.pack import pack
from gancodec.weights import export_weights

from sample_images import astronaut, coffee


def _images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(astronaut(256)).save(folder / "a.png")
    Image.fromarray(coffee()).save(folder / "b.png")
    return folder


def test_train_resumes_and_exports(tmp_path):
    logs = []
    cfg = TrainConfig(data_dirs=[str(_images(tmp_path))], out_dir=str(tmp_path / "run"), steps=3, batch_size=2, crop=64,
                      log_every=1, model={"N": 16, "M": 24}, threads=1)
    train(cfg, log=logs.append)
    assert load_checkpoint(tmp_path / "run/last.pt")["step"] == 3
    cfg.steps = 5
    train(cfg, log=logs.append)
    starts = [r for r in logs if r.get("event") == "start"]
    assert "resumed" in starts[1]["origin"] and "step 3" in starts[1]["origin"]
    assert [r["step"] for r in logs if "loss" in r][-2:] == [4, 5]
    ck = load_checkpoint(tmp_path / "run/model.pt")
    assert ck["step"] == 5
    weights = tmp_path / "tiny.pt"
    export_weights(model_from_checkpoint(ck), weights)
    data = gancodec.compress(astronaut(64), weights=weights)
    assert gancodec.decompress(data, weights=weights).size == (64, 64)


def test_pack_keeps_to_its_budget(tmp_path):
    n, size = pack([str(_images(tmp_path))], tmp_path / "crops", crop=128, max_bytes=200_000)
    files = sorted((tmp_path / "crops").glob("*.png"))
    assert n == len(files) > 0 and size <= 200_000
    assert sum(f.stat().st_size for f in files) == size
    assert np.asarray(Image.open(files[0])).shape == (128, 128, 3)


def test_pack_jpeg_fits_more_crops_in_the_same_budget(tmp_path):
    images = str(_images(tmp_path))
    n_png, _ = pack([images], tmp_path / "png", crop=128, max_bytes=200_000)
    n_jpg, size = pack([images], tmp_path / "jpg", crop=128, max_bytes=200_000, fmt="jpeg")
    files = sorted((tmp_path / "jpg").glob("*.jpg"))
    assert n_jpg == len(files) > n_png and size <= 200_000
    with Image.open(files[0]) as img:
        assert img.format == "JPEG" and img.size == (128, 128)


def test_lr_follows_steps_not_the_wall_clock():
    from gancodec.train.loop import get_lr

    # a time budget only stops a run: a resumed run continues on the same schedule
    cfg = TrainConfig(lr=1e-4, lr_final_fraction=0.1, steps=1200, max_seconds=600)
    assert get_lr(cfg, 100) < get_lr(cfg, 199) <= 1e-4  # warm-up
    assert abs(get_lr(cfg, 700) - 0.55e-4) < 1e-7  # half-way through the cosine
    assert abs(get_lr(cfg, 1200) - 1e-5) < 1e-12
    assert get_lr(TrainConfig(lr=1e-4, steps=1200), 700) == get_lr(cfg, 700)


def test_filling_the_tables_leaves_the_module_where_it_is():
    """Checkpoints fill the coding tables mid-run; that must not move or recast the training
    model (it once moved the z prior to the CPU and broke a GPU run at its first checkpoint)."""
    import torch

    from gancodec.entropy.factorized import FactorizedPrior

    prior = FactorizedPrior(8).double()
    param = next(prior.parameters())
    prior.update_tables()
    assert next(prior.parameters()) is param and param.dtype == torch.float64 and param.device.type == "cpu"
    tables = prior.freqs.clone()
    prior.float().update_tables()
    assert torch.equal(tables, prior.freqs) and prior.tables_ready()


def _starts(logs):
    return [r for r in logs if r.get("event") == "start"]


def _steps(logs):
    return [r["step"] for r in logs if "loss" in r]


def test_changed_settings_start_afresh_while_more_steps_resume(tmp_path):
    """A checkpoint made under another lr or lambda is another run: not resumed (the DVC stage's
    persisted last.pt once made `dvc exp run -S train.lambda=...` resume at 12 of 12 and train
    nothing). Settings that only extend a run (steps) still resume."""
    images = str(_images(tmp_path))
    cfg = TrainConfig(data_dirs=[images], out_dir=str(tmp_path / "run"), steps=2, batch_size=2, crop=64, log_every=1,
                      model={"N": 16, "M": 24}, threads=1)
    train(cfg)
    for change in ({"lr": 3e-4}, {"lmbda": 0.013}):
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **change})
        logs = []
        train(cfg, log=logs.append)
        (name, new), = change.items()
        origin = _starts(logs)[0]["origin"]
        assert origin.startswith("scratch (not resuming") and f"{name} " in origin and repr(new) in origin, origin
        assert _steps(logs) == [1, 2]
        saved = load_checkpoint(tmp_path / "run/last.pt")
        assert saved["step"] == 2 and saved["train_config"][name] == new

    logs = []
    more = TrainConfig.from_dict({**cfg.to_dict(), "steps": 3, "log_every": 2, "checkpoint_every_s": 1.0})
    train(more, log=logs.append)
    assert _starts(logs)[0]["origin"].startswith("resumed") and "step 2" in _starts(logs)[0]["origin"]
    assert _steps(logs) == [3]


def test_the_final_step_is_always_logged(tmp_path):
    """The DVC stage's plots folder exists only if a step is logged: a run shorter than log_every
    logs its last step, and so does a run with nothing left to train (one batch measured)."""
    cfg = TrainConfig(data_dirs=[str(_images(tmp_path))], out_dir=str(tmp_path / "run"), steps=3, batch_size=2, crop=64,
                      log_every=50, model={"N": 16, "M": 24}, threads=1)
    logs = []
    train(cfg, log=logs.append)
    assert _steps(logs) == [3]
    logs = []
    train(cfg, log=logs.append)  # already complete
    assert "resumed" in _starts(logs)[0]["origin"]
    (rec,) = [r for r in logs if "loss" in r]
    assert rec["step"] == 3 and rec["bpp"] > 0 and rec["psnr"] > 0
    assert load_checkpoint(tmp_path / "run/last.pt")["step"] == 3


def test_new_starting_weights_at_the_same_path_start_afresh(tmp_path):
    """The DVC stage starts from the shipped weights' path; shipping new weights there changes
    the run even though no setting changed, so the old last.pt is not resumed."""
    images = str(_images(tmp_path))
    init = tmp_path / "init.pt"
    first = TrainConfig(data_dirs=[images], out_dir=str(tmp_path / "a"), steps=1, batch_size=2, crop=64,
                        model={"N": 16, "M": 24}, threads=1)
    train(first)
    ck = load_checkpoint(tmp_path / "a/model.pt")
    export_weights(model_from_checkpoint(ck), init)
    cfg = TrainConfig(data_dirs=[images], out_dir=str(tmp_path / "run"), init_from=str(init), steps=2, batch_size=2,
                      crop=64, threads=1, log_every=1)
    train(cfg)
    logs = []
    train(TrainConfig.from_dict({**cfg.to_dict(), "steps": 3}), log=logs.append)
    assert _starts(logs)[0]["origin"].startswith("resumed"), "same weights, more steps: a resume"
    assert _steps(logs) == [3]
    ck = load_checkpoint(tmp_path / "run/model.pt")
    export_weights(model_from_checkpoint(ck), init)  # new weights at the same path
    logs = []
    train(TrainConfig.from_dict({**cfg.to_dict(), "steps": 3}), log=logs.append)
    origin = _starts(logs)[0]["origin"]
    assert "not resuming" in origin and "init_from sha256" in origin, origin
    assert _steps(logs) == [1, 2, 3]
