"""The train_post_filter stage script on a tiny model: steps 0 copies the base, runs resume and
their steps accumulate, a new base rebuilds the cache; and the trained_steps helper."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from gancodec.models import HyperpriorCodec, ModelConfig, model_from_checkpoint
from gancodec.weights import export_weights, load_checkpoint, model_id_of
from gancodec.weights.steps import accumulate, trained_steps

REPO = Path(__file__).resolve().parents[1]
POST = {"latent_channels": 24, "width": 8, "blocks": 1, "cond_channels": 16, "noise_channels": 0, "rate_input": 1}


def _stage():
    spec = importlib.util.spec_from_file_location("train_post_filter", REPO / "stages/train_post_filter.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_trained_steps_copy_the_base_and_add_or_set_the_part():
    base = {"trained_steps": {"transforms": 1000, "post_filter": 300}}
    assert accumulate(base, "post_filter", 50, continued=True) == {"transforms": 1000, "post_filter": 350}
    assert accumulate(base, "post_filter", 50, continued=False) == {"transforms": 1000, "post_filter": 50}
    assert accumulate({}, "entropy", 7, continued=True) == {"entropy": 7}  # absent: {}
    assert trained_steps(None) == {} and base["trained_steps"]["post_filter"] == 300  # the base is not changed
    with pytest.raises(ValueError, match="unknown part"):
        accumulate(base, "g_s", 1, continued=True)


def _base(path: Path, seed: int, meta: dict | None = None, post: dict = POST) -> Path:
    torch.manual_seed(seed)
    model = HyperpriorCodec(ModelConfig(N=16, M=24, post_filter=tuple(sorted(post.items()))))
    for p in model.post_filter.parameters():  # a trained filter: no zero layers (the tail starts at zero)
        torch.nn.init.normal_(p, std=0.05)
    export_weights(model, path, **(meta or {}))
    return path


def _run(main, tmp: Path, base: Path, steps: int, capsys, rc: int = 0, **extra) -> tuple[dict, str]:
    (tmp / "params.yaml").write_text(yaml.safe_dump({"profile": "default", "post_filter": {
        "init_from": "shipped", "steps": steps, "crops": 2, "batch_size": 2, "window": 64, "log_every": 1, "threads": 1,
        **extra}}))
    got = main(["--params", str(tmp / "params.yaml"), "--train-list", str(tmp / "train.csv"), "--base", str(base),
                "--cache", str(tmp / "cache"), "--run", str(tmp / "run"), "--out", str(tmp / "out/gancodec.pt"),
                "--sha256", str(tmp / "out/gancodec.sha256"), "--live", str(tmp / "live")])
    out = capsys.readouterr()
    assert got == rc, out.out + out.err
    if rc:
        return {}, out.err
    return json.loads((tmp / "out/gancodec.json").read_text()), out.out


def _train_list(tmp: Path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(2):
        img = (np.indices((288, 288)).sum(0)[..., None] * (i + 1) % 256 + rng.integers(0, 30, (288, 288, 3))).astype(np.uint8)
        Image.fromarray(img).save(tmp / f"im{i}.png")
        rows.append(f"{tmp / f'im{i}.png'}")
    (tmp / "train.csv").write_text("path\n" + "\n".join(rows) + "\n")


@pytest.mark.timeout(120)
def test_the_stage_copies_resumes_accumulates_and_rebuilds_its_cache(tmp_path, capsys, monkeypatch):
    main = _stage()
    monkeypatch.chdir(tmp_path)  # dvclive saves a DVC experiment of the repo it runs in: not this checkout
    _train_list(tmp_path)
    base = _base(tmp_path / "base.pt", 0, {"trained_steps": {"transforms": 12}})

    card, _ = _run(main, tmp_path, base, 0, capsys)  # steps 0: the base, byte for byte
    assert (tmp_path / "out/gancodec.pt").read_bytes() == base.read_bytes()
    assert card["unchanged"] and card["sha256"] == card["base_sha256"] and card["trained_steps"] == {"transforms": 12}
    assert (tmp_path / "out/gancodec.sha256").read_text().split() == [card["sha256"], "gancodec.pt"]

    card, log = _run(main, tmp_path, base, 2, capsys)
    assert (card["started_at"], card["steps"], card["continued"]) == (0, 2, True)
    assert card["trained_steps"] == {"transforms": 12, "post_filter": 2}
    assert "train_post_filter: step 2" in log and "gain over the fidelity decode" in log
    shard = tmp_path / "cache/shard-0000.pt"
    made = shard.stat().st_mtime_ns
    live = json.loads((tmp_path / "live/metrics.json").read_text())
    assert live["final"]["steps"] == 2 and "psnr_gain" in live["train"]

    card, _ = _run(main, tmp_path, base, 4, capsys)  # resumes at 2; the steps accumulate
    assert (card["started_at"], card["steps"]) == (2, 4) and card["trained_steps"]["post_filter"] == 4
    assert shard.stat().st_mtime_ns == made  # the same base: the cache is kept
    out = load_checkpoint(tmp_path / "out/gancodec.pt")
    assert out["trained_steps"] == {"transforms": 12, "post_filter": 4}
    assert out["extends_model_id"] == model_id_of(base.read_bytes()) and out["model_config"]["post_filter"] == POST
    trained = {k: v for k, v in out["state_dict"].items() if k.startswith("post_filter.")}
    before = {k: v for k, v in load_checkpoint(base)["state_dict"].items() if k.startswith("post_filter.")}
    assert trained.keys() == before.keys() and any(not torch.equal(trained[k], before[k]) for k in trained)
    assert all(torch.equal(v, load_checkpoint(base)["state_dict"][k])  # the rest of the model is the base's
               for k, v in out["state_dict"].items() if not k.startswith("post_filter.") and v.is_floating_point())

    # the same decoder under another entropy model (train_entropy grew it): a new cache, the run goes on
    ckpt = load_checkpoint(base)
    state = {k: (v + 0.01 if k.startswith("h_s.") and v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    regrown = tmp_path / "regrown.pt"
    torch.save({**ckpt, "state_dict": state}, regrown)
    card, log = _run(main, tmp_path, regrown, 6, capsys)
    assert (card["started_at"], card["steps"]) == (4, 6) and "building the cache" in log
    made = shard.stat().st_mtime_ns

    other = _base(tmp_path / "base.pt", 1)  # a new base (same path): a new cache, a new run
    card, log = _run(main, tmp_path, other, 4, capsys)
    assert (card["started_at"], card["steps"]) == (0, 4) and card["trained_steps"] == {"post_filter": 4}
    assert json.loads((tmp_path / "cache/cache.json").read_text())["base_model_id"] == model_id_of(other.read_bytes())
    assert shard.stat().st_mtime_ns != made and "building the cache" in log


@pytest.mark.timeout(120)
def test_fewer_blocks_start_a_cheaper_filter_from_the_starting_filters_blocks(tmp_path, capsys, monkeypatch):
    """post_filter.blocks: 2 of a 3-block filter keeps its first and last blocks, trains them on as
    a new filter (its steps its own) and ships a model whose filter has 2 blocks; more blocks than
    the starting filter's is an error that says what to do."""
    main = _stage()
    monkeypatch.chdir(tmp_path)
    _train_list(tmp_path)
    base = _base(tmp_path / "base.pt", 0, {"trained_steps": {"transforms": 12, "post_filter": 300}}, {**POST, "blocks": 3})
    card, _ = _run(main, tmp_path, base, 2, capsys, blocks=2)
    assert (card["steps"], card["continued"]) == (2, False)
    assert card["trained_steps"] == {"transforms": 12, "post_filter": 2}  # a new filter: not 300 + 2
    out = load_checkpoint(tmp_path / "out/gancodec.pt")
    assert out["model_config"]["post_filter"]["blocks"] == 2
    start = load_checkpoint(tmp_path / "run/init.pt")["state_dict"]
    before = load_checkpoint(base)["state_dict"]
    for new, old in ((0, 0), (1, 2)):  # block 1 (the middle one) left out
        for name in ("a.weight", "b.weight", "a.bias", "b.bias"):
            assert torch.equal(start[f"body.{new}.{name}"].float(), before[f"post_filter.body.{old}.{name}"].float())
    assert not any(k.startswith("body.2.") for k in start)
    assert torch.equal(start["head.weight"].float(), before["post_filter.head.weight"].float())
    model = model_from_checkpoint(out, "out")  # it decodes
    y = torch.zeros(1, 24, 2, 2)
    assert model.synthesis(y, 0.0).shape == (1, 3, 32, 32)

    _, err = _run(main, tmp_path, base, 2, capsys, rc=1, blocks=4)
    assert "post_filter.blocks: 4, but the starting filter has 3" in err and "thinned, not grown" in err
