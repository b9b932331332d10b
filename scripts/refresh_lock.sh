#!/usr/bin/env bash
# Bring the committed dvc.lock in line with the committed code and weights (default profile), so a
# fresh clone's `dvc status` names no changed dependency. Run from a checkout with ../shared beside
# it, after the last merge; then commit what `git status` lists (dvc.lock, data/*.csv, models/
# {transforms,gancodec}.{json,sha256}, reports/eval, reports/report, dvclive).
#
#   scripts/refresh_lock.sh              # evaluate: re-measure 2 images; if equal, `dvc commit`
#   scripts/refresh_lock.sh --rerun-eval # evaluate: rerun in full (Kodak, ~20 min idle 2 cores)
#
# download/validate/synthesize/split and the model stages (train, train_post_filter) run for real
# when their code, params or outputs changed (minutes: the default profile trains 0 steps, so train
# copies the shipped weights and train_post_filter copies train's), and so do
# evaluate_classes (the per-class table, ~15 min on 2 idle cores when it reruns) and report. The evaluate stage's
# outputs are committed; when the stage is not up to date, scripts/check_eval.py checks that they
# were made from today's weights, test list and params, re-measures the first 2 Kodak images with
# today's code and, if every file size and PSNR/MS-SSIM equals the committed rd.csv,
# `dvc commit evaluate` records the stage; anything else reruns it.
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
echo "== data and the model stages (real runs where anything changed)"
dvc repro train_post_filter  # the last model-building stage: it writes models/gancodec.pt
echo "== evaluate"
status=$(dvc status --json evaluate)
if [[ "$status" == "{}" ]]; then
  echo "evaluate: up to date"
elif [[ $rerun_eval == 0 ]] && python scripts/check_eval.py; then
  echo "evaluate: the committed evaluation is what today's code and inputs measure; recording it"
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
