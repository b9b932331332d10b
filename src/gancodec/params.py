"""Reading one stage's section of ``params.yaml``, with the active profile applied.

``params.yaml`` has a top-level ``profile`` (``ci`` | ``default`` | ``full``) and one section per
stage. A section may hold ``profiles: {<profile>: {key: value, ...}}``; the keys given for the
active profile replace the section's own (a shallow update), so a profile states only what
differs. ``default`` needs no entry::

    profile: ci
    download:
      take: {kodak: all}
      profiles:
        ci: {take: {kodak: 6}}

``stage_params("params.yaml", "download")`` then returns ``{"take": {"kodak": 6}}``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import DataError

PROFILES = ("ci", "default", "full")


def resolve_section(params: Mapping[str, Any], section: str) -> dict[str, Any]:
    """Return ``params[section]`` with the overrides of ``params["profile"]`` applied."""
    profile = params.get("profile", "default")
    if profile not in PROFILES:
        raise DataError(f"params: profile {profile!r} is unknown; use one of {', '.join(PROFILES)}")
    if section not in params or not isinstance(params[section], Mapping):
        raise DataError(f"params: no section {section!r}; sections present: {', '.join(sorted(k for k in params if k != 'profile'))}")
    cfg = dict(params[section])
    overrides = cfg.pop("profiles", None) or {}
    unknown = sorted(set(overrides) - set(PROFILES))
    if unknown:
        raise DataError(f"params: {section}.profiles has unknown profile(s) {unknown}; use {', '.join(PROFILES)}")
    cfg.update(overrides.get(profile) or {})
    cfg["profile"] = profile
    return cfg


def stage_params(path: str | os.PathLike, section: str) -> dict[str, Any]:
    """Read ``path`` (a params.yaml) and return its ``section`` for the active profile."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise DataError(f"{path}: cannot read params ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(params, Mapping):
        raise DataError(f"{path}: params file must be a mapping of sections")
    return resolve_section(params, section)
