"""Stage-2 losses: non-saturating GAN, feature matching, and the distortion terms that keep
the realism decoder close to the input (MSE, MS-SSIM, and LPIPS when its weights exist)."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class GeneratorLoss(NamedTuple):
    loss: torch.Tensor
    adv: torch.Tensor
    mse: torch.Tensor
    ms_ssim: torch.Tensor
    fm: torch.Tensor
    artifact: torch.Tensor


def discriminator_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Non-saturating: softplus(-D(x)) + softplus(D(x_hat)), summed over scales."""
    return sum(F.softplus(-r[-1]).mean() + F.softplus(f[-1]).mean() for r, f in zip(real, fake))


def ms_ssim_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM on [0, 1] images (5 scales; crops under 161 px use a smaller Gaussian window).

    Always float32, also inside a bf16 autocast region: SSIM's variances are differences of
    nearly equal moments (E[x^2] - E[x]^2), which bf16's 8-bit mantissa cancels to noise (a
    loss 4x too large, and gradients that wrecked the first GPU realism runs).
    """
    from pytorch_msssim import ms_ssim

    side = min(x.shape[-2:])
    win = 11 if side > 160 else max(3, min(11, (side - 1) // 16 + 1) | 1)
    while (win - 1) * 16 >= side and win > 3:
        win -= 2
    with torch.autocast(x.device.type, enabled=False):
        return 1 - ms_ssim(x_hat.float().clamp(0, 1), x.float(), data_range=1.0, win_size=win)


def _local_contrast(x: torch.Tensor) -> torch.Tensor:
    """|x - blur(x)|: the structure at one scale (3x3 binomial blur, reflected borders)."""
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return (x - F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), k, groups=x.shape[1])).abs()


def artifact_loss(x_hat: torch.Tensor, x: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Structure the decoder adds that the input does not have, at 4 scales: mean relu(c(x_hat) - c(x)).

    c is the local contrast |v - blur(v)|. SSIMULACRA2 scores such "artifacts" far worse than
    lost detail: at equal PSNR a blurred Kodak original scores ~32, the fidelity decoder's
    output ~0 (``benchmarks/ssimulacra2_probe.py``). Lost detail is left to the other terms.
    Alone (no discriminator) it smooths texture away and lowers SSIMULACRA2 (docs/training.md);
    it is meant as a guard beside the adversarial terms. Default weight 0.
    """
    with torch.autocast(x.device.type, enabled=False):
        a, b, total = x_hat.float(), x.float(), x.new_zeros((), dtype=torch.float32)
        for i in range(scales):
            if i:
                a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            total = total + F.relu(_local_contrast(a) - _local_contrast(b)).mean()
        return total / scales


def generator_loss(x_hat: torch.Tensor, x: torch.Tensor, real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]],
                   *, w_adv: float, w_mse: float, w_ms_ssim: float, w_fm: float,
                   lpips=None, w_lpips: float = 0.0, w_artifact: float = 0.0) -> GeneratorLoss:
    """Adversarial + feature matching (real features detached) + distortion terms.

    ``real``/``fake`` may be None when both adversarial weights are 0 (no discriminator)."""
    zero = torch.zeros((), device=x.device)
    adv = sum(F.softplus(-f[-1]).mean() for f in fake) if fake is not None else zero
    fm = (sum(F.l1_loss(ff, rf.detach()) for r, f in zip(real, fake) for rf, ff in zip(r[:-1], f[:-1])) / max(1, len(fake))
          if fake is not None else zero)
    mse = F.mse_loss(x_hat.float(), x)
    msl = ms_ssim_loss(x_hat, x) if w_ms_ssim else zero
    art = artifact_loss(x_hat, x) if w_artifact else zero
    loss = w_adv * adv + w_mse * mse + w_ms_ssim * msl + w_fm * fm + w_artifact * art
    if lpips is not None and w_lpips:
        with torch.autocast(x.device.type, enabled=False):
            loss = loss + w_lpips * lpips(x_hat.float() * 2 - 1, x * 2 - 1).mean()
    return GeneratorLoss(loss, adv.detach(), mse.detach(), msl.detach(), fm.detach(), art.detach())
