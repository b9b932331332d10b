"""The four transforms of a mean-scale hyperprior codec (Ballé 2018, Minnen 2018).

    x --g_a--> y --h_a--> z            (analysis: image -> latent -> hyper-latent)
    z_hat --h_s--> (means, scales)     (hyper-synthesis: entropy parameters of y)
    y_hat --g_s--> x_hat               (synthesis: latent -> image)

All are fully convolutional with a finite receptive field, which is what lets the codec tile
an image of any size and still decode it seamlessly (see ``gancodec.tiling``).
"""

from __future__ import annotations

from torch import nn

from .layers import GDN, conv, deconv

#: Spatial downsampling of g_a (image pixels per latent) and of h_a (latents per hyper-latent).
LATENT_STRIDE = 16
HYPER_STRIDE = 4


class AnalysisTransform(nn.Sequential):
    """g_a: 3xHxW image in [0, 1] -> M x H/16 x W/16 latent. Receptive field 61 px (radius 30)."""

    def __init__(self, N: int, M: int) -> None:
        super().__init__(
            conv(3, N), GDN(N),
            conv(N, N), GDN(N),
            conv(N, N), GDN(N),
            conv(N, M),
        )


class SynthesisTransform(nn.Sequential):
    """g_s: M x h x w latent -> 3 x 16h x 16w image. Each pixel sees latents within +-2."""

    def __init__(self, N: int, M: int) -> None:
        super().__init__(
            deconv(M, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True),
            deconv(N, 3),
        )


class HyperAnalysis(nn.Sequential):
    """h_a: latent y -> hyper-latent z, 4x smaller."""

    def __init__(self, N: int, M: int) -> None:
        super().__init__(
            conv(M, N, 3, 1), nn.LeakyReLU(inplace=True),
            conv(N, N), nn.LeakyReLU(inplace=True),
            conv(N, N),
        )


class HyperSynthesis(nn.Sequential):
    """h_s: z_hat -> 2M channels (means and scales of y), 4x larger."""

    def __init__(self, N: int, M: int) -> None:
        super().__init__(
            deconv(N, M), nn.LeakyReLU(inplace=True),
            deconv(M, M * 3 // 2), nn.LeakyReLU(inplace=True),
            conv(M * 3 // 2, M * 2, 3, 1),
        )
