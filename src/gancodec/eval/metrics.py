"""Image-quality metrics on 8-bit images, the field's way.

Every function takes ``uint8`` arrays shaped HxWxC (C in {1, 3}) or HxW, the original first.

* :func:`bpp` -- bits per pixel from the real file size (never an entropy estimate).
* :func:`psnr` -- RGB PSNR over all channels at a 255 peak, as CompressAI computes it
  (``inf`` for identical images, no division warning). It, :func:`mse` and :func:`psnr_from_mse`
  are defined in :mod:`gancodec.metrics_core` (which the codec layer may import too: the WebP
  fallback compares with the same PSNR) and re-exported here.
* :func:`ms_ssim` -- MS-SSIM (``pytorch-msssim``, 11x11 Gaussian window, 5 scales). Needs the
  smaller side above :data:`MS_SSIM_MIN_SIDE` - 1 pixels; smaller images raise ``ValueError``
  naming the size (five dyadic scales of an 11-tap window do not fit).
* :func:`ssimulacra2` -- SSIMULACRA2 (Cloudinary/libjxl), weight-free, from the pure-Python
  ``ssimulacra2`` package (~0.5 s per Kodak image on one core). 100 = identical; ~90 visually
  lossless; ~70 high quality; ~50 medium; below ~30 low.
* :func:`lpips` -- AlexNet LPIPS v0.1. Runs only when the ImageNet AlexNet backbone weights are
  in the local torch hub cache *and* the LPIPS linear layers are found; otherwise ``None``
  with a "skipped: ..." note. Nothing is downloaded and no stand-in network is used.

FID and KID are set-level metrics and live in :func:`fid_kid` (patch protocol of HiFiC/MS-ILLM);
they, too, run only with a local Inception detector.

:func:`compute_metrics` gathers the per-image numbers into one :class:`Metrics`.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..metrics_core import _as_hwc, _pair, mse, psnr, psnr_from_mse  # noqa: F401 - re-exported: the one PSNR

#: MS-SSIM (5 scales, 11-tap window) needs min(H, W) > (11 - 1) * 2**4 = 160.
MS_SSIM_MIN_SIDE = 161

#: File name of torchvision's ImageNet AlexNet weights in the torch hub cache.
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
#: File name of NVIDIA's TorchScript Inception-v3 FID detector (StyleGAN2-ADA / clean-fid).
INCEPTION_FILE = "inception-2015-12-05.pt"
#: Environment variable naming a folder that holds LPIPS ``alex.pth`` linear layers.
LPIPS_DIR_ENV = "GANCODEC_LPIPS_DIR"


@dataclass(frozen=True)
class Metrics:
    """Per-image quality numbers; ``None`` means not computed, and ``notes`` says why."""

    psnr: float
    ms_ssim: Optional[float] = None
    ssimulacra2: Optional[float] = None
    lpips: Optional[float] = None
    bpp: Optional[float] = None
    notes: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- input checks
# _as_hwc and _pair live in gancodec.metrics_core (imported above) with mse/psnr/psnr_from_mse.


def _to_rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x


# --------------------------------------------------------------------------- rate
def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a file of ``num_bytes`` bytes coding a ``height`` x ``width`` image."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if num_bytes < 0:
        raise ValueError(f"num_bytes must be >= 0, got {num_bytes}")
    return num_bytes * 8.0 / (height * width)


# --------------------------------------------------------------------------- fidelity
def ms_ssim(x: np.ndarray, x_hat: np.ndarray) -> float:
    """MS-SSIM in [0, 1] (``pytorch-msssim``, data range 255, per-channel then averaged).

    Raises ``ValueError`` when min(H, W) < :data:`MS_SSIM_MIN_SIDE`.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    x, x_hat = _pair(x, x_hat)
    h, w = x.shape[:2]
    if min(h, w) < MS_SSIM_MIN_SIDE:
        raise ValueError(
            f"MS-SSIM needs both sides >= {MS_SSIM_MIN_SIDE} px (5 scales of an 11-px window); "
            f"image is {w}x{h}"
        )

    def t(a: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()[None]

    with torch.no_grad():
        return float(_ms_ssim(t(x), t(x_hat), data_range=255.0, size_average=True))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on the dB scale the field plots: ``-10 log10(1 - ms_ssim)``."""
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


# --------------------------------------------------------------------------- perceptual
def ssimulacra2(x: np.ndarray, x_hat: np.ndarray) -> float:
    """SSIMULACRA2 score (100 = identical, higher is better). Grayscale is scored as RGB.

    The ``ssimulacra2`` package reads files, so both images go through lossless in-memory PNGs.
    """
    from PIL import Image
    from ssimulacra2 import compute_ssimulacra2

    x, x_hat = _pair(x, x_hat)

    def png(a: np.ndarray) -> io.BytesIO:
        buf = io.BytesIO()
        Image.fromarray(_to_rgb(a)).save(buf, format="PNG", compress_level=0)
        buf.seek(0)
        return buf

    return float(compute_ssimulacra2(png(x), png(x_hat)))


def _hub_checkpoint(filename: str) -> Optional[Path]:
    """``<torch hub dir>/checkpoints/<filename>`` when it exists (never downloads)."""
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None


def _lpips_linear_file(lpips_dir: Optional[os.PathLike]) -> Optional[Path]:
    candidates = []
    if lpips_dir is not None:
        candidates.append(Path(lpips_dir) / "alex.pth")
    from .. import settings

    if settings.path(LPIPS_DIR_ENV):
        candidates.append(settings.path(LPIPS_DIR_ENV) / "alex.pth")
    try:  # the `lpips` pip package ships its linear layers
        import lpips as _lpips_pkg  # type: ignore[import-not-found]

        candidates.append(Path(_lpips_pkg.__file__).parent / "weights" / "v0.1" / "alex.pth")
    except ImportError:
        pass
    return next((c for c in candidates if c.is_file()), None)


def lpips_weights(lpips_dir: Optional[os.PathLike] = None) -> tuple[Optional[tuple[Path, Path]], str]:
    """Find (AlexNet backbone, LPIPS linear layers) locally; ``(None, reason)`` when missing."""
    backbone = _hub_checkpoint(ALEXNET_FILE)
    if backbone is None:
        import torch

        where = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE
        return None, f"skipped: no backbone weights ({where} not found)"
    linear = _lpips_linear_file(lpips_dir)
    if linear is None:
        return None, f"skipped: no LPIPS linear layers (alex.pth; pass lpips_dir or set {LPIPS_DIR_ENV})"
    return (backbone, linear), "ok"


def _build_lpips_alex(backbone: Path, linear: Path):
    """AlexNet LPIPS v0.1 (Zhang et al. 2018) in plain torch, laid out like torchvision."""
    import torch
    from torch import nn

    features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(),
    )  # fmt: skip
    state = torch.load(backbone, map_location="cpu", weights_only=True)
    features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
    lin_state = torch.load(linear, map_location="cpu", weights_only=True)
    lins = [lin_state[f"lin{i}.model.1.weight"] for i in range(5)]
    taps = (1, 4, 7, 9, 11)  # relu1..relu5
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def distance(x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
        feats = []
        for inp in (x, y):
            h, outs = (inp - shift) / scale, []
            for i, layer in enumerate(features):
                h = layer(h)
                if i in taps:
                    outs.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
            feats.append(outs)
        total = 0.0
        for fx, fy, w in zip(*feats, lins):
            total = total + nn.functional.conv2d((fx - fy) ** 2, w).mean(dim=(2, 3))
        return total.flatten()

    return features.eval(), distance


def lpips(x: np.ndarray, x_hat: np.ndarray, lpips_dir: Optional[os.PathLike] = None) -> tuple[Optional[float], str]:
    """AlexNet LPIPS v0.1 (lower is better) and a note; ``(None, "skipped: ...")`` without weights."""
    import torch

    found, note = lpips_weights(lpips_dir)
    if found is None:
        return None, note
    x, x_hat = _pair(x, x_hat)
    _, distance = _build_lpips_alex(*found)

    def t(a: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(_to_rgb(a).transpose(2, 0, 1).copy()).float()[None] / 127.5 - 1.0

    with torch.no_grad():
        return float(distance(t(x), t(x_hat))[0]), "ok"


# --------------------------------------------------------------------------- set-level: FID / KID
def patches_256(img: np.ndarray, size: int = 256) -> list[np.ndarray]:
    """HiFiC/MS-ILLM "FID/256" patches: a non-overlapping ``size`` grid, then one shifted by size/2."""
    img = _to_rgb(_as_hwc(img, "image"))
    h, w = img.shape[:2]
    out = []
    for off in (0, size // 2):
        for top in range(off, h - size + 1, size):
            for left in range(off, w - size + 1, size):
                out.append(img[top : top + size, left : left + size])
    return out


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows = samples)."""
    from scipy import linalg

    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.all(np.isfinite(covmean)):
        eps = np.eye(cov_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


def kernel_inception_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Unbiased squared MMD with the cubic polynomial kernel ``(x.y/d + 1)^3`` (Bińkowski 2018)."""
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    d, m, n = a.shape[1], len(a), len(b)
    k_aa, k_bb, k_ab = ((p @ q.T / d + 1.0) ** 3 for p, q in ((a, a), (b, b), (a, b)))
    return float(
        (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
        + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
        - 2.0 * k_ab.mean()
    )


@dataclass(frozen=True)
class SetMetrics:
    """Set-level realism numbers; ``None`` with a note when the detector weights are missing."""

    fid: Optional[float]
    kid: Optional[float]
    num_patches: int
    note: str


def fid_kid(originals: Sequence[np.ndarray], reconstructions: Sequence[np.ndarray]) -> SetMetrics:
    """FID/256 and KID/256 over a set, with NVIDIA's TorchScript Inception from the torch hub cache.

    Skipped (``None``) when ``<hub>/checkpoints/inception-2015-12-05.pt`` is absent. Needs many
    patches to mean anything (HiFiC leaves Kodak's FID blank: 24 images are too few).
    """
    import torch

    detector_file = _hub_checkpoint(INCEPTION_FILE)
    pa = [p for im in originals for p in patches_256(im)]
    pb = [p for im in reconstructions for p in patches_256(im)]
    if detector_file is None:
        return SetMetrics(None, None, len(pa), f"skipped: no backbone weights ({INCEPTION_FILE} not in torch hub cache)")
    if len(pa) < 2 or len(pb) < 2:
        return SetMetrics(None, None, len(pa), "skipped: fewer than 2 patches of 256x256")
    detector = torch.jit.load(str(detector_file), map_location="cpu").eval()

    def features(patches: list[np.ndarray]) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(patches), 32):
                batch = torch.from_numpy(np.stack(patches[i : i + 32]).transpose(0, 3, 1, 2).copy())
                out.append(detector(batch, return_features=True).double().numpy())
        return np.concatenate(out)

    fa, fb = features(pa), features(pb)
    return SetMetrics(frechet_distance(fa, fb), kernel_inception_distance(fa, fb), len(pa), "ok")


# --------------------------------------------------------------------------- all together
def compute_metrics(
    x: np.ndarray,
    x_hat: np.ndarray,
    num_bytes: Optional[int] = None,
    *,
    perceptual: bool = True,
    lpips_dir: Optional[os.PathLike] = None,
    with_ms_ssim: bool = True,
) -> Metrics:
    """All per-image metrics of a reconstruction; ``perceptual=False`` skips SSIMULACRA2/LPIPS,
    ``with_ms_ssim=False`` skips MS-SSIM (``None``)."""
    x, x_hat = _pair(x, x_hat)
    notes: list[str] = []
    rate = bpp(num_bytes, x.shape[0], x.shape[1]) if num_bytes is not None else None
    msssim = None
    try:
        if with_ms_ssim:
            msssim = ms_ssim(x, x_hat)
    except ValueError as err:
        notes.append(f"ms_ssim skipped: {err}")
    s2 = lp = None
    if perceptual:
        s2 = ssimulacra2(x, x_hat)
        lp, note = lpips(x, x_hat, lpips_dir)
        if lp is None:
            notes.append(f"lpips {note}")
    return Metrics(psnr=psnr(x, x_hat), ms_ssim=msssim, ssimulacra2=s2, lpips=lp, bpp=rate, notes=tuple(notes))
