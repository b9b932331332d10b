"""Odd and malformed image files through every entry point: compress(), the CLI, validate, bulk.

The corpus (tests/odd_images.py) is made on the fly; each case says what docs/formats.md
promises. A bad file must end in a clear domain error and no output; an odd but usable one
in the documented conversion and a decoded image that looks like what a viewer shows.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import gancodec
from gancodec import DataError, bulk, cli
from gancodec.data.imageio import ConversionWarning
from gancodec.data.validate import ValidateConfig, validate_dataset

from odd_images import VALIDATE_MIN_SIDE, OddImage, make_corpus, write_corpus
from sample_images import psnr

CORPUS = make_corpus()
MIN_PSNR = 18.0  # the shipped model on 64x48 crops lands at 22-30 dB; a wrong turn or colour space is < 12


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("odd") / "in"
    write_corpus(folder, CORPUS)
    return folder


def assert_looks_like(img: Image.Image, case: OddImage) -> None:
    """Decoded ``img`` has the mode, size and (within lossy coding) the pixels the case intends."""
    assert (img.mode, img.size) == (case.mode, case.size), case.name
    assert psnr(np.asarray(img), case.intent) > MIN_PSNR, case.name


def leftovers(folder) -> list[str]:
    """Temp files of interrupted atomic writes under ``folder``."""
    return sorted(p.name for p in folder.rglob("*.part"))


# --------------------------------------------------------------------------- compress()


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_compress_api(case, corpus_dir):
    path = corpus_dir / case.name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if not case.ok:
            with pytest.raises(DataError) as err:
                gancodec.compress(path, device="cpu")
            assert case.error in str(err.value) and str(path) in str(err.value)
            return
        data = gancodec.compress(path, device="cpu")
    converted = [str(w.message) for w in caught if issubclass(w.category, ConversionWarning)]
    if case.warning is None:
        assert converted == []
    else:
        assert any(case.warning in m and case.name in m for m in converted), converted
    assert_looks_like(gancodec.decompress(data, device="cpu"), case)


def _read(read, *args):
    """(pixels, sorted conversion warnings, error message) of one read."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pixels, error = read(*args), None
        except DataError as exc:
            pixels, error = None, str(exc)
    return pixels, sorted(str(w.message) for w in caught if issubclass(w.category, ConversionWarning)), error


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_bulk_reads_bytes_exactly_as_compress_reads_files(case, corpus_dir):
    """An object from a bucket and the same file on disk give the same pixels, notes and errors."""
    path = corpus_dir / case.name
    from_file = _read(gancodec.data.imageio.load_image, path)
    notes: list[str] = []  # decode_source returns its conversion warnings as notes for the manifest

    def from_bucket():
        pixels, found = bulk.decode_source(path.read_bytes(), str(path))
        notes.extend(found)
        return pixels

    from_bytes = _read(from_bucket)
    assert (from_file[1], from_file[2]) == (notes, from_bytes[2])
    if from_file[0] is None:
        assert from_bytes[0] is None
    else:
        np.testing.assert_array_equal(from_file[0], from_bytes[0])


