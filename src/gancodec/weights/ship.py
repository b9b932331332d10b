"""Make a training checkpoint the shipped model: compact weights + model card.

    python -m gancodec.weights.ship runs/stage1/model.pt --version v1.6 [--kodak-table kodak.json]
        [--classes-table reports/classes/classes.json] [--post-filter runs/p3/realism.pt]

Writes ``hyperprior-v1.pt`` (float16 parameters, integer entropy tables) and ``MODEL_CARD.json``
(sha256, model config, steps, training settings, data hashes, git revision, hardware, Kodak
numbers when given) beside this module, renders ``MODEL_CARD.md`` from them, and adds the new
weights to ``HISTORY.json`` under ``--version``, so files made with them still decode after the
next release (``gancodec weights get``). Commit the weights file: its git blob is how a later
checkout gives it back.

``--post-filter`` adds a noise-free, rate-aware detail generator (trained by
``python -m gancodec.realism.detail_loop train --noise-channels 0 --rate-input`` over the
checkpoint's decodes; docs/training.md) as the model's post-filter. Nothing else changes: the
file records the checkpoint's model id as ``extends_model_id``, so realism decoders made for it
still apply. The pipeline's ``train_post_filter`` stage makes such a file itself
(``models/gancodec.pt``): ship it without ``--post-filter``; its ``extends_model_id`` and
``trained_steps`` are kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from ..class_table_markdown import markdown as classes_markdown
from ..fsutil import atomic_write_bytes
from ..models import model_from_checkpoint
from . import MODEL_CARD, SHIPPED_WEIGHTS, export_weights, load_checkpoint, model_id_of


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
        return rev + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _data_hashes(dirs: list[str]) -> dict[str, str]:
    """sha256 of each training folder's SHA256SUMS (or of its sorted file list) as a data fingerprint."""
    out = {}
    for d in dirs:
        p = Path(d)
        sums = p / "SHA256SUMS"
        if p.is_file():  # a list of images (e.g. the split stage's train.csv)
            out[p.name] = "sha256(file)=" + hashlib.sha256(p.read_bytes()).hexdigest()
        elif sums.exists():
            out[p.name] = "sha256(SHA256SUMS)=" + hashlib.sha256(sums.read_bytes()).hexdigest()
        elif p.exists():
            names = "\n".join(sorted(str(q.relative_to(p)) for q in p.rglob("*") if q.is_file()))
            out[p.name] = "sha256(file list)=" + hashlib.sha256(names.encode()).hexdigest()
    return out


