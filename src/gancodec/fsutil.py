"""Atomic local writes: a temp file in the destination folder, fsync, then rename.

A crash, a full disk or an exception leaves either the old file or none: never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import StorageError


def _temp_beside(dest: Path) -> Path:
    folder = dest.parent if str(dest.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise StorageError(f"{dest}: cannot create a file in {folder} ({exc.strerror or exc}); check the folder exists and is writable") from None
    os.close(fd)
    return Path(tmp_name)


def check_writable(path: str | os.PathLike) -> None:
    """Raise :class:`StorageError` unless a file can be created at ``path`` (its folder is made if
    missing, an empty probe file created and removed): the check a command makes before hours of work."""
    dest = Path(path)
    if dest.is_dir():
        raise StorageError(f"{dest}: is a folder; give a file name, or remove the folder")
    _temp_beside(dest).unlink(missing_ok=True)


def _publish(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Rename ``tmp`` to ``dest``; without ``overwrite``, never replace a file that exists by then."""
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)  # atomic, and fails when dest exists (even one made a moment ago)
    except FileExistsError:
        raise StorageError(f"{dest}: exists; nothing was written (pass --force to overwrite)") from None
    except OSError:  # a file system without hard links: the plain check, then the rename
        if dest.exists() or dest.is_symlink():
            raise StorageError(f"{dest}: exists; nothing was written (pass --force to overwrite)") from None
        os.replace(tmp, dest)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_write_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it over ``path``, else delete it.

    ``overwrite=False`` refuses (StorageError, nothing written) when ``path`` exists at the end."""
    dest = Path(path)
    tmp = _temp_beside(dest)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish(tmp, dest, overwrite)
    except StorageError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{dest}: write failed ({exc.strerror or exc}); nothing was written") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (``overwrite=False``: refuse when it exists)."""
    with atomic_write_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
