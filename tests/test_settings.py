"""gancodec.settings: every GANCODEC_* variable declared once, read through it, documented in one table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gancodec import settings
from gancodec.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def test_every_variable_the_code_names_is_declared_and_every_declared_one_is_used():
    named = set()
    for path in list((ROOT / "src" / "gancodec").rglob("*.py")) + [ROOT / "prefect.yaml"]:
        named |= set(re.findall(r"GANCODEC_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    named.discard("GANCODEC_FAULT")  # the prefix faults.fault_rate completes (GANCODEC_FAULT_<NAME>)
    declared = {v.name for v in settings.VARIABLES}
    assert named == declared


def test_the_documented_table_is_the_declared_one():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = doc.split("<!-- settings-table:start -->\n", 1)[1].split("<!-- settings-table:end -->", 1)[0]
    assert table.strip() == settings.markdown_table()


def test_values_are_read_when_asked_and_bad_ones_are_named(monkeypatch, tmp_path):
    from gancodec.data.imageio import max_pixels_default
    from gancodec.weights import SHIPPED_WEIGHTS, default_weights_path
    from gancodec.weights.history import search_folders

    monkeypatch.delenv("GANCODEC_WEIGHTS", raising=False)
    assert default_weights_path() == SHIPPED_WEIGHTS
    monkeypatch.setenv("GANCODEC_WEIGHTS", str(tmp_path / "w.pt"))
    assert default_weights_path() == tmp_path / "w.pt"
    monkeypatch.setenv("GANCODEC_WEIGHTS_PATH", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    assert search_folders()[:2] == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.setenv("GANCODEC_MAX_PIXELS", "1000")
    assert max_pixels_default() == 1000
    monkeypatch.setenv("GANCODEC_MAX_PIXELS", "lots")
    with pytest.raises(DataError, match="GANCODEC_MAX_PIXELS='lots' is not an integer; give a pixel count or unset it"):
        max_pixels_default()
    with pytest.raises(KeyError, match="GANCODEC_NOPE is not a declared gancodec setting"):
        settings.raw("GANCODEC_NOPE")
