#!/usr/bin/env bash
# The daily growing run (issue 30): `dvc exp run -S profile=grow`, where every trained part
# continues from where the last grow run left it, under the grow profile's time budgets, at the
# lowest CPU priority, in a git worktree of its own (../gancodec-grow) so that code landing in
# this checkout meanwhile cannot break it halfway. Its resumable run folders and caches are
# DVC outputs with `persist: true`: they stay in that worktree, so each day's steps add to the
# last ones. The experiment is recorded like any other (`dvc exp show`); ship it through the gate.
#
#   scripts/grow.sh          # start in the background (setsid, nice 19); prints the log's path
#   scripts/grow.sh --wait   # the same in the foreground
#   then: python -m gancodec.gate --exp grow-YYYYMMDD-HHMM --version v1.x [--dry-run]
#
# GANCODEC_GROW_TREE picks another worktree folder. Each run starts from this checkout's HEAD
# (committed code only) and shares its DVC cache, where the gate finds the experiment's files.
set -euo pipefail
die() { echo "grow: $*" >&2; exit 1; }
if [[ ${1:-} == --inside ]]; then
  # the worktree this copy of the script lives in, never the caller's folder: the run must not
  # touch the checkout it was started from (its params.yaml, dvc.lock, models/ and HEAD)
  cd "$(dirname "$(readlink -f "$0")")/.."
  [[ $(git rev-parse --show-toplevel) == "$PWD" ]] || die "$PWD is not the top of a git checkout"
  [[ $(git rev-parse --git-dir) != $(git rev-parse --git-common-dir) ]] \
    || die "$PWD is the main checkout, not a linked worktree: refusing to run the experiment here"
  # setsid made a new session, and Linux shares the CPU between sessions before nice values
  # count: lower this session's share too, so the run takes only cores nobody else wants
  echo 19 > /proc/self/autogroup 2>/dev/null || true
else
  cd "$(git rev-parse --show-toplevel)"
fi
main=$PWD
tree=${GANCODEC_GROW_TREE:-$(dirname "$main")/gancodec-grow}
name=grow-$(date -u +%Y%m%d-%H%M)
if [[ ${1:-} != --inside ]]; then
  [[ $(readlink -f "$tree") != $(readlink -f "$main") ]] || die "GANCODEC_GROW_TREE is this checkout; name another folder"
  if [[ ! -d $tree ]]; then
    git worktree add --detach "$tree" HEAD
  fi
  # today's committed code; the untracked (persisted) run folders and caches stay as they are
  git -C "$tree" checkout --detach --force -q "$(git rev-parse HEAD)"
  (cd "$tree" && dvc cache dir --local "$main/.dvc/cache")
  log=$tree/$name.log
  if [[ ${1:-} == --wait ]]; then
    exec nice -n 19 "$tree/scripts/grow.sh" --inside "$name" 2>&1 | tee "$log"
  fi
  setsid nice -n 19 "$tree/scripts/grow.sh" --inside "$name" > "$log" 2>&1 < /dev/null &
  echo "grow: $name running in $tree (pid $!); log: $log"
  echo "grow: then python -m gancodec.gate --exp $name --version v1.x --dry-run"
  exit 0
fi
name=$2
export DVC_NO_ANALYTICS=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
echo "grow: $name at $(git rev-parse --short HEAD) in $PWD, $(date -u)"
dvc exp run -n "$name" -S profile=grow
dvc exp show --only-changed --no-pager -n 1 || true
echo "grow: $name done, $(date -u)"
