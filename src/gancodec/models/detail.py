"""The realism decoder's detail generator: texture added on top of the fidelity decode.

    x_real = x_fid + strength * G(x_fid, latent features, noise)

``G`` is small (~0.2 M parameters) and works at half resolution (pixel-unshuffled input, 48
channels, 4 residual blocks), so a step costs a fraction of the synthesis transform g_s and it
trains on the CPU over cached fidelity decodes. The latent ``y`` (the decoder's input, after the
inverse gain) is squeezed by a 1x1 conv and upsampled bilinearly, so G knows what the bitstream
says about each region; the noise lets it draw texture the stream does not determine.

The noise is a hash of the absolute pixel position (``position_noise``), not a random draw: the
same stream decodes to the same pixels every time and at any tile size, and the windows of a
tiled decode agree where they meet. G's reach (~20 px) is well inside the decoder's halo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

NOISE_SCALE = 2  # the noise lives at half resolution, like G


@dataclass(frozen=True)
class DetailConfig:
    latent_channels: int = 192
    width: int = 48
    blocks: int = 4
    cond_channels: int = 16
    noise_channels: int = 4
    rate_input: int = 0  # 1: G also sees the rate point (a constant plane, rate / 8)

    @classmethod
    def from_dict(cls, d: dict) -> "DetailConfig":
        return cls(**{k: int(v) for k, v in d.items()})

    def to_dict(self) -> dict:
        return asdict(self)


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixer (lowbias32, on int64 tensors)."""
    m = 0xFFFFFFFF
    h = h & m
    h = ((h ^ (h >> 16)) * 0x7FEB352D) & m
    h = ((h ^ (h >> 15)) * 0x846CA68B) & m
    return h ^ (h >> 16)


def position_noise(batch: int, channels: int, height: int, width: int, y0: torch.Tensor | int = 0,
                   x0: torch.Tensor | int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Unit-variance uniform noise (B, C, H, W) that depends only on the absolute position
    (``y0 + i``, ``x0 + j``) and the channel: the same at that position in any window."""
    dev = torch.device(device)
    y0 = torch.as_tensor(y0, dtype=torch.int64, device=dev).reshape(-1, 1, 1, 1)
    x0 = torch.as_tensor(x0, dtype=torch.int64, device=dev).reshape(-1, 1, 1, 1)
    ii = torch.arange(height, dtype=torch.int64, device=dev).view(1, 1, -1, 1) + y0
    jj = torch.arange(width, dtype=torch.int64, device=dev).view(1, 1, 1, -1) + x0
    cc = torch.arange(channels, dtype=torch.int64, device=dev).view(1, -1, 1, 1)
    h = _mix(_mix(_mix(ii + 0x9E3779B9) ^ (jj * 0x632BE5AB)) ^ (cc * 0x85EBCA77 + 0x27D4EB2F))
    u = (h.to(torch.float32) + 0.5) / 4294967296.0
    return ((u - 0.5) * 12 ** 0.5).expand(batch, channels, height, width)


class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.leaky_relu(self.a(x), 0.2))


class DetailGenerator(nn.Module):
    """G(x_fid, y, noise) -> the detail to add (B, 3, H, W); zero at initialisation."""

    def __init__(self, cfg: DetailConfig = DetailConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.cond = nn.Conv2d(cfg.latent_channels, cfg.cond_channels, 1)
        self.head = nn.Conv2d(12 + cfg.cond_channels + cfg.noise_channels + cfg.rate_input, cfg.width, 3, padding=1)
        self.body = nn.Sequential(*[_Block(cfg.width) for _ in range(cfg.blocks)])
        self.tail = nn.Conv2d(cfg.width, 12, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x_fid: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, margin: int = 0,
                rate: torch.Tensor | float | None = None) -> torch.Tensor:
        """``y`` covers ``x_fid`` plus ``margin`` latents on every side (training crops take one, so
        the upsampled features at a crop's edge see their neighbours as in a decode window).
        ``rate`` (per image, or one for all) is needed when the generator was made with ``rate_input``."""
        b, h, w = x_fid.shape[0], x_fid.shape[-2] // 2, x_fid.shape[-1] // 2
        c = F.interpolate(self.cond(y), scale_factor=8, mode="bilinear", align_corners=False)
        c = c[:, :, 8 * margin: 8 * margin + h, 8 * margin: 8 * margin + w]
        parts = [F.pixel_unshuffle(x_fid * 2 - 1, 2), c, noise]
        if self.cfg.rate_input:
            if rate is None:
                raise ValueError("this detail generator takes the rate point as an input; pass rate=")
            r = torch.as_tensor(rate, dtype=x_fid.dtype, device=x_fid.device).reshape(-1, 1, 1, 1) / 8
            parts.append(r.expand(b, 1, h, w))
        z = torch.cat(parts, dim=1)
        z = self.body(F.leaky_relu(self.head(z), 0.2))
        return F.pixel_shuffle(self.tail(F.leaky_relu(z, 0.2)), 2)

    def noise_for(self, x_fid: torch.Tensor, y0: torch.Tensor | int = 0, x0: torch.Tensor | int = 0) -> torch.Tensor:
        """The position noise of a window whose top-left pixel is (y0, x0) in the image."""
        b, _, hh, ww = x_fid.shape
        return position_noise(b, self.cfg.noise_channels, hh // NOISE_SCALE, ww // NOISE_SCALE,
                              torch.as_tensor(y0) // NOISE_SCALE, torch.as_tensor(x0) // NOISE_SCALE, x_fid.device)


class DetailCodec(nn.Module):
    """A stage-1 model whose synthesis adds ``strength`` x G's detail to the fidelity decode.

    G adds its detail to g_s's output. For a base model with a post-filter (v1.6 on), strength
    blends the base's own decode (strength 0) with g_s + G (strength 1), so a generator trained
    over g_s's decodes serves every model that shares that g_s.
    Everything else (analysis, entropy model, gains) is the base model's: the same streams."""

    uses_origin = True  # tiling.synthesize passes each window's position (the noise is keyed to it)

    def __init__(self, base: nn.Module, detail: DetailGenerator, strength: float = 1.0) -> None:
        super().__init__()
        self.base, self.detail, self.strength = base, detail, float(strength)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["base"], name)

    def synthesis(self, y_hat: torch.Tensor, rate: float, origin: tuple[int, int] = (0, 0)) -> torch.Tensor:
        """The realism decode of a latent window whose top-left pixel is ``origin`` in the image."""
        r = torch.tensor([rate], device=y_hat.device)
        y = y_hat * self.base.gain.inverse_gain(r).to(y_hat.dtype)
        if not self.strength:
            return self.base.decode(y, rate)
        x_fid = self.base.g_s(y)
        x_real = x_fid + self.detail(x_fid.clamp(0, 1), y, self.detail.noise_for(x_fid, origin[0], origin[1]), rate=rate)
        if self.strength == 1.0:
            return x_real
        x_hat = self.base.decode(y, rate) if self.base.post_filter is not None else x_fid
        return torch.lerp(x_hat, x_real, self.strength)
