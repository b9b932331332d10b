"""Inference copies of a model: the same weights, run the fastest way the worker allows.

The coding path (:class:`~gancodec.LoadedModel.on`) codes with a copy of the model whose
analysis transform g_a, synthesis transform g_s and post-filter are swapped for inference forms:

- **GDN** with its reparametrised beta and gamma computed once and its normalisation done in
  place (the same arithmetic: GDN is memory-bound, and the temporaries cost more than the maths);
- g_s's **last transposed convolution as a convolution + pixel shuffle** (each of the four
  output phases of a 5x5 stride-2 transposed convolution is a 3x3 convolution of the input;
  one 12-channel convolution runs 2x faster than oneDNN's 3-channel transposed one);
- **bfloat16** for g_a (all but its last layer) and for the post-filter, on hardware that
  computes bf16 natively (CPUs with AVX512-BF16 or AMX), where it halves their convolutions'
  time. g_a's last layer runs in float32, so the latents keep full precision (Kodak: +0.15 %
  bytes at equal PSNR), and the post-filter adds a small residual, so its precision does not
  show in the picture (<= 0.01 dB). g_s stays float32: in bf16 it was 1.8x faster but cost
  flat, high-PSNR images up to 0.7 dB (studio and graphics test images; docs/speed.md).
  On CPUs that would emulate bf16 (AVX2-only, AVX-512 without BF16) everything stays float32.

What stays exactly as it is: h_a, the float64 hyper-synthesis and context passes, scale indexes
and the range coder (:mod:`gancodec.models.coder`), so streams are the same format and decode on
any machine; only the decoded pixels move, by float rounding (float32: at most 1 level in 255,
bfloat16: within 3 levels, measured in docs/speed.md). With gradients enabled (the
encoder's latent search) every swapped module runs its float32 training form.

``GANCODEC_PRECISION`` (``auto``, ``float32`` or ``bfloat16``) overrides the choice.
"""

from __future__ import annotations

import contextlib
import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..settings import raw
from .layers import GDN
from .transforms import AnalysisTransform, SynthesisTransform

PRECISIONS = ("auto", "float32", "bfloat16")
ENV_PRECISION = "GANCODEC_PRECISION"

__all__ = ["ENV_PRECISION", "PRECISIONS", "inference_copy", "native_bf16", "precision_context", "resolve_precision"]


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: CUDA, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:  # not Linux: no way to tell, take the float32 path
        pass
    return False


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``float32`` or ``bfloat16`` for ``precision`` (None: ``$GANCODEC_PRECISION``, default auto).

    ``auto`` is bfloat16 on a CPU that computes it natively, float32 elsewhere (CUDA included:
    unmeasured there, so the conservative choice)."""
    value = precision if precision is not None else (raw(ENV_PRECISION) or "auto")
    if value not in PRECISIONS:
        raise ValueError(f"{ENV_PRECISION}={value!r}: precision must be one of {', '.join(PRECISIONS)}; "
                         "set one of them or unset it")
    if value == "auto":
        return "bfloat16" if device.type == "cpu" and native_bf16(device) else "float32"
    return value


def precision_context(module: nn.Module):
    """bf16 autocast when ``module`` (an inference copy) runs in bfloat16, else a no-op."""
    if getattr(module, "precision", "float32") != "bfloat16" or torch.is_grad_enabled():
        return contextlib.nullcontext()
    device = next(module.parameters()).device
    return torch.autocast(device.type, dtype=torch.bfloat16)


#: Pixels per chunk of :class:`InferenceGDN`'s float32 path: 4096 x 128 channels x 4 bytes (2 MiB)
#: stay in the cache between the normalisation's steps (benchmarks/gs_alternatives.py).
GDN_CHUNK = 4096


class InferenceGDN(nn.Module):
    """GDN / IGDN for inference: the reparametrised parameters once, the normalisation in place.
    With gradients enabled it runs the training module (the latent search differentiates it).

    A float32 channels-last input (what the coding path runs) is normalised :data:`GDN_CHUNK`
    pixels at a time as matrix products (``x*x @ gamma + beta``, its root, times x), each chunk
    done while it is in the cache: g_s's last IGDN on a Kodak image took 37.5 ms instead of the
    whole-tensor convolution's 52.9 ms, the same numbers (benchmarks/gs_alternatives.py). In bf16
    the chunks bought nothing, and other layouts keep the convolution."""

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        self.gdn = gdn
        with torch.no_grad():
            c = gdn.beta.shape[0]
            self.register_buffer("beta", gdn._beta_param(gdn.beta).detach().clone(), persistent=False)
            self.register_buffer("gamma", gdn._gamma_param(gdn.gamma).detach().reshape(c, c, 1, 1).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.gdn(x)
        if x.dtype == torch.float32 and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
                and self.beta.dtype == torch.float32:
            return self._chunked(x)
        norm = F.conv2d(x * x, self.gamma.to(x.dtype), self.beta.to(x.dtype))
        (norm.sqrt_() if self.gdn.inverse else norm.rsqrt_())
        return norm.mul_(x)

    def _chunked(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(-1, C)  # channels-last memory is pixel-major: a view
        gamma = self.gamma[:, :, 0, 0].t()
        out = torch.empty_like(rows)
        for i in range(0, rows.shape[0], GDN_CHUNK):
            chunk, norm = rows[i:i + GDN_CHUNK], out[i:i + GDN_CHUNK]
            torch.addmm(self.beta, chunk * chunk, gamma, out=norm)
            (norm.sqrt_() if self.gdn.inverse else norm.rsqrt_()).mul_(chunk)
        return out.reshape(B, H, W, C).permute(0, 3, 1, 2)


def subpixel_weights(deconv: nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The 3x3 convolution (4 x C_out outputs) whose pixel shuffle equals ``deconv`` (5x5, stride 2,
    padding 2, output padding 1). Output row 2q + r sees input rows q-1..q+1: phase 0 through
    kernel rows 4, 2, 0, phase 1 through rows -, 3, 1 (and the same for columns)."""
    w = deconv.weight.detach()  # (C_in, C_out, 5, 5)
    cin, cout = w.shape[:2]
    taps = {0: {0: 4, 1: 2, 2: 0}, 1: {1: 3, 2: 1}}  # phase -> {3x3 tap: 5x5 transposed-kernel index}
    k = w.new_zeros(cout, 2, 2, cin, 3, 3)
    for ry in (0, 1):
        for rx in (0, 1):
            for dy, ky in taps[ry].items():
                for dx, kx in taps[rx].items():
                    k[:, ry, rx, :, dy, dx] = w[:, :, ky, kx].t()
    bias = deconv.bias.detach().repeat_interleave(4) if deconv.bias is not None else None
    return k.reshape(cout * 4, cin, 3, 3), bias


