"""Evaluation: metrics, Bjøntegaard deltas, classical baselines and published anchors.

One concept per module; the names below are the public API (see docs/evaluation.md).

* :mod:`.metrics` -- bpp, PSNR, MS-SSIM, SSIMULACRA2, LPIPS (only with local weights), FID/KID.
* :mod:`.bdrate` -- BD-rate and BD-PSNR with piecewise cubic interpolation.
* :mod:`.baselines` -- JPEG, WebP, AVIF, JPEG XL and HEVC 4:4:4 measured here; sweeps, RD curves.
* :mod:`.anchors` -- published RD points (CompressAI, tensorflow/compression, HiFiC, MS-ILLM, MLIC).
"""

from .anchors import curve as anchor_curve
from .anchors import load_anchors
from .baselines import CODECS, BppMatch, Codec, CodecUnavailable, availability, get_codec, match_bpp, rd_curve, sweep, sweep_many
from .bdrate import bd_psnr, bd_rate
from .metrics import Metrics, SetMetrics, bpp, compute_metrics, fid_kid, lpips, ms_ssim, ms_ssim_db, psnr, ssimulacra2

__all__ = [
    "CODECS",
    "BppMatch",
    "Codec",
    "CodecUnavailable",
    "Metrics",
    "SetMetrics",
    "anchor_curve",
    "availability",
    "bd_psnr",
    "bd_rate",
    "bpp",
    "compute_metrics",
    "fid_kid",
    "get_codec",
    "load_anchors",
    "lpips",
    "match_bpp",
    "ms_ssim",
    "ms_ssim_db",
    "psnr",
    "rd_curve",
    "ssimulacra2",
    "sweep",
    "sweep_many",
]
