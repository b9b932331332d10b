"""The codecs measured here: gancodec itself, JPEG, WebP, AVIF, JPEG XL and HEVC intra 4:4:4 (BPG's engine).

Each :class:`Codec` has ``encode(img, setting) -> bytes`` and ``decode(bytes) -> uint8 HxWx3``;
the file size counted is exactly the bytes returned (container included, as a user would store
it). ``setting`` is the codec's own quality knob (see :data:`CODECS` for each range and sweep).

=========  ====================================  ============================================
name       implementation                        knob
=========  ====================================  ============================================
gancodec   :func:`gancodec.compress` (shipped    quality 1..8 (:func:`gancodec_codec` for other
           weights, device auto)                 weights, a device or a latent search)
jpeg420    Pillow (libjpeg), 4:2:0               quality 1..95 (higher = more bits)
jpeg444    Pillow (libjpeg), 4:4:4               quality 1..95
webp       Pillow (libwebp), method 4            quality 0..100
avif       Pillow 13 native (libavif), 4:4:4,    quality 0..100
           speed 6
avifenc    ``avifenc`` CLI, 4:4:4, ``-s 6``      quantizer 0..63 via ``--min/--max`` (lower =
                                                 more bits)
jxl        ``imagecodecs`` (libjxl), effort 7    distance 0.05..25 (lower = more bits)
cjxl       ``cjxl`` CLI, ``-e 7``                distance 0.05..25
hevc444    ``ffmpeg`` + libx265, intra 4:4:4     QP 0..51 (lower = more bits)
=========  ====================================  ============================================

HEVC follows what lands within ~3% of the published BPG curve (DESIGN.md): RGB is turned into
full-range BT.601 YCbCr here in float64 with round-to-nearest (not by swscale's fixed-point
path), x265 runs with ``-tune psnr`` and ``info=0`` (otherwise ~2 KB of settings text goes into
every stream), and the raw ``.hevc`` elementary stream is the file counted.

A codec whose library or binary is missing is never dropped silently: :meth:`Codec.available`
gives the reason, :func:`sweep` raises :class:`CodecUnavailable` with it, and
:func:`sweep_many` returns the skipped codecs with their reasons beside the results.

RD curves follow CompressAI: sweep fixed settings, then average bpp and PSNR per setting over
the images (:func:`rd_curve`). Targeting one bpp on every image instead flatters a codec (~8%
BD-rate on Kodak, DESIGN.md); :func:`match_bpp` is for single-image demos ("JPEG PSNR at this
bpp"), not for curves.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from PIL import Image, features

from . import metrics

Setting = Union[int, float]
Images = Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]


class CodecUnavailable(RuntimeError):
    """The codec's library or binary is not installed here; the message says which."""


@dataclass(frozen=True)
class Codec:
    """A classical codec with one quality knob.

    ``low_rate``/``high_rate`` are the knob's ends (fewest bits / most bits); ``sweep_settings``
    is the default RD sweep, ordered from fewest to most bits.
    """

    name: str
    description: str
    low_rate: Setting
    high_rate: Setting
    sweep_settings: tuple[Setting, ...]
    integer: bool
    _encode: Callable[[np.ndarray, Setting], bytes]
    _decode: Callable[[bytes], np.ndarray]
    _missing: Callable[[], Optional[str]]

    def available(self) -> tuple[bool, str]:
        """(True, "ok") or (False, why it cannot run here)."""
        reason = self._missing()
        return (reason is None, reason or "ok")

    def _require(self) -> None:
        ok, reason = self.available()
        if not ok:
            raise CodecUnavailable(f"{self.name} skipped: {reason}")

    def encode(self, img: np.ndarray, setting: Setting) -> bytes:
        """Compress an 8-bit RGB (or grayscale, coded as RGB) image at ``setting``."""
        self._require()
        lo, hi = sorted((self.low_rate, self.high_rate))
        if not lo <= setting <= hi:
            raise ValueError(f"{self.name}: setting {setting} outside [{lo}, {hi}]")
        return self._encode(_rgb(img), setting)

    def decode(self, data: bytes) -> np.ndarray:
        """Decompress to a ``uint8`` HxWx3 array."""
        self._require()
        return _rgb(self._decode(data))


