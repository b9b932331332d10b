"""The WebP safety net's search (gancodec.fallback): the WebP it keeps is the best PSNR within the
byte budget, found with a bounded number of encodes."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from gancodec import bitstream, fallback
from gancodec.data.synthetic import CLASSES, generate

from sample_images import astronaut, psnr, text_page


@pytest.fixture(scope="module")
def chart() -> np.ndarray:
    """chart-2x-00006 of the class test set (synthesize(..., test_per_class=8, test_seed=2020)):
    a flat graphic on which libwebp's PSNR is not monotonic in its quality."""
    return np.asarray(generate("chart", 2020 * 1000 + CLASSES.index("graphics"), 6, scale=2))


def _webp_points(img: np.ndarray, qualities) -> dict[int, tuple[int, float]]:
    """Quality -> (version-2 file bytes, PSNR), encoded here with Pillow at the fallback's method."""
    out = {}
    for q in qualities:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="WEBP", quality=q, method=fallback.WEBP_METHOD)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        out[q] = (len(buf.getvalue()) + bitstream.CLASSIC_OVERHEAD, psnr(img, dec))
    return out


def test_the_kept_webp_is_the_best_psnr_within_the_budget_not_the_highest_quality(chart):
    points = _webp_points(chart, range(50, 91))
    budget = points[75][0]
    fits = {q: v for q, (n, v) in points.items() if n <= budget}
    assert max(points) not in fits  # q90 does not fit: the highest quality that fits is in the range
    top = max(fits)
    window = {q: v for q, v in fits.items() if q >= top - 20}
    # the premise (libwebp's behaviour on this image): the highest quality that fits is not the best
    assert max(window.values()) > fits[top] + 1.0, (top, fits)
    found = fallback.best_within(chart, budget)
    assert len(found.data) <= budget
    assert found.psnr > fits[top] + 1.0
    assert found.psnr >= max(window.values()) - 0.3
    header, payloads = bitstream.read(found.data)
    assert found.psnr == pytest.approx(psnr(chart, fallback.decode(header, payloads[0])))
    # choose() keeps that WebP, and says which
    learned = b"\0" * budget  # a learned stream of that size, decoding to grey (what choose compares against)
    choice = fallback.choose(chart, learned, np.full_like(chart, 128))
    assert (choice.payload, choice.webp_quality, choice.data) == ("webp", found.quality, found.data)
    assert choice.webp_psnr == pytest.approx(found.psnr)
    assert fallback.encode_within(chart, budget) == (found.data, found.quality)


@pytest.mark.parametrize("budget", [400, 900, 3000])
def test_the_search_is_bounded(monkeypatch, budget):
    calls = []
    real = fallback._webp
    monkeypatch.setattr(fallback, "_webp", lambda rgb, q: calls.append(q) or real(rgb, q))
    found = fallback.best_within(text_page(), budget)
    assert len(calls) == len(set(calls)) <= fallback.MAX_ENCODES == fallback.MAX_PROBES + len(fallback.LOWER_OFFSETS)
    assert found is None or len(found.data) <= budget


def test_webps_encoded_on_threads_at_once_have_their_own_qualities():
    """Pillow keeps save()'s options on the image: encodes of one image on 2 threads once came out
    at each other's quality (every candidate below q* the same file)."""
    rgb = Image.fromarray(astronaut())
    qualities = [74, 73, 72, 71, 69, 67, 65, 63]
    serial = [fallback._webp(rgb, q) for q in qualities]
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(lambda q: fallback._webp(rgb, q), qualities)) == serial
    assert len(set(serial)) == len(qualities)


def test_nothing_fits_a_budget_below_quality_0():
    assert fallback.best_within(text_page(), 40) is None
    assert fallback.encode_within(text_page(), 40) is None


def test_each_candidate_webp_is_opened_once(monkeypatch):
    """choose() decodes each WebP it tries once: no second open for a reader's header check."""
    opened, encoded = [], []
    real_open, real_webp = Image.open, fallback._webp
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    monkeypatch.setattr(fallback, "_webp", lambda rgb, q: encoded.append(q) or real_webp(rgb, q))
    img = text_page()
    choice = fallback.choose(img, b"\0" * 10**6, np.zeros_like(img))  # every quality fits
    assert choice.payload == "webp" and choice.webp_quality is not None
    tried = {100, *(100 - d for d in fallback.LOWER_OFFSETS)}  # q* = 100 and the qualities below it
    assert len(opened) in (1 + fallback.MONOTONE_CHECK, len(tried)) and len(encoded) <= fallback.MAX_ENCODES


