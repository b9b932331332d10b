"""Planning a run: list SRC, keep this shard's images, skip what DST already has, batch the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..storage import Store, open_store
from .manifest import _done_reason, load_state, make_row
from .settings import (DEFAULT_BATCH_SIZE, OUTPUT_SUFFIX, CONTROL_PREFIX, Settings, is_image_key, model_id_for, new_run_id, now,
                       parse_shard, shard_of)

@dataclass
class Plan:
    """The work of one run: batches of jobs, plus rows for what was skipped."""

    run_id: str
    model_id: str
    settings: Settings
    batches: list[list[dict[str, Any]]]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    ignored: int = 0  # objects that are not images (by extension) or other shards' keys
    listed: int = 0

    @property
    def pending(self) -> int:
        return sum(len(b) for b in self.batches)


def plan(
    src: str | Store,
    dst: str | Store,
    settings: Settings | Mapping[str, Any] = Settings(),
    *,
    run_id: str | None = None,
    model_id: str | None = None,
) -> Plan:
    """List SRC, keep this shard's image keys, skip what DST already has, batch the rest
    (``settings.batch_size`` images a batch, keys of ``settings.shard`` only)."""
    settings = Settings.from_dict(settings)
    batch_size = settings.batch_size
    shard_i, shard_n = parse_shard(settings.shard)
    src_store = src if isinstance(src, Store) else open_store(src)
    dst_store = dst if isinstance(dst, Store) else open_store(dst)
    model_id = model_id or model_id_for(settings)
    run_id = run_id or new_run_id()
    dst_store.probe(write=True)  # a destination that cannot be written fails the run now, not per image
    state, _ = load_state(dst_store)
    outputs = {o.key: o.size for o in dst_store.list() if o.key.endswith(OUTPUT_SUFFIX)}
    result = Plan(run_id=run_id, model_id=model_id, settings=settings, batches=[])
    batch: list[dict[str, Any]] = []
    for info in src_store.list():
        result.listed += 1
        if not is_image_key(info.key) or (shard_n > 1 and shard_of(info.key, shard_n) != shard_i):
            result.ignored += 1
            continue
        prior = state.get(info.key)
        reason = _done_reason(prior, info, model_id, settings.label, outputs, not settings.recompress_other_models)
        if reason is not None:
            carried = {k: prior[k] for k in ("output_key", "sha256", "bytes_in", "bytes_out", "width", "height", "channels", "bpp", "psnr", "quality", "target_bpp")}
            error = prior["error"] if prior["status"] == "failed" else ""
            result.skipped.append(
                make_row(  # model_id: the model that made the kept output
                    run_id=run_id, key=info.key, source_etag=info.etag or "", model_id=prior["model_id"], setting=settings.label,
                    status="skipped", error_kind=prior["error_kind"], error=error, note=reason, finished_at=now(), **carried,
                )
            )
            continue
        job = {"key": info.key, "etag": info.etag or "", "size": info.size}
        if prior is not None and prior["status"] == "ok" and (prior["model_id"], prior["setting"]) != (model_id, settings.label):
            job["stale_output"] = True  # DST's output was made with another model or setting: never adopt it
        batch.append(job)
        if len(batch) >= batch_size:
            result.batches.append(batch)
            batch = []
    if batch:
        result.batches.append(batch)
    return result




def plan_decompress(src: str | Store, *, batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[dict[str, Any]]]:
    """Batches of the ``.gcx`` objects under SRC (the control folder excluded)."""
    from .jobs import cached_store

    batches: list[list[dict[str, Any]]] = []
    batch: list[dict[str, Any]] = []
    for info in cached_store(src).list():
        if not info.key.endswith(OUTPUT_SUFFIX) or info.key.startswith(CONTROL_PREFIX):
            continue
        batch.append({"key": info.key, "etag": info.etag or "", "size": info.size})
        if len(batch) >= batch_size:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches
