"""Fetching the raw datasets named in ``params.yaml``: mirror first, then the real URLs.

A *source* is a named folder of files, each pinned by its sha256 (the content of a
``SHA256SUMS`` manifest, written inline in params)::

    kodak:
      role: test                  # test | train
      license: Kodak, unrestricted usage
      url: http://r0k.us/graphics/kodak/kodak/    # base: file URL = url + name
      files: {kodim01.png: a56e27cb..., ...}

or, where the public copy is a zip archive::

    clic2025_valid:
      archive: {url: https://.../clic2025_image_validation.zip, sha256: null}
      files: {097cb426....png: 7995fc6c..., ...}   # members picked by base name

A ``mirror`` (a local folder or an ``s3://bucket/prefix``) holding ``<source>/<name>`` is
tried first for every file; only files it lacks are fetched from ``url``/``archive``. So an
offline machine with ``../shared/datasets`` and a user with internet run the same stage.

Every file is verified against its sha256; a mismatch raises :class:`DataError` naming the
file, the expected and the actual hash. A file pinned to ``null`` (e.g. DIV2K, whose hashes
we have not seen) is accepted with a warning and its hash is recorded in the manifest.

HTTP downloads are resumable: bytes go to ``<dest>.part`` and a retry (or the next run)
asks for the rest with a ``Range`` header; the finished file is renamed into place.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import DataError, StorageError
from ..fsutil import atomic_write_path

log = logging.getLogger(__name__)

ROLES = ("test", "train")
CHUNK = 1 << 20
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("source", "role", "file", "sha256", "bytes", "origin", "license")


@dataclass(frozen=True)
class Archive:
    """A zip archive that carries a source's files (members matched by base name)."""

    url: str
    sha256: str | None = None


@dataclass(frozen=True)
class Source:
    """A named set of files, each pinned by sha256 (``None``: not pinned yet)."""

    name: str
    role: str
    files: Mapping[str, str | None]
    license: str = ""
    url: str | None = None
    archive: Archive | None = None
    notes: str = ""


def parse_sha256sums(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hash>  <name>`` or ``<hash> *<name>``) into {name: hash}."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if len(digest) != 64 or not name or any(c not in "0123456789abcdef" for c in digest.lower()):
            raise DataError(f"SHA256SUMS line {lineno}: {line!r} is not '<64 hex digits>  <file name>'")
        out[name] = digest.lower()
    return out


def parse_sources(cfg: Mapping[str, Any]) -> dict[str, Source]:
    """Build :class:`Source` objects from the ``download.sources`` mapping of params."""
    sources: dict[str, Source] = {}
    known = {"role", "license", "url", "archive", "files", "notes"}
    for name, spec in (cfg or {}).items():
        if not isinstance(spec, Mapping):
            raise DataError(f"params: download.sources.{name} must be a mapping")
        unknown = sorted(set(spec) - known)
        if unknown:
            raise DataError(f"params: download.sources.{name} has unknown key(s) {unknown}; valid keys: {sorted(known)}")
        role = spec.get("role")
        if role not in ROLES:
            raise DataError(f"params: download.sources.{name}.role is {role!r}; use one of {', '.join(ROLES)}")
        files = spec.get("files") or {}
        if not isinstance(files, Mapping):
            raise DataError(f"params: download.sources.{name}.files must map file name -> sha256 (or null)")
        for fname, digest in files.items():
            if "/" in fname or "\\" in fname or fname in ("", ".", ".."):
                raise DataError(f"params: download.sources.{name}.files: {fname!r} must be a plain file name")
            if digest is not None and (not isinstance(digest, str) or len(digest) != 64):
                raise DataError(f"params: download.sources.{name}.files.{fname}: {digest!r} is not a sha256 (64 hex digits) or null")
        archive = spec.get("archive")
        if archive is not None:
            if not isinstance(archive, Mapping) or "url" not in archive:
                raise DataError(f"params: download.sources.{name}.archive needs a url (and optionally sha256)")
            archive = Archive(url=str(archive["url"]), sha256=archive.get("sha256"))
        sources[name] = Source(
            name=name,
            role=role,
            files={k: (v.lower() if v else None) for k, v in files.items()},
            license=str(spec.get("license", "")),
            url=spec.get("url"),
            archive=archive,
            notes=str(spec.get("notes", "")),
        )
    return sources


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, expected: str | None, what: str) -> str:
    """Return the sha256 of ``path``; raise :class:`DataError` if it is not ``expected``."""
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise DataError(f"{what}: sha256 mismatch: expected {expected}, got {actual}; the file is corrupt or changed upstream")
    return actual


