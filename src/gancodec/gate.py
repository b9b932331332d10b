"""Ship from an experiment: promote its model only when its evaluation beats the shipped model's.

    python -m gancodec.gate --exp NAME --version v1.7 [--dry-run] [--base-rev HEAD]
        [--class-tolerance 0.5] [--realism-tolerance 0] [--notes TEXT]

The experiment's files are read from its git ref (``dvc exp run`` keeps each experiment as a
commit under ``refs/exps``; NAME is what ``dvc exp show`` lists, a full ref, or a commit), or from
the working tree with ``--exp workspace`` (after ``dvc exp run`` or ``dvc exp apply NAME``). The
shipped model's reports are the ones committed at ``--base-rev``. Every check is printed; any
failed one refuses, naming it, with exit status 1. When all pass (and not ``--dry-run``) the
evaluated weights file is shipped byte for byte (:func:`gancodec.weights.ship.ship`:
``hyperprior-v1.pt``, ``MODEL_CARD.json``/``.md``, ``HISTORY.json``) and, when the experiment
changed it, the realism decoder (:func:`gancodec.realism.ship.ship_realism`).

Checks (docs/training.md, "Shipping from an experiment"):

* **evaluated weights / shipped reports**: the experiment's ``summary.json`` measured the weights
  file that would ship, and the reports at ``--base-rev`` measured the shipped model.
* **kodak**: PSNR BD-rate of the experiment's gancodec curve (``reports/eval/rd.csv``) against the
  shipped one's, on the same images, below 0 (the BD-rate vs WebP of both is shown).
* **class NAME**: the same per content class (``reports/classes/classes.csv``): below 0 passes,
  up to ``--class-tolerance`` percent passes flagged, more refuses.
* **realism qN**: the realism table's own bar (issue 19, :func:`gancodec.eval.realism_eval.check`)
  holds wherever the shipped decoder met it, and the realism decoder's SWD (texture statistics,
  lower is better) is no higher than the shipped one's. Skipped only when neither the base model
  nor the realism decoder changed (the table would be the same decode).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .errors import ModelError

RD, SUMMARY, METRICS, REALISM_CSV = ("reports/eval/rd.csv", "reports/eval/summary.json", "reports/eval/metrics.json",
                                     "reports/eval/realism.csv")
CLASSES_CSV, CLASSES_JSON = "reports/classes/classes.csv", "reports/classes/classes.json"
CARD, REALISM_CARD = "src/gancodec/weights/MODEL_CARD.json", "src/gancodec/weights/realism-v1.json"
WEIGHTS, WEIGHTS_PIN, STAGE_CARD = "models/gancodec.pt", "models/gancodec.sha256", "models/gancodec.json"
REALISM, REALISM_STAGE_CARD = "models/realism.pt", "models/realism.json"
#: Default tolerance of a class's BD-rate, percent: a class this much worse passes, flagged. The
#: evaluation is deterministic on one machine; the bf16/float32 choice moves the bytes by ~0.15 %
#: between machines (docs/speed.md, precision_kodak), and a class has 6-8 images: half a percent
#: is about three times that noise and far below what a real regression costs (several percent).
CLASS_TOLERANCE = 0.5
PARTS_OF = {"g_a": "transforms", "g_s": "transforms", "transforms": "transforms", "h_a": "entropy", "h_s": "entropy",
            "z_prior": "entropy", "context": "entropy", "entropy": "entropy", "post_filter": "post_filter"}


@dataclass
class Check:
    name: str
    status: str  # pass | FAIL | flag (passes, look at it) | skip | info
    value: float | None  # a BD-rate in percent, where the check has one
    detail: str

    @property
    def ok(self) -> bool:
        return self.status != "FAIL"


class Tree:
    """One side's files: a commit of ``repo`` (``git show``), or its working tree when ``rev`` is None."""

    def __init__(self, repo: Path, rev: str | None):
        self.repo, self.rev = repo, rev

    def data(self, path: str) -> bytes | None:
        if self.rev is None:
            p = self.repo / path
            return p.read_bytes() if p.is_file() else None
        r = subprocess.run(["git", "-C", str(self.repo), "show", f"{self.rev}:{path}"], capture_output=True)
        return r.stdout if r.returncode == 0 else None

    def json(self, path: str) -> dict | None:
        d = self.data(path)
        return None if d is None else json.loads(d)

    def yaml(self, path: str) -> dict:
        import yaml

        d = self.data(path)
        return (yaml.safe_load(d) if d else None) or {}

    def csv(self, path: str) -> pd.DataFrame | None:
        d = self.data(path)
        if d is None or not d.strip():
            return None
        return pd.read_csv(io.BytesIO(d))


