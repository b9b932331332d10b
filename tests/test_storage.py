"""gancodec.storage: key safety, local and S3 stores (moto server), errors, S3 fault injection."""

from __future__ import annotations

import os

import pytest

from gancodec.errors import StorageError
from gancodec.storage import (
    LocalStore,
    S3Store,
    TransientStorageError,
    check_key,
    is_transient,
    open_store,
    parse_s3_url,
    safe_join,
)

BAD_KEYS = [
    "../etc/passwd",
    "a/../../b",
    "a/..",
    "./a",
    "/abs/path.png",
    "C:/windows/x.png",
    "a\\..\\b.png",
    "a\0b.png",
    "a//b.png",
    "dir/",
    "",
    "\uff0e\uff0e\uff0fescape.png",  # fullwidth "../"
    "a/\u2024\u2024/b.png",  # ONE DOT LEADER x2 -> ".." under NFKC
    "x\u202egnp.exe",  # right-to-left override
    "zero\u200bwidth.png",
    "line\nbreak.png",
    "a\ud800b.png",  # lone surrogate
    "k" * 1025,
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: ascii(k)[:30])
def test_bad_keys_are_refused_with_the_key_named(key, tmp_path):
    with pytest.raises(StorageError) as info:
        check_key(key)
    assert "refused key" in str(info.value)
    with pytest.raises(StorageError):
        safe_join(tmp_path, key)
    with pytest.raises(StorageError):
        safe_join("s3://bucket/prefix", key)


@pytest.mark.parametrize("key", ["a.png", "dir/sub/b.JPG", "caf\u00e9/\u65e5\u672c.png", "a..b.png", "...png", "sp ace/x.png"])
def test_good_keys_pass(key, tmp_path):
    assert check_key(key) == key
    joined = safe_join(tmp_path, key)
    assert joined.startswith(os.path.realpath(tmp_path) + os.sep)
    assert safe_join("s3://bkt/pre/", key) == f"s3://bkt/pre/{key}"
    assert safe_join("s3://bkt", key) == f"s3://bkt/{key}"


def test_non_string_key_refused():
    with pytest.raises(StorageError):
        check_key(b"a.png")  # type: ignore[arg-type]


def test_safe_join_refuses_a_symlink_out_of_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(StorageError, match="resolves outside"):
        safe_join(root, "link/x.gcx")


def test_parse_s3_url():
    assert parse_s3_url("s3://bkt") == ("bkt", "")
    assert parse_s3_url("s3://bkt/a/b/") == ("bkt", "a/b/")
    for bad in ("s3://", "s3://UPPER/x", "http://bkt/x", "s3://bkt/../x"):
        with pytest.raises(StorageError):
            parse_s3_url(bad)


def test_open_store_dispatch(tmp_path):
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    assert isinstance(open_store("s3://bkt/p"), S3Store)
    with pytest.raises(StorageError, match="scheme"):
        open_store("gs://bkt/p")


def test_local_store_round_trip(tmp_path):
    store = LocalStore(tmp_path)
    info = store.put("a/b/c.bin", b"hello")
    assert info.size == 5 and info.etag
    assert store.get("a/b/c.bin") == b"hello"
    assert store.head("a/b/c.bin").etag == info.etag
    assert store.head("a/missing") is None and not store.exists("a/missing")
    store.put("z.bin", b"1")
    (tmp_path / "a" / ".c.bin.x1.part").write_bytes(b"partial")  # an interrupted write
    (tmp_path / "a" / "gone.bin").symlink_to(tmp_path / "nothing")  # a broken link is no object
    store.put("a-b.bin", b"2")  # S3's order: "a-b.bin" before "a/..." ("-" < "/")
    assert [o.key for o in store.list()] == ["a-b.bin", "a/b/c.bin", "z.bin"]
    store.delete("a-b.bin")
    assert [o.key for o in store.list("a")] == ["a/b/c.bin"]
    assert list(store.list("nope")) == []
    with pytest.raises(StorageError, match="no such file"):
        store.get("a/missing")
    with pytest.raises(StorageError, match="refused key"):
        store.put("../escape.bin", b"x")
    store.delete("z.bin")
    store.delete("z.bin")
    assert not store.exists("z.bin")
    with pytest.raises(StorageError, match="no such folder"):
        list(LocalStore(tmp_path / "absent").list())


def test_s3_store_round_trip_and_pagination(s3_url, s3_client, s3_bucket):
    store = S3Store(s3_url + "pre", page_size=2)
    keys = [f"d{i % 2}/k{i}.bin" for i in range(7)]
    for i, key in enumerate(keys):
        store.put(key, bytes([i]) * (i + 1), metadata={"source-etag": f"e{i}"})
    s3_client.put_object(Bucket=s3_bucket, Key="other/x.bin", Body=b"not under the prefix")
    listed = list(store.list())
    assert sorted(o.key for o in listed) == sorted(keys)
    assert all(o.etag and o.size for o in listed)
    assert sorted(o.key for o in store.list("d1")) == sorted(k for k in keys if k.startswith("d1/"))
    head = store.head(keys[3])
    assert head.size == 4 and head.metadata == {"source-etag": "e3"}
    assert store.get(keys[3]) == bytes([3]) * 4
    assert store.head("d0/missing") is None
    with pytest.raises(StorageError, match=r"s3://.*/pre/d0/missing: no such object"):
        store.get("d0/missing")
    with pytest.raises(StorageError, match="refused key"):
        store.get("../other/x.bin")
    store.delete(keys[0])
    assert not store.exists(keys[0])


def test_s3_missing_bucket_names_the_fix(moto_server):
    with pytest.raises(StorageError, match="does not exist; create it"):
        list(S3Store("s3://no-such-bucket-here/p").list())


def test_s3_faults_are_absorbed_by_botocore_retries(s3_url, monkeypatch):
    store = S3Store(s3_url)
    monkeypatch.setenv("GANCODEC_FAULT_S3", "0.3")
    monkeypatch.setenv("GANCODEC_FAULT_SEED", "7")
    retried = []
    store.client.meta.events.register(
        "after-call.s3", lambda parsed=None, **_: retried.append(parsed.get("ResponseMetadata", {}).get("RetryAttempts", 0))
    )
    for i in range(12):
        store.put(f"k{i}", b"x" * i)
    assert [store.get(f"k{i}") for i in range(12)] == [b"x" * i for i in range(12)]
    assert len(list(store.list())) == 12
    assert sum(retried) > 0, "no request was retried: the fault hook is not on the client"


def test_s3_persistent_faults_become_transient_storage_errors(s3_url, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    store = S3Store(s3_url)
    monkeypatch.setenv("GANCODEC_FAULT_S3", "1")
    with pytest.raises(TransientStorageError) as info:
        store.put("a.bin", b"x")
    assert "a.bin" in str(info.value) and is_transient(info.value)
    monkeypatch.setenv("GANCODEC_FAULT_S3", "0")
    assert not store.exists("a.bin")


def test_bad_fault_rate_is_named(monkeypatch):
    from gancodec.faults import fault_rate

    monkeypatch.setenv("GANCODEC_FAULT_S3", "lots")
    with pytest.raises(ValueError, match="GANCODEC_FAULT_S3"):
        fault_rate("S3")
    monkeypatch.setenv("GANCODEC_FAULT_S3", "1.5")
    with pytest.raises(ValueError, match="outside"):
        fault_rate("S3")
