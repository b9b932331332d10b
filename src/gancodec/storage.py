"""One object-store interface over local folders and ``s3://bucket/prefix``.

>>> store = open_store("s3://photos/2024/")          # or open_store("/data/photos")
>>> for info in store.list():                         # paginated generator of ObjectInfo
...     data = store.get(info.key)
>>> store.put("out/a.gcx", payload, metadata={"source-etag": info.etag})

Keys are relative to the store's root (the folder, or the bucket prefix) and always use ``/``.
Every key that reaches the file system or a bucket goes through :func:`check_key`
(:mod:`gancodec.objectkeys`), so a key can never escape the destination (``../``, absolute paths, backslashes, NUL, control or
invisible characters, look-alike characters that normalise to ``.`` or ``/``).

Writes are atomic: local files go through a temp file + rename (:mod:`gancodec.fsutil`),
an S3 ``PutObject`` is atomic by itself. S3 clients honour the standard AWS configuration
(``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, credentials, ``AWS_RETRY_MODE``, ``AWS_MAX_ATTEMPTS``,
``~/.aws/config``) and retry throttling/5xx/timeouts with botocore's ``standard`` mode by
default. Every failure becomes a :class:`~gancodec.errors.StorageError` naming the object and
the fix; failures that may pass on a later try are :class:`TransientStorageError`.
"""

from __future__ import annotations

import os
import stat
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import StorageError
from .fsutil import atomic_write_bytes, atomic_write_path
from .objectkeys import MAX_KEY_BYTES, check_key, join_key, parse_s3_url, safe_join

__all__ = [
    "ObjectInfo",
    "Store",
    "LocalStore",
    "S3Store",
    "TransientStorageError",
    "open_store",
    "check_key",
    "safe_join",
    "join_key",
    "parse_s3_url",
    "is_transient",
]

DEFAULT_MAX_ATTEMPTS = 8
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
}


class TransientStorageError(StorageError):
    """A storage call failed in a way that may pass later (throttling, 5xx, timeout, network)."""

    transient = True


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying later: S3 throttling/5xx/timeouts and network errors."""
    if isinstance(exc, TransientStorageError):
        return True
    try:
        from botocore.exceptions import ClientError, ConnectionError as BotoConnectionError, HTTPClientError
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        return True
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
        return err.get("Code") in _TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, (TimeoutError, ConnectionError))


# --------------------------------------------------------------------------- stores


#: What ``S3Store.probe(write=True)`` writes (beside the bulk job's manifests) to prove a
#: destination bucket accepts writes.
WRITE_CHECK_KEY = "_gancodec/write-check"


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a head tells about one object; ``key`` is relative to the store root."""

    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