def _scored(monkeypatch) -> list[int]:
    """One entry per WebP best_within decodes (recorded as it goes)."""
    seen, real = [], fallback.decode
    monkeypatch.setattr(fallback, "decode", lambda header, payload: seen.append(1) or real(header, payload))
    return seen


@pytest.mark.parametrize("image", ["photo", "chart"])
def test_the_lower_qualities_are_tried_only_where_the_psnr_does_not_fall_through_q3(monkeypatch, image, chart):
    """A photo's PSNR falls with its quality: the search stops after q* - 3 with what trying every
    offset keeps. On the flat chart it does not fall steadily, and every offset is tried."""
    img = {"photo": astronaut(), "chart": chart}[image]
    rgb = Image.fromarray(img)
    budget = len(fallback._webp(rgb, 75)) + bitstream.CLASSIC_OVERHEAD
    top = fallback.highest_fitting(lambda q: len(fallback._webp(rgb, q)) + bitstream.CLASSIC_OVERHEAD, budget)
    points = _webp_points(img, [top, *(top - d for d in fallback.LOWER_OFFSETS)])
    psnrs = [points[top - d][1] for d in range(fallback.MONOTONE_CHECK + 1)]
    falls = all(a > b for a, b in zip(psnrs, psnrs[1:]))
    assert falls == (image == "photo")  # the premise: libwebp's behaviour on these two images
    decoded = _scored(monkeypatch)
    found = fallback.best_within(img, budget)
    assert len(decoded) == (1 + fallback.MONOTONE_CHECK if falls else 1 + len(fallback.LOWER_OFFSETS))
    best = max((v, q) for q, (n, v) in points.items() if n <= budget)
    assert (found.psnr, found.quality) == pytest.approx(best)


def _binary_search(sizes: dict[int, int], budget: int) -> int | None:
    lo, hi, top = 0, 100, None
    while lo <= hi:
        q = (lo + hi) // 2
        if sizes[q] <= budget:
            top, lo = q, q + 1
        else:
            hi = q - 1
    return top


@pytest.mark.parametrize("image", ["text_page", "chart", "noise"])
def test_highest_fitting_finds_what_a_binary_search_finds_in_fewer_encodes(image, chart):
    """Real libwebp sizes at every quality: for budgets from below quality 0 to above 100 the
    search returns the binary search's quality where sizes grow with quality, never probes a quality twice, stays within
    MAX_PROBES, and on average needs fewer probes than the binary search's 7."""
    img = {"text_page": text_page(), "chart": chart,
           "noise": np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)}[image]
    rgb = Image.fromarray(img)
    sizes = {q: len(fallback._webp(rgb, q)) for q in range(101)}
    monotonic = all(sizes[q] <= sizes[q + 1] for q in range(100))
    assert monotonic or image != "noise"  # the flat graphic and the text page have a few dips
    probes = []
    budgets = [sizes[0] - 1, *np.linspace(sizes[0], sizes[100], 23).astype(int), sizes[100] * 2]
    for budget in budgets:
        calls = []
        got = fallback.highest_fitting(lambda q: calls.append(q) or sizes[q], int(budget))
        if monotonic:
            assert got == _binary_search(sizes, int(budget)), (budget, calls)
        else:  # either search ends on a quality that fits next to one that does not
            assert got is None or (sizes[got] <= budget and (got == 100 or sizes[got + 1] > budget)), (budget, calls)
        assert len(calls) == len(set(calls)) <= fallback.MAX_PROBES
        probes.append(len(calls))
    assert np.mean(probes) < 6, probes


def test_highest_fitting_is_bounded_on_sizes_that_do_not_grow():
    """Sizes that jump about (no libwebp does this): still a quality that fits, in MAX_PROBES."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        sizes = {q: int(v) for q, v in enumerate(rng.integers(100, 10_000, 101))}
        budget = int(rng.integers(100, 10_000))
        calls = []
        got = fallback.highest_fitting(lambda q: calls.append(q) or sizes[q], budget)
        assert len(calls) == len(set(calls)) <= fallback.MAX_PROBES
        assert got is None or sizes[got] <= budget
