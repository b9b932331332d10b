"""Shipped weights, their model card, and loading any weights file safely.

A weights file is a ``torch.save`` dict ``{"model_config", "state_dict", ...}`` read with
``weights_only=True``. Its *model id* is the first 32 hex digits of its SHA-256: every ``.gcx``
names the model id it needs. The shipped file's hash is pinned in ``MODEL_CARD.json``; a file
that does not match is refused.

torch and the model load only when a model is (:func:`load_model`): finding weights and their
ids (``gancodec info``, :mod:`.history`) stays light.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError

if TYPE_CHECKING:
    import torch

    from ..models import HyperpriorCodec
    from ..models.coder import LatentCoder

WEIGHTS_DIR = Path(__file__).resolve().parent
SHIPPED_WEIGHTS = WEIGHTS_DIR / "hyperprior-v1.pt"
MODEL_CARD = WEIGHTS_DIR / "MODEL_CARD.json"
ENV_WEIGHTS = "GANCODEC_WEIGHTS"


def model_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def file_signature(path: Path) -> tuple[str, int, int, int] | None:
    """(resolved path, inode, size, mtime) of ``path``, or None when missing: a cache key that changes when the file is replaced."""
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class LoadedModel:
    """A model ready to code: CPU master copy, its coder, id, and per-device copies."""

    model: HyperpriorCodec
    coder: LatentCoder
    model_id: str
    path: Path
    #: the model whose streams and g_s this one keeps unchanged, adding a post-filter (v1.6 over
    #: v1.5): realism decoders trained for that model also decode this one's streams
    extends_model_id: str | None = None
    _copies: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, device: torch.device) -> HyperpriorCodec:
        """The model on ``device`` as the codec runs it: an inference copy (cached; eval mode)
        whose transforms take the precision that device pays for (:mod:`gancodec.models.inference`;
        ``$GANCODEC_PRECISION`` overrides it). ``self.model`` stays the float32 master."""
        from ..models.inference import resolve_precision

        key = (str(device), resolve_precision(None, device))
        with self._lock:
            if key not in self._copies:
                from ..models.inference import inference_copy

                self._copies[key] = inference_copy(self.model, device, key[1])
            return self._copies[key]

    @property
    def max_quality(self) -> float:
        return float(self.model.num_rates)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint or weights file as a dict (``torch.load(weights_only=True)``: data, never code)."""
    import torch

    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"{path}: checkpoint not found") from None
    except Exception as exc:  # pickle errors, zip errors, refused globals
        raise ModelError(f"{path}: not a readable gancodec checkpoint ({exc})") from None


def default_weights_path() -> Path:
    from .. import settings

    return settings.path(ENV_WEIGHTS) or SHIPPED_WEIGHTS


def _expected_sha256(path: Path) -> str | None:
    """The hash the model card pins for ``path`` (shipped card, or ``<file>.json`` beside it)."""
    card = MODEL_CARD if path.resolve() == SHIPPED_WEIGHTS else path.with_suffix(".json")
    if not card.exists():
        return None
    try:
        return json.loads(card.read_text())["sha256"]
    except (ValueError, KeyError) as exc:
        raise ModelError(f"{card}: model card is unreadable or has no 'sha256' field ({exc})") from None


def default_model_id() -> str | None:
    """The model id of the default weights (``$GANCODEC_WEIGHTS`` or the shipped file) from its
    bytes alone, without torch; None when the file is missing or does not match its card."""
    p = default_weights_path()
    try:
        data = p.read_bytes()
        expected = _expected_sha256(p)
    except (OSError, ModelError):
        return None
    if expected is not None and expected != hashlib.sha256(data).hexdigest():
        return None
    return model_id_of(data)


_cache: dict[Path, tuple[tuple, LoadedModel]] = {}
_cache_lock = threading.Lock()


def load_model(path: str | os.PathLike | None = None) -> LoadedModel:
    """Load (once per file version) and verify a weights file; default: $GANCODEC_WEIGHTS or the shipped one.

    A file replaced on disk (new size or mtime) is read and verified again, so a long-running
    worker picks up new weights instead of coding with the old ones under the new file's name.
    """
    import torch

    from ..models import model_from_checkpoint
    from ..models.coder import LatentCoder

    p = Path(path) if path is not None else default_weights_path()
    signature = file_signature(p)
    with _cache_lock:
        if p in _cache and _cache[p][0] == signature:
            return _cache[p][1]
        if not p.is_file():
            hint = "reinstall gancodec" if p == SHIPPED_WEIGHTS else f"check the path (or unset {ENV_WEIGHTS})"
            raise ModelError(f"{p}: weights file not found; {hint}")
        data = p.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        expected = _expected_sha256(p)
        if expected is not None and expected != digest:
            raise ModelError(f"{p}: sha256 {digest[:16]}... does not match its model card ({expected[:16]}...); "
                             "the file is damaged or was replaced: reinstall it or fix the card")
        import io

        try:
            ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"{p}: not a readable weights file ({exc})") from None
        model = model_from_checkpoint(ckpt, str(p)).eval().to(memory_format=torch.channels_last)  # ~2x faster convs on CPU
        if not model.z_prior.tables_ready():
            raise ModelError(f"{p}: weights have no entropy tables; export them with gancodec.weights.export_weights")
        extends = ckpt.get("extends_model_id")
        loaded = LoadedModel(model, LatentCoder(model), model_id_of(data), p,
                             extends if isinstance(extends, str) and extends != model_id_of(data) else None)
        _cache[p] = (signature, loaded)
        return loaded


def export_weights(model: HyperpriorCodec, path: str | os.PathLike, **meta) -> str:
    """Write a compact weights file (float16 parameters, integer tables); return its sha256."""
    import copy
    import io

    import torch

    from ..fsutil import atomic_write_bytes

    model = copy.deepcopy(model).cpu().float()
    with torch.no_grad():  # round to float16 first, so the tables match what decoders will load
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    model.update()
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"model_config": model.config.to_dict(), "state_dict": state, **meta}, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()
