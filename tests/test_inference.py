"""The inference copy the codec codes with: the same maths as the trained model, a precision
chosen by the CPU or GANCODEC_PRECISION, and the training forms whenever gradients flow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gancodec.models import inference
from gancodec.models.inference import InferenceGDN, SubpixelDeconv, inference_copy, resolve_precision
from gancodec.models.layers import GDN, deconv
from gancodec.weights import load_model


@torch.no_grad()
def test_subpixel_form_equals_the_transposed_convolution():
    torch.manual_seed(0)
    layer = deconv(16, 3)
    x = torch.randn(2, 16, 7, 9)
    want = layer(x)
    got = SubpixelDeconv(layer)(x)
    assert got.shape == want.shape == (2, 3, 14, 18)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_subpixel_form_refuses_other_shapes():
    with pytest.raises(ValueError, match="5x5, stride-2"):
        SubpixelDeconv(nn.ConvTranspose2d(8, 3, 3, stride=2, padding=1, output_padding=1))


@pytest.mark.parametrize("inverse", [False, True])
def test_inference_gdn_equals_gdn_and_keeps_its_gradient(inverse):
    torch.manual_seed(1)
    gdn = GDN(12, inverse=inverse)
    with torch.no_grad():  # a trained-looking gamma, not the identity it starts from
        gdn.gamma.add_(0.05 * torch.rand_like(gdn.gamma))
    fast = InferenceGDN(gdn)
    x = torch.randn(1, 12, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), gdn(x), atol=1e-6, rtol=1e-6)
        # channels-last float32 (the coding path): in chunks of pixels, over more than one chunk
        big = torch.randn(2, 12, 61, 70).contiguous(memory_format=torch.channels_last)
        assert big[0, 0].numel() > inference.GDN_CHUNK
        out = fast(big)
        torch.testing.assert_close(out, gdn(big.contiguous()), atol=1e-5, rtol=1e-5)
        assert out.is_contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)  # with gradients it is the training module (in place would break autograd)
    fast(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_precision_setting(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == "float32"
    assert resolve_precision("bfloat16", cpu) == "bfloat16"
    monkeypatch.setattr(inference, "native_bf16", lambda device: False)
    assert resolve_precision("auto", cpu) == "float32"  # an AVX2-only CPU would emulate bf16
    monkeypatch.setattr(inference, "native_bf16", lambda device: True)
    assert resolve_precision("auto", cpu) == "bfloat16"
    monkeypatch.setenv("GANCODEC_PRECISION", "float32")
    assert resolve_precision(None, cpu) == "float32"
    monkeypatch.setenv("GANCODEC_PRECISION", "half")
    with pytest.raises(ValueError, match="GANCODEC_PRECISION='half'.*auto, float32, bfloat16"):
        resolve_precision(None, cpu)


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_copy_decodes_as_the_model_does(precision):
    """g_s stays float32 in every precision: a latent decodes within a level of the trained model's
    decode (float32) or within 2 levels (a bf16 post-filter); the master model is untouched."""
    lm = load_model()
    master = {k: v.clone() for k, v in lm.model.state_dict().items()}
    net = inference_copy(lm.model, torch.device("cpu"), precision)
    assert net.precision == precision
    torch.manual_seed(2)
    y = torch.randn(1, lm.model.config.M, 6, 5) * 3
    with torch.no_grad():
        want = lm.model.synthesis(y, 3.0).clamp(0, 1) * 255
        got = net.synthesis(y, 3.0).clamp(0, 1) * 255
    assert got.dtype == torch.float32
    assert (got - want).abs().max() <= (0.5 if precision == "float32" else 2.0)
    with torch.enable_grad():  # the latent search differentiates the copy: the training forms, float32
        yg = y.clone().requires_grad_(True)
        out = net.synthesis(yg, 3.0)
        out.mean().backward()
    torch.testing.assert_close(out.detach().clamp(0, 1) * 255, want, atol=0.05, rtol=0)
    assert all(torch.equal(v, master[k]) for k, v in lm.model.state_dict().items())