def test_concurrent_reads_restore_pillows_bomb_limit(corpus_dir):
    """Reads in threads (as in a bulk batch) switch Pillow's global limit off and back exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    files = [corpus_dir / c.name for c in CORPUS if c.ok] * 8
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: bulk.decode_source(p.read_bytes(), str(p)), files))
    assert Image.MAX_IMAGE_PIXELS == before and before is not None


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_cli_one_file(case, corpus_dir, tmp_path, capsys):
    out = tmp_path / "x.gcx"
    code = cli.main(["compress", str(corpus_dir / case.name), "-o", str(out), "--device", "cpu"])
    lines = capsys.readouterr().err.strip().splitlines()
    if not case.ok:
        assert code == 1
        assert len(lines) == 1 and lines[0].startswith("gancodec: error:") and case.name in lines[0], lines
        assert list(tmp_path.iterdir()) == []  # no output, no temp file
        return
    assert code == 0 and leftovers(tmp_path) == []
    warned = [line for line in lines if line.startswith("gancodec: warning:")]
    assert lines == warned  # nothing but warnings on success
    assert bool(warned) == (case.warning is not None), lines
    assert case.warning is None or any(case.warning in w for w in warned), lines
    header = gancodec.read_header(out.read_bytes())
    assert (header.width, header.height, header.channels) == (*case.size, 1 if case.mode == "L" else 3)


def test_cli_folder_in_a_real_process(corpus_dir, tmp_path):
    """The whole corpus in one command: one line per bad file, outputs for the good ones only."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "gancodec", "compress", str(corpus_dir), "-o", str(out), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("gancodec: error:")]
    bad = [c for c in CORPUS if not c.ok]
    assert len(errors) == len(bad) + 1 and errors[-1].endswith(f"{len(bad)} of {len(CORPUS)} files failed")
    for case in bad:
        assert sum(case.name in line for line in errors) == 1, case.name
    # every output keeps its source's full name (animated.gif and animated.webp never collide)
    assert {p.name for p in out.iterdir()} == {c.name + ".gcx" for c in CORPUS if c.ok}
    for case in (c for c in CORPUS if c.name in ("rotated.jpg", "animated.webp")):
        assert_looks_like(gancodec.decompress((out / f"{case.name}.gcx").read_bytes(), device="cpu"), case)


# --------------------------------------------------------------------------- validate stage


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate")
    write_corpus(root / "raw" / "odd", CORPUS)
    before = {p.name: p.read_bytes() for p in (root / "raw" / "odd").iterdir()}
    table = validate_dataset(root / "raw", root / "clean", root / "quarantine", ValidateConfig(min_side=VALIDATE_MIN_SIDE))
    with open(root / "quarantine" / "reasons.csv", newline="") as fh:
        reasons = {r["path"]: r["reason"] for r in csv.DictReader(fh)}
    return root, table.set_index("path"), reasons, before


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_validate_stage(case, validated):
    root, table, reasons, _ = validated
    rel = f"odd/{case.name}"
    row = table.loc[rel]
    assert row["status"] == case.status, (row["reason"], row["detail"], row["notes"])
    if case.status == "quarantined":
        assert row["reason"] == case.why == reasons[rel] and row["detail"]
        assert (root / "quarantine" / rel).read_bytes() == case.data  # a copy, byte for byte
        assert pd.isna(row["clean_path"])
        return
    assert rel not in reasons
    if case.why:
        assert case.why in row["notes"].split(";")
    with Image.open(row["clean_path"]) as img:  # clean files are 8-bit RGB PNGs, upright
        assert (img.format, img.mode, img.size) == ("PNG", "RGB", case.size)


def test_validate_never_deletes_or_changes_raw(validated):
    root, table, _, before = validated
    assert {p.name: p.read_bytes() for p in (root / "raw" / "odd").iterdir()} == before
    assert len(table) == len(CORPUS)


# --------------------------------------------------------------------------- bulk job


@pytest.fixture(scope="module")
def bulk_run(corpus_dir, tmp_path_factory):
    dst = tmp_path_factory.mktemp("bulk") / "out"
    summary = bulk.run_batches(str(corpus_dir), str(dst), bulk.Settings(device="cpu"), batch_size=64)
    manifest = pd.read_parquet(dst / "_gancodec" / "manifest.parquet").set_index("key")
    return dst, summary, manifest


def test_bulk_counts_and_no_temp_files(bulk_run):
    dst, summary, manifest = bulk_run
    bad = sum(not c.ok for c in CORPUS)
    assert (summary.ok, summary.failed) == (len(CORPUS) - bad, bad)
    assert set(manifest.index) == {c.name for c in CORPUS}
    assert leftovers(dst) == []


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_bulk_job(case, bulk_run, corpus_dir):
    dst, _, manifest = bulk_run
    row = manifest.loc[case.name]
    out = dst / f"{case.name}.gcx"
    if not case.ok:
        assert (row["status"], row["error_kind"]) == ("failed", "data")
        assert row["error"].startswith(str(corpus_dir / case.name))
        assert not out.exists()
        return
    assert row["status"] == "ok", row["error"]
    assert (row["width"], row["height"]) == case.size
    assert_looks_like(gancodec.decompress(out.read_bytes(), device="cpu"), case)
