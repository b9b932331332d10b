"""What made a set of numbers: package and codec versions, the git revision, the machine.

Written into ``summary.json`` by the evaluate stage and printed at the end of the report, so a
reader can rerun the same measurement with the same tools.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess


def _first_line(cmd: list[str]) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


def _package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_revision(cwd: str | os.PathLike | None = None) -> str | None:
    """HEAD's commit, with ``+dirty`` when tracked files have changes; None outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str | None]:
    """Versions of everything that touches a measured number (None: not installed)."""
    from PIL import features

    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("gancodec", "torch", "numpy", "pillow", "imagecodecs", "pytorch-msssim", "ssimulacra2", "constriction"):
        out[pkg] = _package(pkg)
    for feature, name in (("jpg", "libjpeg"), ("webp", "libwebp"), ("avif", "libavif (Pillow)")):
        out[name] = features.version(feature) if features.check(feature) else None
    out["avifenc"] = _first_line(["avifenc", "--version"])
    out["cjxl"] = _first_line(["cjxl", "--version"])
    out["ffmpeg"] = _first_line(["ffmpeg", "-hide_banner", "-version"])
    return out


def machine() -> dict[str, str | int | None]:
    """CPU model, core count and torch's thread count: timings only compare on the same machine."""
    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
