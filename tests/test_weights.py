"""Weights safety: hashes pinned by model cards, weights_only loading, clear errors."""

from __future__ import annotations

import collections
import json
import shutil

import pytest
import torch

import gancodec
from gancodec import BitstreamError, ModelError
from gancodec.weights import MODEL_CARD, SHIPPED_WEIGHTS, load_model, model_id_of

from sample_images import astronaut


def test_shipped_weights_match_their_card():
    card = json.loads(MODEL_CARD.read_text())
    data = SHIPPED_WEIGHTS.read_bytes()
    # the package's budget for one weights file (v1.7, with its channel context: 17.8 MB); a GPU
    # burst returns larger files in parts (scripts/gpu_train.sh)
    assert model_id_of(data) == card["model_id"] and len(data) <= 20 * 1024 * 1024
    assert load_model().model_id == card["model_id"]


def test_weights_not_matching_their_card_are_refused(tmp_path):
    w = tmp_path / "w.pt"
    shutil.copy(SHIPPED_WEIGHTS, w)
    (tmp_path / "w.json").write_text(json.dumps({"sha256": "0" * 64}))
    with pytest.raises(ModelError, match="does not match its model card"):
        load_model(w)


def test_truncated_or_foreign_weights_are_clear(tmp_path):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(SHIPPED_WEIGHTS.read_bytes()[:1000])
    with pytest.raises(ModelError, match="not a readable weights file"):
        load_model(cut)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_pickled_code_is_never_executed(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model_config": collections.Counter(a=1), "state_dict": {}}, evil)  # a non-allowlisted global
    with pytest.raises(ModelError):
        load_model(evil)


def test_stream_from_other_weights_names_both_ids(tmp_path):
    from gancodec.train.checkpoint import model_from_checkpoint
    from gancodec.weights import export_weights

    model = model_from_checkpoint(torch.load(SHIPPED_WEIGHTS, weights_only=True))
    with torch.no_grad():
        model.g_s[0].bias.add_(0.01)  # a different model
    other = tmp_path / "other.pt"
    export_weights(model, other)
    data = gancodec.compress(astronaut(64), weights=other)
    with pytest.raises(BitstreamError, match="model_id") as info:
        gancodec.decompress(data)
    assert load_model(other).model_id in str(info.value) and load_model().model_id in str(info.value)
    assert gancodec.decompress(data, weights=other).size == (64, 64)


def test_model_card_finds_the_dvc_lock_entry_of_its_weights(tmp_path):
    from gancodec.weights.ship import _data_hashes, dvc_lock_entry

    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  split:\n    outs:\n    - path: data/splits\n      md5: aa.dir\n"
                    "  train:\n    cmd: python stages/train.py\n    params:\n      params.yaml:\n        train.steps: 10\n"
                    "    outs:\n    - path: models/gancodec.pt\n      md5: bb\n")
    (tmp_path / "models").mkdir()
    entry = dvc_lock_entry(str(tmp_path / "models/gancodec.pt"), lock)
    assert entry["stage"] == "train" and entry["params"]["params.yaml"]["train.steps"] == 10 and len(entry["lock_sha256"]) == 64
    assert dvc_lock_entry(str(tmp_path / "elsewhere.pt"), lock) is None
    (tmp_path / "train.csv").write_text("path\na.png\n")
    assert _data_hashes([str(tmp_path / "train.csv")])["train.csv"].startswith("sha256(file)=")


def test_weights_replaced_on_disk_are_read_again(tmp_path):
    """A long-running worker must code with the file now at the path, not the one it first read."""
    from gancodec.train.checkpoint import model_from_checkpoint
    from gancodec.weights import export_weights

    w = tmp_path / "w.pt"
    shutil.copy(SHIPPED_WEIGHTS, w)
    first = load_model(w).model_id
    assert load_model(w) is load_model(w)  # unchanged file: loaded once
    model = model_from_checkpoint(torch.load(SHIPPED_WEIGHTS, weights_only=True))
    with torch.no_grad():
        model.g_s[0].bias.add_(0.01)
    export_weights(model, tmp_path / "new.pt")
    shutil.move(tmp_path / "new.pt", w)  # the way a deploy replaces a file
    assert load_model(w).model_id == model_id_of(w.read_bytes()) != first
    data = gancodec.compress(astronaut(32), weights=w)
    assert gancodec.read_header(data).model_id == load_model(w).model_id
