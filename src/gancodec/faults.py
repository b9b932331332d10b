"""Fault injection for tests and drills (documented in docs/bulk.md).

Set from the environment (read on every call, so a test can change them at any time):

``GANCODEC_FAULT_OOM=0.3``
    30% of calls to :func:`maybe_inject_oom` raise ``torch.OutOfMemoryError`` (``MemoryError``
    on a torch without it). The codec calls it at the start of every encode attempt, so its
    own back-off (half tile, then CPU) and the bulk back-off above it are really exercised.
``GANCODEC_FAULT_S3=0.1``
    10% of HTTP requests made by S3 clients built by :mod:`gancodec.storage` fail transiently,
    before they reach the server: half answer ``503 SlowDown``, half raise a dropped-connection
    error. Both go through botocore's own retry path (and ours when botocore gives up).
``GANCODEC_FAULT_SEED=1234``
    Makes the draws repeatable (each fault kind draws from its own stream).
``GANCODEC_FAULT_KILL_AFTER_PUTS=N``
    The process SIGKILLs itself right after its N-th successful S3 ``PutObject`` of a key
    ending in ``.gcx``: a hard crash between an output write and the manifest write, for
    idempotency tests. Never set it outside a test.

Rates must lie in [0, 1]; anything else raises ``ValueError`` naming the variable.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from typing import Any

from . import settings

__all__ = ["fault_rate", "maybe_inject_oom", "install_s3_faults", "InjectedFault"]

_lock = threading.Lock()
_rngs: dict[tuple[str, str | None], random.Random] = {}
_put_count = 0


class InjectedFault(Exception):
    """Mixed into injected exceptions, so logs and tests can tell them from real ones."""


def fault_rate(name: str) -> float:
    """The fault rate in ``GANCODEC_FAULT_<NAME>`` (0.0 when unset or empty)."""
    var = f"GANCODEC_FAULT_{name.upper()}"
    raw = settings.raw(var)
    if not raw:
        return 0.0
    try:
        rate = float(raw)
    except ValueError:
        raise ValueError(f"{var}={raw!r} is not a number; give a fraction in [0, 1] or unset it") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{var}={raw!r} is outside [0, 1]; give a fraction such as 0.1")
    return rate


def _draw(kind: str, rate: float) -> bool:
    """True with probability ``rate``, from the stream of ``kind`` (seeded by GANCODEC_FAULT_SEED)."""
    if rate <= 0.0:
        return False
    seed = settings.raw("GANCODEC_FAULT_SEED") or None
    with _lock:
        rng = _rngs.get((kind, seed))
        if rng is None:
            rng = _rngs[(kind, seed)] = random.Random(f"{kind}:{seed}" if seed is not None else None)
        return rng.random() < rate


_oom_class: type[BaseException] | None = None


def _oom_error_class() -> type[BaseException]:
    global _oom_class
    if _oom_class is None:
        try:
            import torch

            base = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
        except ImportError:  # pragma: no cover - torch is a dependency
            base = None
        _oom_class = type("InjectedOutOfMemoryError", (base or MemoryError, InjectedFault), {})
    return _oom_class


def maybe_inject_oom(where: str = "encode") -> None:
    """Raise an out-of-memory error with probability ``GANCODEC_FAULT_OOM``; else do nothing.

    Cheap when the variable is unset (one environment lookup), so it may sit on hot paths.
    """
    rate = fault_rate("OOM")
    if _draw("oom", rate):
        raise _oom_error_class()(f"injected out-of-memory in {where} (GANCODEC_FAULT_OOM={rate})")


class _RawBody:
    """The minimal ``raw`` object botocore's ``AWSResponse`` reads a body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any):
        yield self._body


def _slow_down_response(request: Any) -> Any:
    from botocore.awsrequest import AWSResponse

    body = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate. (injected by GANCODEC_FAULT_S3)</Message>"
        b"<RequestId>gancodec-fault</RequestId></Error>"
    )
    headers = {"Content-Type": "application/xml", "Content-Length": str(len(body)), "x-amz-request-id": "gancodec-fault"}
    return AWSResponse(request.url, 503, headers, _RawBody(body))


def _before_send(request: Any, **_: Any) -> Any:
    rate = fault_rate("S3")
    if not _draw("s3", rate):
        return None
    if _draw("s3-kind", 0.5):
        return _slow_down_response(request)
    from botocore.exceptions import ConnectionClosedError

    raise ConnectionClosedError(endpoint_url=f"{request.url} (injected by GANCODEC_FAULT_S3={rate})")


def _after_put(http_response: Any = None, **_: Any) -> None:
    global _put_count
    raw = settings.raw("GANCODEC_FAULT_KILL_AFTER_PUTS")
    if not raw or http_response is None or getattr(http_response, "status_code", 500) >= 300:
        return
    url = str(getattr(http_response, "url", "") or "")
    if not url.split("?", 1)[0].endswith(".gcx"):
        return
    with _lock:
        _put_count += 1
        count = _put_count
    if count >= int(raw):
        os.kill(os.getpid(), signal.SIGKILL)


def install_s3_faults(client: Any) -> Any:
    """Register the fault hooks on a boto3 S3 client; they read the environment per request."""
    events = client.meta.events
    events.register("before-send.s3", _before_send, unique_id="gancodec-fault-s3")
    events.register("after-call.s3.PutObject", _after_put, unique_id="gancodec-fault-kill")
    return client
