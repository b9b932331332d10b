"""Split: deterministic by content, stable as data grows, near duplicates on one side."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from gancodec.data.split import assign_splits, bucket, read_previous, split_table, write_splits
from gancodec.errors import DataError

SALT = "test-salt"


def h(i) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def table(n, *, start=0, role="train", source="train", group=None, status="ok"):
    rows = [{"path": f"{source}/{i}.png", "source": source, "role": role, "sha256": h(i), "status": status,
             "near_dup_group": group, "clean_path": f"data/clean/{source}/{i}.png"} for i in range(start, start + n)]
    return pd.DataFrame(rows)


def sides(assignments):
    return dict(zip(assignments["sha256"], assignments["split"]))


def test_fraction_and_determinism():
    t = table(2000)
    a = assign_splits(t, val_fraction=0.2, salt=SALT)
    share = (a["split"] == "val").mean()
    assert 0.17 < share < 0.23
    b = assign_splits(t.sample(frac=1, random_state=1), val_fraction=0.2, salt=SALT)
    assert sides(a) == sides(b)
    assert (a["why"] == "content hash").all()


def test_adding_files_never_moves_existing_ones():
    before = sides(assign_splits(table(300), salt=SALT))
    after = sides(assign_splits(pd.concat([table(300), table(200, start=300)]), salt=SALT))
    assert {k: after[k] for k in before} == before


def test_test_sources_and_quarantine():
    t = pd.concat([table(5, role="test", source="kodak"), table(5, start=5), table(3, start=10, status="quarantined")])
    a = assign_splits(t, salt=SALT)
    assert (a[a["source"] == "kodak"]["split"] == "test").all()
    assert len(a) == 10  # quarantined files are not split
    # a train file grouped with a test file never reaches training
    t = pd.concat([table(1, role="test", source="kodak", group="g"), table(1, start=1, group="g")])
    assert list(assign_splits(t, salt=SALT).sort_values("source")["split"]) == ["test", "excluded"]


def test_near_duplicate_groups_stay_together():
    groups = pd.concat([table(4, start=10 * g, group=f"g{g}") for g in range(30)])
    a = assign_splits(groups, salt=SALT)
    per_group = a.groupby("near_dup_group")["split"].nunique()
    assert (per_group == 1).all()
    assert set(a["split"]) == {"train", "val"}  # 30 groups: both sides get some


def _find(pred, start=10_000):
    return next(i for i in range(start, start + 100_000) if pred(h(i)))


def test_previous_split_pins_a_group_that_grows():
    # A is alone in run 1; in run 2 a near duplicate B (smaller sha, other bucket) joins its group.
    a_id = _find(lambda s: s > "8")
    side_a = "val" if bucket(h(a_id), SALT) < 0.2 else "train"
    b_id = _find(lambda s: s < h(a_id) and ("val" if bucket(s, SALT) < 0.2 else "train") != side_a)
    run1 = assign_splits(table(1, start=a_id), salt=SALT)
    grown = pd.concat([table(1, start=a_id, group="g"), table(1, start=b_id, group="g")])
    without = sides(assign_splits(grown, salt=SALT))
    assert without[h(a_id)] != side_a  # content alone would move A: this is why previous exists
    pinned = assign_splits(grown, salt=SALT, previous=run1)
    assert sides(pinned) == {h(a_id): side_a, h(b_id): side_a}
    assert set(pinned["why"]) == {"pinned by previous split"}


def test_a_file_bridging_train_and_val_is_excluded():
    a_id = _find(lambda s: bucket(s, SALT) >= 0.2)  # train
    c_id = _find(lambda s: bucket(s, SALT) < 0.2)  # val
    run1 = assign_splits(pd.concat([table(1, start=a_id), table(1, start=c_id)]), salt=SALT)
    bridged = pd.concat([table(1, start=i, group="g") for i in (a_id, 7, c_id)])
    got = sides(assign_splits(bridged, salt=SALT, previous=run1))
    assert got == {h(a_id): "train", h(7): "excluded", h(c_id): "val"}


def test_stage_roundtrip_keeps_previous_unless_salt_changes(tmp_path):
    files = tmp_path / "files.csv"
    pd.concat([table(3, role="test", source="kodak"), table(40, start=3)]).to_csv(files, index=False)
    out = tmp_path / "splits"
    summary = split_table(files, out, {"val_fraction": 0.2, "salt": SALT, "profile": "ci"})
    assert summary["counts"]["test"] == 3 and sum(summary["counts"].values()) == 43
    lists = {s: pd.read_csv(out / f"{s}.csv") for s in ("train", "val", "test")}
    assert sum(len(v) for v in lists.values()) == 43
    assert list(lists["train"].columns) == ["clean_path", "sha256", "source", "path"]
    assert json.loads((out / "summary.json").read_text())["salt"] == SALT
    assert read_previous(out, val_fraction=0.2, salt=SALT) is not None
    assert read_previous(out, val_fraction=0.2, salt="other") is None
    with pytest.raises(DataError, match="unknown key"):
        split_table(files, out, {"val_fracton": 0.2})


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="lacks column"):
        assign_splits(pd.DataFrame({"path": ["a"]}))
    with pytest.raises(DataError, match="val_fraction"):
        assign_splits(table(2), val_fraction=1.5)
    with pytest.raises(DataError, match="validate stage"):
        split_table(tmp_path / "missing.csv", tmp_path / "out", {})


def test_write_splits_writes_empty_lists_too(tmp_path):
    a = assign_splits(table(2, role="test", source="kodak"), salt=SALT)
    write_splits(a, tmp_path, val_fraction=0.2, salt=SALT)
    assert pd.read_csv(tmp_path / "train.csv").empty and len(pd.read_csv(tmp_path / "test.csv")) == 2


def test_extra_tables_are_split_by_content_hash_with_the_rest(tmp_path):
    """The synthesize stage's manifest joins the split: its files land by their own hash, and
    adding them moves no photo."""
    files = tmp_path / "files.csv"
    pd.concat([table(2, role="test", source="kodak"), table(30, start=2)]).to_csv(files, index=False)
    alone = split_table(files, tmp_path / "alone", {"val_fraction": 0.2, "salt": SALT})
    extra = tmp_path / "manifest.csv"
    table(20, start=100, source="synthetic").assign(kind="ui").to_csv(extra, index=False)
    split_table(files, tmp_path / "both", {"val_fraction": 0.2, "salt": SALT}, extra=[extra])
    both = pd.read_csv(tmp_path / "both/assignments.csv", dtype=str)
    photos = pd.read_csv(tmp_path / "alone/assignments.csv", dtype=str)
    assert sides(both[both.source != "synthetic"]) == sides(photos)
    synthetic = both[both.source == "synthetic"]
    assert len(synthetic) == 20 and set(synthetic.split) == {"train", "val"}
    assert all(s == ("val" if bucket(k, SALT) < 0.2 else "train") for k, s in zip(synthetic.sha256, synthetic.split))
    assert alone["counts"]["test"] == 2
    with pytest.raises(DataError, match="run the stage that makes it"):
        split_table(files, tmp_path / "x", {}, extra=[tmp_path / "nope.csv"])
