"""Realism decoder weights: a synthesis transform trained for one frozen stage-1 model.

A realism file holds ``{"kind": "realism", "base_model_id", "state_dict" (float16), ...}``. It
only decodes streams of the model it was trained on (``base_model_id``); the same ``.gcx``
decodes with either decoder, because stage 2 never touches the encoder or the entropy model.
``strength`` between 0 and 1 interpolates the two decoders' weights (network interpolation),
so one decode costs the same at any strength.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from ..errors import ModelError
from ..fsutil import atomic_write_bytes
from ..models import HyperpriorCodec
from ..models.detail import DetailCodec, DetailConfig, DetailGenerator
from . import WEIGHTS_DIR, LoadedModel, file_signature

SHIPPED_REALISM = WEIGHTS_DIR / "realism-v1.pt"
ENV_REALISM = "GANCODEC_REALISM_WEIGHTS"


def export_realism(g_s: torch.nn.Module, base_model_id: str, path: str | os.PathLike, **meta) -> str:
    """Write a realism file (float16) and its card ``<file>.json``; return the sha256."""
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in g_s.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"kind": "realism", "base_model_id": base_model_id, "state_dict": state, **meta}, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(Path(path).with_suffix(".json"), (json.dumps(
        {"sha256": digest, "base_model_id": base_model_id, **{k: v for k, v in meta.items() if isinstance(v, (int, float, str))}},
        indent=2) + "\n").encode())
    return digest


def export_detail(gen: torch.nn.Module, base_model_id: str, path: str | os.PathLike, **meta) -> str:
    """Write a detail-generator realism file (float16; :mod:`gancodec.models.detail`) and its card;
    return the sha256."""
    state = {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in gen.state_dict().items()}
    buf = io.BytesIO()
    torch.save({"kind": "realism", "arch": "detail", "detail_config": gen.cfg.to_dict(), "base_model_id": base_model_id,
                "state_dict": state, **meta}, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    digest = hashlib.sha256(data).hexdigest()
    card = {"sha256": digest, "base_model_id": base_model_id, "arch": "detail",
            **{k: v for k, v in meta.items() if isinstance(v, (int, float, str, dict))}}
    atomic_write_bytes(Path(path).with_suffix(".json"), (json.dumps(card, indent=2) + "\n").encode())
    return digest


def _realism_path(lm: LoadedModel, path: str | os.PathLike | None) -> Path:
    if path is not None:
        return Path(path)
    from .. import settings

    if settings.path(ENV_REALISM):
        return settings.path(ENV_REALISM)
    return lm.path.with_name("realism-v1.pt") if lm.path.parent != WEIGHTS_DIR else SHIPPED_REALISM


def parse_realism(path: Path, data: bytes) -> dict:
    """The realism file ``data`` (read from ``path``) as a dict; ModelError when it is not one."""
    try:
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable realism weights file ({exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "realism":
        raise ModelError(f"{path}: not a realism decoder file (kind={ckpt.get('kind') if isinstance(ckpt, dict) else None!r})")
    return ckpt


def load_realism_state(lm: LoadedModel, path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The realism decoder's float32 state for ``lm``; ModelError when missing, damaged or for another model."""
    return {k: v.float() for k, v in load_realism(lm, path)["state_dict"].items()}


def load_realism(lm: LoadedModel, path: str | os.PathLike | None = None) -> dict:
    """The realism file for ``lm`` as a dict; ModelError when missing, damaged or for another model."""
    p = _realism_path(lm, path)
    if not p.is_file():
        raise ModelError(f"realism decoder: {p} not found; none is shipped for model {lm.model_id} yet. Train one "
                         f"with `python -m gancodec.realism --data DIR`, pass realism_weights= (or ${ENV_REALISM}), "
                         "or decode without --realism")
    data = p.read_bytes()
    card = p.with_suffix(".json")
    if card.is_file():
        expected = json.loads(card.read_text()).get("sha256")
        if expected and expected != hashlib.sha256(data).hexdigest():
            raise ModelError(f"{p}: sha256 does not match {card}; the file is damaged or was replaced")
    ckpt = parse_realism(p, data)
    if ckpt["base_model_id"] not in (lm.model_id, lm.extends_model_id):
        raise ModelError(f"{p}: realism decoder trained for model {ckpt['base_model_id']}, but the stream's model is "
                         f"{lm.model_id}; use the realism weights made for that model")
    return ckpt


MIXES_KEPT = 4  # decoders kept per process: one per (file version, strength, device), least recently used dropped
_cache: OrderedDict[tuple, HyperpriorCodec] = OrderedDict()
_lock = threading.Lock()


def realism_model(lm: LoadedModel, strength: float = 1.0, path: str | os.PathLike | None = None,
                  device: torch.device | str = "cpu") -> HyperpriorCodec:
    """A copy of ``lm.model`` on ``device`` whose g_s is (1 - strength) * fidelity + strength * realism.

    The last ``MIXES_KEPT`` mixes are cached; a realism file replaced on disk is read again.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"realism strength must be between 0 and 1, got {strength}")
    p = _realism_path(lm, path)
    key = (lm.model_id, file_signature(p), round(float(strength), 3), str(device))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
        else:
            ckpt = load_realism(lm, p)
            if ckpt.get("arch") == "detail":
                _cache[key] = _detail_model(lm, ckpt, p, key[2], device)
                while len(_cache) > MIXES_KEPT:
                    _cache.popitem(last=False)
                return _cache[key]
            realism = {k: v.float() for k, v in ckpt["state_dict"].items()}
            model = copy.deepcopy(lm.model)
            fidelity = lm.model.g_s.state_dict()
            try:
                mixed = {k: torch.lerp(fidelity[k].float(), realism[k], key[2]) if fidelity[k].is_floating_point() else realism[k]
                         for k in fidelity}
                model.g_s.load_state_dict(mixed)
            except (KeyError, RuntimeError) as exc:
                raise ModelError(f"{p}: realism weights do not fit this model's decoder ({exc})") from None
            _cache[key] = model.to(device).eval()
            while len(_cache) > MIXES_KEPT:
                _cache.popitem(last=False)
        return _cache[key]


def _detail_model(lm: LoadedModel, ckpt: dict, p: Path, strength: float, device) -> DetailCodec:
    """The base model plus ``strength`` x the detail generator of a ``arch: detail`` realism file."""
    try:
        gen = DetailGenerator(DetailConfig.from_dict(ckpt["detail_config"]))
        gen.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelError(f"{p}: not a valid detail-generator realism file ({exc})") from None
    if gen.cfg.latent_channels != lm.model.config.M:
        raise ModelError(f"{p}: detail generator for {gen.cfg.latent_channels} latent channels, the model has {lm.model.config.M}")
    return DetailCodec(lm.on(torch.device(device)), gen.to(device).eval(), strength)
