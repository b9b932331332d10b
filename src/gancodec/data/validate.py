"""Checking every raw file, normalising the good ones and quarantining the bad ones.

Each file is decoded in full by Pillow *and* OpenCV (``cv2.imdecode`` returns None silently on
a truncated JPEG, and Pillow's ``verify()`` passes one, so only full decodes by both are
trusted). The facts go into one pandas table, one row per input file, checked by the Great
Expectations suite in ``expectations/validate_suite.json``. Nothing is dropped silently: every
file under the raw folder gets a row and one status:

``ok``
    8-bit RGB, right extension, no EXIF rotation: copied byte for byte to the clean folder.
``converted``
    usable after a lossless-in-spirit fix, written as 8-bit RGB PNG; ``notes`` says what was
    done: ``grayscale`` (replicated to RGB), ``palette``, ``cmyk``, ``16bit`` (reduced to 8
    bits), ``alpha_opaque`` (a fully opaque alpha channel dropped), ``exif_rotated`` (the
    orientation applied), ``animated`` (the first frame kept), ``wrong_extension`` (content
    type differs from the suffix), ``mode_<M>`` (another Pillow mode converted to RGB),
    ``near_duplicate`` (kept, grouped).
``quarantined``
    unusable; copied (never moved: raw is DVC-managed) to the quarantine folder and listed in
    ``reasons.csv``. ``reason`` is one of :data:`QUARANTINE_REASONS`.

Exact duplicates (same sha256) keep one copy (a test-role file first, then by path); near
duplicates (a difference hash of a downscaled grayscale image within ``near_dup_max_hamming``
bits) are kept and share a ``near_dup_group`` so the split puts them on one side, except that
a train file close to a test file is quarantined (it would leak the test set into training).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..fsutil import atomic_write_bytes, atomic_write_path
from .download import MANIFEST, read_manifest
from .imageio import DEFAULT_MAX_PIXELS, load_image

STATUSES = ("ok", "converted", "quarantined")
QUARANTINE_REASONS = (
    "zero_byte",  # empty file
    "not_an_image",  # neither Pillow nor OpenCV recognise the content
    "truncated",  # recognised, but a full decode fails in Pillow or OpenCV
    "decoder_disagreement",  # Pillow and OpenCV decode different sizes
    "too_large",  # more pixels than max_pixels (decompression-bomb guard)
    "too_small",  # shorter side below min_side
    "transparent_alpha",  # alpha with real transparency: the colour under it is undefined
    "duplicate",  # byte-identical to a file kept elsewhere
    "near_duplicate_of_test",  # a train file close to a test file (would leak the test set)
)
NOTES = ("grayscale", "palette", "cmyk", "16bit", "alpha_opaque", "exif_rotated", "animated", "wrong_extension",
         "near_duplicate")
COLUMNS = (
    "source", "role", "path", "sha256", "bytes", "suffix", "content_type", "format", "width", "height",
    "mode", "bit_depth", "channels", "exif_orientation", "dhash", "near_dup_group", "status", "reason",
    "detail", "notes", "clean_path",
)
SUITE = "validate_suite.json"

# magic bytes -> content type; suffix -> content type
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
          (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"BM", "bmp"))
_SUFFIX = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".gif": "gif", ".tif": "tiff",
           ".tiff": "tiff", ".bmp": "bmp", ".webp": "webp"}
_CV2_FORMATS = {"png", "jpeg", "tiff", "bmp", "webp"}  # formats OpenCV must decode too


@dataclass(frozen=True)
class ValidateConfig:
    """The ``validate`` section of params.yaml."""

    min_side: int = 256
    max_pixels: int = DEFAULT_MAX_PIXELS
    dhash_size: int = 16  # a 16x16 = 256-bit difference hash
    near_dup_max_hamming: int = 36  # bits; see docs/pipeline.md for the measurement behind it

    @classmethod
    def from_params(cls, cfg: Mapping[str, Any]) -> "ValidateConfig":
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(cfg) - known - {"profile"})
        if extra:
            raise DataError(f"params: validate has unknown key(s) {extra}; valid keys: {sorted(known)}")
        return cls(**{k: int(v) for k, v in cfg.items() if k in known})


def sniff(data: bytes) -> str | None:
    """The content type told by the first bytes, or None if it is no image format we know."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def dhash(rgb: np.ndarray, size: int = 16) -> np.ndarray:
    """Difference hash: signs of horizontal gradients of a (size+1)x(size) grayscale thumbnail."""
    gray = Image.fromarray(rgb).convert("L").resize((size + 1, size), Image.Resampling.BOX)
    g = np.asarray(gray, dtype=np.int16)
    return (g[:, 1:] > g[:, :-1]).ravel()


