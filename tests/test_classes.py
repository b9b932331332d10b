"""The per-class table (issue 20): BD-rate per class against each anchor, and the worst image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gancodec.errors import DataError
from gancodec.class_table_markdown import markdown
from gancodec.eval.classes import class_table, evaluate_classes


def _curve(image, codec, cls, settings, bpps, psnrs):
    return [{"class": cls, "image": image, "codec": codec, "setting": s, "bpp": b, "psnr": p}
            for s, b, p in zip(settings, bpps, psnrs)]


def _rows():
    bpp = np.array([0.2, 0.4, 0.8, 1.6])
    webp = 30 + 4 * np.log2(bpp / 0.2)
    rows = []
    for cls, images in {"photos": {"a": 0.0, "b": 0.0}, "screen": {"ui": -3.0, "table": +0.5}}.items():
        for name, offset in images.items():
            rows += _curve(name, "webp", cls, [10, 40, 70, 90], bpp, webp)
            rows += _curve(name, "jpeg420", cls, [10, 40, 70, 90], bpp * 1.5, webp)
            # ours: the same curve shifted by `offset` dB, at qualities 2, 4, 6, 8
            rows += _curve(name, "gancodec", cls, [2.0, 4.0, 6.0, 8.0], bpp * 1.1, webp + 4 * np.log2(1.1) + offset)
    return pd.DataFrame(rows)


def test_bd_rate_per_class_and_the_worst_image():
    table = {e["class"]: e for e in class_table(_rows(), anchors=("webp", "jpeg420"))}
    photos, screen = table["photos"], table["screen"]
    assert photos["images"] == 2 and photos["bd_rate"]["webp"] == pytest.approx(0.0, abs=0.5)
    assert photos["bd_rate"]["jpeg420"] < -25  # JPEG needs 1.5x the bits for the same PSNR
    assert screen["worst"]["image"] == "ui" and screen["worst"]["bd_rate_vs_webp"] > 50  # 3 dB down = 1.68x bits
    assert screen["worst_gap"]["image"] == "ui" and screen["worst_gap"]["gap_db_vs_webp"] == pytest.approx(-3.0, abs=0.05)
    lines = markdown({"classes": list(table.values())})
    assert lines[0].startswith("| class | images | BD-rate vs WebP | BD-rate vs JPEG |")
    assert any(line.startswith("| screen | 2 |") and "ui (-3.00 dB)" in line for line in lines)


def test_the_webp_fallback_codec_gets_its_own_columns():
    rows = _rows()
    safe = rows[rows.codec == "gancodec"].copy()
    safe["codec"] = "gancodec+webp"
    ui = safe.image == "ui"  # the screenshot falls back at every quality: 3 dB better at the same bytes
    safe.loc[ui, "psnr"] += 3.0
    safe["payload"] = np.where(ui, "webp", "learned")
    table = {e["class"]: e for e in class_table(pd.concat([rows, safe], ignore_index=True), anchors=("webp",))}
    screen, photos = table["screen"], table["photos"]
    assert screen["worst_gap"]["gap_db_vs_webp"] == pytest.approx(-3.0, abs=0.05)  # the learned codec's row is unchanged
    f = screen["fallback"]
    assert f["fallback_share"] == 0.5 and photos["fallback"]["fallback_share"] == 0.0
    assert f["worst_gap"]["image"] == "ui" and f["worst_gap"]["gap_db_vs_webp"] == pytest.approx(0.0, abs=0.05)
    assert f["bd_rate_vs_webp"] < screen["bd_rate"]["webp"] - 10
    lines = markdown({"classes": list(table.values())})
    assert "with WebP fallback: BD-rate vs WebP | points stored as WebP |" in lines[0]
    assert any(line.startswith("| screen | 2 |") and "| ui (-3.00 dB) |" in line and "| 50 % | ui (+0.00 dB) |" in line
               for line in lines)
    assert "| 0 % |" in next(line for line in lines if line.startswith("| photos"))


def test_an_image_outside_webps_measured_range_is_named_not_extrapolated():
    rows = _rows()
    # "ui": every learned point below WebP's lowest PSNR (30 dB): no BD-rate, and the table says so
    ui = (rows.image == "ui") & (rows.codec == "gancodec")
    rows.loc[ui, "psnr"] = [24.0, 25.0, 26.0, 27.0]
    # "table": its quality 6 point spends more than WebP's highest measured bpp: that gap is not read
    t6 = (rows.image == "table") & (rows.codec == "gancodec") & (rows.setting == 6.0)
    rows.loc[t6, "bpp"] = 3.0
    screen = {e["class"]: e for e in class_table(rows, anchors=("webp",))}["screen"]
    ui_row, table_row = sorted(screen["per_image"], key=lambda p: p["image"])[::-1]
    assert ui_row["image"] == "ui" and ui_row["bd_rate_vs_webp"] is None and ui_row["no_overlap"] == "below"
    assert screen["no_overlap"] == [{"image": "ui", "side": "below"}]
    assert screen["worst"]["image"] == "table"  # the only image with a BD-rate
    assert table_row["gap_points"] == [2, 3] and table_row["gap_db_vs_webp"] == pytest.approx(0.5, abs=0.05)
    assert ui_row["gap_points"] == [3, 3]  # its bpps are inside WebP's range: the gap is read (about -6 dB)
    lines = markdown({"classes": [screen]})
    assert lines[0].endswith("| no PSNR overlap with WebP (no BD-rate) |")
    assert lines[2].startswith("| screen | 2 |") and lines[2].endswith("| ui (below) |")
    assert any("nothing is extrapolated" in line for line in lines)
    lines = markdown({"classes": [dict(screen, worst_gap=table_row)]})
    assert "table (+0.50 dB, 2 of 3 q)" in lines[2] and any(line.startswith('"n of m q"') for line in lines)


def test_missing_columns_and_empty_sets_are_errors(tmp_path):
    with pytest.raises(DataError, match=r"lack column\(s\) \['class'\]"):
        class_table(_rows().drop(columns=["class"]))
    with pytest.raises(DataError, match="no test sets"):
        evaluate_classes({}, tmp_path, weights=None, qualities=[2])


def test_evaluate_classes_measures_every_class_from_real_bytes(tmp_path):
    from PIL import Image

    from gancodec.data.synthetic import generate

    sets = {}
    for cls, kind in (("screen", "ui"), ("studio", "studio")):
        path = tmp_path / f"{kind}.png"
        generate(kind, seed=3, index=0, size=(64, 64)).save(path)
        sets[cls] = [path]
    summary = evaluate_classes(sets, tmp_path / "out", weights=None, qualities=[2, 6], codecs=["webp"], workers=1)
    rows = pd.read_csv(tmp_path / "out/classes.csv")
    assert list(dict.fromkeys(rows["class"])) == ["screen", "studio"] and set(rows.image) == {"ui", "studio"}
    assert (rows.bpp == rows.bytes * 8 / (64 * 64)).all()
    assert [c["class"] for c in summary["classes"]] == ["screen", "studio"]
    safe = rows[rows.codec == "gancodec+webp"]  # the fallback on, beside the learned codec
    assert len(safe) == len(rows[rows.codec == "gancodec"]) == 4 and set(safe.payload) <= {"learned", "webp"}
    assert (safe.bytes.to_numpy() <= rows[rows.codec == "gancodec"].bytes.to_numpy()).all()  # never more bytes
    assert all("fallback" in c for c in summary["classes"])
    assert summary["test_sets"]["screen"] == [str(tmp_path / "ui.png")]


def test_the_model_card_renders_the_per_class_table():
    import json

    from gancodec.weights import MODEL_CARD
    from gancodec.weights.ship import render_markdown

    card = json.loads(MODEL_CARD.read_text())
    card["classes"] = {"classes": class_table(_rows(), anchors=("webp", "jpeg420"))}
    md = render_markdown(card, realism={})
    assert "## Per content class" in md
    assert "| screen | 2 | +" in md and "| ui (-3.00 dB) |" in md
    assert md.index("## Per content class") > md.index("## Kodak")


def test_the_model_card_shows_the_fallback_columns_when_the_table_has_them():
    import json

    from gancodec.weights import MODEL_CARD
    from gancodec.weights.ship import render_markdown

    rows = _rows()
    safe = rows[rows.codec == "gancodec"].copy()
    safe["codec"] = "gancodec+webp"
    ui = safe.image == "ui"
    safe.loc[ui, "psnr"] += 3.0
    safe["payload"] = np.where(ui, "webp", "learned")
    card = json.loads(MODEL_CARD.read_text())
    card["classes"] = {"classes": class_table(pd.concat([rows, safe], ignore_index=True), anchors=("webp",))}
    md = render_markdown(card, realism={}).splitlines()
    head = next(line for line in md if line.startswith("| class | images |"))
    assert head.endswith("| with WebP fallback: BD-rate vs WebP | points stored as WebP | worst dB vs WebP at q 2/4/6 |")
    table = markdown(card["classes"])  # the report's table, line for line
    start = md.index(table[0])
    assert md[start:start + len(table)] == table
    screen = next(line for line in md if line.startswith("| screen | 2 |"))
    assert "| ui (-3.00 dB) |" in screen and screen.endswith("| 50 % | ui (+0.00 dB) |")
    assert len(screen.split("|")) == len(head.split("|"))
    card["classes"] = {"classes": class_table(_rows(), anchors=("webp",))}  # no fallback rows: no fallback columns
    assert "points stored as WebP" not in render_markdown(card, realism={})
