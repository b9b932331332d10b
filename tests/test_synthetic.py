"""The synthetic screen-content / graphics / studio generator: deterministic, every kind drawn,
text where text should be, flat areas where studio shots have them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from gancodec.data.synthetic import KIND_CLASS, KINDS, font_files, generate, generate_set
from gancodec.errors import DataError

SIZE = (96, 80)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_deterministic_and_seeded(kind):
    a = np.asarray(generate(kind, seed=1, index=0, size=SIZE))
    assert a.shape == (SIZE[1], SIZE[0], 3) and a.dtype == np.uint8
    assert np.array_equal(a, np.asarray(generate(kind, seed=1, index=0, size=SIZE)))
    assert not np.array_equal(a, np.asarray(generate(kind, seed=2, index=0, size=SIZE)))
    assert a.std() > 2  # something is drawn, not a blank canvas


def test_2x_scale_draws_larger_text():
    """A 2x rendering of a document has thicker strokes: fewer, longer runs of ink per row."""
    def ink_runs(img):
        dark = (np.asarray(img.convert("L")) < 128).astype(np.int8)
        return int((np.diff(dark, axis=1) == 1).sum()), int(dark.sum())

    runs1, ink1 = ink_runs(generate("document", seed=3, index=0, size=(256, 256), scale=1))
    runs2, ink2 = ink_runs(generate("document", seed=3, index=0, size=(256, 256), scale=2))
    assert ink1 > 0 and ink2 > 0
    assert ink2 / runs2 > 1.3 * ink1 / runs1


def test_documents_are_mostly_paper_and_studio_shots_mostly_smooth():
    doc = np.asarray(generate("document", seed=5, index=1, size=(160, 160)).convert("L")).astype(int)
    paper = np.bincount(doc.ravel()).argmax()
    assert (np.abs(doc - paper) <= 8).mean() > 0.6
    studio = np.asarray(generate("studio", seed=5, index=1, size=(160, 160))).astype(int)
    grad = np.abs(np.diff(studio, axis=1)).max(axis=2)
    assert (grad <= 12).mean() > 0.8  # large smooth / flat regions, a few edges


def test_set_writes_pngs_whose_hash_is_recorded(tmp_path):
    rows = generate_set(tmp_path, count=8, seed=7, size=(64, 64), kinds={"ui": 1, "studio": 1})
    assert len(rows) == 8 and {r["kind"] for r in rows} <= {"ui", "studio"}
    for r in rows:
        assert hashlib.sha256(open(r["path"], "rb").read()).hexdigest() == r["sha256"]
        assert r["class"] == KIND_CLASS[r["kind"]] and r["scale"] in (1, 2)
    again = generate_set(tmp_path / "again", count=8, seed=7, size=(64, 64), kinds={"ui": 1, "studio": 1})
    assert [r["sha256"] for r in rows] == [r["sha256"] for r in again]
    other = generate_set(tmp_path / "other", count=8, seed=8, size=(64, 64), kinds={"ui": 1, "studio": 1})
    assert not {r["sha256"] for r in rows} & {r["sha256"] for r in other}


def test_bad_settings_name_the_fix():
    with pytest.raises(DataError, match="unknown kind"):
        generate("poster", seed=0, index=0, size=SIZE)
    with pytest.raises(DataError, match=r"unknown kinds \['poster'\]"):
        generate_set("unused", count=1, seed=0, kinds={"poster": 1})
    with pytest.raises(DataError, match="scale"):
        generate("ui", seed=0, index=0, size=SIZE, scale=4)


def test_fonts_come_with_matplotlib():
    files = font_files()
    assert any("DejaVuSans" in f for f in files) and any("Serif" in f for f in files) and any("Mono" in f for f in files)
