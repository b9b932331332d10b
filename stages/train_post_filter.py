"""DVC stage `train_post_filter`: the fidelity post-filter over the base model, attached to it.

Reads the `post_filter` section of --params (gancodec.params.PostFilterParams), caches the frozen
--base model's quantised latents and fidelity decodes (g_s alone) of training crops from the
split's train list at rate points rate_min..rate_max (--cache, persisted; keyed by the base's
sha256, the crops, seed and rates: remade when any changes), trains a noise-free, rate-aware
detail generator on them with v1.6's recipe (--run: resumable last.pt, persisted; a run made over
another base or with other run-defining settings starts afresh), logs its curves with dvclive and
writes the base model with that post-filter attached to --out (+ its .json card, and --sha256:
the pin later stages depend on). The fidelity streams are the base's, byte for byte.

`post_filter.init_from`: `shipped` continues the base file's own post-filter (v1.6's, when the
base starts from the shipped weights), `scratch` starts a new one, or a file (a post-filter
realism file, or weights that hold one). `post_filter.blocks` fewer than the starting filter's
starts a cheaper filter from its evenly spaced blocks (a new filter: its steps are its own). With `post_filter.steps: 0` the base file is the result,
byte for byte, as `train` does with `train.steps: 0`: the default pipeline evaluates the shipped
model.

The exported file and the card carry `trained_steps` (gancodec.weights.steps): the base file's,
with `post_filter` increased by this run's steps (continued from the base's own filter) or set
to them (anything else).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from dvclive import Live

from gancodec.errors import DataError, GancodecError
from gancodec.params import PostFilterParams
from gancodec.models import model_from_checkpoint
from gancodec.realism.detail_loop import build_cache, decoder_digest, train_detail
from gancodec.weights import export_weights, load_checkpoint, model_id_of
from gancodec.weights.realism import export_detail
from gancodec.weights.ship import with_post_filter
from gancodec.weights.steps import accumulate, trained_steps

STAGE = "train_post_filter"


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _without_post_filter(ckpt: dict) -> dict:
    """The checkpoint dict without its post-filter (config and parameters)."""
    cfg = {k: v for k, v in ckpt["model_config"].items() if k != "post_filter"}
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith("post_filter.")}
    return {**ckpt, "model_config": cfg, "state_dict": state}


def _filter_of(ckpt: dict) -> tuple[dict, dict] | None:
    """(detail config, state dict) of a weights file's post-filter, or of a detail realism file; None if it has none."""
    if ckpt.get("arch") == "detail":
        cfg = dict(ckpt.get("detail_config") or {})
        if cfg.get("noise_channels") or not cfg.get("rate_input"):
            return None
        return cfg, ckpt["state_dict"]
    cfg = (ckpt.get("model_config") or {}).get("post_filter")
    if not cfg:
        return None
    prefix = "post_filter."
    return dict(cfg), {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}


def thinned(state: dict, blocks: int, keep: int) -> dict:
    """A filter's state dict with ``keep`` of its ``blocks`` residual blocks, evenly spaced with
    the first and the last kept (renumbered); its head, tail and latent squeeze unchanged."""
    chosen = [round(i * (blocks - 1) / (keep - 1)) for i in range(keep)] if keep > 1 else [0]
    out = {}
    for name, value in state.items():
        if name.startswith("body."):
            _, index, rest = name.split(".", 2)
            if int(index) in chosen:
                out[f"body.{chosen.index(int(index))}.{rest}"] = value
        else:
            out[name] = value
    return out


