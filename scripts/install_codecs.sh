#!/usr/bin/env bash
# Install the command-line classical codecs that gancodec.eval.baselines can use.
#
#   libavif-bin   avifenc / avifdec   (AVIF; Pillow 13 also writes AVIF natively)
#   libjxl-tools  cjxl / djxl         (JPEG XL; the imagecodecs wheel is the fallback)
#   webp          cwebp / dwebp       (WebP; Pillow is used for the measurements)
#   ffmpeg        with libx265        (HEVC intra 4:4:4, the engine of BPG)
#
# Idempotent: packages already installed are left alone and apt is not touched.
# Skipped, with a message and exit status 0, when not root or when apt-get is absent, so it
# can run unconditionally in CI set-up. Missing codecs are reported as "skipped" by the
# benchmarks, never silently dropped.
set -euo pipefail

PACKAGES=(libavif-bin libjxl-tools webp ffmpeg)

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_codecs: apt-get not found; skipping (baselines will report missing codecs as skipped)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_codecs: not root; skipping. Run as root: sudo $0"
    exit 0
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_codecs: all present (${PACKAGES[*]})"
    exit 0
fi

echo "install_codecs: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install_codecs: done"
