"""Mixing training sources by share (issue 20): photos and synthetic screen content in a set ratio."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gancodec.train.crops import CropSampler, list_sources


def _folder(root, name, colour, count, side):
    d = root / name
    d.mkdir()
    for i in range(count):
        Image.new("RGB", (side, side), colour).save(d / f"{i}.png")
    return str(d)


def test_source_weights_set_each_sources_share_of_the_crops(tmp_path):
    big = _folder(tmp_path, "photos", (255, 0, 0), 6, 192)  # 6x the images, 2.25x the pixels each
    small = _folder(tmp_path, "synthetic", (0, 0, 255), 1, 128)
    by_pixels = CropSampler(list_sources([big, small])[0] + list_sources([small])[0], 64, seed=1)
    red = by_pixels.batch(400)[:, 0, 0, 0].mean().item()
    assert red > 0.9  # by pixels, the one small image gives ~7 % of the crops
    mixed = CropSampler(list_sources([big, small]), 64, seed=1, source_weights=[0.6, 0.4])
    share = mixed.batch(2000)[:, 2, 0, 0].mean().item()  # blue = synthetic
    assert share == pytest.approx(0.4, abs=0.04)


def test_source_weights_must_match_the_sources(tmp_path):
    a = _folder(tmp_path, "a", (1, 2, 3), 1, 64)
    with pytest.raises(ValueError, match="one weight per --data entry"):
        CropSampler(list_sources([a]), 64, source_weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="positive sum"):
        CropSampler(list_sources([a]), 64, source_weights=[0.0])


def test_a_mixed_run_records_its_mix_and_resumes_only_under_the_same_mix(tmp_path):
    from gancodec.train import TrainConfig, train
    from gancodec.train.checkpoint import load_checkpoint

    photos = _folder(tmp_path, "photos", (200, 120, 40), 2, 64)
    synth = _folder(tmp_path, "synthetic", (20, 20, 220), 2, 64)
    logs = []
    cfg = TrainConfig(data_dirs=[photos, synth], source_weights=[0.7, 0.3], out_dir=str(tmp_path / "run"), steps=2,
                      batch_size=2, crop=64, log_every=1, model={"N": 16, "M": 24}, threads=1)
    train(cfg, log=logs.append)
    assert load_checkpoint(tmp_path / "run/last.pt")["train_config"]["source_weights"] == [0.7, 0.3]
    cfg.source_weights, cfg.steps = [0.5, 0.5], 3
    train(cfg, log=logs.append)
    second = [r for r in logs if r.get("event") == "start"][1]["origin"]
    assert "not resuming" in second and "source_weights" in second