def _start(init_from: str, base_ckpt: dict, base_id: str, run: Path,
           blocks: int = 0) -> tuple[str | None, dict | None, bool, str | None]:
    """The starting filter as a detail file in ``run`` (path, its shape, continued from the base's
    own?, sha256 of what it came from); (None, None, False, None) from scratch (``blocks`` of the
    recipe's width, when set). ``blocks`` fewer than the starting filter's thins it
    (:func:`thinned`): a new filter, not a continuation."""
    if init_from == "scratch":
        return None, ({"blocks": blocks} if blocks else None), False, None
    if init_from == "shipped":
        found, continued, origin = _filter_of(base_ckpt), True, None
        if found is None:
            raise DataError("post_filter.init_from: shipped continues the base model's own post-filter, and the base "
                            "has none; use scratch or a file")
    else:
        if not Path(init_from).is_file():
            raise DataError(f"post_filter.init_from: {init_from} is not a file (use shipped, scratch or a path)")
        found, continued, origin = _filter_of(load_checkpoint(init_from)), False, _sha256(init_from)
        if found is None:
            raise DataError(f"post_filter.init_from: {init_from} holds no post-filter (a noise-free, rate-aware "
                            "detail generator, or weights with one)")
    cfg, state = found
    if blocks and blocks != int(cfg["blocks"]):
        if blocks > int(cfg["blocks"]):
            raise DataError(f"post_filter.blocks: {blocks}, but the starting filter has {cfg['blocks']}; a filter "
                            "can be thinned, not grown (0 keeps its blocks; init_from: scratch starts one of any size)")
        state, cfg, continued = thinned(state, int(cfg["blocks"]), blocks), {**cfg, "blocks": blocks}, False
    from gancodec.models.detail import DetailConfig, DetailGenerator

    gen = DetailGenerator(DetailConfig.from_dict(cfg))
    gen.load_state_dict({k: v.float() for k, v in state.items()})
    path = run / "init.pt"
    run.mkdir(parents=True, exist_ok=True)
    export_detail(gen, base_id, path)
    return str(path), {"width": int(cfg["width"]), "blocks": int(cfg["blocks"])}, continued, origin


def _keyed(folder: Path, key: dict, clear) -> bool:
    """Whether ``folder/stage.json`` holds ``key``; if not, ``clear()`` the folder and record it. True when kept."""
    path = folder / "stage.json"
    same = path.exists() and json.loads(path.read_text()) == key
    if not same:
        clear()
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(key, indent=2) + "\n")
    return same