def _bit_depth(arr: np.ndarray | None, mode: str) -> int:
    if arr is not None:
        return int(arr.dtype.itemsize * 8)
    return 16 if mode.startswith("I;16") else 32 if mode in ("I", "F") else 1 if mode == "1" else 8


def inspect(data: bytes, name: str, cfg: ValidateConfig) -> tuple[dict[str, Any], np.ndarray | None]:
    """Facts about one file's bytes, and its 8-bit RGB pixels when usable.

    Returns (row, rgb): ``row`` has the per-file columns (``reason`` set when the file must be
    quarantined, ``notes`` listing the conversions); ``rgb`` is None for a quarantined file.
    """
    suffix = Path(name).suffix.lower()
    row: dict[str, Any] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "suffix": suffix,
                           "content_type": sniff(data), "format": None, "width": None, "height": None,
                           "mode": None, "bit_depth": None, "channels": None, "exif_orientation": None,
                           "reason": None, "detail": None}
    notes: list[str] = []
    row["notes"] = notes

    def bad(reason: str, detail: str) -> tuple[dict[str, Any], None]:
        row["reason"], row["detail"] = reason, detail
        return row, None

    if not data:
        return bad("zero_byte", "file is empty")
    import cv2

    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV asserts on a header declaring over CV_IO_MAX_IMAGE_PIXELS
        arr = None
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if arr is not None:
            return bad("decoder_disagreement", f"OpenCV decodes it ({arr.shape}) but Pillow does not recognise it")
        return bad("not_an_image", f"neither Pillow nor OpenCV recognise the content (starts {data[:8]!r})")
    except Image.DecompressionBombError as exc:
        return bad("too_large", f"Pillow refuses to open it ({exc})")
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # e.g. WebP decodes on open
        return bad("truncated", f"Pillow cannot open it ({exc})")
    with img:
        fmt = (img.format or "").lower()
        row.update(format=fmt, width=img.size[0], height=img.size[1], mode=img.mode)
        content = row["content_type"] or fmt
        if _SUFFIX.get(suffix) != content:
            notes.append("wrong_extension")
        if img.size[0] * img.size[1] > cfg.max_pixels:
            return bad("too_large", f"{img.size[0]}x{img.size[1]} exceeds max_pixels={cfg.max_pixels}")
        try:
            orientation = img.getexif().get(0x0112)
        except Exception:
            orientation = None
        row["exif_orientation"] = int(orientation) if isinstance(orientation, int) else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
        except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... on broken data
            return bad("truncated", f"Pillow cannot decode it in full ({exc})")
        if arr is None and fmt in _CV2_FORMATS:
            return bad("truncated", "OpenCV cannot decode it (Pillow can): the data is truncated or corrupt")
        if arr is not None and arr.shape[:2] != (img.size[1], img.size[0]):
            return bad("decoder_disagreement", f"Pillow reads {img.size[0]}x{img.size[1]}, OpenCV {arr.shape[1]}x{arr.shape[0]}")
        row["bit_depth"] = _bit_depth(arr, img.mode)
        row["channels"] = int(arr.shape[2]) if arr is not None and arr.ndim == 3 else len(img.getbands())
        mode = img.mode
        if min(img.size) < cfg.min_side:
            return bad("too_small", f"{img.size[0]}x{img.size[1]}: shorter side below min_side={cfg.min_side}")
        has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
        if has_alpha:
            alpha = np.asarray(img.convert("RGBA"))[:, :, 3]
            if alpha.min() < 255:
                return bad("transparent_alpha", f"{mode} with {(alpha < 255).mean():.1%} non-opaque pixels")
            notes.append("alpha_opaque")
        if mode.startswith("P"):
            notes.append("palette")
        elif mode in ("L", "1", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"):
            notes.append("grayscale")
        elif mode == "CMYK":
            notes.append("cmyk")
        elif mode not in ("RGB", "RGBA", "RGBa"):
            notes.append(f"mode_{mode}")
        if row["bit_depth"] > 8:
            notes.append("16bit" if row["bit_depth"] == 16 else f"{row['bit_depth']}bit")
        if row["exif_orientation"] not in (None, 1):
            notes.append("exif_rotated")
        if getattr(img, "n_frames", 1) > 1:
            notes.append("animated")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # conversions are recorded in notes
            rgb = load_image(img, max_pixels=cfg.max_pixels)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return row, rgb


def _raw_files(raw_dir: Path) -> list[Path]:
    files = [p for p in raw_dir.rglob("*") if p.is_file() or p.is_symlink()]
    return sorted(p for p in files if p.relative_to(raw_dir).as_posix() != MANIFEST)


def _roles(raw_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> role, source -> role) from the download manifest, if there is one."""
    if not (raw_dir / MANIFEST).is_file():
        return {}, {}
    rows = read_manifest(raw_dir / MANIFEST)
    return {f"{r['source']}/{r['file']}": r["role"] for r in rows}, {r["source"]: r["role"] for r in rows}


def _union_find_groups(keys: list[str], hashes: np.ndarray, max_hamming: int) -> dict[int, int]:
    """Index -> representative index, joining every pair within max_hamming bits."""
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if len(keys) > 1:
        packed = np.packbits(hashes, axis=1)
        for i in range(len(keys) - 1):  # O(n^2) in vectorised rows: ~1 s for 10^4 files
            dist = np.unpackbits(packed[i] ^ packed[i + 1:], axis=1).sum(axis=1)
            for j in np.nonzero(dist <= max_hamming)[0]:
                a, b = find(i), find(i + 1 + int(j))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {i: find(i) for i in range(len(keys))}


def validate_dataset(
    raw_dir: str | os.PathLike,
    clean_dir: str | os.PathLike,
    quarantine_dir: str | os.PathLike,
    cfg: ValidateConfig = ValidateConfig(),
    *,
    check: bool = True,
) -> pd.DataFrame:
    """Inspect every file under ``raw_dir/<source>/``; write clean PNGs and the quarantine.

    Returns the per-file table (columns :data:`COLUMNS`). With ``check``, the table is
    validated by the Great Expectations suite and a failure raises :class:`DataError`.
    """
    raw, clean, quarantine = Path(raw_dir), Path(clean_dir), Path(quarantine_dir)
    if not raw.is_dir():
        raise DataError(f"{raw}: no raw data folder; run the download stage first")
    path_roles, source_roles = _roles(raw)
    rows: list[dict[str, Any]] = []
    pixels: dict[int, np.ndarray] = {}
    for file in _raw_files(raw):
        rel = file.relative_to(raw).as_posix()
        source = rel.split("/", 1)[0] if "/" in rel else ""
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise DataError(f"{file}: cannot read ({exc.strerror or exc})") from None
        row, rgb = inspect(data, rel, cfg)
        row.update(source=source, path=rel, role=path_roles.get(rel) or source_roles.get(source, "train"))
        if rgb is not None:
            pixels[len(rows)] = rgb
            row["dhash"] = np.packbits(dhash(rgb, cfg.dhash_size)).tobytes().hex()
        rows.append(row)

    _mark_duplicates(rows, cfg)

    used: set[str] = set()
    reasons = []
    for i, row in enumerate(rows):
        notes = row.pop("notes")
        row["notes"] = ";".join(notes) if notes else None
        row["clean_path"] = None
        row.setdefault("dhash", None)
        row.setdefault("near_dup_group", None)
        if row["reason"] is not None:
            row["status"] = "quarantined"
            dest = quarantine / row["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(raw / row["path"], dest)
            reasons.append({"path": row["path"], "sha256": row["sha256"], "reason": row["reason"], "detail": row["detail"]})
            continue
        # clean name: the raw name, with ".png" appended unless it already ends so
        name = row["path"] if row["path"].lower().endswith(".png") else row["path"] + ".png"
        if name in used:
            name = f"{name[:-4]}.{row['sha256'][:8]}.png"
        used.add(name)
        out = clean / name
        real_notes = [n for n in notes if n != "near_duplicate"]
        row["status"] = "converted" if real_notes else "ok"
        if row["status"] == "ok" and row["content_type"] == "png" and row["bit_depth"] == 8 and row["mode"] == "RGB":
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(raw / row["path"], out)
        else:
            _save_png(pixels[i], out)
        row["clean_path"] = out.as_posix()
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("bytes", "width", "height", "bit_depth", "channels", "exif_orientation"):
        table[col] = table[col].astype("Int64")
    _write_reasons(reasons, quarantine / "reasons.csv")
    if check:
        check_table(table, cfg)
    return table


def _save_png(rgb: np.ndarray, path: Path) -> None:
    with atomic_write_path(path) as tmp:
        Image.fromarray(rgb, "RGB").save(tmp, format="PNG", compress_level=6)


def _mark_duplicates(rows: list[dict[str, Any]], cfg: ValidateConfig) -> None:
    """Quarantine exact duplicates; group near duplicates; quarantine train files near test ones."""
    order = sorted((i for i, r in enumerate(rows) if r["reason"] is None),
                   key=lambda i: (rows[i]["role"] != "test", rows[i]["path"]))
    kept: dict[str, int] = {}
    for i in order:
        first = kept.setdefault(rows[i]["sha256"], i)
        if first != i:
            rows[i]["reason"], rows[i]["detail"] = "duplicate", f"byte-identical to {rows[first]['path']}"
    live = [i for i in order if rows[i]["reason"] is None]
    if not live:
        return
    hashes = np.stack([np.unpackbits(np.frombuffer(bytes.fromhex(rows[i]["dhash"]), np.uint8)) for i in live])
    rep = _union_find_groups([rows[i]["path"] for i in live], hashes, cfg.near_dup_max_hamming)
    groups: dict[int, list[int]] = {}
    for k, i in enumerate(live):
        groups.setdefault(rep[k], []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        group_id = min(rows[i]["sha256"] for i in members)[:16]
        tests = [i for i in members if rows[i]["role"] == "test"]
        for i in members:
            rows[i]["near_dup_group"] = group_id
            if tests and rows[i]["role"] != "test":
                rows[i]["reason"] = "near_duplicate_of_test"
                rows[i]["detail"] = f"looks like test file {rows[tests[0]]['path']} (dHash within {cfg.near_dup_max_hamming} bits)"
            else:
                rows[i]["notes"].append("near_duplicate")


def _write_reasons(reasons: list[dict[str, Any]], path: Path) -> None:
    with atomic_write_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "sha256", "reason", "detail"])
        writer.writeheader()
        writer.writerows(reasons)


# --------------------------------------------------------------------------- expectations


def load_suite() -> dict[str, Any]:
    """The Great Expectations suite (JSON) kept beside this module."""
    return json.loads(resources.files(__package__).joinpath("expectations", SUITE).read_text())


def check_table(table: pd.DataFrame, cfg: ValidateConfig) -> dict[str, Any]:
    """Validate ``table`` with the repo's GX suite (ephemeral, offline); raise on failure.

    Returns a JSON-able summary: success, counts, and each expectation's outcome.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = context.data_sources.add_pandas("validate").add_dataframe_asset("files").add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(**load_suite()))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name="validate_files", data=batch_def, suite=suite))
    params = {"min_side": cfg.min_side, "statuses": list(STATUSES), "reasons": list(QUARANTINE_REASONS)}
    # GX reads pandas' nullable NA poorly in some expectations; hand it plain objects.
    frame = table.astype(object).where(table.notna(), None)
    result = definition.run(batch_parameters={"dataframe": frame}, expectation_parameters=params)
    outcomes = []
    for r in result.results:
        kwargs = r.expectation_config.kwargs
        outcomes.append({"expectation": r.expectation_config.type, "column": kwargs.get("column"),
                         "success": bool(r.success), "unexpected": (r.result or {}).get("partial_unexpected_list")})
    summary = {"success": bool(result.success), "files": len(table),
               "status_counts": {k: int(v) for k, v in table["status"].value_counts().items()}, "expectations": outcomes}
    if not result.success:
        failed = [f"{o['expectation']}({o['column']}): {o['unexpected']}" for o in outcomes if not o["success"]]
        raise DataError(f"validate: the file table fails {len(failed)} expectation(s): " + "; ".join(failed))
    return summary


def write_table(table: pd.DataFrame, out_dir: str | os.PathLike, summary: Mapping[str, Any] | None = None) -> None:
    """Write ``files.csv`` (and ``summary.json``) into ``out_dir``."""
    out = Path(out_dir)
    with atomic_write_path(out / "files.csv") as tmp:
        table.to_csv(tmp, index=False)
    if summary is not None:
        atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())

