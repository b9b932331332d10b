"""Object keys that cannot escape their destination: one check for folders and buckets.

:func:`check_key` refuses every key that could reach outside the output folder or bucket
prefix (``../``, absolute paths, backslashes, NUL, control or invisible characters, look-alike
characters that normalise to ``.`` or ``/``); :func:`safe_join` joins a checked key under a root.
:mod:`gancodec.storage` applies them to every read and write.
"""

from __future__ import annotations

import os
import re
import unicodedata

from .errors import StorageError

__all__ = ["MAX_KEY_BYTES", "check_key", "join_key", "parse_s3_url", "safe_join"]

#: S3's own limit on key length, in UTF-8 bytes; applied to local stores too.
MAX_KEY_BYTES = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


def _refuse(key: object, why: str) -> StorageError:
    return StorageError(f"refused key {key!r}: {why}; rename the object to a plain relative key such as 'folder/name.png'")


def _check_segments(key: str, original: str, label: str) -> None:
    if "\\" in key:
        raise _refuse(original, f"{label}contains a backslash")
    if key.startswith("/") or _DRIVE.match(key):
        raise _refuse(original, f"{label}is an absolute path")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            what = "an empty segment ('//' or a trailing '/')" if part == "" else f"a '{part}' segment"
            raise _refuse(original, f"{label}has {what}")


def check_key(key: object) -> str:
    """Return ``key`` if it is a safe relative object key, else raise :class:`StorageError`.

    Refused: non-strings, empty keys, keys over 1024 UTF-8 bytes or not encodable, NUL and
    other control or invisible (format) characters, backslashes, absolute paths and drive
    letters, empty / ``.`` / ``..`` segments, and keys whose NFKC form (what a normalising
    file system or tool may turn them into) has any of those, e.g. fullwidth ``．．／``.
    """
    if not isinstance(key, str):
        raise _refuse(key, f"a key must be a str, not {type(key).__name__}")
    if not key:
        raise _refuse(key, "the key is empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise _refuse(key, "it holds a lone surrogate (not valid UTF-8)") from None
    if size > MAX_KEY_BYTES:
        raise _refuse(key, f"it is {size} bytes long (S3 allows {MAX_KEY_BYTES})")
    for ch in key:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            name = "NUL" if ch == "\0" else f"U+{ord(ch):04X}"
            raise _refuse(key, f"it holds a control or invisible character ({name})")
    _check_segments(key, key, "")
    folded = unicodedata.normalize("NFKC", key)
    if folded != key:
        if folded.count("/") != key.count("/"):
            raise _refuse(key, "it holds a character that normalises to '/'")
        _check_segments(folded, key, "its NFKC form ")
    return key


def join_key(prefix: str, key: str) -> str:
    """``prefix`` + ``/`` + ``key`` for object keys (prefix may be empty or end in ``/``)."""
    if not prefix:
        return key
    return prefix if not key else (prefix.rstrip("/") + "/" + key)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix/")`` (prefix ``""`` for the bucket root)."""
    if not url.startswith("s3://"):
        raise StorageError(f"{url}: not an s3:// URL; write it as s3://bucket/prefix")
    rest = url[5:]
    bucket, _, prefix = rest.partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{1,253}[a-z0-9]", bucket or ""):
        raise StorageError(f"{url}: {bucket!r} is not a valid bucket name; write the URL as s3://bucket/prefix")
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
        prefix += "/"
    return bucket, prefix


def safe_join(dest_root: str | os.PathLike, key: str) -> str:
    """Join ``key`` under ``dest_root`` (a folder or ``s3://bucket/prefix``) so it cannot escape it.

    Raises :class:`StorageError` naming the key when it is unsafe (see :func:`check_key`), or
    when a local destination would resolve outside the root (e.g. through a symlink).
    """
    check_key(key)
    root = os.fspath(dest_root)
    if root.startswith("s3://"):
        bucket, prefix = parse_s3_url(root)
        return f"s3://{bucket}/{join_key(prefix, key)}"
    base = os.path.realpath(root)
    joined = os.path.join(base, *key.split("/"))
    resolved = os.path.realpath(joined)
    if os.path.commonpath([base, resolved]) != base:
        raise _refuse(key, f"it resolves outside {root} (through a symlink?)")
    return joined