# --------------------------------------------------------------------------- transports


def _progress(total: int | None, label: str, enabled: bool):
    """A rich progress bar for one transfer (or a no-op when disabled or not a terminal)."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        transient=True,
    )
    bar.start()
    bar.add_task(label, total=total)
    return bar


def fetch_http(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    *,
    retries: int = 4,
    timeout: float = 60.0,
    progress: bool = True,
    backoff: float = 1.0,
) -> str:
    """Download ``url`` to ``dest`` resumably and return its sha256.

    Bytes go to ``<dest>.part``; if that exists (an earlier, interrupted try), only the rest is
    requested (``Range: bytes=N-``). A server that ignores Range (answers 200) is read from the
    start. On a sha256 mismatch after a resumed download the stale part is discarded and the file
    fetched once more in full; a mismatch on a full download raises :class:`DataError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    restarted = False
    attempt = 0
    while True:
        resumed = part.exists() and part.stat().st_size > 0
        try:
            _http_to_part(url, part, timeout=timeout, progress=progress)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:  # incl. timeouts, resets
            if isinstance(exc, urllib.error.HTTPError) and exc.code < 500 and exc.code not in (408, 429):
                raise StorageError(f"{url}: HTTP {exc.code} {exc.reason}; check the URL in params.yaml") from None
            attempt += 1
            if attempt > retries:
                raise StorageError(f"{url}: download failed after {retries + 1} tries ({exc}); the partial file {part} is kept, run again to resume") from None
            log.warning("%s: %s; retry %d/%d resumes from byte %d", url, exc, attempt, retries, part.stat().st_size if part.exists() else 0)
            time.sleep(backoff * 2 ** (attempt - 1))
            continue
        try:
            digest = check_sha256(part, sha256, url)
        except DataError:
            part.unlink(missing_ok=True)
            if resumed and not restarted:
                log.warning("%s: checksum mismatch after resuming; the old partial file was stale, downloading again in full", url)
                restarted = True
                continue
            raise
        os.replace(part, dest)
        return digest


def _http_to_part(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "gancodec-download/1", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part is already whole
            return
        raise
    with resp:
        if have and resp.status == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != have:
                raise ConnectionError(f"server resumed at byte {start}, expected {have}")
            mode = "ab"
        else:
            have, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        bar = _progress(total, part.name.removesuffix(".part"), progress and (total or 0) > 4 * CHUNK)
        try:
            with open(part, mode) as fh:
                if bar is not None:
                    bar.update(bar.task_ids[0], completed=have)
                for block in iter(lambda: resp.read(CHUNK), b""):
                    fh.write(block)
                    if bar is not None:
                        bar.advance(bar.task_ids[0], len(block))
        finally:
            if bar is not None:
                bar.stop()
    got = part.stat().st_size
    if total is not None and got != total:
        raise ConnectionError(f"connection closed at byte {got} of {total}")


def _content_range_start(value: str | None) -> int:
    # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])  # type: ignore[union-attr]
    except (AttributeError, IndexError, ValueError):
        raise ConnectionError(f"bad Content-Range header {value!r}") from None


def _s3_client():
    """The S3 client of :mod:`gancodec.storage` (one policy: retries, timeouts, AWS_* settings,
    AWS_ENDPOINT_URL, the fault drills), so a dataset download survives what a bulk job does."""
    from ..storage import make_s3_client

    return make_s3_client()


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise DataError(f"{uri}: an s3 URI needs a bucket: s3://bucket/key")
    return bucket, key


def s3_exists(uri: str) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _split_s3(uri)
    try:
        _s3_client().head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise StorageError(f"{uri}: {exc}") from None
    except BotoCoreError as exc:
        raise StorageError(f"{uri}: {exc}; check AWS_ENDPOINT_URL and credentials") from None


def fetch_s3(uri: str, dest: str | os.PathLike, sha256: str | None = None) -> str:
    """Download ``s3://bucket/key`` to ``dest`` (temp file + rename) and return its sha256."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = _split_s3(uri)
    dest = Path(dest)
    with atomic_write_path(dest) as tmp:
        try:
            _s3_client().download_file(bucket, key, str(tmp))
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"{uri}: download failed ({exc}); check the key, AWS_ENDPOINT_URL and credentials") from None
        return check_sha256(tmp, sha256, uri)


def fetch_local(path: str | os.PathLike, dest: str | os.PathLike, sha256: str | None = None) -> str:
    """Copy a local file to ``dest`` (temp file + rename), verifying it, and return its sha256."""
    with atomic_write_path(dest) as tmp:
        try:
            shutil.copyfile(path, tmp)
        except OSError as exc:
            raise StorageError(f"{path}: cannot read ({exc.strerror or exc})") from None
        return check_sha256(tmp, sha256, str(path))


def fetch(uri: str, dest: str | os.PathLike, sha256: str | None = None, **http_options: Any) -> str:
    """Fetch ``uri`` (http(s)://, s3:// or a local path) to ``dest``; return the verified sha256."""
    if uri.startswith(("http://", "https://")):
        return fetch_http(uri, dest, sha256, **http_options)
    if uri.startswith("s3://"):
        return fetch_s3(uri, dest, sha256)
    return fetch_local(uri.removeprefix("file://"), dest, sha256)


def _join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name if "://" in base else str(Path(base) / name)


def _exists(uri: str) -> bool:
    if uri.startswith("s3://"):
        return s3_exists(uri)
    if uri.startswith(("http://", "https://")):
        raise DataError(f"{uri}: a mirror must be a local folder or an s3:// prefix")
    return Path(uri.removeprefix("file://")).is_file()


# --------------------------------------------------------------------------- sources


def select_files(source: Source, take: int | str | None) -> list[str]:
    """The files of ``source`` to fetch: all (``"all"``/None) or the first ``take`` by name."""
    names = sorted(source.files)
    if take in (None, "all"):
        return names
    if not isinstance(take, int) or isinstance(take, bool) or take < 0:
        raise DataError(f"params: download.take.{source.name} is {take!r}; give a file count or 'all'")
    if take > len(names):
        raise DataError(f"params: download.take.{source.name} asks for {take} files but the source lists {len(names)}")
    return names[:take]


def _extract_member(archive_path: Path, name: str, dest: Path, expected: str | None, what: str) -> str:
    with zipfile.ZipFile(archive_path) as zf:
        matches = [m for m in zf.namelist() if m.rsplit("/", 1)[-1] == name and not m.endswith("/")]
        if len(matches) != 1:
            raise DataError(f"{what}: archive {archive_path.name} holds {len(matches)} members named {name!r}, expected 1")
        with atomic_write_path(dest) as tmp:
            with zf.open(matches[0]) as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
            return check_sha256(tmp, expected, what)


def _archive_file_names(archive_path: Path) -> list[str]:
    with zipfile.ZipFile(archive_path) as zf:
        return sorted(m.rsplit("/", 1)[-1] for m in zf.namelist() if not m.endswith("/") and not m.rsplit("/", 1)[-1].startswith("."))


def download_sources(
    sources: Mapping[str, Source],
    out_dir: str | os.PathLike,
    *,
    take: Mapping[str, int | str | None],
    mirror: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    http_options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Fetch the ``take`` files of each named source into ``out_dir/<source>/<name>``.

    Writes ``out_dir/manifest.csv`` (one row per file: source, role, file, sha256, bytes,
    origin, license) and returns its rows. ``cache_dir`` keeps partial HTTP downloads and
    archives between runs (DVC empties ``out_dir`` before each run); it defaults to
    ``$GANCODEC_CACHE`` or ``~/.cache/gancodec/downloads``.
    """
    unknown = sorted(set(take) - set(sources))
    if unknown:
        raise DataError(f"params: download.take names unknown source(s) {unknown}; sources: {sorted(sources)}")
    out = Path(out_dir)
    from .. import settings

    cache = Path(cache_dir or settings.path("GANCODEC_CACHE") or "~/.cache/gancodec/downloads").expanduser()
    http_options = dict(http_options or {}, progress=progress)
    rows: list[dict[str, Any]] = []
    for name in take:
        source = sources[name]
        if source.files or source.archive is None:
            names = select_files(source, take[name])
        else:  # an archive with no pinned list: every image member it holds
            names = _unpinned_archive_names(source, cache, take[name], http_options)
        for fname in names:
            expected = source.files.get(fname)
            dest = out / source.name / fname
            origin, digest = _fetch_one(source, fname, expected, dest, mirror, cache, http_options)
            if expected is None:
                log.warning("%s/%s: no sha256 pinned in params; recorded %s (pin it to make the download verifiable)", source.name, fname, digest)
            rows.append(
                {"source": source.name, "role": source.role, "file": fname, "sha256": digest,
                 "bytes": dest.stat().st_size, "origin": origin, "license": source.license}
            )
            log.info("%s/%s <- %s", source.name, fname, origin)
    write_manifest(rows, out / MANIFEST)
    return rows


def _unpinned_archive_names(source: Source, cache: Path, take: Any, http_options: Mapping[str, Any]) -> list[str]:
    archive_path = _archive(source, cache, http_options)
    names = [n for n in _archive_file_names(archive_path) if Path(n).suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")]
    probe = Source(name=source.name, role=source.role, files=dict.fromkeys(names))
    return select_files(probe, take)


def _archive(source: Source, cache: Path, http_options: Mapping[str, Any]) -> Path:
    assert source.archive is not None
    path = cache / source.name / source.archive.url.rsplit("/", 1)[-1]
    if path.is_file():
        check_sha256(path, source.archive.sha256, str(path))
    else:
        fetch(source.archive.url, path, source.archive.sha256, **http_options)
    return path


def _fetch_one(
    source: Source, fname: str, expected: str | None, dest: Path, mirror: str | None, cache: Path, http_options: Mapping[str, Any]
) -> tuple[str, str]:
    if mirror:
        candidate = _join(_join(mirror, source.name), fname)
        if _exists(candidate):
            return candidate, fetch(candidate, dest, expected)
    if source.url:
        uri = _join(source.url, fname)
        if uri.startswith(("http://", "https://")):
            # download into the cache (resumable across runs), then copy into the DVC out
            cached = cache / source.name / fname
            if cached.is_file():
                try:
                    check_sha256(cached, expected, str(cached))
                except DataError:
                    cached.unlink()
            if not cached.is_file():
                fetch_http(uri, cached, expected, **http_options)
            return uri, fetch_local(cached, dest, expected)
        return uri, fetch(uri, dest, expected)
    if source.archive is not None:
        archive_path = _archive(source, cache, http_options)
        return f"{source.archive.url}#{fname}", _extract_member(archive_path, fname, dest, expected, f"{source.archive.url}#{fname}")
    where = f"the mirror {mirror}" if mirror else "no mirror (download.mirror is empty)"
    raise DataError(f"{source.name}/{fname}: not found in {where}, and the source has no url or archive to fall back to")


def write_manifest(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> None:
    with atomic_write_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row[k] for k in MANIFEST_COLUMNS})


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the download manifest ({exc.strerror or exc}); run the download stage first") from None
    if rows and set(MANIFEST_COLUMNS) - set(rows[0]):
        raise DataError(f"{path}: manifest lacks columns {sorted(set(MANIFEST_COLUMNS) - set(rows[0]))}")
    return rows
