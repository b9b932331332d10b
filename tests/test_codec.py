"""compress()/decompress() round trips: real bitstreams, real bytes, the user-visible promises."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import gancodec
from gancodec import DataError
from gancodec.codec import decode_latents, _model_for
from gancodec.data.imageio import ConversionWarning
from gancodec.tiling import TileGrid
from gancodec import bitstream

from sample_images import astronaut, camera, coffee, psnr, text_page


def test_rgb_round_trip_bytes_shape_and_quality():
    img = astronaut(256)
    data = gancodec.compress(img, quality=6)
    out = np.asarray(gancodec.decompress(data))
    assert out.shape == img.shape and out.dtype == np.uint8
    header = gancodec.read_header(data)
    assert (header.height, header.width, header.channels) == (256, 256, 3)
    assert psnr(img, out) > 20  # a sanity band, not a benchmark (see docs/model-card for Kodak numbers)


def test_quality_knob_is_monotonic_in_rate_and_distortion():
    img = coffee()
    sizes, scores = [], []
    for q in (1, 3, 5, 8):
        data = gancodec.compress(img, quality=q)
        sizes.append(len(data))
        scores.append(psnr(img, np.asarray(gancodec.decompress(data))))
    assert sizes == sorted(sizes) and len(set(sizes)) == 4
    assert scores == sorted(scores)


def test_fractional_quality_lies_between_its_neighbours():
    img = astronaut(256)
    a, b, c = (len(gancodec.compress(img, quality=q)) for q in (4, 4.5, 5))
    assert a < b < c


def test_bpp_target_is_met_from_real_bytes():
    img = coffee()
    pixels = img.shape[0] * img.shape[1]
    for target in (0.25, 0.6):
        data = gancodec.compress(img, bpp=target)
        assert abs(len(data) * 8 / pixels - target) / target < 0.15


def test_same_input_same_bytes():
    img = astronaut(128)
    assert gancodec.compress(img, quality=4) == gancodec.compress(img, quality=4)


def test_grayscale_is_stored_as_grayscale():
    img = camera(192)
    data = gancodec.compress(img, quality=5)
    assert gancodec.read_header(data).channels == 1
    out = gancodec.decompress(data)
    assert out.mode == "L" and out.size == (192, 192)
    assert psnr(img, np.asarray(out)) > 22


def test_rgba_drops_alpha_with_a_warning():
    rgba = np.dstack([astronaut(64), np.full((64, 64), 128, np.uint8)])
    with pytest.warns(ConversionWarning, match="alpha"):
        data = gancodec.compress(rgba)
    assert gancodec.decompress(data).mode == "RGB"


def test_16_bit_is_reduced_with_a_warning(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray((camera(64).astype(np.uint16) * 257)).save(path)
    with pytest.warns(ConversionWarning, match="8"):
        data = gancodec.compress(path)
    assert gancodec.decompress(data).size == (64, 64)


@pytest.mark.parametrize("shape", [(1, 1, 3), (17, 33, 3), (1, 300, 3), (300, 2, 3), (65, 129, 1)])
def test_odd_sizes_round_trip(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    out = np.asarray(gancodec.decompress(gancodec.compress(img, tile_size=128)))
    assert out.shape[:2] == shape[:2]


def test_tiled_decode_matches_untiled():
    img = coffee()
    whole = np.asarray(gancodec.decompress(gancodec.compress(img, quality=5)))
    tiled = np.asarray(gancodec.decompress(gancodec.compress(img, quality=5, tile_size=128)))
    assert abs(psnr(img, whole) - psnr(img, tiled)) < 0.05
    # no seams: the error in 4-px bands around the 128-px tile borders is no worse than elsewhere
    err = (img.astype(float) - tiled.astype(float)) ** 2
    border = np.zeros(img.shape[:2], bool)
    for k in range(128, max(img.shape), 128):
        border[k - 4 : k + 4, :] = True
        border[:, k - 4 : k + 4] = True
    assert err[border].mean() < 1.3 * err[~border].mean()


def test_decode_is_thread_count_independent():
    data = gancodec.compress(coffee(), quality=4, tile_size=256)
    header, payloads = bitstream.read(data)
    lm = _model_for(header, None)
    grid = TileGrid(header.height, header.width, header.tile_size)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = decode_latents(lm.coder, payloads, grid, lm.model.config.M, lm.model.config.N)
        img_one = np.asarray(gancodec.decompress(data))
    finally:
        torch.set_num_threads(threads)
    two = decode_latents(lm.coder, payloads, grid, lm.model.config.M, lm.model.config.N)
    assert torch.equal(one, two)
    assert np.abs(img_one.astype(int) - np.asarray(gancodec.decompress(data)).astype(int)).max() <= 1


def _device_check_module():
    """scripts/device_check.py as a module (it is a script, not part of the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "device_check.py"
    spec = importlib.util.spec_from_file_location("device_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False); "
                    "on a GPU machine also run scripts/device_check.py over Kodak")
def test_gpu_encode_cpu_decode(tmp_path):
    """A stream encoded on the GPU: the CPU reads back exactly the latents the GPU quantised,
    and CPU and GPU synthesis agree within one grey level."""
    check = _device_check_module()
    images = {"coffee.png": coffee(), "astronaut.png": astronaut(256), "camera.png": camera(256)}
    lm = _model_for(gancodec.read_header(gancodec.compress(astronaut(64), device="cpu")), None)
    for name, img in images.items():
        Image.fromarray(img).save(tmp_path / name)
        row = check.check_image(tmp_path / name, lm, quality=4, encode="cuda", decode=["cpu", "cuda"], tile=256)
        assert row["latents_identical"], (name, row["latents_differing"])
        assert row["max_abs_diff"]["cuda"] <= 1, (name, row["max_abs_diff"])
        assert row["psnr"] > 20, (name, row["psnr"])


def test_out_of_memory_backs_off_and_says_so(monkeypatch, caplog):
    monkeypatch.setenv("GANCODEC_FAULT_OOM", "0.5")
    monkeypatch.setenv("GANCODEC_FAULT_SEED", "codec-oom-drill")
    img = astronaut(128)
    with caplog.at_level(logging.WARNING, logger="gancodec"):
        datas = [gancodec.compress(img, quality=4, tile_size=1024) for _ in range(4)]
    assert "out of memory" in caplog.text
    for data in datas:  # whatever tile size it fell back to, the stream decodes
        assert gancodec.decompress(data).size == (128, 128)


def test_persistent_out_of_memory_raises(monkeypatch):
    monkeypatch.setenv("GANCODEC_FAULT_OOM", "1")
    with pytest.raises((torch.OutOfMemoryError, MemoryError)):
        gancodec.compress(astronaut(64))


@pytest.mark.parametrize("kwargs,match", [({"quality": 0}, "quality"), ({"quality": 9}, "quality"),
                                          ({"quality": float("nan")}, "quality"), ({"bpp": -1}, "bpp"),
                                          ({"quality": 3, "bpp": 0.3}, "not both"), ({"tile_size": 100}, "tile_size")])
def test_bad_settings_are_clear(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gancodec.compress(astronaut(64), **kwargs)


def test_bad_images_are_data_errors(tmp_path):
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.png").write_bytes(b"")
    buf = tmp_path / "ok.png"
    Image.fromarray(astronaut(64)).save(buf)
    (tmp_path / "cut.png").write_bytes(buf.read_bytes()[:200])
    for name, match in [("text.png", "not an image"), ("empty.png", "empty"), ("cut.png", "truncated"), ("nope.png", "no such")]:
        with pytest.raises(DataError, match=match):
            gancodec.compress(tmp_path / name)


def test_pixel_cap_refuses_bombs_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (4000, 4000)).save(path)
    with pytest.raises(DataError, match="max_pixels"):
        gancodec.compress(path, max_pixels=1_000_000)


@pytest.mark.parametrize("size", [(1, 1), (8, 8), (16, 16), (16, 40)])
def test_thumbnails_keep_their_colour_at_every_quality(size):
    """Images a latent or two across are mostly the transforms' zero padding; the encoder
    refines their latents (gancodec.latent_refine). Without it v1.3 turned a 1x1 (238, 206, 198)
    into (150, 132, 126) at quality 4, 10 dB."""
    h, w = size
    for colour in ((238, 206, 198), (20, 30, 40), (128, 128, 128)):
        x = np.zeros((h, w, 3), np.uint8) + np.array(colour, np.uint8)
        for quality in (1, 4, 8):
            y = np.asarray(gancodec.decompress(gancodec.compress(x, quality=quality)))
            assert y.shape == x.shape
            assert psnr(x, y) >= 28.0, (size, colour, quality, y[0, 0].tolist())


# --------------------------------------------------------------------------- the WebP fallback (issue 20)


@pytest.mark.parametrize("grey", [False, True])
def test_text_falls_back_to_webp_with_no_more_bytes_and_a_better_psnr(grey):
    img = text_page(grey=grey)
    ref = img[:, :, None] if grey else img
    for quality in (4, 6):  # (at quality 2 even WebP's quality 0 is no better here: it keeps the learned stream)
        learned = gancodec.compress(img, quality=quality, fallback=False)
        safe = gancodec.compress(img, quality=quality)  # on by default
        assert bitstream.read_header(learned).version == 1
        h = gancodec.read_header(safe)
        assert (h.version, h.payload, h.channels, h.width, h.height) == (2, "webp", 1 if grey else 3, 160, 96)
        assert len(safe) <= len(learned)
        out = gancodec.decompress(safe)
        assert out.mode == ("L" if grey else "RGB")
        got = np.asarray(out)
        back = np.asarray(gancodec.decompress(learned))
        assert psnr(ref, got[:, :, None] if grey else got) > psnr(ref, back[:, :, None] if grey else back) + 0.1


def test_a_photo_keeps_its_learned_stream():
    img = astronaut(128)
    for quality in (2, 4, 6):
        data = gancodec.compress(img, quality=quality)
        assert data == gancodec.compress(img, quality=quality, fallback=False)  # bit-identical: WebP is not better


def test_the_fallback_with_a_bpp_target_never_exceeds_the_learned_bytes():
    img = text_page()  # where WebP wins at this target (v1.6's post-filter keeps the learned stream up to ~1 bpp)
    learned = gancodec.compress(img, bpp=2.5, fallback=False)
    safe = gancodec.compress(img, bpp=2.5)
    assert gancodec.read_header(safe).payload == "webp" and len(safe) <= len(learned)


def test_fallback_must_be_a_bool():
    with pytest.raises(ValueError, match="fallback must be True or False"):
        gancodec.compress(astronaut(16), fallback="yes")


def test_realism_on_a_webp_stream_warns_and_decodes_the_webp():
    data = gancodec.compress(text_page(), quality=4)
    with pytest.warns(UserWarning, match="realism does not apply to a webp"):
        out = gancodec.decompress(data, realism=True)
    assert np.array_equal(np.asarray(out), np.asarray(gancodec.decompress(data)))


def test_the_encoder_knows_the_latents_its_stream_decodes_to():
    """The fallback's decode starts from the encoder's y_hat instead of entropy-decoding the
    stream: it must be exactly what decoding the bytes gives, tile by tile (two tiles here)."""
    from gancodec.codec import _encode
    from gancodec.weights import load_model

    lm = load_model()
    img = astronaut(160)
    data, latents = _encode(lm, img, 3.0, 64 * 2, torch.device("cpu"), keep_latents=True)
    header, payloads = bitstream.read(data)
    assert len(payloads) > 1
    decoded = decode_latents(lm.coder, payloads, TileGrid(header.height, header.width, header.tile_size),
                             lm.model.config.M, lm.model.config.N)
    assert torch.equal(latents, decoded)
    assert _encode(lm, img, 3.0, 128, torch.device("cpu"))[0] == data  # keeping them changes no byte


def test_default_encode_keeps_what_the_fallback_chooses_from_a_real_decode():
    """compress() with the fallback decides from the encoder's latents and a WebP search run
    beside the decode: the same file as choosing from the stream's own decode."""
    from gancodec import fallback

    for img in (astronaut(128), text_page()):
        learned = gancodec.compress(img, quality=4, fallback=False)
        decoded = np.asarray(gancodec.decompress(learned))
        want = fallback.choose(img, learned, decoded).data
        assert gancodec.compress(img, quality=4) == want