class SubpixelDeconv(nn.Module):
    """A 5x5 stride-2 transposed convolution as a 3x3 convolution + pixel shuffle (inference)."""

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        if deconv.kernel_size != (5, 5) or deconv.stride != (2, 2) or deconv.padding != (2, 2) or deconv.output_padding != (1, 1):
            raise ValueError("SubpixelDeconv takes a 5x5, stride-2, padding-2 transposed convolution with output padding 1")
        self.deconv = deconv
        weight, bias = subpixel_weights(deconv)
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last), persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.deconv(x)
        return F.pixel_shuffle(F.conv2d(x, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype),
                                        padding=1), 2)


class _MixedPrecision(nn.Module):
    """Runs ``body`` under bf16 autocast (when the copy is bfloat16) and ``tail`` in float32."""

    def __init__(self, body: nn.Module, tail: nn.Module, precision: str) -> None:
        super().__init__()
        self.body, self.tail, self.precision = body, tail, precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with precision_context(self):
            h = self.body(x)
        return self.tail(h.float())


class _Autocast(nn.Module):
    """Runs ``inner`` under bf16 autocast (when the copy is bfloat16); float32 out."""

    def __init__(self, inner: nn.Module, precision: str) -> None:
        super().__init__()
        self.inner, self.precision = inner, precision

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        with precision_context(self):
            out = self.inner(*args, **kwargs)
        return out.float()


def _inference_gdn(seq: nn.Sequential) -> list[nn.Module]:
    return [InferenceGDN(m) if isinstance(m, GDN) else m for m in seq]


def inference_copy(model: nn.Module, device: torch.device, precision: str | None = None) -> nn.Module:
    """A copy of a :class:`~gancodec.models.HyperpriorCodec` on ``device``, in eval mode, with its
    g_a, g_s and post-filter in their inference forms (module docstring) and ``.precision`` set
    to ``float32`` or ``bfloat16`` (:func:`resolve_precision`: what g_a and the post-filter run
    in; g_s always runs in float32). The entropy path is untouched.
    The copy's state_dict keys differ from the model's: save the model, not the copy."""
    net = copy.deepcopy(model).to(device).eval()
    net.precision = resolve_precision(precision, device)
    if isinstance(net.g_a, AnalysisTransform):
        layers = _inference_gdn(net.g_a)
        net.g_a = _MixedPrecision(nn.Sequential(*layers[:-1]), layers[-1], net.precision)
    if isinstance(net.g_s, SynthesisTransform):
        layers = _inference_gdn(net.g_s)
        tail = SubpixelDeconv(layers[-1]) if isinstance(layers[-1], nn.ConvTranspose2d) else layers[-1]
        net.g_s = _MixedPrecision(nn.Sequential(*layers[:-1]), tail, "float32")  # bf16 here costs flat images dB
    if getattr(net, "post_filter", None) is not None:
        net.post_filter = _Autocast(net.post_filter, net.precision)
    return net