class Store(ABC):
    """An object store rooted at a folder or a bucket prefix."""

    url: str

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield every object under the folder ``prefix`` (relative; ``""`` = all), page by page."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The bytes of ``key``; :class:`StorageError` if it is missing or unreadable."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None, content_type: str | None = None) -> ObjectInfo:
        """Write ``data`` to ``key`` atomically; readers see the old object or the new one, never a part."""

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """Size, ETag and metadata of ``key``, or ``None`` if it does not exist."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (no error if it is already gone)."""

    @abstractmethod
    def probe(self, *, write: bool = False) -> None:
        """Check, quickly and without side effects that stay, that this store can be listed
        (and, with ``write=True``, written); raise :class:`StorageError` naming it and the fix."""

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def get_file(self, key: str, path: str | os.PathLike) -> None:
        """Copy ``key`` into the local file ``path`` (stores override this to stream big objects)."""
        atomic_write_bytes(path, self.get(key))

    def put_file(self, key: str, path: str | os.PathLike, *, content_type: str | None = None) -> None:
        """Write the local file ``path`` to ``key`` atomically (streamed where the store can)."""
        self.put(key, Path(path).read_bytes(), content_type=content_type)

    def url_of(self, key: str) -> str:
        return safe_join(self.url, key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class LocalStore(Store):
    """A local folder as an object store. ETags are ``<size>-<mtime_ns>`` in hex (a change detector).

    Local objects carry no metadata (``head(...).metadata`` is empty). Temp files left by an
    interrupted atomic write (``.name.*.part``) are never listed.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        root = os.fspath(root)
        if root.startswith("file://"):
            root = root[7:]
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return Path(safe_join(self.root, key))

    def probe(self, *, write: bool = False) -> None:
        root = self.root
        if not write:
            if not root.is_dir():
                what = "is not a folder" if root.exists() else "no such folder"
                raise StorageError(f"{root}: {what}; give an existing folder or s3://bucket/prefix")
            try:
                with os.scandir(root):
                    pass
            except OSError as exc:
                raise StorageError(f"{root}: cannot list ({exc.strerror or exc}); fix its permissions") from None
            return
        if root.exists() and not root.is_dir():
            raise StorageError(f"{root}: exists and is not a folder; give a folder (or a new path) as the destination")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{root}: cannot create the destination folder ({exc.strerror or exc}); choose a writable path") from None
        import tempfile

        try:  # a dot-named .part file is never listed, even if the unlink below fails
            fd, name = tempfile.mkstemp(dir=root, prefix=".gancodec-probe-", suffix=".part")
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise StorageError(f"{root}: cannot write to the destination folder ({exc.strerror or exc}); fix its permissions or choose another folder") from None

    @staticmethod
    def _info(key: str, st: os.stat_result) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=f"{st.st_size:x}-{st.st_mtime_ns:x}",
            last_modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
        )

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            raise StorageError(f"{self.root}: no such folder; check the path")
        start = self.root
        if prefix:
            check_key(prefix.rstrip("/"))
            start = self.root.joinpath(*prefix.rstrip("/").split("/"))
            if not start.is_dir():
                return
        yield from self._walk(start)

    def _walk(self, folder: Path) -> Iterator[ObjectInfo]:
        """Depth-first, in S3's key order (a folder sorts as ``name/``). Only the names of the
        folder being read are held (a folder of 156,250 manifest parts: ~80 bytes each; the
        ``os.DirEntry`` objects were ~960)."""
        try:
            with os.scandir(folder) as it:
                names = [e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in it]
        except OSError as exc:
            raise StorageError(f"{folder}: cannot list ({exc.strerror or exc}); check permissions") from None
        names.sort()
        rel = folder.relative_to(self.root).as_posix()
        rel = "" if rel == "." else rel + "/"
        for name in names:
            if name.endswith("/"):
                yield from self._walk(folder / name[:-1])
                continue
            if name.startswith(".") and name.endswith(".part"):
                continue  # an interrupted atomic write
            try:
                st = os.stat(os.path.join(folder, name))
            except FileNotFoundError:
                continue  # removed while listing (or a broken link)
            if stat.S_ISREG(st.st_mode):
                yield self._info(rel + name, st)

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StorageError(f"{path}: no such file; check the key and the source folder") from None
        except IsADirectoryError:
            raise StorageError(f"{path}: is a folder, not a file") from None
        except OSError as exc:
            raise StorageError(f"{path}: cannot read ({exc.strerror or exc}); check permissions") from None

    def put(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None, content_type: str | None = None) -> ObjectInfo:
        path = self._path(key)
        atomic_write_bytes(path, data)
        return self._info(key, path.stat())

    def get_file(self, key: str, path: str | os.PathLike) -> None:
        import shutil

        src = self._path(key)
        try:
            with atomic_write_path(path) as tmp:
                shutil.copyfile(src, tmp)
        except FileNotFoundError:
            raise StorageError(f"{src}: no such file; check the key and the source folder") from None

    def put_file(self, key: str, path: str | os.PathLike, *, content_type: str | None = None) -> None:
        import shutil

        with atomic_write_path(self._path(key)) as tmp:
            shutil.copyfile(path, tmp)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"{path}: cannot stat ({exc.strerror or exc}); check permissions") from None
        if not path.is_file():
            return None
        return self._info(key, st)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"{path}: cannot delete ({exc.strerror or exc}); check permissions") from None


_client_lock = threading.Lock()


def _retry_settings(session: Any) -> dict[str, Any]:
    """Retry mode/attempts: AWS env or config file if set, else standard mode with 8 attempts."""
    scoped: Mapping[str, Any] = {}
    try:
        scoped = session._session.get_scoped_config()  # the profile's ~/.aws/config section
    except Exception:
        scoped = {}
    mode = os.environ.get("AWS_RETRY_MODE") or scoped.get("retry_mode") or "standard"
    attempts = os.environ.get("AWS_MAX_ATTEMPTS") or scoped.get("max_attempts") or DEFAULT_MAX_ATTEMPTS
    try:
        attempts = int(attempts)
    except ValueError:
        raise StorageError(f"AWS_MAX_ATTEMPTS={attempts!r} is not an integer; unset it or give a count such as 8") from None
    return {"mode": mode, "max_attempts": attempts}


def make_s3_client(*, max_attempts: int | None = None, connect_timeout: float | None = None, faults: bool = True, **client_kwargs: Any) -> Any:
    """A boto3 S3 client with our retry/timeout defaults and the fault-injection hooks.

    ``max_attempts`` / ``connect_timeout`` cap the configured values (a quick probe must not
    wait through eight back-offs); ``faults=False`` leaves out the fault-injection hooks.
    """
    import boto3
    from botocore.config import Config

    from . import settings
    from .faults import install_s3_faults

    with _client_lock:  # boto3 session creation is not thread-safe
        session = boto3.session.Session()
        retries = _retry_settings(session)
        if max_attempts is not None:
            retries["max_attempts"] = min(retries["max_attempts"], max_attempts)
        timeout = settings.number("GANCODEC_S3_CONNECT_TIMEOUT", 10.0, "give seconds")
        config = Config(
            retries=retries,
            connect_timeout=min(timeout, connect_timeout) if connect_timeout is not None else timeout,
            read_timeout=settings.number("GANCODEC_S3_READ_TIMEOUT", 60.0, "give seconds"),
            max_pool_connections=32,
        )
        region = session.region_name or "us-east-1"
        client = session.client("s3", region_name=region, config=config, **client_kwargs)
    return install_s3_faults(client) if faults else client


class S3Store(Store):
    """``s3://bucket/prefix`` as an object store (boto3). ETags are S3's, without quotes.

    Metadata given to :meth:`put` is stored as S3 user metadata (``x-amz-meta-*``) and comes
    back from :meth:`head`.
    """

    def __init__(self, url: str, *, client: Any = None, page_size: int = 1000) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self.page_size = page_size
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_s3_client()
        return self._client

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{join_key(self.prefix, key)}"

    def probe(self, *, write: bool = False) -> None:
        """One ``ListObjectsV2`` (MaxKeys=1) with at most 3 attempts: the bucket exists, the
        endpoint answers, the credentials are accepted and the prefix can be listed. With
        ``write=True``, also one small PUT of :data:`WRITE_CHECK_KEY` (overwritten by every
        run, never deleted: a delete would leave a marker in a versioned bucket), so a
        destination the credentials may read but not write is refused before any image is
        coded, not after a night of work whose every PUT fails."""
        client = make_s3_client(max_attempts=3, connect_timeout=5, faults=False)
        try:
            client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except Exception as exc:
            raise self._error(exc, "", "list", client=client) from None
        if write:
            key = join_key(self.prefix, WRITE_CHECK_KEY)
            try:
                client.put_object(Bucket=self.bucket, Key=key, Body=b"gancodec: this destination is writable\n", ContentType="text/plain")
            except Exception as exc:
                raise self._error(exc, WRITE_CHECK_KEY, "write", client=client) from None

    def _error(self, exc: BaseException, key: str, action: str, *, client: Any = None) -> StorageError:
        from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError, ParamValidationError

        client = client or self.client
        where = self._where(key) if key else self.url
        if isinstance(exc, NoCredentialsError):
            return StorageError(
                f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role"
            )
        if isinstance(exc, NoRegionError):
            return StorageError(f"{where}: no AWS region configured; set AWS_DEFAULT_REGION")
        if isinstance(exc, ParamValidationError):
            return StorageError(f"{where}: invalid request ({exc}); check the key and the URL")
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "?"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
            msg = err.get("Message") or code
            if is_transient(exc):
                return TransientStorageError(
                    f"{where}: {action} failed with {code} (HTTP {status}) after {client.meta.config.retries.get('max_attempts')} attempts; "
                    "the service is throttling or unavailable, retry later or lower the request rate"
                )
            if code in ("NoSuchKey", "404", "NotFound"):
                return StorageError(f"{where}: no such object; check the key and the prefix")
            if code == "NoSuchBucket":
                return StorageError(f"{where}: bucket {self.bucket!r} does not exist; create it or fix the URL")
            if code in ("AccessDenied", "403", "AllAccessDisabled"):
                return StorageError(f"{where}: {action} access denied; check the credentials (AWS_PROFILE) and the bucket policy")
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"):
                return StorageError(f"{where}: credentials rejected ({code}); refresh or fix the AWS credentials")
            return StorageError(f"{where}: {action} failed: {code}: {msg}")
        if is_transient(exc):
            return TransientStorageError(
                f"{where}: {action} failed: cannot reach S3 at {client.meta.endpoint_url} ({type(exc).__name__}); "
                "check the network and AWS_ENDPOINT_URL, or retry later"
            )
        return StorageError(f"{where}: {action} failed: {type(exc).__name__}: {exc}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if prefix:
            check_key(prefix.rstrip("/"))
        full = join_key(self.prefix, prefix.rstrip("/") + "/") if prefix else self.prefix
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full, PaginationConfig={"PageSize": self.page_size}
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    key = obj["Key"][len(self.prefix) :]
                    if not key or key.endswith("/"):
                        continue  # the prefix itself, or a "folder" marker
                    yield ObjectInfo(
                        key=key,
                        size=int(obj.get("Size", 0)),
                        etag=(obj.get("ETag") or "").strip('"') or None,
                        last_modified=obj.get("LastModified"),
                    )
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, prefix, "list") from None

    def get(self, key: str) -> bytes:
        check_key(key)
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=join_key(self.prefix, key))
            return resp["Body"].read()
        except Exception as exc:
            raise self._error(exc, key, "get") from None

    def put(self, key: str, data: bytes, *, metadata: Mapping[str, str] | None = None, content_type: str | None = None) -> ObjectInfo:
        check_key(key)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": join_key(self.prefix, key), "Body": data}
        if metadata:
            kwargs["Metadata"] = {str(k): str(v) for k, v in metadata.items()}
        if content_type:
            kwargs["ContentType"] = content_type
        try:
            resp = self.client.put_object(**kwargs)
        except Exception as exc:
            raise self._error(exc, key, "put") from None
        return ObjectInfo(key=key, size=len(data), etag=(resp.get("ETag") or "").strip('"') or None, metadata=dict(metadata or {}))

    def get_file(self, key: str, path: str | os.PathLike) -> None:
        """Streamed (multipart for big objects), so a manifest of millions of rows is never held in memory."""
        check_key(key)
        try:
            with atomic_write_path(path) as tmp:
                self.client.download_file(self.bucket, join_key(self.prefix, key), str(tmp))
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(_unwrap_transfer(exc), key, "get") from None

    def put_file(self, key: str, path: str | os.PathLike, *, content_type: str | None = None) -> None:
        """Streamed from the file (multipart upload above 8 MiB, so no size limit in practice)."""
        check_key(key)
        extra = {"ContentType": content_type} if content_type else None
        try:
            self.client.upload_file(str(path), self.bucket, join_key(self.prefix, key), ExtraArgs=extra)
        except Exception as exc:
            raise self._error(_unwrap_transfer(exc), key, "put") from None

    def head(self, key: str) -> ObjectInfo | None:
        check_key(key)
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=join_key(self.prefix, key))
        except Exception as exc:
            from botocore.exceptions import ClientError

            if isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(exc, key, "head") from None
        return ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=(resp.get("ETag") or "").strip('"') or None,
            last_modified=resp.get("LastModified"),
            metadata=dict(resp.get("Metadata") or {}),
        )

    def delete(self, key: str) -> None:
        check_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=join_key(self.prefix, key))
        except Exception as exc:
            raise self._error(exc, key, "delete") from None


def _unwrap_transfer(exc: BaseException) -> BaseException:
    """boto3's transfer manager wraps the ClientError it got (S3UploadFailedError); the cause
    says what went wrong, so the error message can name the fix."""
    cause = exc.__cause__ or exc.__context__
    return cause if cause is not None and type(exc).__name__ in ("S3UploadFailedError", "S3DownloadFailedError") else exc


def open_store(url: str | os.PathLike, *, client: Any = None) -> Store:
    """A :class:`Store` for ``s3://bucket/prefix``, ``file:///path`` or a local folder path."""
    text = os.fspath(url)
    if text.startswith("s3://"):
        return S3Store(text, client=client)
    if "://" in text and not text.startswith("file://"):
        raise StorageError(f"{text}: unsupported URL scheme; use a local folder or s3://bucket/prefix")
    return LocalStore(text)
