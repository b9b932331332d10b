"""Validate: every kind of broken or odd file gets the right status, and nothing is lost."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from gancodec.data.download import write_manifest
from gancodec.data.validate import (
    COLUMNS,
    QUARANTINE_REASONS,
    ValidateConfig,
    check_table,
    dhash,
    inspect,
    sniff,
    validate_dataset,
)
from gancodec.errors import DataError


def png(arr, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **kw)
    return buf.getvalue()


def save(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def jpeg(img: Image.Image, quality=90, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, **kw)
    return buf.getvalue()


def smooth_noise(h, w, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 32 + 1, w // 32 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC))


def make_files() -> dict[str, tuple[bytes, str, str]]:
    """path -> (bytes, expected status, expected reason or a note that must be present)."""
    coffee, rocket, astro = skdata.coffee(), skdata.rocket(), skdata.astronaut()
    rocket_png, rocket_jpg = png(rocket), jpeg(Image.fromarray(rocket))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    gray16 = (skdata.moon().astype(np.uint16) * 257)
    deep16 = cv2.imencode(".png", cv2.cvtColor(skdata.immunohistochemistry(), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)[1].tobytes()
    opaque = np.dstack([smooth_noise(300, 320, 1), np.full((300, 320), 255, np.uint8)])
    transparent = np.dstack([smooth_noise(300, 300, 5), np.tile(np.linspace(0, 255, 300).astype(np.uint8), (300, 1))])
    return {
        "holdout/astro.png": (png(astro), "ok", ""),
        "train/good.png": (png(coffee), "ok", "near_duplicate"),
        "train/good_copy.png": (png(coffee), "quarantined", "duplicate"),
        "train/near.jpg": (jpeg(Image.fromarray(coffee), quality=70), "ok", "near_duplicate"),
        "train/astro_again.jpg": (jpeg(Image.fromarray(astro), quality=80), "quarantined", "near_duplicate_of_test"),
        "train/zero.png": (b"", "quarantined", "zero_byte"),
        "train/text.png": (b"this is a text file, not a picture\n" * 20, "quarantined", "not_an_image"),
        "train/trunc.png": (rocket_png[: len(rocket_png) // 2], "quarantined", "truncated"),
        "train/trunc.jpg": (rocket_jpg[: len(rocket_jpg) // 2], "quarantined", "truncated"),
        "train/tiny.png": (png(smooth_noise(80, 100, 2)), "quarantined", "too_small"),
        "train/transparent.png": (png(transparent), "quarantined", "transparent_alpha"),
        "train/deep16.png": (deep16, "converted", "16bit"),
        "train/gray16.png": (png(gray16), "converted", "16bit"),
        "train/gray.png": (png(skdata.camera()), "converted", "grayscale"),
        "train/cmyk.jpg": (jpeg(Image.fromarray(skdata.chelsea()).convert("CMYK")), "converted", "cmyk"),
        "train/opaque.png": (png(opaque), "converted", "alpha_opaque"),
        "train/palette.png": (save(Image.fromarray(smooth_noise(320, 300, 3)).quantize(64)), "converted", "palette"),
        "train/rotated.jpg": (jpeg(Image.fromarray(rocket), exif=exif.tobytes()), "converted", "exif_rotated"),
        "train/wrongext.jpg": (png(smooth_noise(260, 270, 4)), "converted", "wrong_extension"),
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    raw = root / "raw"
    files = make_files()
    for rel, (blob, _, _) in files.items():
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).write_bytes(blob)
    write_manifest(
        [{"source": rel.split("/")[0], "role": "test" if rel.startswith("holdout/") else "train", "file": rel.split("/")[1],
          "sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b), "origin": "test", "license": "test"}
         for rel, (b, _, _) in files.items()],
        raw / "manifest.csv",
    )
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    table = validate_dataset(raw, root / "clean", root / "quarantine", ValidateConfig(min_side=256))
    return root, files, table.set_index("path"), before


def test_every_input_has_a_row_and_a_status(run):
    root, files, table, _ = run
    assert set(table.reset_index().columns) == set(COLUMNS)
    assert set(table.index) == set(files)
    assert table["status"].notna().all()


@pytest.mark.parametrize("rel", sorted(make_files()))
def test_status_and_reason(run, rel):
    _, files, table, _ = run
    _, status, why = files[rel]
    row = table.loc[rel]
    assert row["status"] == status, (rel, row["reason"], row["detail"], row["notes"])
    if status == "quarantined":
        assert row["reason"] == why and row["detail"]
    elif why:
        assert why in row["notes"].split(";")


def test_clean_outputs_are_8bit_rgb_png(run):
    root, _, table, _ = run
    usable = table[table["status"] != "quarantined"]
    assert len(usable) == 11
    for rel, row in usable.iterrows():
        with Image.open(row["clean_path"]) as img:
            assert (img.format, img.mode) == ("PNG", "RGB"), rel
            assert min(img.size) >= 256
    with Image.open(table.loc["train/rotated.jpg", "clean_path"]) as img:
        assert img.size == (427, 640)  # rocket is 640x427; orientation 6 turns it upright
    with Image.open(table.loc["train/good.png", "clean_path"]) as img:
        assert np.array_equal(np.asarray(img), skdata.coffee())
    # an ok 8-bit RGB PNG is copied byte for byte
    assert Path(table.loc["holdout/astro.png", "clean_path"]).read_bytes() == make_files()["holdout/astro.png"][0]
    assert table.loc["train/deep16.png", "bit_depth"] == 16 and table.loc["train/good.png", "bit_depth"] == 8


def test_quarantine_copies_raw_and_lists_reasons(run):
    root, files, table, before = run
    quarantined = table[table["status"] == "quarantined"]
    with open(root / "quarantine" / "reasons.csv", newline="") as fh:
        reasons = {r["path"]: r for r in csv.DictReader(fh)}
    assert set(reasons) == set(quarantined.index)
    for rel in quarantined.index:
        assert (root / "quarantine" / rel).read_bytes() == files[rel][0]
        assert reasons[rel]["reason"] in QUARANTINE_REASONS
    # raw is never moved, changed or deleted
    assert {p: p.read_bytes() for p in (root / "raw").rglob("*") if p.is_file()} == before


def test_near_duplicates_share_a_group(run):
    _, _, table, _ = run
    group = table.loc["train/good.png", "near_dup_group"]
    assert group and table.loc["train/near.jpg", "near_dup_group"] == group
    assert table.loc["train/astro_again.jpg", "near_dup_group"] == table.loc["holdout/astro.png", "near_dup_group"]
    singles = table[(table["status"] != "quarantined") & ~table.index.isin(["train/good.png", "train/near.jpg", "holdout/astro.png"])]
    assert singles["near_dup_group"].isna().all(), singles["near_dup_group"].dropna()


def test_expectations_reject_a_broken_table(run):
    _, _, table, _ = run
    bad = table.reset_index()
    bad.loc[0, "status"] = "fine"
    bad.loc[1, "sha256"] = "xyz"
    with pytest.raises(DataError, match="status.*|sha256"):
        check_table(bad, ValidateConfig(min_side=256))


def test_inspect_without_pillow_agreement_and_sniffing():
    rocket_jpg = jpeg(Image.fromarray(skdata.rocket()))
    # Pillow's verify() would pass this; the full decodes must not
    row, rgb = inspect(rocket_jpg[:-2000], "x.jpg", ValidateConfig())
    assert rgb is None and row["reason"] == "truncated"
    assert sniff(rocket_jpg) == "jpeg" and sniff(b"RIFF0000WEBPVP8 ") == "webp" and sniff(b"hello") is None


def test_dhash_is_robust_to_reencoding_and_separates_images():
    coffee, astro = skdata.coffee(), skdata.astronaut()
    reenc = np.asarray(Image.open(io.BytesIO(jpeg(Image.fromarray(coffee), quality=60))))
    d_same = int((dhash(coffee) != dhash(reenc)).sum())
    d_diff = int((dhash(coffee) != dhash(astro)).sum())
    assert d_same <= ValidateConfig().near_dup_max_hamming < d_diff


def test_missing_raw_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="download stage"):
        validate_dataset(tmp_path / "nope", tmp_path / "c", tmp_path / "q", check=False)


def test_unknown_params_key_is_rejected():
    with pytest.raises(DataError, match="min_sid"):
        ValidateConfig.from_params({"min_sid": 3})
    assert ValidateConfig.from_params({"min_side": 64, "profile": "ci"}).min_side == 64