def provenance(data_dirs: list[str], hardware: str | None = None, wall_time: str | None = None) -> dict:
    """The card fields that say where a file came from: data hashes, git revision (call it before
    writing tracked files), hardware, wall time and the time of shipping."""
    return {
        "data": _data_hashes(data_dirs),
        "git_rev": _git_rev(),
        "hardware": hardware or f"{platform.processor() or platform.machine()}, CPU training",
        "wall_time": wall_time,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def dvc_lock_entry(checkpoint: str, lock_path: str | Path = "dvc.lock") -> dict | None:
    """The dvc.lock entry of the stage whose outs hold ``checkpoint`` (data hashes, params, command)."""
    lock = Path(lock_path)
    if not lock.exists():
        return None
    import yaml

    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    target = Path(checkpoint).resolve()
    for name, entry in stages.items():
        for out in entry.get("outs", []):
            root = (lock.parent / out["path"]).resolve()
            if target == root or root in target.parents:
                return {"stage": name, "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest(), **entry}
    return None


def shipped_realism_card(*model_ids: str | None) -> dict | None:
    """The card of the shipped realism decoder when it was trained for one of ``model_ids``, else None."""
    from .realism import SHIPPED_REALISM

    path = SHIPPED_REALISM.with_suffix(".json")
    if not path.exists():
        return None
    card = json.loads(path.read_text())
    return card if card.get("base_model_id") in {m for m in model_ids if m} else None


def _realism_markdown(card: dict) -> list[str]:
    def num(v, fmt: str) -> str:
        return "n/a" if v is None or v != v else format(v, fmt)

    lines = ["", f"## Realism decoder (`{card['name']}`)", "", card["summary"], "", "| field | value |", "|---|---|"]
    for key in ("sha256", "base_model_id", "steps", "qualities", "wall_time", "hardware", "git_rev", "created"):
        if card.get(key) is not None:
            lines.append(f"| {key} | `{card[key]}` |")
    lines += ["", "```json", json.dumps(card.get("train_config", {}), indent=2), "```", ""]
    lines += [f"- {k}: `{v}`" for k, v in card.get("data", {}).items()]
    kodak = card.get("kodak")
    if kodak:
        lines += ["", f"Kodak ({kodak['images']} images, real file bytes; strength 0 = the fidelity decoder on the same "
                      "stream; WebP and AVIF 4:4:4 measured here at that bpp; SSIMULACRA2: higher is better):", "",
                  "| quality | bpp | strength | PSNR (dB) | MS-SSIM | SSIMULACRA2 | WebP SSIMULACRA2 | AVIF SSIMULACRA2 |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in kodak["rows"]:
            lines.append(f"| {r['quality']:g} | {r['bpp']:.3f} | {r['strength']:g} | {r['psnr']:.2f} | {r['ms_ssim']:.4f} "
                         f"| {num(r.get('ssimulacra2'), '.2f')} | {num(r.get('webp_ssimulacra2'), '.2f')} "
                         f"| {num(r.get('avif_ssimulacra2'), '.2f')} |")
        lines += ["", f"Command: `{kodak['command']}`"]
    for name, chk in (card.get("checks") or {}).items():
        lines += ["", f"### {name} ({len(chk['images'])} images; real file bytes; WebP and AVIF 4:4:4 at no more bytes "
                      "than ours, image by image; SWD: Laplacian-patch sliced Wasserstein distance to the originals, "
                      "lower is better; corr: of added with lost detail)", "",
                  "| quality | decoder | bpp | PSNR (dB) | MS-SSIM | SSIMULACRA2 | SWD | spectrum (dB) | corr |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in chk["rows"]:
            lines.append(f"| {r['quality']:g} | {r['decoder']} | {r['bpp']:.3f} | {r['psnr']:.2f} | {num(r.get('ms_ssim'), '.4f')} "
                         f"| {num(r.get('ssimulacra2'), '.2f')} | {r['swd']:.4f} | {r['spectrum_db']:.2f} | {r['corr']:+.3f} |")
        lines += ["", "Check (issue 19): " + "; ".join(
            f"{q}: SWD {v['swd_vs_fidelity']:.2f}x fidelity, PSNR -{v['psnr_drop_db']:.2f} dB, corr {v['corr']:+.3f}, "
            f"{'pass' if v['pass'] else 'FAIL'}" for q, v in chk["check"].items()), "", f"Command: `{chk['command']}`"]
    if card.get("notes"):
        lines += ["", card["notes"]]
    return lines


#: The card's pointer to the history of every release (kept in one place, not on each card).
RELEASE_HISTORY_LINE = ("Every release of these weights, with its numbers and how to get its file back: "
                        "[CHANGELOG.md](../../../CHANGELOG.md).")


def _experiment_markdown(card: dict) -> list[str]:
    """The card fields the ship gate adds (:mod:`gancodec.gate`): experiment, its gate, steps, params."""
    exp = card["experiment"]
    lines = ["", "## Shipped from an experiment", "",
             f"Experiment `{exp['name']}` (ref `{exp.get('ref') or '-'}`, commit `{exp.get('commit')}`), "
             f"gated against the model shipped at `{exp.get('baseline_rev')}` by `{exp.get('command')}`.", ""]
    if card.get("eval_metrics") is not None:
        lines += ["Evaluate stage (`reports/eval/metrics.json`, as `dvc exp show` lists it):", "", "```json",
                  json.dumps(card["eval_metrics"], indent=2), "```", ""]
    if card.get("gate"):
        lines += ["| check | result | value | detail |", "|---|---|---|---|"]
        for c in card["gate"]:
            value = "" if c.get("value") is None else f"{c['value']:+.2f} %"
            lines.append(f"| {c['name']} | {c['status']} | {value} | {c['detail']} |")
        lines.append("")
    if card.get("trained_steps"):
        source = card.get("trained_steps_source") or {}
        lines += ["Steps each part has trained, over every run:", "", "| part | steps | source |", "|---|---|---|"]
        lines += [f"| {k} | {v:,} | {source.get(k, '')} |" for k, v in card["trained_steps"].items()]
        lines.append("")
    if card.get("params"):
        lines += ["The experiment's params (params.yaml sections that made the model):", "", "```json",
                  json.dumps(card["params"], indent=2), "```"]
    return lines


def render_markdown(card: dict, realism: dict | None = None) -> str:
    """The model card in Markdown; ``realism`` (default: the shipped realism decoder's card, when
    it was trained for this model) adds its section."""
    realism = realism if realism is not None else shipped_realism_card(card.get("model_id"), card.get("extends_model_id"))
    lines = [f"# Model card: {card['name']}", "", card["summary"], "", RELEASE_HISTORY_LINE, "",
             "| field | value |", "|---|---|"]
    for key in ("sha256", "model_id", "extends_model_id", "steps", "wall_time", "hardware", "git_rev", "created"):
        if card.get(key) is not None:
            lines.append(f"| {key} | `{card[key]}` |")
    lock = card.get("dvc_lock")
    lines.append(f"| dvc.lock | {'stage `' + lock['stage'] + '`, lock sha256 `' + lock['lock_sha256'][:16] + '`' if lock else 'not made by `dvc repro` (see notes)'} |")
    lines += ["", "## Architecture", "", "```json", json.dumps(card["model_config"], indent=2), "```",
              "", "## Training", "", "```json", json.dumps(card.get("train_config", {}), indent=2), "```",
              "", "## Data", ""]
    lines += [f"- {k}: `{v}`" for k, v in card.get("data", {}).items()]
    lines += ["", "## Kodak (24 images, real file bytes)", ""]
    kodak = card.get("kodak")
    if kodak:
        def num(v, fmt: str) -> str:
            return "n/a" if v is None else format(v, fmt)

        lines += ["| quality | bpp | PSNR (dB) | MS-SSIM | WebP PSNR at that bpp (measured here) |", "|---|---|---|---|---|"]
        for row in kodak["rows"]:
            lines.append(f"| {row['quality']:g} | {row['bpp']:.3f} | {row['psnr']:.2f} | {num(row.get('ms_ssim'), '.4f')} "
                         f"| {num(row.get('webp_psnr'), '.2f')} |")
        m = kodak.get("margin_vs_webp_here")
        if m:
            lines += ["", f"PSNR margin over WebP at equal bpp, 0.15-1.0 bpp: min {m['min_db']:+.2f} dB "
                          f"(at {m['worst_bpp']:.3f} bpp), mean {m['mean_db']:+.2f} dB."]
        lines += ["", f"Command: `{kodak['command']}`"]
    else:
        lines.append("Not measured yet.")
    classes = card.get("classes")
    if classes:
        lines += ["", "## Per content class (PSNR BD-rate; negative = fewer bits than the anchor)", ""]
        lines += classes_markdown(classes)
    if card.get("experiment"):
        lines += _experiment_markdown(card)
    if card.get("notes"):
        lines += ["", "## Notes", "", card["notes"]]
    if realism:
        lines += _realism_markdown(realism)
    return "\n".join(lines) + "\n"


def with_post_filter(ckpt: dict, source: str, post_filter: str) -> tuple[torch.nn.Module, dict]:
    """The model of ``ckpt`` with the generator of the realism file ``post_filter`` as its post-filter,
    and the card fields that say so (``extends_model_id``: the model it was trained over)."""
    from ..errors import ModelError
    from .realism import parse_realism

    path = Path(post_filter)
    data = path.read_bytes()
    post = parse_realism(path, data)
    cfg = post.get("detail_config") or {}
    if post.get("arch") != "detail" or cfg.get("noise_channels") or not cfg.get("rate_input"):
        raise ModelError(f"{path}: not a post-filter (a detail generator with noise_channels 0 and rate_input 1)")
    model = model_from_checkpoint(ckpt, source, overrides={"post_filter": cfg})
    model.post_filter.load_state_dict({k: v.float() for k, v in post["state_dict"].items()})
    base_id = post["base_model_id"]
    if Path(source).is_file() and model_id_of(Path(source).read_bytes()) != base_id:
        raise ModelError(f"{path}: post-filter trained over model {base_id}, not {source}'s")
    card = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
    return model, {"extends_model_id": base_id,
                   "post_filter": {"file_sha256": hashlib.sha256(data).hexdigest(), "steps": post.get("step"),
                                   "config": card.get("config", {}), "data": card.get("data")}}


def ship(checkpoint: str, kodak: dict | None = None, notes: str = "", hardware: str | None = None,
         wall_time: str | None = None, version: str | None = None, classes: dict | None = None,
         post_filter: str | None = None, *, verbatim: bool = False, train_config: dict | None = None,
         data: dict | None = None, dvc_lock: dict | None | bool = True, extra: dict | None = None) -> dict:
    """Make ``checkpoint`` the shipped weights (see the module docstring); ``version`` names it in HISTORY.json.

    ``verbatim``: ``checkpoint`` is an exported weights file (the train stage's ``models/gancodec.pt``)
    and is shipped byte for byte, so the shipped sha256 is the one its evaluation measured.
    ``train_config``, ``data`` and ``dvc_lock`` (an entry, or None) replace what is otherwise found
    beside the checkpoint; ``extra`` adds (or overrides) card fields (:mod:`gancodec.gate`).
    """
    from ..errors import ModelError
    from .history import check_version_free

    if version is not None:
        check_version_free(version)  # before anything is written
    ckpt = load_checkpoint(checkpoint)
    if post_filter:
        if verbatim:
            raise ModelError("--post-filter rebuilds the weights file: it cannot ship one verbatim")
        model, post = with_post_filter(ckpt, checkpoint, post_filter)
    else:
        model, post = model_from_checkpoint(ckpt, checkpoint), {}
    if verbatim and not model.z_prior.tables_ready():
        raise ModelError(f"{checkpoint}: not an exported weights file (no entropy tables); ship it without verbatim")
    train_cfg = train_config if train_config is not None else (ckpt.get("train_config") or {})
    previous = None
    if not train_cfg and post and Path(checkpoint).resolve() == SHIPPED_WEIGHTS:
        previous = json.loads(MODEL_CARD.read_text())  # the fidelity model's own training, kept on the new card
        train_cfg = {"fidelity_model": {k: previous.get(k) for k in ("name", "model_id", "steps", "train_config", "data")}}
    if not train_cfg:
        last = Path(checkpoint).with_name("last.pt")
        stage_card = Path(checkpoint).with_suffix(".json")  # what the DVC train stage writes beside its export
        if last.exists():
            train_cfg = load_checkpoint(last).get("train_config", {})
        elif stage_card.exists():
            train_cfg = json.loads(stage_card.read_text()).get("train", {})
    origin = provenance(train_cfg.get("data_dirs", []) if data is None else [], hardware, wall_time)  # git rev before writing
    if previous is not None:
        origin["data"] = previous.get("data", {})  # what the fidelity model trained on (the post-filter's: post_filter.data)
    if data is not None:
        origin["data"] = data
    # a pipeline file (train_post_filter's models/gancodec.pt) keeps the model it extends and its trained_steps
    meta = {k: ckpt[k] for k in ("extends_model_id", "trained_steps") if ckpt.get(k)}
    if verbatim:
        meta.pop("extends_model_id", None)  # named by `post` below when it is another model's
        raw = Path(checkpoint).read_bytes()
        atomic_write_bytes(SHIPPED_WEIGHTS, raw)
        digest = hashlib.sha256(raw).hexdigest()
        extends = ckpt.get("extends_model_id")
        post = {"extends_model_id": extends} if isinstance(extends, str) and extends != digest[:32] else {}
    else:
        if post:
            meta["extends_model_id"] = post["extends_model_id"]
        digest = export_weights(model, SHIPPED_WEIGHTS, step=int(ckpt.get("step", 0)), **meta)
    card = {
        "name": SHIPPED_WEIGHTS.name,
        "summary": "Variable-rate mean-scale hyperprior" + (
            " with a channel-conditional context over a checkerboard context model" if getattr(model, "channel_context", None) is not None
            else " with a checkerboard context model" if model.context is not None else "")
                   + (" and a rate-aware post-filter (a small residual CNN over g_s's decode)" if model.post_filter is not None else "")
                   + " (stage 1, MSE). Quality 1..8 interpolates 8 gain-unit rate points.",
        "sha256": digest,
        "model_id": digest[:32],
        "model_config": model.config.to_dict(),
        **meta,
        **post,
        "steps": int(ckpt.get("step", 0)),
        "train_config": train_cfg,
        **origin,
        "dvc_lock": dvc_lock_entry(checkpoint) if dvc_lock is True else dvc_lock,
        "kodak": kodak,
        "classes": classes,
        "notes": notes,
        **(extra or {}),
    }
    atomic_write_bytes(MODEL_CARD, (json.dumps(card, indent=2) + "\n").encode())
    atomic_write_bytes(MODEL_CARD.with_suffix(".md"), render_markdown(card).encode())
    if version is not None:
        from .history import record

        record(version, SHIPPED_WEIGHTS.read_bytes(), summary=notes.split(". ")[0][:120])
    return card


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gancodec.weights.ship", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--version", required=True, help="the release name recorded in HISTORY.json, e.g. v1.6")
    p.add_argument("--kodak-table", help="JSON written by benchmarks/model_kodak.py --json")
    p.add_argument("--classes-table", help="classes.json written by the evaluate_classes stage or "
                   "benchmarks/class_table.py")
    p.add_argument("--post-filter", help="a noise-free, rate-aware detail-generator file trained over the "
                   "checkpoint's decodes: added as the model's post-filter")
    p.add_argument("--notes", default="")
    p.add_argument("--hardware", default=None)
    p.add_argument("--wall-time", default=None)
    a = p.parse_args(argv)
    kodak = json.loads(Path(a.kodak_table).read_text()) if a.kodak_table else None
    classes = json.loads(Path(a.classes_table).read_text()) if a.classes_table else None
    card = ship(a.checkpoint, kodak, a.notes, a.hardware, a.wall_time, a.version, classes=classes, post_filter=a.post_filter)
    print(f"shipped {SHIPPED_WEIGHTS} sha256={card['sha256']} steps={card['steps']}")


if __name__ == "__main__":
    main()
