"""Train/val/test lists from the validate table: deterministic by content, stable as data grows.

* Files of a ``test``-role source (Kodak) are the test set, whatever their hash.
* Every other usable file goes to ``val`` when ``bucket(sha256)`` (a salted sha256 mapped to
  [0, 1)) is below ``val_fraction``, else to ``train``. The side depends on the file's bytes
  only, so adding files never moves an existing one, and a renamed file keeps its side.
* A near-duplicate group (``near_dup_group`` from validate) is one unit: it goes where its
  smallest-sha256 member's bucket says, so no near duplicate crosses the split.
* Groups are the one place where content alone cannot promise stability: a new file can join
  a group whose members sit on the other side of its own bucket, or link two groups. So the
  previous ``assignments.csv`` (kept by DVC with ``persist: true``) pins earlier decisions:
  a unit with previously assigned members stays where they are, and a new file that would
  join members on both sides is ``excluded`` (listed, with why) rather than move anything.
  Previous pins count only when they were made with the same ``salt`` and ``val_fraction``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from ..errors import DataError
from ..fsutil import atomic_write_bytes, atomic_write_path

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
ASSIGNMENT_COLUMNS = ("path", "source", "sha256", "clean_path", "near_dup_group", "split", "why")
LIST_COLUMNS = ("clean_path", "sha256", "source", "path")
REQUIRED = ("path", "source", "role", "sha256", "status", "near_dup_group", "clean_path")


def bucket(sha256: str, salt: str) -> float:
    """Map a file's sha256 to [0, 1), uniformly and reproducibly (salted so it can be reshuffled)."""
    return int(hashlib.sha256(f"{salt}:{sha256}".encode()).hexdigest()[:16], 16) / 2**64


def assign_splits(
    table: pd.DataFrame,
    *,
    val_fraction: float = 0.2,
    salt: str = "gancodec-split-v1",
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per usable file of the validate ``table``: its split and why (see module doc)."""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DataError(f"split: the validate table lacks column(s) {missing}")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"params: split.val_fraction={val_fraction} must be in [0, 1)")
    usable = table[table["status"] != "quarantined"].reset_index(drop=True)
    pinned: dict[str, str] = {}
    if previous is not None and len(previous):
        pinned = {r.sha256: r.split for r in previous.itertuples() if r.split in ("train", "val")}
    unit = usable["near_dup_group"].where(usable["near_dup_group"].notna(), "sha:" + usable["sha256"])
    split: dict[Any, str] = {}
    why: dict[Any, str] = {}
    for _, members in usable.groupby(unit, sort=True):
        tests = members[members["role"] == "test"]
        others = members[members["role"] != "test"]
        for i in tests.index:
            split[i], why[i] = "test", "test source"
        if others.empty:
            continue
        if not tests.empty:  # validate quarantines these; kept as a guard against test leakage
            for i in others.index:
                split[i], why[i] = "excluded", "near duplicate of a test file"
            continue
        sides = {pinned[s] for s in others["sha256"] if s in pinned}
        if len(sides) == 1:
            side, reason = sides.pop(), "pinned by previous split"
        elif len(sides) == 2:
            for i, s in zip(others.index, others["sha256"]):
                if s in pinned:
                    split[i], why[i] = pinned[s], "pinned by previous split"
                else:
                    split[i], why[i] = "excluded", "would join near duplicates on both train and val"
            continue
        else:
            key = min(others["sha256"])
            side = "val" if bucket(key, salt) < val_fraction else "train"
            reason = "content hash" if len(others) == 1 else "content hash of near-duplicate group"
        for i in others.index:
            split[i], why[i] = side, reason
    usable["split"] = pd.Series(split)
    usable["why"] = pd.Series(why)
    out = usable.loc[:, list(ASSIGNMENT_COLUMNS)].sort_values(["split", "source", "path"]).reset_index(drop=True)
    return out


def read_previous(out_dir: str | os.PathLike, *, val_fraction: float, salt: str) -> pd.DataFrame | None:
    """The assignments of an earlier run in ``out_dir``, if made with the same salt and fraction."""
    out = Path(out_dir)
    if not (out / "assignments.csv").is_file() or not (out / "summary.json").is_file():
        return None
    try:
        summary = json.loads((out / "summary.json").read_text())
        previous = pd.read_csv(out / "assignments.csv", dtype=str)
    except (OSError, ValueError) as exc:
        raise DataError(f"{out}: cannot read the previous split ({exc}); delete the folder to split afresh") from None
    if summary.get("salt") != salt or summary.get("val_fraction") != val_fraction:
        log.warning("split: salt or val_fraction changed; the previous assignments are not kept")
        return None
    return previous


def write_splits(assignments: pd.DataFrame, out_dir: str | os.PathLike, *, val_fraction: float, salt: str) -> dict[str, Any]:
    """Write ``train.csv``, ``val.csv``, ``test.csv``, ``assignments.csv`` and ``summary.json``."""
    out = Path(out_dir)
    for name in SPLITS:
        rows = assignments[assignments["split"] == name].loc[:, list(LIST_COLUMNS)]
        with atomic_write_path(out / f"{name}.csv") as tmp:
            rows.to_csv(tmp, index=False)
    with atomic_write_path(out / "assignments.csv") as tmp:
        assignments.to_csv(tmp, index=False)
    counts = {k: int(v) for k, v in assignments["split"].value_counts().items()}
    summary = {"salt": salt, "val_fraction": val_fraction, "counts": counts}
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
    return summary


def split_table(table_csv: str | os.PathLike, out_dir: str | os.PathLike, cfg: Mapping[str, Any],
                extra: Sequence[str | os.PathLike] = ()) -> dict[str, Any]:
    """The split stage: read validate's ``files.csv`` (and ``extra`` tables with the same
    columns, e.g. the synthesize stage's manifest), honour the previous split, write lists."""
    known = {"val_fraction", "salt", "profile"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise DataError(f"params: split has unknown key(s) {unknown}; valid keys: {sorted(known - {'profile'})}")
    val_fraction, salt = float(cfg.get("val_fraction", 0.2)), str(cfg.get("salt", "gancodec-split-v1"))
    try:
        table = pd.read_csv(table_csv, dtype={"sha256": str, "near_dup_group": str})
    except OSError as exc:
        raise DataError(f"{table_csv}: cannot read the validate table ({exc.strerror or exc}); run the validate stage first") from None
    for path in extra:
        try:
            more = pd.read_csv(path, dtype={"sha256": str, "near_dup_group": str})
        except OSError as exc:
            raise DataError(f"{path}: cannot read this extra table ({exc.strerror or exc}); run the stage that makes it") from None
        table = pd.concat([table, more.loc[:, [c for c in more.columns if c in REQUIRED]]], ignore_index=True)
    previous = read_previous(out_dir, val_fraction=val_fraction, salt=salt)
    assignments = assign_splits(table, val_fraction=val_fraction, salt=salt, previous=previous)
    return write_splits(assignments, out_dir, val_fraction=val_fraction, salt=salt)