def _git(repo: Path, *args: str) -> str | None:
    r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def resolve_experiment(name: str, repo: Path) -> dict:
    """{"name", "ref", "commit"} of experiment ``name``: a ``dvc exp`` name (the last part of a ref
    under refs/exps), a full ref, a commit, or ``workspace`` (the working tree; commit HEAD)."""
    if name == "workspace":
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no")
        return {"name": name, "ref": None, "commit": (_git(repo, "rev-parse", "HEAD") or "unknown") + ("+dirty" if dirty else "")}
    refs = (_git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps") or "").splitlines()
    hits = [line.split() for line in refs if line.split()[0] == name
            or (line.split()[0].rsplit("/", 1)[-1] == name and line.count("/") == 4)]  # refs/exps/ab/<sha>/NAME
    if len(hits) > 1:
        raise ModelError(f"experiment {name!r} is ambiguous: {', '.join(h[0] for h in hits)}; give the full ref")
    if hits:
        return {"name": name, "ref": hits[0][0], "commit": hits[0][1]}
    commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    if commit is None:
        raise ModelError(f"experiment {name!r}: no such ref under refs/exps, nor a commit (`dvc exp show` lists them; "
                         "`dvc exp pull` fetches them; --exp workspace reads the working tree)")
    return {"name": name, "ref": None, "commit": commit}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(tree: Tree, rel: str, sha256: str | None) -> Path | None:
    """The file ``rel`` of ``tree`` with that sha256: in the working tree, else in the DVC cache by
    the md5 the tree's dvc.lock gives it (DVC keeps large outs there, not in git). None when absent."""
    if not sha256:
        return None
    work = tree.repo / rel
    if work.is_file() and _sha256(work) == sha256:
        return work
    md5s = [o["md5"] for st in tree.yaml("dvc.lock").get("stages", {}).values() for o in st.get("outs", [])
            if o.get("path") == rel and o.get("md5")]
    caches = [tree.repo / ".dvc" / "cache"]
    for i in range(2):
        for cache in caches:
            for m in md5s:
                for p in (cache / "files" / "md5" / m[:2] / m[2:], cache / m[:2] / m[2:]):
                    if p.is_file() and _sha256(p) == sha256:
                        return p
        if i == 0:  # a cache configured elsewhere (.dvc/config cache.dir): ask dvc, once
            try:
                r = subprocess.run(["dvc", "cache", "dir"], cwd=tree.repo, capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired):
                break
            caches = [Path(r.stdout.strip())] if r.returncode == 0 and r.stdout.strip() else []
    return None


def _curve(df: pd.DataFrame, codec: str = "gancodec") -> pd.DataFrame:
    from .eval import baselines

    return baselines.rd_curve(df[df.codec == codec].drop(columns=["quality", "payload", "class"], errors="ignore"))


def _bd(anchor: pd.DataFrame, test: pd.DataFrame, metric: str = "psnr") -> float:
    """BD-rate (percent) of curve ``test`` against ``anchor`` on ``metric`` (MS-SSIM in dB), from the real bdrate code."""
    from .eval import bdrate, metrics

    a, t = (c[c[metric].notna()] for c in (anchor, test))
    if metric == "ms_ssim":
        return float(bdrate.bd_rate(a.bpp, a[metric].map(metrics.ms_ssim_db), t.bpp, t[metric].map(metrics.ms_ssim_db)))
    return float(bdrate.bd_rate(a.bpp, a[metric], t.bpp, t[metric]))


def _same_images(base: pd.DataFrame, exp: pd.DataFrame) -> str | None:
    b, e = set(base.image), set(exp.image)
    if b == e:
        return None
    return f"evaluated on other images ({len(b)} shipped, {len(e)} experiment; only in one: {sorted(b ^ e)[:4]})"


def kodak_checks(base: pd.DataFrame | None, exp: pd.DataFrame | None, same_model: bool) -> list[Check]:
    """The evaluate stage's learned-codec curve, experiment against shipped (PSNR BD-rate < 0), with
    the change of each one's BD-rate vs WebP; MS-SSIM and SSIMULACRA2 BD-rates as information."""
    if base is None or exp is None:
        return [Check("kodak", "FAIL", None, f"{RD} missing in the {'shipped' if base is None else 'experiment'} reports")]
    b, e = base[base.codec == "gancodec"], exp[exp.codec == "gancodec"]
    if (why := _same_images(b, e)) or b.empty:
        return [Check("kodak", "FAIL", None, why or "no gancodec rows")]
    try:
        bd = _bd(_curve(b), _curve(e))
    except ValueError as exc:
        return [Check("kodak", "FAIL", None, f"no BD-rate: {exc}")]
    detail = f"PSNR BD-rate vs the shipped model's curve, {b.image.nunique()} images"
    try:
        wb, we = _bd(_curve(base, "webp"), _curve(b)), _bd(_curve(exp, "webp"), _curve(e))
        detail += f"; vs WebP {wb:+.2f} % -> {we:+.2f} % ({we - wb:+.2f} points)"
    except (ValueError, KeyError):
        detail += "; no WebP curve in both reports"
    if same_model:
        out = [Check("kodak", "skip", bd, "the same weights as shipped: " + detail)]
    else:
        out = [Check("kodak", "pass" if bd < 0 else "FAIL", bd, detail + ("" if bd < 0 else " (must be below 0)"))]
    for metric in ("ms_ssim", "ssimulacra2"):
        if metric in b and metric in e and b[metric].notna().any() and e[metric].notna().any():
            try:
                out.append(Check(f"kodak {metric}", "info", _bd(_curve(b), _curve(e), metric),
                                 f"{metric} BD-rate vs the shipped model (not gating)"))
            except ValueError as exc:
                out.append(Check(f"kodak {metric}", "info", None, f"no BD-rate: {exc}"))
    return out


def class_checks(base: pd.DataFrame | None, exp: pd.DataFrame | None, same_model: bool,
                 tolerance: float = CLASS_TOLERANCE) -> list[Check]:
    """Each content class of the shipped per-class table: the experiment's gancodec curve against
    the shipped one's; < 0 passes, <= ``tolerance`` percent passes flagged, more refuses."""
    if base is None or exp is None:
        return [Check("classes", "FAIL", None, f"{CLASSES_CSV} missing in the {'shipped' if base is None else 'experiment'} reports")]
    out = []
    for cls in dict.fromkeys(base["class"]):
        b = base[(base["class"] == cls) & (base.codec == "gancodec")]
        e = exp[(exp["class"] == cls) & (exp.codec == "gancodec")]
        name = f"class {cls}"
        if e.empty:
            out.append(Check(name, "FAIL", None, "not in the experiment's table"))
            continue
        if why := _same_images(b, e):
            out.append(Check(name, "FAIL", None, why))
            continue
        try:
            bd = _bd(_curve(b), _curve(e))
        except ValueError as exc:
            out.append(Check(name, "FAIL", None, f"no BD-rate: {exc}"))
            continue
        detail = f"PSNR BD-rate vs the shipped model's curve, {b.image.nunique()} images"
        if same_model:
            out.append(Check(name, "skip", bd, "the same weights as shipped"))
        elif bd < 0:
            out.append(Check(name, "pass", bd, detail))
        elif bd <= tolerance:
            out.append(Check(name, "flag", bd, detail + f": worse, within the {tolerance:g} % tolerance"))
        else:
            out.append(Check(name, "FAIL", bd, detail + f": worse by more than the {tolerance:g} % tolerance"))
    return out


def realism_checks(base: pd.DataFrame | None, exp: pd.DataFrame | None, skip: str | None,
                   tolerance: float = 0.0) -> list[Check]:
    """Per quality of the shipped realism table: the experiment meets issue 19's bar wherever the
    shipped decoder did, and its realism SWD is at most the shipped one's x (1 + ``tolerance``)."""
    from .eval.realism_eval import check

    if skip:
        return [Check("realism", "skip", None, skip)]
    if base is None:
        return [Check("realism", "flag", None, f"the shipped reports have no {REALISM_CSV} rows: nothing to compare")]
    if exp is None:
        return [Check("realism", "FAIL", None, f"the experiment's {REALISM_CSV} is empty or missing "
                                               "(evaluate.realism_qualities)")]
    codecs = [c for c in ("webp", "avif") if c in set(base.decoder)]
    vb, ve = check(base, codecs), check(exp, codecs)
    out = []
    for q, shipped in vb.items():
        if q not in ve:
            out.append(Check(f"realism {q}", "FAIL", None, "quality not in the experiment's realism table"))
            continue
        new = ve[q]
        quality = float(q[1:])
        swd_b, swd_e = (float(t[(t.quality == quality) & (t.decoder == "realism")].swd.iloc[0]) for t in (base, exp))
        bar_ok = new["pass"] or not shipped["pass"]
        swd_ok = swd_e <= swd_b * (1 + tolerance)
        detail = (f"issue-19 bar {'met' if new['pass'] else 'missed'} (shipped: {'met' if shipped['pass'] else 'missed'}; "
                  f"SWD {new['swd_vs_fidelity']:.2f}x fidelity, PSNR -{new['psnr_drop_db']:.2f} dB, corr {new['corr']:+.3f}); "
                  f"realism SWD {swd_b:.4f} -> {swd_e:.4f}")
        out.append(Check(f"realism {q}", "pass" if bar_ok and swd_ok else "FAIL", None,
                         detail + ("" if swd_ok else " (texture statistics worse)") + ("" if bar_ok else " (bar missed)")))
    return out


def _first(text: bytes | None) -> str | None:
    return text.decode().split()[0] if text and text.split() else None


def trained_steps(ckpt: dict, base_card: dict, run: dict, trainable: list, model_changed: bool,
                  realism: dict) -> tuple[dict, dict]:
    """Steps each part has trained over every run, and where each number comes from: "measured"
    (the files' ``trained_steps`` metadata) or "recorded" (the shipped cards, plus this run's steps
    from models/gancodec.json for the parts it trained)."""
    steps, source = {}, {}
    measured = ckpt.get("trained_steps") if isinstance(ckpt.get("trained_steps"), dict) else {}
    for part in ("transforms", "entropy", "post_filter"):
        if part in measured:
            steps[part], source[part] = int(measured[part]), "measured (weights file trained_steps)"
    prev = base_card.get("trained_steps") or {}
    fidelity = (base_card.get("train_config") or {}).get("fidelity_model") or {}
    recorded = {"transforms": fidelity.get("steps", base_card.get("steps", 0)),
                "entropy": fidelity.get("steps", base_card.get("steps", 0)),
                "post_filter": (base_card.get("post_filter") or {}).get("steps", 0)}
    parts = {PARTS_OF.get(n, n) for n in trainable} if trainable else set(recorded)
    run_steps = int(run.get("steps") or 0) if model_changed else 0
    for part in ("transforms", "entropy", "post_filter"):
        if part in steps:
            continue
        add = run_steps if part in parts else 0
        steps[part] = int(prev.get(part, recorded[part]) or 0) + add
        source[part] = "recorded (shipped card" + (f" + {add:,} steps of this run, models/gancodec.json)" if add else ")")
    steps["realism"], source["realism"] = realism["steps"], realism["source"]
    return steps, source


def _data_hashes(lock: dict) -> dict:
    """The data the experiment's stages read, as dvc.lock pins it (md5 of each data/ dependency)."""
    out = {}
    for stage in ("download", "split", "train", "train_realism", "evaluate", "evaluate_classes"):
        for dep in (lock.get("stages", {}).get(stage) or {}).get("deps", []):
            if dep.get("path", "").startswith("data/") and dep.get("md5"):
                out[dep["path"]] = f"md5(dvc.lock)={dep['md5']}"
    return out


def _realism_file_steps(path: Path | None, stage_card: dict | None) -> dict:
    from .weights import load_checkpoint

    if path is not None:
        ckpt = load_checkpoint(path)
        ts = ckpt.get("trained_steps")
        if isinstance(ts, dict) and "realism" in ts:
            return {"steps": int(ts["realism"]), "source": "measured (realism file trained_steps)"}
        return {"steps": int(ckpt.get("step", 0)), "source": "recorded (realism file step)"}
    return {"steps": int((stage_card or {}).get("steps", 0)), "source": "recorded (realism card)"}


def run_gate(exp_name: str, version: str, *, repo: str | Path | None = None, base_rev: str = "HEAD",
             class_tolerance: float = CLASS_TOLERANCE, realism_tolerance: float = 0.0, dry_run: bool = False,
             notes: str = "", command: str = "") -> tuple[list[Check], dict | None]:
    """Run every check; ship when all pass and not ``dry_run``. Returns (checks, the new card or None)."""
    from .weights import load_checkpoint, model_id_of
    from .weights.history import check_version_free

    repo = Path(repo or _git(Path.cwd(), "rev-parse", "--show-toplevel") or Path.cwd()).resolve()
    experiment = resolve_experiment(exp_name, repo)
    base_commit = _git(repo, "rev-parse", "--verify", f"{base_rev}^{{commit}}")
    if base_commit is None:
        raise ModelError(f"--base-rev {base_rev!r} is not a commit of {repo}")
    base = Tree(repo, base_commit)
    exp = Tree(repo, None if exp_name == "workspace" else experiment["commit"])
    checks: list[Check] = []

    base_card = base.json(CARD) or {}
    base_summary, exp_summary = base.json(SUMMARY) or {}, exp.json(SUMMARY) or {}
    shipped_sha = base_card.get("sha256")
    checks.append(Check("shipped reports", "pass" if base_summary.get("weights_sha256") == shipped_sha and shipped_sha else "FAIL",
                        None, f"{SUMMARY} at {base_rev} measured weights {str(base_summary.get('weights_sha256'))[:12]}, "
                              f"the card there ships {str(shipped_sha)[:12]}"))
    pin = _first(exp.data(WEIGHTS_PIN))
    weights = locate(exp, WEIGHTS, pin)
    if weights is None and pin and pin == shipped_sha:  # the shipped weights, unchanged: the package has them
        from .weights import SHIPPED_WEIGHTS

        weights = SHIPPED_WEIGHTS if SHIPPED_WEIGHTS.is_file() and _sha256(SHIPPED_WEIGHTS) == pin else None
    ok = pin is not None and exp_summary.get("weights_sha256") == pin and weights is not None
    checks.append(Check("evaluated weights", "pass" if ok else "FAIL", None,
                        f"{WEIGHTS} sha256 {str(pin)[:12]} ({WEIGHTS_PIN}), evaluated {str(exp_summary.get('weights_sha256'))[:12]}"
                        + (f", file {weights}" if weights else ": file in neither the working tree nor the DVC cache "
                           + ("(`dvc checkout` or `dvc pull`)" if exp_name == "workspace" else f"(`dvc exp apply {exp_name}` or `dvc pull`)"))))
    model_changed = pin != shipped_sha
    ckpt = load_checkpoint(weights) if weights else {}
    model_ids = {model_id_of(weights.read_bytes()) if weights else None, ckpt.get("extends_model_id")} - {None}

    shipped_realism = (base.json(REALISM_CARD) or {}).get("sha256")
    exp_realism_card = exp.json(REALISM_STAGE_CARD) or {}
    realism_sha = exp_realism_card.get("sha256")
    realism_changed = bool(realism_sha) and realism_sha != shipped_realism
    realism_path = None
    if realism_changed:
        realism_path = locate(exp, REALISM, realism_sha)
        evaluated = (exp_summary.get("realism") or {}).get("sha256")
        ok = realism_path is not None and evaluated == realism_sha
        checks.append(Check("evaluated realism", "pass" if ok else "FAIL", None,
                            f"{REALISM} sha256 {realism_sha[:12]}, evaluated {str(evaluated)[:12]}"
                            + ("" if realism_path else ": file in neither the working tree nor the DVC cache")))
    realism_base = exp_realism_card.get("base_model_id") if realism_changed else (base.json(REALISM_CARD) or {}).get("base_model_id")
    if realism_base and model_ids:
        fits = realism_base in model_ids
        checks.append(Check("realism fits", "pass" if fits else "FAIL", None,
                            f"realism decoder trained for model {realism_base}; the model to ship is {sorted(model_ids)}"
                            + ("" if fits else ": retrain it (train_realism) for the new model")))
    if not model_changed and not realism_changed:
        checks.append(Check("something to ship", "FAIL", None, "the experiment's weights and realism decoder are the shipped ones"))
    try:
        check_version_free(version)
        checks.append(Check("version", "pass", None, f"{version} is free in HISTORY.json"))
    except ModelError as exc:
        checks.append(Check("version", "FAIL", None, str(exc)))

    checks += kodak_checks(base.csv(RD), exp.csv(RD), not model_changed)
    checks += class_checks(base.csv(CLASSES_CSV), exp.csv(CLASSES_CSV), not model_changed, class_tolerance)
    skip = None if (model_changed or realism_changed) else "neither the base model nor the realism decoder changed"
    checks += realism_checks(base.csv(REALISM_CSV), exp.csv(REALISM_CSV), skip, realism_tolerance)

    params = exp.yaml("params.yaml")
    profile = params.get("profile", "default")
    run = exp.json(STAGE_CARD) or {}
    steps, source = trained_steps(ckpt, base_card, run, (params.get("train") or {}).get("trainable") or [], model_changed,
                                  _realism_file_steps(realism_path, exp_realism_card if realism_changed else base.json(REALISM_CARD)))
    checks.append(Check("trained steps", "info", None, ", ".join(f"{k} {v:,} ({source[k].split(' ')[0]})" for k, v in steps.items())))
    if dry_run or not all(c.ok for c in checks):
        return checks, None

    lock_bytes = exp.data("dvc.lock") or b""
    lock = exp.yaml("dvc.lock")
    metrics = exp.json(METRICS)
    bd = next((c for c in checks if c.name == "kodak"), None)
    auto = (f"{version} = the experiment {experiment['name']} ({experiment['commit'][:12]}): Kodak PSNR BD-rate "
            f"{bd.value:+.2f} % vs the shipped model ({bd.detail.split('; ', 1)[-1]})" if bd and bd.value is not None else
            f"{version} = the experiment {experiment['name']}")
    note = auto + (". " + notes if notes else "")
    card = None
    if model_changed:
        from .weights.ship import ship

        train_entry = (lock.get("stages") or {}).get("train")
        profiles = exp.yaml("profiles.yaml").get(profile) if profile != "default" else None
        card = ship(str(weights), notes=note, version=version, verbatim=True,
                    classes=exp.json(CLASSES_JSON), train_config=run.get("train") or {}, data=_data_hashes(lock),
                    dvc_lock={"stage": "train", "lock_sha256": hashlib.sha256(lock_bytes).hexdigest(), **train_entry}
                    if train_entry else None,
                    extra={"git_rev": experiment["commit"],
                           "experiment": {**experiment, "baseline_rev": base_commit, "command": command},
                           "params": {"profile": profile, "profile_overrides": profiles,
                                      **{k: params.get(k) for k in ("train", "realism")}},
                           "eval_metrics": metrics, "gate": [asdict(c) for c in checks],
                           "trained_steps": steps, "trained_steps_source": source})
    if realism_changed:
        from .eval.realism_eval import check
        from .realism.ship import ship_realism

        table = exp.csv(REALISM_CSV)
        rd = exp.csv(RD)
        codecs = [c for c in ("webp", "avif") if c in set(table.decoder)]
        checks_table = {"Kodak (evaluate stage)": {
            "images": sorted(set(rd.image)) if rd is not None else [], "rows": table.to_dict("records"),
            "check": check(table, codecs), "command": f"dvc exp run ({experiment['name']}): reports/eval/realism.csv"}}
        from .weights import realism as realism_weights
        from .weights import ship as weights_ship

        rcard = ship_realism(realism_path, notes=note, train_config=exp_realism_card.get("train_config"), checks=checks_table,
                             base_weights=weights_ship.SHIPPED_WEIGHTS, dest=realism_weights.SHIPPED_REALISM)
        card = card or {"realism": rcard}
    return checks, card


def print_checks(checks: list[Check], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    style = {"pass": "green", "FAIL": "bold red", "flag": "yellow", "skip": "dim", "info": "cyan"}
    table = Table("check", "result", "BD-rate", "detail", title="ship gate")
    for c in checks:
        table.add_row(c.name, f"[{style[c.status]}]{c.status}[/]", "" if c.value is None else f"{c.value:+.2f} %", c.detail)
    (console or Console(width=200)).print(table)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gancodec.gate", description=__doc__.splitlines()[0])
    p.add_argument("--exp", required=True, help="a `dvc exp` name (as `dvc exp show` lists it), a ref or commit, "
                                                "or `workspace` (the working tree, after dvc exp run / dvc exp apply)")
    p.add_argument("--version", required=True, help="the release name recorded in HISTORY.json, e.g. v1.7")
    p.add_argument("--base-rev", default="HEAD", help="the git revision whose committed reports and card are the "
                                                      "shipped model's (default HEAD)")
    p.add_argument("--class-tolerance", type=float, default=CLASS_TOLERANCE,
                   help="percent BD-rate a content class may lose and still pass, flagged (default %(default)s)")
    p.add_argument("--realism-tolerance", type=float, default=0.0,
                   help="relative rise of the realism SWD allowed (default 0: no worse)")
    p.add_argument("--repo", default=None, help="the repository (default: the current one)")
    p.add_argument("--notes", default="", help="appended to the card's generated notes")
    p.add_argument("--dry-run", action="store_true", help="run the checks, write nothing")
    a = p.parse_args(argv)
    command = "python -m gancodec.gate " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        checks, card = run_gate(a.exp, a.version, repo=a.repo, base_rev=a.base_rev, class_tolerance=a.class_tolerance,
                                realism_tolerance=a.realism_tolerance, dry_run=a.dry_run, notes=a.notes, command=command)
    except ModelError as exc:
        print(f"gancodec gate: error: {exc}", file=sys.stderr)
        return 2
    print_checks(checks)
    failed = [c for c in checks if not c.ok]
    if failed:
        print("gancodec gate: refused: " + "; ".join(f"{c.name}: {c.detail}" for c in failed), file=sys.stderr)
        return 1
    if a.dry_run:
        print(f"gancodec gate: every check passed; --dry-run: nothing written ({a.exp} would ship as {a.version})")
    else:
        what = f"hyperprior-v1.pt sha256={card['sha256']}" if "sha256" in card else "the realism decoder alone"
        print(f"gancodec gate: shipped {a.exp} as {a.version}: {what}; commit src/gancodec/weights")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
