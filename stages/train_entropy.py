"""DVC stage `train_entropy`: the channel-conditional context over the frozen transforms.

Reads the `entropy` section of --params (gancodec.params.EntropyParams), caches the frozen
model's latents of training crops from the split's train list (--cache, persisted, rebuilt when
the base model changes), trains the channel context by rate alone (--run: resumable last.pt,
persisted; the steps accumulate over runs), logs the bits and what the context saves with
dvclive, and writes the base with the trained context to --out. With `entropy.steps: 0` the base
file is the result, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from dvclive import Live

from gancodec.data.download import sha256_file
from gancodec.errors import DataError, GancodecError
from gancodec.params import EntropyParams
from gancodec.train.entropy import train_entropy
from gancodec.weights import export_weights, load_checkpoint, model_id_of
from gancodec.weights.steps import accumulate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="the params file (section `entropy`)")
    p.add_argument("--train-list", required=True, help="CSV with a `path` column (from the split stage)")
    p.add_argument("--base", required=True, help="the frozen weights (from the train stage)")
    p.add_argument("--cache", required=True, help="folder of cached latents (persisted)")
    p.add_argument("--run", required=True, help="checkpoint folder (resumable, persisted)")
    p.add_argument("--out", required=True, help="the base with the trained context")
    p.add_argument("--sha256", help="write `<sha256>  <weights name>` here (the committed pin of --out)")
    p.add_argument("--live", default="dvclive/train_entropy")
    a = p.parse_args(argv)
    try:
        prm = EntropyParams.load(a.params)
        if prm.init_from not in ("base", "fresh"):
            raise DataError(f"params: entropy.init_from={prm.init_from!r}; use base or fresh")
    except GancodecError as exc:
        print(f"train_entropy: {exc}", file=sys.stderr)
        return 1
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base_meta = load_checkpoint(a.base)
    with Live(a.live, report=None, dvcyaml=None) as live:
        def log(rec: dict) -> None:
            if "step" in rec and "bpp" in rec:
                live.step = rec["step"]
                for key in ("bpp", "saving_pct"):
                    if key in rec:
                        live.log_metric(f"train/{key}", rec[key])
                live.next_step()
            print(json.dumps(rec), flush=True)

        if prm.steps == 0:  # nothing to train: the base is the result (the default pipeline's shipped model)
            shutil.copyfile(a.base, out)
            for folder in (a.cache, a.run):  # declared outs; untouched (persisted) when they exist
                Path(folder).mkdir(parents=True, exist_ok=True)
            steps = 0
            live.step = 0
            live.log_metric("train/steps", 0)
            live.next_step()
            trained = base_meta.get("trained_steps") or {}
        else:
            try:
                model, steps = train_entropy(prm.entropy_config(a.train_list, a.base, a.cache, a.run), log=log)
            except (GancodecError, ValueError, FileNotFoundError) as exc:
                print(f"train_entropy: {exc}", file=sys.stderr)
                return 1
            continued = prm.init_from == "base" and model.channel_context is not None and \
                base_meta["model_config"].get("context") == "channel-checkerboard"
            trained = accumulate(base_meta, "entropy", steps, continued)
            # g_s is the base's: realism decoders made for the base (or the model it extends) still apply
            extends = base_meta.get("extends_model_id") or model_id_of(Path(a.base).read_bytes())
            export_weights(model, out, step=int(base_meta.get("step", 0)), trained_steps=trained,
                           extends_model_id=extends)
        digest = sha256_file(out)
        out.with_suffix(".json").write_text(json.dumps(
            {"sha256": digest, "steps": steps, "trained_steps": trained, "init_from": prm.init_from,
             "base_sha256": sha256_file(a.base), "profile": prm.profile, "entropy": prm.values()}, indent=2) + "\n")
        if a.sha256:
            Path(a.sha256).write_text(f"{digest}  {out.name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
