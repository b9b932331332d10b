#!/usr/bin/env bash
# One prepared GPU training burst (for a lent, time-limited GPU machine): stage 1, then stage 2.
#   scripts/gpu_train.sh CROPS_DIR OUT_DIR [STAGE1_SECONDS] [STAGE2_SECONDS]
# Stage 1 continues from the shipped weights on the packed crops (python -m gancodec.train.pack),
# bf16 autocast + torch.compile, and exports OUT_DIR/hyperprior-next.pt (float16, < 16 MiB).
# Stage 2 freezes that model and trains the realism decoder against the conditional
# discriminator, exporting OUT_DIR/realism-next.pt + .json (float16, ~3 MB). Set
# STAGE2_SECONDS=0 to skip it. Files over 16 MiB (resumable optimiser states) are removed.
set -euo pipefail
crops=${1:?crops folder}; out=${2:?output folder}; s1=${3:-420}; s2=${4:-240}
python -m gancodec.train --data "$crops" --out "$out/run" \
    --init-from src/gancodec/weights/hyperprior-v1.pt --max-seconds "$s1" --steps 1000000 \
    --batch-size 16 --crop 256 --lr 1e-4 --device cuda --compile --checkpoint-every-s 120
python - "$out" <<'PY'
import sys
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from gancodec.weights import export_weights
out = sys.argv[1]
ck = load_checkpoint(f"{out}/run/model.pt")
print("exported", export_weights(model_from_checkpoint(ck), f"{out}/hyperprior-next.pt", step=int(ck["step"])))
PY
rm -f "$out/run/last.pt" "$out/run/model.pt"  # 84 MB / 28 MB: over the 16 MiB a file that comes back
if [ "$s2" -gt 0 ]; then
    python -m gancodec.realism --data "$crops" --base "$out/hyperprior-next.pt" --out "$out/stage2" \
        --max-seconds "$s2" --steps 1000000 --batch-size 8 --crop 256 --device cuda --checkpoint-every-s 120
    mv "$out/stage2/realism.pt" "$out/realism-next.pt"
    mv "$out/stage2/realism.json" "$out/realism-next.json"
    rm -f "$out/stage2/last.pt"  # generator + discriminator + two Adam states: over 16 MiB
fi
