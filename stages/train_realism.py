"""DVC stage `train_realism`: the realism decoder (a detail generator) over the trained model.

Reads the `realism` section of --params (gancodec.params.RealismParams), caches the frozen
model's quantised latents and fidelity decodes of training crops from the split's train list
(--cache, persisted), trains the detail generator (--run: resumable last.pt, persisted), logs
its curves with dvclive, and writes the realism file + card to --out. The file is keyed to the
model in --base: streams of any other model are refused by the decoder.

With `realism.steps: 0` and a starting file made for --base (or for the model it extends), that
file is the result, byte for byte, as `train` does with `train.steps: 0`: the default pipeline
evaluates the shipped realism decoder. (A short continuation with a fresh discriminator is not
the same thing: the discriminator is still at chance when the generator starts, so the MSE term
wins and the texture goes.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from dvclive import Live

from gancodec.errors import GancodecError
from gancodec.params import RealismParams
from gancodec.realism.detail_loop import build_cache, train_detail
from gancodec.weights import load_model
from gancodec.weights.realism import SHIPPED_REALISM, parse_realism


def _unchanged_start(init: str | None, base: str, steps: int) -> Path | None:
    """The starting realism file when nothing is to be trained and it fits the base model, else None."""
    if steps or not init:
        return None
    lm = load_model(base)
    start = Path(init)
    return start if parse_realism(start, start.read_bytes())["base_model_id"] in (lm.model_id, lm.extends_model_id) else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `realism`)")
    p.add_argument("--train-list", required=True, help="CSV with a `path` column (from the split stage)")
    p.add_argument("--base", required=True, help="the frozen stage-1 weights (from the train stage)")
    p.add_argument("--cache", required=True, help="folder of cached latents and fidelity decodes")
    p.add_argument("--run", required=True, help="checkpoint folder (resumable)")
    p.add_argument("--out", required=True, help="the realism file (its card is written beside it)")
    p.add_argument("--live", default="dvclive/train_realism")
    a = p.parse_args(argv)
    try:
        prm = RealismParams.load(a.params)
    except GancodecError as exc:
        print(f"train_realism: {exc}", file=sys.stderr)
        return 1
    init = {"shipped": str(SHIPPED_REALISM) if SHIPPED_REALISM.exists() else None, "scratch": None}.get(
        prm.init_from, prm.init_from)
    cfg = prm.detail_config(a.train_list, a.base, a.cache, a.run, init)
    with Live(a.live, report=None, dvcyaml=None) as live:
        def on_log(rec: dict) -> None:
            live.step = rec["step"]
            for key in ("psnr", "psnr_fid", "tex", "detail_rms", "d_acc"):
                if key in rec:
                    live.log_metric(f"train/{key}", rec[key])
            live.next_step()

        try:
            start = _unchanged_start(init, a.base, prm.steps)
            if start is None:
                build_cache(cfg, replace_stale=True)  # the stage owns both folders: stale ones start afresh
                path = train_detail(cfg, on_log=on_log, restart_stale=True)
            else:
                path = start
                for folder in (a.cache, a.run):  # declared outs; untouched (persisted) when they exist
                    Path(folder).mkdir(parents=True, exist_ok=True)
                live.step = 0
                live.log_metric("train/steps", 0)  # the declared plots folder gets its one point
                live.next_step()
        except (GancodecError, ValueError) as exc:
            print(f"train_realism: {exc}", file=sys.stderr)
            return 1
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
        card = json.loads(path.with_suffix(".json").read_text())
        card.update(init_from=prm.init_from, profile=prm.profile, unchanged=start is not None)
        out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        live.log_metric("final/steps", int(card.get("step", 0)), plot=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
