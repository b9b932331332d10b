#!/usr/bin/env bash
# Bring the committed dvc.lock in line with the committed code and weights (default profile), so a
# fresh clone's `dvc status` names no changed dependency. Run from a checkout with ../shared beside
# it, after the last merge; then commit what `git status` lists (dvc.lock, data/*.csv, models/
# gancodec.{json,sha256}, reports/eval, reports/report, dvclive).
#
#   scripts/refresh_lock.sh              # evaluate: re-measure 2 images; if equal, `dvc commit`
#   scripts/refresh_lock.sh --rerun-eval # evaluate: rerun in full (Kodak, ~20 min idle 2 cores)
#
# download/validate/synthesize/split/train run for real when their code, params or outputs changed
# (minutes: the default profile trains 0 steps, so train copies the shipped weights), and so do
# evaluate_classes (the per-class table, ~15 min on 2 idle cores when it reruns) and report. The evaluate stage's
# outputs are committed; when only code it depends on changed (a refactor), scripts/check_eval.py
# re-measures the first 2 Kodak images with today's code and, if every file size and PSNR/MS-SSIM
# equals the committed rd.csv, `dvc commit evaluate` records the new code hashes; anything else
# (new weights, params, test list, or a result that differs) reruns the stage.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export DVC_NO_ANALYTICS=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
rerun_eval=0
[[ "${1:-}" == "--rerun-eval" ]] && rerun_eval=1
die() { echo "refresh_lock: $*" >&2; exit 1; }
[[ -d ../shared/datasets ]] || die "no ../shared/datasets beside the checkout (the download mirror)"
profile=$(python -c "import yaml; print(yaml.safe_load(open('params.yaml'))['profile'])")
[[ "$profile" == default ]] || die "params.yaml has profile: $profile; the committed lock is the default profile's"

SECONDS=0
echo "== data and train (real runs where anything changed)"
dvc repro train
echo "== evaluate"
status=$(dvc status --json evaluate)
if [[ "$status" == "{}" ]]; then
  echo "evaluate: up to date"
elif [[ $rerun_eval == 0 ]] && python - "$status" <<'PY'
import json, sys
changes = json.loads(sys.argv[1]).get("evaluate", [])
code_only = all(isinstance(c, dict) and set(c) == {"changed deps"} for c in changes) and all(
    path.startswith(("src/", "stages/")) and state == "modified"
    for c in changes for path, state in c["changed deps"].items())
sys.exit(0 if code_only else 1)
PY
then
  echo "evaluate: only code changed: $status"
  python scripts/check_eval.py || die "results differ: run scripts/refresh_lock.sh --rerun-eval"
  dvc commit -f evaluate
else
  echo "evaluate: rerunning ($status)"
  dvc repro evaluate
fi
echo "== the rest (evaluate_classes, report): real runs where anything changed"
dvc repro
dvc status
echo "refresh_lock: done in ${SECONDS}s; commit these:"
git status --short