def _rgb(img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"baselines take uint8 images, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected HxW or HxWxC image, got shape {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


# --------------------------------------------------------------------------- helpers
def _run(cmd: list[str], stdin: bytes = b"") -> bytes:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def _which(binary: str, package: str) -> Optional[str]:
    return None if shutil.which(binary) else f"{binary} not found (apt-get install {package}; scripts/install_codecs.sh)"


def _pil_missing(feature: str) -> Callable[[], Optional[str]]:
    return lambda: None if features.check(feature) else f"Pillow built without {feature}"


def _pil_encode(fmt: str, **fixed) -> Callable[[np.ndarray, Setting], bytes]:
    def encode(img: np.ndarray, setting: Setting) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt, quality=int(setting), **fixed)
        return buf.getvalue()

    return encode


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _png(img: np.ndarray, path: Path) -> None:
    Image.fromarray(img).save(path, format="PNG", compress_level=1)


# --------------------------------------------------------------------------- AVIF / JPEG XL CLIs
def _avifenc(img: np.ndarray, q: Setting) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.png", Path(tmp) / "out.avif"
        _png(img, src)
        _run(["avifenc", "--min", str(int(q)), "--max", str(int(q)), "-s", "6", "-y", "444", "-j", "1", str(src), str(dst)])
        return dst.read_bytes()


def _cjxl(img: np.ndarray, distance: Setting) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.png", Path(tmp) / "out.jxl"
        _png(img, src)
        _run(["cjxl", str(src), str(dst), "-d", f"{float(distance):g}", "-e", "7", "--quiet"])
        return dst.read_bytes()


def _jxl_lib_missing() -> Optional[str]:
    try:
        import imagecodecs
    except ImportError:
        return "imagecodecs not installed (pip install imagecodecs)"
    return None if imagecodecs.JPEGXL.available else "imagecodecs built without JPEG XL"


def _jxl_encode(img: np.ndarray, distance: Setting) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(img, distance=float(distance), effort=7))


def _jxl_decode(data: bytes) -> np.ndarray:
    if _jxl_lib_missing() is None:
        import imagecodecs

        return np.asarray(imagecodecs.jpegxl_decode(data))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.jxl", Path(tmp) / "out.png"
        src.write_bytes(data)
        _run(["djxl", str(src), str(dst), "--quiet"])
        return _pil_decode(dst.read_bytes())


def _cjxl_missing() -> Optional[str]:
    if shutil.which("cjxl") is None:
        return _which("cjxl", "libjxl-tools")
    if _jxl_lib_missing() is not None and shutil.which("djxl") is None:
        return "no JPEG XL decoder (imagecodecs or djxl)"
    return None


# --------------------------------------------------------------------------- HEVC intra 4:4:4
#: Full-range BT.601 (JFIF) RGB -> YCbCr, the "ycbcr" colour space of BPG.
_RGB2YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]]
)
_YCC2RGB = np.linalg.inv(_RGB2YCC)


def rgb_to_ycbcr(img: np.ndarray) -> np.ndarray:
    """Full-range BT.601 YCbCr planes (3xHxW uint8), computed in float64, rounded to nearest."""
    ycc = np.einsum("ij,hwj->ihw", _RGB2YCC, img.astype(np.float64))
    ycc[1:] += 128.0
    return np.clip(np.rint(ycc), 0, 255).astype(np.uint8)


