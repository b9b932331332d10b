#!/usr/bin/env bash
# Point this checkout's DVC remote `team` (.dvc/config) at the bucket and endpoint in the
# environment, the same variables bulk uses; writes .dvc/config.local (never committed).
#   GANCODEC_DVC_REMOTE  s3://bucket/prefix (default: the committed s3://gancodec-dvc/dvc)
#   AWS_ENDPOINT_URL     an S3-compatible endpoint (MinIO, moto, ...); unset: AWS itself
#   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION: read by DVC from the environment
# Then: dvc push / dvc pull / dvc exp push origin EXP / dvc exp pull origin EXP.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
if [[ -n "${GANCODEC_DVC_REMOTE:-}" ]]; then
  [[ "$GANCODEC_DVC_REMOTE" == s3://* ]] || { echo "dvc_remote: GANCODEC_DVC_REMOTE must be s3://bucket/prefix, not $GANCODEC_DVC_REMOTE" >&2; exit 2; }
  dvc remote modify --local team url "$GANCODEC_DVC_REMOTE"
fi
if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
  dvc remote modify --local team endpointurl "$AWS_ENDPOINT_URL"
else
  dvc remote modify --local --unset team endpointurl 2>/dev/null || true
fi
dvc remote list
