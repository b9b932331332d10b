"""Every shipped weights version, and finding the one an older stream needs.

Each ``.gcx`` names the model id of the weights that made it, and a release that ships new
weights cannot decode an archive made by an older one without that release's weights.
``HISTORY.json`` lists every shipped version (name, model id, sha256, git blob id). Its files
live in this repository's history, so a checkout can give any of them back byte for byte:

    gancodec weights list            # versions, and where each is on this machine
    gancodec weights get v1.4        # git cat-file -> ~/.cache/gancodec/weights/, sha256 checked

A stream whose model id is not the default weights' is decoded with the first file of that id
found in the folders on ``$GANCODEC_WEIGHTS_PATH`` (``os.pathsep``-separated), then in the
weights cache (``$XDG_CACHE_HOME/gancodec/weights``, default ``~/.cache/gancodec/weights``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from pathlib import Path

from ..errors import ModelError
from ..fsutil import atomic_write_bytes
from . import WEIGHTS_DIR, file_signature, model_id_of

HISTORY_FILE = WEIGHTS_DIR / "HISTORY.json"
ENV_WEIGHTS_PATH = "GANCODEC_WEIGHTS_PATH"
MAX_WEIGHTS_BYTES = 256 << 20  # files larger than this are not weights files; never hashed while searching


_parsed: dict[Path, tuple[tuple, list[dict]]] = {}  # file -> (signature, versions): read once per file version


def versions(history_file: Path | None = None) -> list[dict]:
    """The shipped versions, oldest first (shared: do not modify). Parsed once per file version, since
    the bulk planner asks for every kept output."""
    path = history_file or HISTORY_FILE
    st = path.stat()
    sig = (st.st_ino, st.st_size, st.st_mtime_ns)  # file_signature without its resolve(), which costs more than a parse
    if path not in _parsed or _parsed[path][0] != sig:
        _parsed[path] = (sig, json.loads(path.read_text())["versions"])
    return _parsed[path][1]


def check_version_free(version: str, sha256: str | None = None, history_file: Path | None = None) -> None:
    """ModelError when ``version`` already names weights in HISTORY.json (other than ``sha256``, when given)."""
    if any(v["version"] == version and v["sha256"] != sha256 for v in versions(history_file)):
        raise ModelError(f"{history_file or HISTORY_FILE}: version {version!r} is already taken; pick a new --version")


def version_of(model_id: str, history_file: Path | None = None) -> dict | None:
    """The shipped version with ``model_id``, or None for weights gancodec never shipped."""
    return next((v for v in versions(history_file) if v["model_id"] == model_id), None)


def resolve(name: str, history_file: Path | None = None) -> dict:
    """The version named ``name`` ("v1.4") or with model id ``name`` (or a prefix of 8+ hex digits)."""
    known = versions(history_file)
    hits = [v for v in known if v["version"] == name] or \
           ([v for v in known if v["model_id"].startswith(name.lower())] if len(name) >= 8 else [])
    if len(hits) != 1:
        names = ", ".join(v["version"] for v in known)
        raise ModelError(f"weights {name!r}: {'ambiguous' if hits else 'no such shipped version'}; "
                         f"shipped versions: {names} (or give a model id)")
    return hits[0]


def cache_dir() -> Path:
    """Where ``gancodec weights get`` puts retired weights: $XDG_CACHE_HOME/gancodec/weights."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gancodec" / "weights"


def search_folders() -> list[Path]:
    """Folders searched for weights by model id: $GANCODEC_WEIGHTS_PATH, then the weights cache."""
    from .. import settings

    return settings.paths(ENV_WEIGHTS_PATH) + [cache_dir()]


_ids: dict[tuple, str] = {}  # file signature -> model id, so a folder is hashed once per file version
_ids_lock = threading.Lock()


def _model_id_of_file(path: Path) -> str | None:
    sig = file_signature(path)
    if sig is None or sig[2] > MAX_WEIGHTS_BYTES:
        return None
    with _ids_lock:
        if sig not in _ids:
            try:
                _ids[sig] = model_id_of(path.read_bytes())
            except OSError:
                return None
        return _ids[sig]


def find_weights(model_id: str) -> Path | None:
    """The first ``*.pt`` file with ``model_id`` in :func:`search_folders`, or None."""
    for folder in search_folders():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.pt")):
            if _model_id_of_file(path) == model_id:
                return path
    return None


def git_blob_id(data: bytes) -> str:
    """The git object id of a file with contents ``data`` (what `git hash-object` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _repo_root() -> Path:
    try:
        out = subprocess.run(["git", "-C", str(WEIGHTS_DIR), "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise ModelError(f"{WEIGHTS_DIR}: this install is not a git checkout of gancodec, so it cannot give back "
                         "retired weights; run `gancodec weights get` in a clone of the repository") from None
    return Path(out.stdout.strip())


def fetch(name: str, dest_dir: str | os.PathLike | None = None, repo: str | os.PathLike | None = None,
          history_file: Path | None = None) -> Path:
    """Write shipped version ``name`` from the repository's history into ``dest_dir`` (default: the
    weights cache) as ``hyperprior-<version>.pt``, checking its sha256; return the path."""
    v = resolve(name, history_file)
    dest = Path(dest_dir or cache_dir()) / f"hyperprior-{v['version']}.pt"
    if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == v["sha256"]:
        return dest
    root = Path(repo) if repo is not None else _repo_root()
    try:
        data = subprocess.run(["git", "-C", str(root), "cat-file", "blob", v["git_blob"]],
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise ModelError(f"weights {v['version']}: git object {v['git_blob']} is not in {root} (a shallow clone?); "
                         f"run `git fetch --unshallow` there, or take src/gancodec/weights/hyperprior-v1.pt from "
                         f"commit {v['shipped_in'] or '(see git log)'} of the gancodec repository") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != v["sha256"]:
        raise ModelError(f"weights {v['version']}: git object {v['git_blob']} has sha256 {digest[:16]}..., "
                         f"HISTORY.json says {v['sha256'][:16]}...; nothing was written")
    atomic_write_bytes(dest, data)
    return dest


def missing_weights_hint(model_id: str) -> str:
    """What to do about a stream whose weights are not on this machine (for error messages)."""
    v = version_of(model_id)
    if v is None:
        return (f"model {model_id} is not a gancodec release; decode it with the weights that made it "
                f"(weights=, $GANCODEC_WEIGHTS, or a folder on ${ENV_WEIGHTS_PATH})")
    return (f"it was made by the weights shipped as {v['version']} ({v['shipped']}); "
            f"run `gancodec weights get {v['version']}` in a clone of gancodec, or put that file in a folder on "
            f"${ENV_WEIGHTS_PATH}")


def record(version: str, data: bytes, summary: str = "", history_file: Path | None = None) -> dict:
    """Append the weights ``data`` as ``version`` to HISTORY.json (the ship tool calls this)."""
    path = history_file or HISTORY_FILE
    doc = json.loads(path.read_text())
    digest = hashlib.sha256(data).hexdigest()
    if any(v["sha256"] == digest for v in doc["versions"]):
        return next(v for v in doc["versions"] if v["sha256"] == digest)
    check_version_free(version, digest, path)
    from datetime import date

    entry = {"version": version, "model_id": digest[:32], "sha256": digest, "git_blob": git_blob_id(data),
             "bytes": len(data), "shipped": date.today().isoformat(), "shipped_in": None, "summary": summary}
    doc["versions"].append(entry)
    atomic_write_bytes(path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    return entry