def ycbcr_to_rgb(planes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`: 3xHxW planes -> HxWx3 uint8 RGB."""
    ycc = planes.astype(np.float64)
    ycc[1:] -= 128.0
    rgb = np.einsum("ij,jhw->hwi", _YCC2RGB, ycc)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _hevc_missing() -> Optional[str]:
    reason = _which("ffmpeg", "ffmpeg")
    if reason:
        return reason
    encoders = _run(["ffmpeg", "-hide_banner", "-encoders"]).decode(errors="replace")
    return None if "libx265" in encoders else "ffmpeg built without libx265"


def _hevc_encoder(preset: str) -> Callable[[np.ndarray, Setting], bytes]:
    def encode(img: np.ndarray, qp: Setting) -> bytes:
        h, w = img.shape[:2]
        planes = rgb_to_ycbcr(img)
        cmd = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "rawvideo", "-pix_fmt", "yuv444p", "-s:v", f"{w}x{h}", "-r", "1", "-i", "pipe:0",
            "-frames:v", "1", "-c:v", "libx265", "-preset", preset, "-tune", "psnr",
            "-x265-params", f"qp={int(qp)}:info=0:log-level=error",
            "-f", "hevc", "pipe:1",
        ]  # fmt: skip
        return _run(cmd, planes.tobytes())

    return encode


def _read_y4m_444(data: bytes) -> np.ndarray:
    """The first frame of a yuv4mpeg2 C444 stream as 3xHxW planes."""
    header, _, rest = data.partition(b"\n")
    fields = header.split()
    if not fields or fields[0] != b"YUV4MPEG2":
        raise RuntimeError("ffmpeg did not return a yuv4mpeg2 stream")
    w = int(next(f[1:] for f in fields if f.startswith(b"W")))
    h = int(next(f[1:] for f in fields if f.startswith(b"H")))
    frame_header, _, payload = rest.partition(b"\n")
    if not frame_header.startswith(b"FRAME") or len(payload) < 3 * h * w:
        raise RuntimeError(f"truncated yuv4mpeg2 frame ({len(payload)} of {3 * h * w} bytes)")
    return np.frombuffer(payload[: 3 * h * w], np.uint8).reshape(3, h, w)


def _hevc_decode(data: bytes) -> np.ndarray:
    cmd = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "hevc", "-i", "pipe:0",
        "-frames:v", "1", "-pix_fmt", "yuv444p", "-f", "yuv4mpegpipe", "pipe:1",
    ]  # fmt: skip
    return ycbcr_to_rgb(_read_y4m_444(_run(cmd, data)))


def hevc444(preset: str = "medium") -> Codec:
    """HEVC intra 4:4:4 (x265 ``preset``), settings = QP."""
    return Codec(
        name="hevc444" if preset == "medium" else f"hevc444-{preset}",
        description=f"HEVC intra 4:4:4, ffmpeg/libx265 -preset {preset} -tune psnr, info=0, full-range BT.601",
        low_rate=51, high_rate=0, sweep_settings=(47, 42, 37, 32, 27, 22), integer=True,
        _encode=_hevc_encoder(preset), _decode=_hevc_decode, _missing=_hevc_missing,
    )  # fmt: skip


# --------------------------------------------------------------------------- gancodec
QUALITY_SWEEP_GANCODEC = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)


#: The name of gancodec with its WebP fallback on, as the per-class table measures it.
FALLBACK_NAME = "gancodec+webp"


def gancodec_codec(*, weights: Optional[str] = None, device: Optional[str] = None, refine_steps: int = 0,
                   fallback: bool = False) -> Codec:
    """gancodec as a :class:`Codec` (knob: quality 1..8): measured by the same sweep, metrics
    and RD curves as every other codec. ``weights``, ``device`` and ``refine_steps`` go to
    :func:`gancodec.compress` / :func:`gancodec.decompress`; the codec loads on first use.

    ``fallback`` is off: the evaluation measures the learned codec, not the WebP safety net
    that ``compress`` turns on for users. With ``fallback=True`` the codec is named
    :data:`FALLBACK_NAME` (the per-class table measures both)."""

    def encode(img: np.ndarray, quality: Setting) -> bytes:
        from .. import compress

        return compress(img, quality=float(quality), device=device, weights=weights, refine_steps=refine_steps,
                        fallback=fallback)

    def decode(data: bytes) -> np.ndarray:
        from .. import decompress

        return np.asarray(decompress(data, device=device, weights=weights))

    def missing() -> Optional[str]:
        from ..errors import GancodecError
        from ..weights import load_model

        try:
            load_model(weights)
        except GancodecError as exc:
            return str(exc)
        return None

    what = f"weights {weights}" if weights else "shipped weights"
    what += ", WebP fallback" if fallback else ""
    return Codec(FALLBACK_NAME if fallback else "gancodec",
                 f"gancodec ({what}{', latent search ' + str(refine_steps) if refine_steps else ''})",
                 1.0, 8.0, QUALITY_SWEEP_GANCODEC, False, encode, decode, missing)


# --------------------------------------------------------------------------- the registry
_QUALITY_SWEEP = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)

CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("jpeg420", "JPEG 4:2:0 (Pillow/libjpeg)", 1, 95, _QUALITY_SWEEP, True,
              _pil_encode("JPEG", subsampling=2), _pil_decode, _pil_missing("jpg")),
        Codec("jpeg444", "JPEG 4:4:4 (Pillow/libjpeg)", 1, 95, _QUALITY_SWEEP, True,
              _pil_encode("JPEG", subsampling=0), _pil_decode, _pil_missing("jpg")),
        Codec("webp", "WebP lossy (Pillow/libwebp, method 4)", 0, 100, _QUALITY_SWEEP, True,
              _pil_encode("WEBP", method=4), _pil_decode, _pil_missing("webp")),
        Codec("avif", "AVIF 4:4:4 (Pillow/libavif, speed 6)", 0, 100, (10, 20, 30, 40, 50, 60, 70, 80, 90), True,
              _pil_encode("AVIF", subsampling="4:4:4", speed=6), _pil_decode, _pil_missing("avif")),
        Codec("avifenc", "AVIF 4:4:4 (avifenc -s 6, --min=--max=Q)", 63, 0, (56, 48, 40, 32, 24, 16, 8), True,
              _avifenc, _pil_decode,
              lambda: _which("avifenc", "libavif-bin") or _pil_missing("avif")()),
        Codec("jxl", "JPEG XL (imagecodecs/libjxl, effort 7)", 25.0, 0.05, (12.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5), False,
              _jxl_encode, _jxl_decode, _jxl_lib_missing),
        Codec("cjxl", "JPEG XL (cjxl -e 7)", 25.0, 0.05, (12.0, 8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5), False,
              _cjxl, _jxl_decode, _cjxl_missing),
        hevc444(),
        gancodec_codec(),
    )
}  # fmt: skip
#: The codecs compared against gancodec (every registered one but gancodec itself).
CLASSICAL = tuple(name for name in CODECS if name != "gancodec")


def get_codec(codec: Union[str, Codec]) -> Codec:
    """A codec by name (or the codec itself); unknown names list the valid ones."""
    if isinstance(codec, Codec):
        return codec
    try:
        return CODECS[codec]
    except KeyError:
        raise KeyError(f"unknown codec {codec!r}; valid: {', '.join(CODECS)}") from None


def availability() -> dict[str, str]:
    """Every registered codec -> "ok" or the reason it is skipped here."""
    return {name: c.available()[1] for name, c in CODECS.items()}


# --------------------------------------------------------------------------- measuring
def _named(images: Images) -> list[tuple[str, np.ndarray]]:
    if isinstance(images, Mapping):
        return list(images.items())
    return [(str(i), img) for i, img in enumerate(images)]


def measure(codec: Union[str, Codec], img: np.ndarray, setting: Setting, *, perceptual: bool = False,
            perceptual_max_bpp: float = float("inf"), with_ms_ssim: bool = True) -> dict:
    """One encode/decode of one image: bytes, bpp, psnr, ms_ssim (NaN if too small or not asked), times.

    ``perceptual`` adds ``ssimulacra2`` (NaN above ``perceptual_max_bpp``: it costs ~1 s a
    Kodak image, so a sweep can skip the rates no plot or BD-rate looks at).
    """
    codec = get_codec(codec)
    x = _rgb(img)
    t0 = time.perf_counter()
    data = codec.encode(x, setting)
    t1 = time.perf_counter()
    x_hat = codec.decode(data)
    t2 = time.perf_counter()
    if x_hat.shape != x.shape:
        raise RuntimeError(f"{codec.name}: decoded shape {x_hat.shape} != input {x.shape}")
    score = perceptual and metrics.bpp(len(data), *x.shape[:2]) <= perceptual_max_bpp
    m = metrics.compute_metrics(x, x_hat, len(data), perceptual=score, with_ms_ssim=with_ms_ssim)
    row = {
        "codec": codec.name, "setting": setting, "bytes": len(data), "bpp": m.bpp, "psnr": m.psnr,
        "ms_ssim": np.nan if m.ms_ssim is None else m.ms_ssim, "encode_s": t1 - t0, "decode_s": t2 - t1,
    }  # fmt: skip
    if perceptual:
        row["ssimulacra2"] = np.nan if m.ssimulacra2 is None else m.ssimulacra2
    return row


def sweep(
    codec: Union[str, Codec],
    images: Images,
    settings: Optional[Sequence[Setting]] = None,
    *,
    perceptual: bool = False,
    perceptual_max_bpp: float = float("inf"),
    progress: Optional[Callable[[], None]] = None,
    with_ms_ssim: bool = True,
) -> pd.DataFrame:
    """Per image and setting: bytes, bpp, psnr, ms_ssim, encode_s, decode_s (+ ssimulacra2).

    ``images``: a mapping name -> uint8 array, or a sequence (named by index). ``settings``
    default to the codec's sweep. Raises :class:`CodecUnavailable` when the codec cannot run.
    ``progress`` is called once per (image, setting) measured.
    """
    codec = get_codec(codec)
    codec._require()
    rows = []
    for name, img in _named(images):
        for setting in settings if settings is not None else codec.sweep_settings:
            rows.append({"image": name, **measure(codec, img, setting, perceptual=perceptual,
                                                  perceptual_max_bpp=perceptual_max_bpp, with_ms_ssim=with_ms_ssim)})
            progress and progress()
    return pd.DataFrame(rows)


def sweep_many(
    codecs: Sequence[Union[str, Codec]], images: Images, *, perceptual: bool = False,
    perceptual_max_bpp: float = float("inf"), workers: int = 1, progress: Optional[Callable[[], None]] = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Sweep several codecs; returns (all rows, {skipped codec: reason}).

    ``workers`` > 1 measures images in that many processes (rows come back in the same order).
    ``progress`` is called once per image done.
    """
    available, skipped = [], {}
    for c in codecs:
        codec = get_codec(c)
        ok, reason = codec.available()
        if ok:
            available.append(codec.name)
        else:
            skipped[codec.name] = reason
    named = _named(images)
    if not available or not named:
        return pd.DataFrame(), skipped
    job = functools.partial(_sweep_one_image, available, perceptual=perceptual, perceptual_max_bpp=perceptual_max_bpp)
    frames = []
    if workers > 1 and len(named) > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork after torch has started its threads
        with ProcessPoolExecutor(min(workers, len(named)), mp_context=ctx, initializer=_one_thread) as pool:
            for frame in pool.map(job, named):
                frames.append(frame)
                progress and progress()
    else:
        for item in named:
            frames.append(job(item))
            progress and progress()
    rows = pd.concat(frames, ignore_index=True)
    order = {name: i for i, name in enumerate(available)}  # codec-major, as one sweep per codec gives
    rows = rows.sort_values("codec", key=lambda s: s.map(order), kind="stable", ignore_index=True)
    return rows, skipped


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _sweep_one_image(codecs: list[str], item: tuple[str, np.ndarray], **kw) -> pd.DataFrame:
    name, img = item
    return pd.concat([sweep(c, {name: img}, **kw) for c in codecs], ignore_index=True)


def rd_curve(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of each numeric metric per (codec, setting) over the images, sorted by bpp.

    The CompressAI convention: one RD point per fixed setting, bpp and PSNR averaged over images
    (so PSNR is the mean of per-image PSNRs). ``images`` counts the images averaged.
    """
    metric_cols = [c for c in ("bytes", "bpp", "psnr", "ms_ssim", "ssimulacra2", "encode_s", "decode_s") if c in df]
    grouped = df.groupby(["codec", "setting"], sort=False)
    out = grouped[metric_cols].mean()
    if "ssimulacra2" in out:  # scored only up to a bpp cap: a point missing any image's score has none
        out["ssimulacra2"] = grouped["ssimulacra2"].agg(lambda s: s.mean(skipna=False))
    out["images"] = grouped.size()
    return out.reset_index().sort_values(["codec", "bpp"], ignore_index=True)


@dataclass(frozen=True)
class BppMatch:
    """The result of :func:`match_bpp`; ``over_target`` when even the lowest rate is too big."""

    codec: str
    setting: Setting
    bytes: int
    bpp: float
    psnr: float
    over_target: bool


def match_bpp(codec: Union[str, Codec], img: np.ndarray, target_bpp: float, *, steps: int = 12) -> BppMatch:
    """The highest-quality setting whose bpp does not exceed ``target_bpp``, by bisection.

    Integer knobs are searched exactly; continuous ones for ``steps`` halvings. Assumes the
    rate grows monotonically from ``low_rate`` to ``high_rate`` (true of these codecs up to
    rare one-step wiggles). For single-image demos only; RD curves use :func:`sweep`.
    """
    codec = get_codec(codec)
    x = _rgb(img)
    h, w = x.shape[:2]
    cache: dict[Setting, bytes] = {}

    def rate(s: Setting) -> float:
        if s not in cache:
            cache[s] = codec.encode(x, s)
        return metrics.bpp(len(cache[s]), h, w)

    lo, hi = codec.low_rate, codec.high_rate  # lo: few bits; invariant: rate(lo) <= target < rate(hi)
    if rate(hi) <= target_bpp:
        lo = hi
    elif rate(lo) <= target_bpp:
        for _ in range(64 if codec.integer else steps):
            if codec.integer and abs(hi - lo) <= 1:
                break
            mid = (lo + hi) // 2 if codec.integer else (lo + hi) / 2
            lo, hi = (mid, hi) if rate(mid) <= target_bpp else (lo, mid)
    data = cache[lo]
    psnr = metrics.psnr(x, codec.decode(data))
    return BppMatch(codec.name, lo, len(data), metrics.bpp(len(data), h, w), psnr, rate(lo) > target_bpp)
