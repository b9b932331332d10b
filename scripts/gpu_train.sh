#!/usr/bin/env bash
# One prepared GPU training burst (for a lent, time-limited GPU machine): stage 1, then stage 2,
# then the cross-device determinism check.
#   scripts/gpu_train.sh CROPS_DIR OUT_DIR [STAGE1_SECONDS] [STAGE2_SECONDS] [INIT_WEIGHTS] [KODAK_DIR]
# Stage 1 continues from INIT_WEIGHTS (default: the shipped weights) on the packed crops
# (python -m gancodec.train.pack), bf16 autocast + torch.compile (retried without compile if
# that fails), the learning rate decaying over GPU_STEPS1 steps (the schedule follows steps; the
# time budget only stops the run: an H200 made ~58 steps/s at batch 16, 2026-11-27), and exports
# OUT_DIR/hyperprior-next.pt (float16; split into 15 MiB parts when over 16 MiB). Stage 2 freezes that model and trains the
# realism decoder against the conditional discriminator, exporting OUT_DIR/realism-next.pt +
# .json (float16, ~3 MB); STAGE2_SECONDS=0 skips it, and STAGE1_SECONDS=0 skips stage 1 (stage 2
# then trains over INIT_WEIGHTS: a burst for the realism decoder alone). With KODAK_DIR, scripts/device_check.py
# then encodes there on the GPU and decodes on CPU and GPU (OUT_DIR/device_check.json).
# Files over 16 MiB (resumable optimiser states) are removed: they cannot come back.
# Knobs (environment): GPU_STEPS1 (16000), GPU_DEVICE (cuda), GPU_COMPILE (1), GPU_BATCH (16), GPU_LR (1e-4),
# GPU_CROP (256), CHECK_LIMIT (8 images), GPU_TRAIN_FLAGS (more stage-1 flags, e.g.
# "--context checkerboard" to add a context model to weights that have none), GPU_REALISM_FLAGS
# (more stage-2 flags, e.g. "--rate-max 3 --d-warmup-steps 2000").
set -uo pipefail
py=${PYTHON:-python3}  # the GPU image has python3 only
crops=${1:?crops folder}; out=${2:?output folder}; s1=${3:-420}; s2=${4:-240}
init=${5:-src/gancodec/weights/hyperprior-v1.pt}; kodak=${6:-}
device=${GPU_DEVICE:-cuda}; batch=${GPU_BATCH:-16}; lr=${GPU_LR:-1e-4}; crop=${GPU_CROP:-256}
mkdir -p "$out"

stage1() {  # $1: seconds, $2...: extra flags
    local secs=$1; shift
    "$py" -m gancodec.train --data "$crops" --out "$out/run" --init-from "$init" --max-seconds "$secs" \
        --steps "${GPU_STEPS1:-16000}" --batch-size "$batch" --crop "$crop" --lr "$lr" --device "$device" \
        --checkpoint-every-s 60 --threads 8 ${GPU_TRAIN_FLAGS:-} "$@"
}
base="$out/hyperprior-next.pt"
if [ "$s1" -gt 0 ]; then
start=$SECONDS
if [ "${GPU_COMPILE:-1}" = 1 ]; then
    stage1 "$s1" --compile || { echo "stage 1 with --compile failed; going on without it"; \
        stage1 $(( s1 - (SECONDS - start) > 30 ? s1 - (SECONDS - start) : 30 )); } || exit 1
else
    stage1 "$s1" || exit 1
fi
"$py" - "$out" <<'PY' || exit 1
import sys
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from gancodec.weights import export_weights
out = sys.argv[1]
ck = load_checkpoint(f"{out}/run/model.pt")
print("exported", export_weights(model_from_checkpoint(ck), f"{out}/hyperprior-next.pt", step=int(ck["step"])))
PY
rm -f "$out/run/last.pt" "$out/run/model.pt"  # 84 MB / 28 MB: over the 16 MiB a file that comes back
# a weights file with a channel context (v1.7 on) is ~17.8 MB: it comes back in 15 MiB parts
# (cat hyperprior-next.pt.part-* > hyperprior-next.pt; the sha256 it printed above checks it)
if [[ $(stat -c %s "$out/hyperprior-next.pt") -gt $((16 * 1024 * 1024)) ]]; then
    split -b 15M "$out/hyperprior-next.pt" "$out/hyperprior-next.pt.part-" && rm "$out/hyperprior-next.pt"
fi
else
    base="$init"  # no stage 1: the realism decoder trains over the given weights
fi

stage2() {  # $1: seconds, $2...: extra flags
    local secs=$1; shift
    "$py" -m gancodec.realism --data "$crops" --base "$base" --out "$out/stage2" \
        --max-seconds "$secs" --steps 1000000 --batch-size 8 --crop "$crop" --device "$device" \
        --checkpoint-every-s 60 ${GPU_REALISM_FLAGS:-} "$@"
}
if [ "$s2" -gt 0 ]; then
    start2=$SECONDS
    { if [ "${GPU_COMPILE:-1}" = 1 ]; then
          stage2 "$s2" --compile || { echo "stage 2 with --compile failed; going on without it"; \
              stage2 $(( s2 - (SECONDS - start2) > 30 ? s2 - (SECONDS - start2) : 30 )); }
      else stage2 "$s2"; fi; } \
    && mv "$out/stage2/realism.pt" "$out/realism-next.pt" \
    && mv "$out/stage2/realism.json" "$out/realism-next.json" \
    || echo "stage 2 failed (stage 1's export is kept)"
    rm -f "$out/stage2/last.pt"  # generator + discriminator + two Adam states: over 16 MiB
fi

if [ -n "$kodak" ]; then
    timeout 90 "$py" scripts/device_check.py "$kodak" --encode "$device" --decode "cpu,$device" \
        --limit "${CHECK_LIMIT:-8}" --json "$out/device_check.json" || echo "device check: exit $?"
fi
