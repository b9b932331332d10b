"""Every ``GANCODEC_*`` environment variable gancodec reads, in one place.

Each variable is declared once in :data:`VARIABLES` (name, default, meaning, who reads it) and
read through one accessor here, at call time (a long-running worker or a test that changes the
environment sees the change). docs/architecture.md carries the same table
(``python -m gancodec.settings`` prints it; a test keeps the two equal). Pipeline parameters live
in params.yaml (:mod:`gancodec.params`), not here; bulk-job options in the bulk settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Variable:
    name: str
    default: str  # as documented ("" = unset)
    meaning: str
    read_by: str


VARIABLES: tuple[Variable, ...] = (
    Variable("GANCODEC_WEIGHTS", "the shipped hyperprior-v1.pt", "weights file to code with", "gancodec.weights"),
    Variable("GANCODEC_WEIGHTS_PATH", "", "folders (`os.pathsep`-separated: `:` on Unix) searched for an older release's weights by model id",
             "gancodec.weights.history"),
    Variable("GANCODEC_REALISM_WEIGHTS", "realism-v1.pt beside the weights", "realism decoder file for `--realism`",
             "gancodec.weights.realism"),
    Variable("GANCODEC_PRECISION", "auto", "what g_a and the post-filter compute in when coding: `auto` (bfloat16 on CPUs with AVX512-BF16 or AMX, else float32), `float32` or `bfloat16`; g_s and the entropy path are always float32/float64 (docs/speed.md)",
             "gancodec.models.inference"),
    Variable("GANCODEC_MAX_PIXELS", "268435456 (256 MP)", "largest image (pixels) read or decoded; guards untrusted input",
             "gancodec.data.imageio"),
    Variable("GANCODEC_CACHE", "~/.cache/gancodec/downloads", "cache of partial downloads and archives (pipeline data stage)",
             "gancodec.data.download"),
    Variable("GANCODEC_LPIPS_DIR", "", "folder holding LPIPS' alex.pth when the lpips package is not installed",
             "gancodec.eval.metrics"),
    Variable("GANCODEC_S3_CONNECT_TIMEOUT", "10", "S3 connect timeout, seconds", "gancodec.storage"),
    Variable("GANCODEC_S3_READ_TIMEOUT", "60", "S3 read timeout, seconds", "gancodec.storage"),
    Variable("GANCODEC_FAULT_OOM", "0", "fault drill: fraction of encodes that raise out-of-memory", "gancodec.faults"),
    Variable("GANCODEC_FAULT_S3", "0", "fault drill: fraction of S3 requests that fail transiently", "gancodec.faults"),
    Variable("GANCODEC_FAULT_SEED", "", "fault drill: seed of the injected faults (unset: random)", "gancodec.faults"),
    Variable("GANCODEC_FAULT_KILL_AFTER_PUTS", "", "fault drill: SIGKILL the process after N .gcx uploads", "gancodec.faults"),
    Variable("GANCODEC_HOME", "", "checkout a Prefect worker runs the deployed flows from (prefect.yaml pull step)",
             "prefect.yaml"),
    Variable("GANCODEC_SCRATCH", "the temp folder", "where a bulk run keeps its listing, plan and manifest copies (~1 GB per million objects)",
             "gancodec.bulk.ledger"),
    Variable("GANCODEC_BULK_MEMORY", "256MB", "DuckDB's memory limit for a bulk run's bookkeeping (it spills to GANCODEC_SCRATCH past it; one DuckDB thread per 512 MB of it, at most 2)",
             "gancodec.bulk.ledger"),
)
_NAMES = {v.name for v in VARIABLES}


def raw(name: str) -> str:
    """The variable's value, stripped ("" when unset). ``name`` must be declared above."""
    if name not in _NAMES:
        raise KeyError(f"{name} is not a declared gancodec setting; declare it in gancodec.settings.VARIABLES")
    return os.environ.get(name, "").strip()


def path(name: str) -> Path | None:
    """The variable as a path (``~`` expanded), None when unset."""
    value = raw(name)
    return Path(value).expanduser() if value else None


def paths(name: str) -> list[Path]:
    """The variable as an ``os.pathsep``-separated list of paths."""
    return [Path(p).expanduser() for p in raw(name).split(os.pathsep) if p]


def number(name: str, default: float, fix: str = "give a number") -> float:
    value = raw(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number; {fix} or unset it") from None


def integer(name: str, default: int | None, fix: str = "give a whole number") -> int | None:
    value = raw(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer; {fix} or unset it") from None


def markdown_table() -> str:
    """The variables as the Markdown table docs/architecture.md carries."""
    rows = ["| Variable | Default | Meaning | Read by |", "|---|---|---|---|"]
    rows += [f"| `{v.name}` | {v.default or '(unset)'} | {v.meaning} | `{v.read_by}` |" for v in VARIABLES]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
