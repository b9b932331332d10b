"""gancodec.bulk without Prefect: planning, back-off, verification, manifests, idempotency, safety."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import gancodec
from gancodec import bulk, faults
from gancodec.errors import DataError
from gancodec.storage import LocalStore, S3Store


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def tiny(tiny_weights, monkeypatch):
    """Settings that code with the tiny test model (PSNR floor off: it is untrained)."""
    import torch

    monkeypatch.setenv("GANCODEC_WEIGHTS", tiny_weights)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on tiny images: threads only add contention
    yield bulk.Settings(psnr_floor=0.0)
    torch.set_num_threads(threads)


def test_settings():
    assert bulk.Settings().label == "quality=default"
    assert bulk.Settings(quality=4).label == "quality=4"
    assert bulk.Settings(bpp=0.25).label == "bpp=0.25"
    assert bulk.Settings(quality=4, refine_steps=100).label == "quality=4,refine=100"
    assert bulk.Settings(quality=4, fallback=False).label == "quality=4"  # the fallback never redoes outputs
    with pytest.raises(ValueError, match="fallback must be true or false"):
        bulk.Settings(fallback="no")
    from gancodec.bulk.cli import settings_from_args
    from gancodec.cli import build_parser

    for flags, on in (([], True), (["--no-fallback"], False), (["--fallback"], True)):
        assert settings_from_args(build_parser().parse_args(["bulk", "in", "out", *flags])).fallback is on
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="refine steps"):
            bulk.Settings(refine_steps=bad)
    with pytest.raises(ValueError, match="not both"):
        bulk.Settings(quality=4, bpp=0.3)
    with pytest.raises(ValueError, match="positive"):
        bulk.Settings(bpp=-1)
    with pytest.raises(ValueError, match="unknown bulk settings"):
        bulk.Settings.from_dict({"qualty": 3})
    assert bulk.Settings.from_dict(bulk.Settings(bpp=0.5).to_dict()) == bulk.Settings(bpp=0.5)
    assert bulk.parse_shard("2/4") == (2, 4)
    with pytest.raises(ValueError):
        bulk.parse_shard("4/4")


def test_keys_and_names():
    assert bulk.is_image_key("a/B.JPG") and not bulk.is_image_key("a/b.txt") and not bulk.is_image_key("_gancodec/x.png")
    assert bulk.png_key_for("a/b.jpg.gcx") == "a/b.jpg.png"
    assert bulk.png_key_for("a/b.png.gcx") == "a/b.png"
    assert {bulk.shard_of(f"k{i}", 3) for i in range(50)} == {0, 1, 2}


def test_corrupt_sources_are_data_errors(small_images):
    good = _jpeg(small_images[0])
    for bad in (b"", b"hello, not an image", good[: len(good) // 2], _png(small_images[1])[:-40]):
        with pytest.raises(DataError):
            bulk.decode_source(bad, "x.jpg")
    pixels, _ = bulk.decode_source(good, "x.jpg")
    assert pixels.shape == small_images[0].shape


def test_oom_injection(monkeypatch):
    import torch

    monkeypatch.delenv("GANCODEC_FAULT_OOM", raising=False)
    faults.maybe_inject_oom()
    monkeypatch.setenv("GANCODEC_FAULT_OOM", "1")
    with pytest.raises(torch.OutOfMemoryError):
        faults.maybe_inject_oom()
    monkeypatch.setenv("GANCODEC_FAULT_OOM", "0.3")
    monkeypatch.setenv("GANCODEC_FAULT_SEED", "11")
    hits = 0
    for _ in range(1000):
        try:
            faults.maybe_inject_oom()
        except torch.OutOfMemoryError:
            hits += 1
    assert 240 < hits < 360


def test_one_oom_policy_the_codecs(tmp_path, tiny, small_images, monkeypatch):
    """Out of memory is handled once, by the codec (half the tile down to the smallest, then the
    CPU); the bulk job adds no loop around it. An OOM that escapes is one failed ``oom`` row."""
    from gancodec.tiling import DEFAULT_TILE, MIN_TILE

    src, dst = LocalStore(tmp_path / "src"), LocalStore(tmp_path / "dst")
    src.put("a.png", _png(small_images[0]))
    draws = []
    real_draw = faults._draw
    monkeypatch.setattr(faults, "_draw", lambda kind, rate: draws.append(kind) or real_draw(kind, rate))
    monkeypatch.setenv("GANCODEC_FAULT_OOM", "1")  # every encode attempt runs out of memory
    row = bulk.compress_one(src, dst, {"key": "a.png", "etag": "e"}, tiny.resolved(), bulk.model_id_for(tiny), "r")
    assert (row["status"], row["error_kind"], row["attempts"]) == ("failed", "oom", 1)
    assert "next run retries it" in row["error"]
    tiles = len([t for t in (DEFAULT_TILE >> i for i in range(12)) if t >= MIN_TILE])  # 1024, 512, 256, 128 on the CPU
    assert draws.count("oom") == tiles, draws  # the codec's plan once, not once per outer retry
    assert not dst.exists("a.png.gcx")


def test_local_run_skips_done_and_redoes_lost_outputs(tmp_path, tiny, small_images, monkeypatch):
    src, dst = tmp_path / "src", tmp_path / "dst"
    s = LocalStore(src)
    for i, img in enumerate(small_images[:5]):
        s.put(f"d/im{i}.png", _png(img))
    s.put("bad.jpg", b"\xff\xd8\xff\xe0 truncated")
    s.put("readme.txt", b"not an image")
    first = bulk.run_batches(str(src), str(dst), tiny, batch_size=2)
    assert (first.ok, first.failed, first.skipped, first.ignored) == (5, 1, 0, 1)
    assert first.failures[0][:2] == ("bad.jpg", "data")
    merged = pd.read_parquet(dst / "_gancodec" / "manifest.parquet")
    assert set(merged["key"]) == {f"d/im{i}.png" for i in range(5)} | {"bad.jpg"}
    assert (merged.set_index("key").loc["bad.jpg", "error"]).startswith(str(src))
    assert pd.read_csv(dst / "_gancodec" / f"manifest-{first.run_id}.csv").shape[0] == 6

    second = bulk.run_batches(str(src), str(dst), tiny, batch_size=2)
    assert (second.ok, second.failed, second.skipped) == (0, 0, 6)

    (dst / "d" / "im1.png.gcx").unlink()  # lost output: redone
    s.put("d/im2.png", _png(small_images[7]))  # changed source: redone
    third = bulk.run_batches(str(src), str(dst), tiny, batch_size=2)
    assert (third.ok, third.skipped) == (2, 4)
    other_rate = bulk.run_batches(str(src), str(dst), bulk.Settings(quality=2, psnr_floor=0), batch_size=8)
    assert (other_rate.ok, other_rate.failed) == (5, 1)  # a new setting redoes everything ...
    made = pd.read_csv(dst / "_gancodec" / f"manifest-{other_rate.run_id}.csv")
    assert not made["note"].fillna("").str.contains("adopted").any()  # ... rather than adopting the old outputs
    assert {gancodec.read_header((dst / "d" / f"im{k}.png.gcx").read_bytes()).quality for k in range(5)} == {2.0}
    from gancodec import latent_refine

    searches = []  # the real search, counted (the untrained tiny model may find nothing better)
    real_search = latent_refine.search_rd
    monkeypatch.setattr(latent_refine, "search_rd", lambda *a: searches.append(a[7]) or real_search(*a))  # a[7]: steps
    searched = bulk.run_batches(str(src), str(dst), bulk.Settings(quality=2, psnr_floor=0, refine_steps=3), batch_size=8)
    assert (searched.ok, searched.failed) == (5, 1)  # so does turning the latent search on
    assert len(searches) >= 5 and set(searches) == {3}
    manifest = pd.read_parquet(dst / "_gancodec" / "manifest.parquet")
    assert set(manifest.loc[manifest["status"] == "ok", "setting"]) == {"quality=2,refine=3"}


def test_a_stopped_run_resumes_without_listing_again(tmp_path, tiny, small_images, monkeypatch):
    """A run stopped after its first batch: --resume takes its stored plan (SRC is not listed
    again), keeps the rows that batch wrote and codes only the rest."""
    from gancodec.bulk import jobs

    src, dst = tmp_path / "src", tmp_path / "dst"
    for i, img in enumerate(small_images[:6]):
        LocalStore(src).put(f"im{i}.png", _png(img))
    settings = tiny.replace(batch_size=2)
    p = bulk.plan(str(src), str(dst), settings)
    index, first = next(p.iter_batches())
    bulk.compress_batch(str(src), str(dst), first, p.settings, model_id=p.model_id, run_id=p.run_id, batch_index=index)
    # ... killed here: one batch's outputs and manifest part written, no run manifest

    listed, coded = [], []
    real_list, real_encode = LocalStore.list, jobs.encode
    monkeypatch.setattr(LocalStore, "list", lambda self, prefix="": listed.append((self.root, prefix)) or real_list(self, prefix))
    monkeypatch.setattr(jobs, "encode", lambda pixels, s: coded.append(1) or real_encode(pixels, s))
    summary = bulk.run_batches(str(src), str(dst), settings, resume=True)
    assert summary.run_id == p.run_id and (summary.ok, summary.failed, summary.skipped) == (6, 0, 0)
    assert len(coded) == 4  # the first batch's two images were not coded again
    assert [root for root, _ in listed if root == src] == []  # SRC was not listed again
    rows = pd.read_parquet(dst / "_gancodec" / f"manifest-{p.run_id}.parquet")
    assert sorted(rows["key"]) == [f"im{i}.png" for i in range(6)] and set(rows["status"]) == {"ok"}
    assert bulk.run_batches(str(src), str(dst), settings, resume=True).run_id != p.run_id  # finished: nothing to resume


def test_an_upgrade_keeps_outputs_of_the_old_model_unless_asked(tmp_path, tiny, small_images, monkeypatch):
    """New weights must not rewrite a whole bucket on the next scheduled run: the old outputs
    still decode. --recompress-other-models migrates them on purpose."""
    import torch

    from gancodec.models import HyperpriorCodec, ModelConfig
    from gancodec.weights import export_weights, load_model

    src, dst = tmp_path / "src", tmp_path / "dst"
    for i, img in enumerate(small_images[:4]):
        LocalStore(src).put(f"im{i}.png", _png(img))
    LocalStore(src).put("broken.png", b"\x89PNG not really")
    first = bulk.run_batches(str(src), str(dst), tiny, batch_size=8)
    old_id = first.model_id
    before = {k: (dst / f"im{k}.png.gcx").read_bytes() for k in range(4)}

    torch.manual_seed(7)
    new = tmp_path / "new.pt"
    export_weights(HyperpriorCodec(ModelConfig(N=16, M=24)), new)
    monkeypatch.setenv("GANCODEC_WEIGHTS", str(new))  # the upgrade
    assert load_model().model_id != old_id
    LocalStore(src).put("im9.png", _png(small_images[9]))  # a new image arrives
    kept = bulk.run_batches(str(src), str(dst), tiny, batch_size=8)
    assert (kept.ok, kept.failed, kept.skipped) == (1, 0, 5)  # a corrupt source stays corrupt under any model
    assert all((dst / f"im{k}.png.gcx").read_bytes() == before[k] for k in range(4))  # nothing rewritten
    merged = pd.read_parquet(dst / "_gancodec" / "manifest.parquet").set_index("key")
    assert set(merged.loc[[f"im{k}.png" for k in range(4)], "model_id"]) == {old_id}  # rows name the model that made them
    assert merged.loc["im9.png", "model_id"] == kept.model_id != old_id
    run_rows = pd.read_csv(dst / "_gancodec" / f"manifest-{kept.run_id}.csv").set_index("key")
    assert run_rows.loc["im0.png", "note"].startswith(f"already compressed by model {old_id}; kept")

    migrate = bulk.run_batches(str(src), str(dst), bulk.Settings(psnr_floor=0.0, recompress_other_models=True), batch_size=8)
    assert (migrate.ok, migrate.failed, migrate.skipped) == (4, 0, 2)
    assert {gancodec.read_header((dst / f"im{k}.png.gcx").read_bytes()).model_id for k in (0, 1, 2, 3, 9)} == {kept.model_id}


def test_the_webp_fallback_is_in_the_manifest_and_keeps_older_outputs_current(tmp_path, monkeypatch):
    """Real weights: a page of text is stored as WebP, a photo keeps its learned stream; the
    learned decode is the verifier's (one per image); outputs made without the fallback (as
    before it existed) stay current when it is on."""
    import sys

    from gancodec import codec

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from sample_images import astronaut, text_page

    src = LocalStore(tmp_path / "src")
    src.put("page.png", _png(text_page()))
    src.put("photo.png", _png(astronaut(64)))
    before = bulk.run_batches(str(src.root), str(tmp_path / "dst"), bulk.Settings(quality=5, fallback=False))
    assert (before.ok, before.failed) == (2, 0)
    import pyarrow.parquet as pq

    for part in (tmp_path / "dst" / "_gancodec").rglob("*.parquet"):  # manifests as a gancodec before the column wrote them
        table = pq.read_table(part)
        if "payload" in table.column_names:
            pq.write_table(table.drop(["payload"]), part)
    upgraded = bulk.run_batches(str(src.root), str(tmp_path / "dst"), bulk.Settings(quality=5))  # the fallback is on
    assert (upgraded.ok, upgraded.skipped) == (0, 2)  # nothing is redone for it

    decodes = []
    real = codec._decode_learned
    monkeypatch.setattr(codec, "_decode_learned", lambda *a, **k: decodes.append(1) or real(*a, **k))
    fresh = bulk.run_batches(str(src.root), str(tmp_path / "new"), bulk.Settings(quality=5))
    assert (fresh.ok, fresh.failed) == (2, 0) and len(decodes) == 2  # no learned decode beyond the verifier's
    rows = pd.read_csv(tmp_path / "new" / "_gancodec" / f"manifest-{fresh.run_id}.csv").set_index("key")
    assert rows.loc["page.png", "payload"] == "webp" and rows.loc["photo.png", "payload"] == "learned"
    assert rows.loc["page.png", "quality"] == 5.0  # the learned encode whose bytes bounded the WebP
    page = (tmp_path / "new" / "page.png.gcx").read_bytes()
    assert gancodec.read_header(page).payload == "webp"
    assert len(page) <= len((tmp_path / "dst" / "page.png.gcx").read_bytes())
    kept = pd.read_csv(tmp_path / "dst" / "_gancodec" / f"manifest-{upgraded.run_id}.csv")
    assert set(kept["status"]) == {"skipped"}


def test_psnr_floor_refuses_bad_output(tmp_path, tiny, small_images):
    src, dst = LocalStore(tmp_path / "src"), LocalStore(tmp_path / "dst")
    src.put("a.png", _png(small_images[0]))
    row = bulk.compress_one(src, dst, {"key": "a.png", "etag": "e"}, bulk.Settings(psnr_floor=99.0), bulk.model_id_for(tiny), "r")
    assert (row["status"], row["error_kind"]) == ("failed", "verify")
    assert "sanity floor" in row["error"]
    assert not dst.exists("a.png.gcx")


def test_s3_orphan_output_is_adopted_not_rewritten(s3_client, s3_bucket, tiny, small_images):
    s3_client.put_bucket_versioning(Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"})
    src, dst = S3Store(f"s3://{s3_bucket}/in"), S3Store(f"s3://{s3_bucket}/out")
    info = src.put("a.png", _png(small_images[2]))
    model_id = bulk.model_id_for(tiny)
    job = {"key": "a.png", "etag": info.etag}
    first = bulk.compress_one(src, dst, job, tiny, model_id, "run1")
    again = bulk.compress_one(src, dst, job, tiny, model_id, "run2")  # e.g. a retried batch
    assert first["status"] == again["status"] == "ok"
    assert "adopted" in again["note"] and again["psnr"] == pytest.approx(first["psnr"], abs=1e-3)
    versions = s3_client.list_object_versions(Bucket=s3_bucket, Prefix="out/a.png.gcx")["Versions"]
    assert len(versions) == 1


@pytest.mark.parametrize("key", ["../evil.png", "a/../../evil.png", "..\\evil.png", "/abs.png", "x/\uff0e\uff0e\uff0fe.png"])
def test_escaping_source_keys_are_refused(s3_client, s3_bucket, tmp_path, tiny, small_images, key):
    s3_client.put_object(Bucket=s3_bucket, Key=key, Body=_png(small_images[0]))
    s3_client.put_object(Bucket=s3_bucket, Key="ok.png", Body=_png(small_images[1]))
    dst = tmp_path / "root" / "dst"
    summary = bulk.run_batches(f"s3://{s3_bucket}/", str(dst), tiny)
    assert (summary.ok, summary.failed) == (1, 1)
    assert summary.failures[0][0] == key and summary.failures[0][1] == "key"
    assert key in summary.failures[0][2] or repr(key) in summary.failures[0][2]
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.gcx"))
    assert written == ["root/dst/ok.png.gcx"]


def test_bulk_decompress_plain(tmp_path, tiny, small_images):
    src, gcx, png = tmp_path / "src", tmp_path / "gcx", tmp_path / "png"
    for i, img in enumerate(small_images[:3]):
        LocalStore(src).put(f"p/{i}.jpg", _jpeg(img))
    assert bulk.run_batches(str(src), str(gcx), tiny).ok == 3
    summary = bulk._run_decompress_plain(str(gcx), str(png), realism=False, device=None, batch_size=2)
    assert (summary.ok, summary.failed) == (3, 0)
    # the run's manifest, written from the rows streamed to a file (two batches of 2 and 1)
    manifest = pd.read_parquet(png / "_gancodec" / f"decompress-{summary.run_id}.parquet").sort_values("key")
    assert manifest["key"].tolist() == ["p/0.jpg.gcx", "p/1.jpg.gcx", "p/2.jpg.gcx"] and set(manifest["status"]) == {"ok"}
    assert len(pd.read_csv(png / "_gancodec" / f"decompress-{summary.run_id}.csv")) == 3
    out = Image.open(png / "p" / "1.jpg.png")
    assert out.size == (small_images[1].shape[1], small_images[1].shape[0])


@pytest.mark.parametrize("parallel", [1, 2])
def test_plain_loop_rides_out_a_transient_storage_outage(tmp_path, tiny, small_images, monkeypatch, parallel):
    """Storage fails twice for a transient reason mid-run: the plain loop retries the batch (as
    the flow's task would) and every image ends ok, each output written once; with images coded
    two at a time too (the failure ends the batch's map, the retry adopts what was written)."""
    from gancodec.bulk import run as bulk_run
    from gancodec.storage import TransientStorageError

    src, dst = tmp_path / "src", tmp_path / "dst"
    for i, img in enumerate(small_images[:4]):
        LocalStore(src).put(f"{i}.png", _png(img))
    waits: list[float] = []
    monkeypatch.setattr(bulk_run.time, "sleep", waits.append)
    real_put, puts, failures = LocalStore.put, [], iter([3, 5])  # the 3rd and 5th .gcx writes fail
    fail_at = next(failures)

    def flaky_put(self, key, data, **kw):
        nonlocal fail_at
        if key.endswith(".gcx"):
            puts.append(key)
            if len(puts) == fail_at:
                fail_at = next(failures, 0)
                raise TransientStorageError(f"{key}: 503 Slow Down")
        return real_put(self, key, data, **kw)

    monkeypatch.setattr(LocalStore, "put", flaky_put)
    summary = bulk.run_batches(str(src), str(dst), tiny, batch_size=4, parallel=parallel)
    assert (summary.ok, summary.failed) == (4, 0), summary.failures
    assert len(waits) == 2 and 2 <= waits[0] <= 3 and 10 <= waits[1] <= 15  # the flow's delays, with jitter
    assert sorted(p.name for p in dst.glob("*.gcx")) == [f"{i}.png.gcx" for i in range(4)]


def test_retrying_gives_up_on_what_a_retry_cannot_fix():
    from gancodec.bulk.run import retrying
    from gancodec.errors import StorageError
    from gancodec.storage import TransientStorageError

    calls: list[int] = []

    def permanent():
        calls.append(1)
        raise StorageError("s3://b/k: AccessDenied")

    with pytest.raises(StorageError, match="AccessDenied"):
        retrying(permanent, "put", sleep=lambda s: None)
    assert len(calls) == 1  # not retried

    def down():
        calls.append(1)
        raise TransientStorageError("s3://b/k: 503")

    calls.clear()
    with pytest.raises(TransientStorageError):
        retrying(down, "put", delays=(1, 2), sleep=lambda s: None)
    assert len(calls) == 3  # the first try and one per delay


def test_prefect_api_configured_reads_the_env_and_the_active_profile(tmp_path, monkeypatch):
    """`gancodec bulk` runs the Prefect flow only when there is an API to report to."""
    import sys

    from gancodec.bulk.run import prefect_api_configured

    monkeypatch.delitem(sys.modules, "prefect.settings", raising=False)  # read the files, as the CLI does
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert not prefect_api_configured()  # no profiles file: ephemeral
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "local"\n[profiles.local]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
                        '[profiles.ephemeral]\nPREFECT_SERVER_ALLOW_EPHEMERAL_MODE = "true"\n')
    assert prefect_api_configured()
    monkeypatch.setenv("PREFECT_PROFILE", "ephemeral")
    assert not prefect_api_configured()
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert prefect_api_configured()
    monkeypatch.delenv("PREFECT_API_URL")
    profiles.write_text("active = [not toml")
    assert not prefect_api_configured()


def test_gancodec_bulk_without_a_prefect_api_runs_the_plain_loop(tmp_path, tiny_weights, small_images):
    """No Prefect API configured: `gancodec bulk` does the job in its own process (Prefect is
    never imported, no temporary server), writes every output and the run manifest, exit 0."""
    import os
    import subprocess
    import sys

    src, dst = tmp_path / "src", tmp_path / "dst"
    for i, img in enumerate(small_images[:3]):
        LocalStore(src).put(f"a/{i}.png", _png(img))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(GANCODEC_WEIGHTS=tiny_weights, PREFECT_HOME=str(tmp_path / "prefect-home"), OMP_NUM_THREADS="1")
    code = ("import sys; from gancodec import cli; rc = cli.main(sys.argv[1:]); "
            "assert 'prefect' not in sys.modules, 'Prefect was imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "bulk", str(src), str(dst), "--psnr-floor", "0"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in (dst / "a").glob("*.gcx")) == ["0.png.gcx", "1.png.gcx", "2.png.gcx"]
    assert len(list((dst / "_gancodec").glob("manifest-*.parquet"))) == 1
    assert "| 3 | 0 |" in proc.stdout  # the summary: 3 ok, 0 failed
    assert not (tmp_path / "prefect-home").exists()


def test_images_at_once_splits_the_threads(tmp_path, tiny, small_images):
    """auto: one image per torch thread up to 4 on the CPU, 1 on CUDA or beside concurrent
    batches; a batch coded 3 images at a time gives the same rows, in order, as one at a time,
    and leaves the process's torch thread count as it was."""
    import torch

    s = bulk.Settings()
    assert [s.images_at_once(t) for t in (1, 2, 3, 8)] == [1, 2, 3, 4]
    assert s.replace(device="cuda").images_at_once(8) == 1 and s.replace(concurrency=2).images_at_once(8) == 1
    assert s.replace(parallel=3).images_at_once(1) == 3
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="parallel"):
            bulk.Settings(parallel=bad)
    src = tmp_path / "src"
    for i, img in enumerate(small_images[:5]):
        LocalStore(src).put(f"{i}.png", _png(img))
    threads = torch.get_num_threads()
    runs = {}
    for n in (1, 3):
        summary = bulk.run_batches(str(src), str(tmp_path / f"dst{n}"), tiny, parallel=n)
        assert (summary.ok, summary.failed) == (5, 0) and torch.get_num_threads() == threads
        part = next((tmp_path / f"dst{n}" / "_gancodec").rglob("batch-*.parquet"))
        runs[n] = pd.read_parquet(part)
    assert runs[3]["key"].tolist() == runs[1]["key"].tolist() == [f"{i}.png" for i in range(5)]
    assert (runs[3]["bytes_out"] > 0).all() and (runs[3]["psnr"] > 0).all()


def test_bulk_decompress_two_images_at_once_writes_the_same_pngs(tmp_path, tiny, small_images):
    src, gcx = tmp_path / "src", tmp_path / "gcx"
    for i, img in enumerate(small_images[:3]):
        LocalStore(src).put(f"p/{i}.jpg", _jpeg(img))
    assert bulk.run_batches(str(src), str(gcx), tiny).ok == 3
    for n in (1, 2):
        summary = bulk.run_decompress_plain(str(gcx), str(tmp_path / f"png{n}"), realism=False, device=None, batch_size=8, parallel=n)
        assert (summary.ok, summary.failed) == (3, 0)
    for i in range(3):
        assert (tmp_path / "png1" / "p" / f"{i}.jpg.png").read_bytes() == (tmp_path / "png2" / "p" / f"{i}.jpg.png").read_bytes()