def _progress(rec: dict) -> None:
    """One line per log interval (and the loop's events as JSON)."""
    if "step" in rec and "mse" in rec:
        print(f"{STAGE}: step {rec['step']}  loss {rec.get('loss', float('nan')):.4f}  psnr {rec['psnr']:.2f} dB  "
              f"gain over the fidelity decode {rec['psnr'] - rec['psnr_fid']:+.3f} dB  {rec['elapsed_s']:.0f} s",
              flush=True)
    else:
        print(json.dumps(rec), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `post_filter`)")
    p.add_argument("--train-list", required=True, help="CSV with a `path` column (from the split stage)")
    p.add_argument("--base", required=True, help="the frozen model the filter goes over (an earlier stage's weights)")
    p.add_argument("--cache", required=True, help="folder of cached latents and fidelity decodes")
    p.add_argument("--run", required=True, help="checkpoint folder (resumable)")
    p.add_argument("--out", required=True, help="the base model with the post-filter (its card is written beside it)")
    p.add_argument("--sha256", help="write `<sha256>  <weights name>` here: the pin later stages depend on")
    p.add_argument("--live", default=f"dvclive/{STAGE}")
    a = p.parse_args(argv)
    cache, run, out = Path(a.cache), Path(a.run), Path(a.out)
    try:
        prm = PostFilterParams.load(a.params)
        base_bytes = Path(a.base).read_bytes()
        base_sha, base_id = hashlib.sha256(base_bytes).hexdigest(), model_id_of(base_bytes)
        base_ckpt = load_checkpoint(a.base)
    except OSError as exc:
        print(f"{STAGE}: {a.base}: cannot read the base model ({exc.strerror or exc})", file=sys.stderr)
        return 1
    except GancodecError as exc:
        print(f"{STAGE}: {exc}", file=sys.stderr)
        return 1
    card = {"base": a.base, "base_sha256": base_sha, "init_from": prm.init_from, "profile": prm.profile}
    with Live(a.live, report=None, dvcyaml=None) as live:
        def on_log(rec: dict) -> None:
            live.step = rec["step"]
            live.log_metric("train/loss", rec.get("loss", float("nan")))
            live.log_metric("train/psnr", rec["psnr"])
            live.log_metric("train/psnr_gain", rec["psnr"] - rec["psnr_fid"])  # over the fidelity decode
            live.next_step()

        try:
            if prm.steps == 0:  # nothing to train: the base, byte for byte (its own post-filter, if any)
                for folder in (cache, run):  # declared outs; untouched (persisted) when they exist
                    folder.mkdir(parents=True, exist_ok=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(a.base, out)
                digest, steps, started, continued = base_sha, 0, 0, True
                totals = trained_steps(base_ckpt)  # the base's, as they are
                live.step = 0
                live.log_metric("train/steps", 0)  # the declared plots folder gets its one point
                live.next_step()
            else:
                init, shape, continued, origin = _start(prm.init_from, base_ckpt, base_id, run, prm.blocks)
                cfg = prm.detail_config(a.train_list, a.base, str(cache), str(run), init, shape)
                # The cache: keyed by the base's sha256 and what the crops are (build_cache keeps
                # existing shards, so a new crop count or seed would otherwise mix two sets)
                kept = _keyed(cache, {"base_sha256": base_sha, "crops": prm.crops, "seed": prm.seed, "rate_min": prm.rate_min,
                                      "rate_max": prm.rate_max}, lambda: shutil.rmtree(cache, ignore_errors=True))
                if not kept:
                    print(f"{STAGE}: building the cache in {cache} (made for another base model or crops)", flush=True)
                build_cache(cfg, log=_progress, replace_stale=True)
                # The run: train_detail restarts one made over another decoder or with other settings;
                # a starting file with other content (same path) is another run too. A base whose
                # entropy model alone changed (train_entropy growing) keeps its decoder: the run goes on
                decoder = decoder_digest(model_from_checkpoint(base_ckpt, a.base))
                _keyed(run, {"decoder_sha256": decoder, "init_from": prm.init_from, "init_sha256": origin,
                             **({"blocks": prm.blocks} if prm.blocks else {})},
                       lambda: (run / "last.pt").unlink(missing_ok=True))
                started = None

                def log(rec: dict) -> None:
                    nonlocal started
                    if rec.get("event") == "start":
                        started = int(rec["step"])
                    _progress(rec)

                path = train_detail(cfg, log=log, on_log=on_log, restart_stale=True)
                trained = json.loads(path.with_suffix(".json").read_text())
                steps = int(trained.get("step", 0))
                model, post = with_post_filter(_without_post_filter(base_ckpt), a.base, str(path))
                totals = accumulate(base_ckpt, "post_filter", steps, continued)
                meta = {"extends_model_id": base_ckpt.get("extends_model_id") or base_id,  # the same streams and g_s
                        "trained_steps": totals}
                digest = export_weights(model, out, step=int(base_ckpt.get("step", 0)), **meta)
                card["post_filter"] = post["post_filter"]
        except (GancodecError, ValueError, FileNotFoundError) as exc:
            print(f"{STAGE}: {exc}", file=sys.stderr)
            return 1
        card.update(sha256=digest, steps=steps, started_at=started, continued=continued, unchanged=prm.steps == 0,
                    trained_steps=totals)
        out.with_suffix(".json").write_text(json.dumps({"sha256": digest, **card}, indent=2) + "\n")
        if a.sha256:
            Path(a.sha256).write_text(f"{digest}  {out.name}\n")
        live.log_metric("final/steps", steps, plot=False)
    print(f"{STAGE}: {out} sha256 {digest[:16]}, {steps} post-filter steps"
          + (" (the base unchanged)" if prm.steps == 0 else f" (from step {started})"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
