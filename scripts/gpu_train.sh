#!/usr/bin/env bash
# One prepared GPU training burst (for a lent, time-limited GPU machine).
#   scripts/gpu_train.sh CROPS_DIR OUT_DIR [SECONDS]
# Continues from the shipped weights on the packed crops (python -m gancodec.train.pack),
# bf16 autocast + torch.compile, writes OUT_DIR/run/{last.pt,model.pt} every 2 minutes and
# OUT_DIR/hyperprior-next.pt (float16, < 16 MiB) at the end.
set -euo pipefail
crops=${1:?crops folder}; out=${2:?output folder}; seconds=${3:-420}
python -m gancodec.train --data "$crops" --out "$out/run" \
    --init-from src/gancodec/weights/hyperprior-v1.pt --max-seconds "$seconds" --steps 1000000 \
    --batch-size 16 --crop 256 --lr 1e-4 --device cuda --compile --checkpoint-every-s 120
python - "$out" <<'PY'
import sys
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from gancodec.weights import export_weights
out = sys.argv[1]
ck = load_checkpoint(f"{out}/run/model.pt")
print("exported", export_weights(model_from_checkpoint(ck), f"{out}/hyperprior-next.pt", step=int(ck["step"])))
PY
rm -f "$out/run/last.pt" "$out/run/model.pt"  # 84 MB / 28 MB: over the 16 MiB a file that comes back; the export is 14 MB
