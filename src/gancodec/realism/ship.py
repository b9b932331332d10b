"""Make a stage-2 result the shipped realism decoder, with its card.

    python -m gancodec.realism.ship runs/stage2/realism.pt --kodak-table realism.json [--notes ...]

Copies the float16 generator to ``realism-v1.pt`` beside the shipped model and writes
``realism-v1.json``: sha256 (checked at every load), the base model id, steps, the training
settings (saved in the realism file itself, or the run's ``last.pt``), data hashes, git revision,
hardware, wall time and the Kodak table of ``benchmarks/realism_kodak.py --json``. The model
card ``MODEL_CARD.md`` is re-rendered with a realism section. Refused when the file was trained
for another model than the shipped one: its streams would not decode with it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
from pathlib import Path

import torch

from ..errors import ModelError
from ..fsutil import atomic_write_bytes
from ..weights import MODEL_CARD, SHIPPED_WEIGHTS, model_id_of
from ..weights.realism import SHIPPED_REALISM, parse_realism


def _train_config(path: Path) -> dict:
    """The run's settings from ``last.pt`` beside the file ({} when only realism.pt came back; the
    realism file then carries them itself)."""
    last = path.with_name("last.pt")
    if not last.exists():
        return {}
    return dict(torch.load(last, map_location="cpu", weights_only=True).get("config", {}))


def _losses(cfg: dict) -> str:
    """The detail generator's training losses, in words, from its run's settings."""
    terms = ["MSE to the original"]
    if cfg.get("w_tex"):
        terms.append("a Laplacian-band sliced-Wasserstein texture loss")
    if cfg.get("w_adv"):
        terms.append("the non-saturating GAN loss of a latent-conditioned patch discriminator")
    return " + ".join(terms)


def ship_realism(path: str | Path, kodak: dict | None = None, notes: str = "", hardware: str | None = None,
                 wall_time: str | None = None, train_config: dict | None = None,
                 base_weights: Path = SHIPPED_WEIGHTS, dest: Path = SHIPPED_REALISM,
                 checks: dict[str, dict] | None = None) -> dict:
    """Copy ``path`` to ``dest`` with its card; return the card. ModelError if it is for another model."""
    from ..weights.ship import provenance

    path = Path(path)
    data = path.read_bytes()
    ckpt = parse_realism(path, data)
    base_data = base_weights.read_bytes()
    base_id = model_id_of(base_data)
    # a model that adds a post-filter to another keeps its streams: that model's realism decoders apply
    extends = torch.load(io.BytesIO(base_data), map_location="cpu", weights_only=True).get("extends_model_id")
    if ckpt.get("base_model_id") not in {base_id, extends}:
        raise ModelError(f"{path}: trained for model {ckpt.get('base_model_id')}, but the shipped model ({base_weights}) is "
                         f"{base_id}; train it again with --base {base_weights}")
    cfg = train_config if train_config is not None else (_train_config(path) or dict(ckpt.get("config") or {}))
    origin = provenance(cfg.get("data_dirs", []), hardware, wall_time)  # git rev before writing tracked files
    atomic_write_bytes(dest, data)
    summary = ("Realism decoder (stage 2): a synthesis transform trained against a conditional patch discriminator "
               "over the frozen shipped model; it decodes the same .gcx streams (`--realism [STRENGTH]`).")
    if ckpt.get("arch") == "detail":
        summary = ("Realism decoder (stage 2): a small detail generator that adds texture to the frozen shipped model's "
                   f"fidelity decode (x_fid + strength x G(x_fid, latent, position noise)); trained on cached decodes "
                   f"with {_losses(cfg)}. It decodes the same .gcx streams (`--realism [STRENGTH]`) of this base "
                   "model only.")
    card = {
        "name": dest.name,
        "summary": summary,
        "arch": ckpt.get("arch", "g_s"),
        "sha256": hashlib.sha256(data).hexdigest(),
        "base_model_id": ckpt["base_model_id"],
        "steps": int(ckpt.get("step", 0)),
        "qualities": ckpt.get("qualities"),
        "train_images": ckpt.get("data"),  # count and digest of the training images' sha256
        "train_config": cfg,
        **origin,
        "kodak": kodak,
        "checks": checks,
        "notes": notes,
    }
    atomic_write_bytes(dest.with_suffix(".json"), (json.dumps(card, indent=2) + "\n").encode())
    if dest == SHIPPED_REALISM and MODEL_CARD.exists():
        from ..weights.ship import render_markdown

        atomic_write_bytes(MODEL_CARD.with_suffix(".md"), render_markdown(json.loads(MODEL_CARD.read_text())).encode())
    return card


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gancodec.realism.ship", description=__doc__.splitlines()[0])
    p.add_argument("realism", help="the realism.pt of a stage-2 run")
    p.add_argument("--kodak-table", help="JSON written by benchmarks/realism_kodak.py --json")
    p.add_argument("--check", nargs=2, action="append", default=[], metavar=("NAME", "JSON"),
                   help="a set's JSON from benchmarks/realism_check.py --json (repeatable)")
    p.add_argument("--notes", default="")
    p.add_argument("--hardware", default=None)
    p.add_argument("--wall-time", default=None)
    a = p.parse_args(argv)
    kodak = json.loads(Path(a.kodak_table).read_text()) if a.kodak_table else None
    try:
        checks = {name: json.loads(Path(f).read_text()) for name, f in a.check} or None
        card = ship_realism(a.realism, kodak, a.notes, a.hardware, a.wall_time, checks=checks)
    except ModelError as exc:
        raise SystemExit(f"gancodec: error: {exc}") from None
    print(f"shipped {SHIPPED_REALISM} sha256={card['sha256']} steps={card['steps']} for model {card['base_model_id']}")


if __name__ == "__main__":
    main()
