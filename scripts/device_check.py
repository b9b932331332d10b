#!/usr/bin/env python
"""Cross-device determinism: encode on one device, decode on others, compare.

    python scripts/device_check.py [FOLDER] [--encode cuda] [--decode cpu,cuda] [--quality 4]

For each image in FOLDER (default ``../shared/datasets/kodak`` beside the repository):

* the latents the decoder reads from the stream (always on the CPU) must equal, bit for bit,
  the latents the encoder quantised on ``--encode``;
* the images decoded on each ``--decode`` device must agree with the first one within
  ``--tolerance`` grey levels (default 1: float rounding in the synthesis transform).

Prints a table (max abs difference per image and device, whether the latents match); exits 1
on any mismatch, 2 on bad usage. ``--json`` also writes the rows. Runs anywhere: on a
CPU-only machine give ``--encode cpu --decode cpu``. docs/bitstream.md ("Determinism").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO.parent / "shared" / "datasets" / "kodak"


class LatentRecorder:
    """Wraps the model's LatentCoder: codes tiles as usual and keeps the latent each one was
    quantised to (the encoder's side of the comparison), computed the way the coder does."""

    def __init__(self, coder) -> None:
        self.coder = coder
        self.tiles: list[torch.Tensor] = []

    def encode(self, y: torch.Tensor, hyper_analysis=None) -> bytes:
        self.tiles.append(self.quantised(y, hyper_analysis or self.coder.model.h_a))
        return self.coder.encode(y, hyper_analysis)

    @torch.no_grad()
    def quantised(self, y: torch.Tensor, h_a) -> torch.Tensor:
        """y_hat = clip(round(y - mean)) + mean, with the mean the CPU derives from z_hat."""
        _, _, means, tails = self.coder.quantisation(y, h_a)
        q = np.clip(torch.round(y.to("cpu", torch.float64) - means)[0].numpy().astype(np.int64), -tails, tails)
        return (torch.from_numpy(q).to(torch.float64).unsqueeze(0) + means).float()


def encode_recording(lm, pixels: np.ndarray, quality: float, device: str, tile: int) -> tuple[bytes, torch.Tensor]:
    """(stream bytes, the latent canvas the encoder quantised) from one encode on ``device``."""
    from gancodec import codec
    from gancodec.tiling import TileGrid

    recorder = LatentRecorder(lm.coder)
    data = codec._encode(dataclasses.replace(lm, coder=recorder), pixels, quality, tile, torch.device(device))[0]
    header = codec.read_header(data)
    grid = TileGrid(header.height, header.width, header.tile_size)
    tiles = recorder.tiles[-header.n_tiles:]  # an out-of-memory retry re-encodes every tile
    canvas = torch.empty(1, lm.model.config.M, *grid.latent_shape)
    for (y0, y1, x0, x1), t in zip(grid.tiles(), tiles):
        canvas[:, :, y0:y1, x0:x1] = t
    return data, canvas


def decoded_latents(lm, data: bytes) -> torch.Tensor:
    """The latent canvas the decoder reads from ``data`` (entropy decoding runs on the CPU)."""
    from gancodec import bitstream
    from gancodec.tiling import TileGrid, decode_latents

    header, payloads = bitstream.read(data)
    grid = TileGrid(header.height, header.width, header.tile_size)
    return decode_latents(lm.coder, payloads, grid, lm.model.config.M, lm.model.config.N)


def check_image(path: Path, lm, *, quality: float, encode: str, decode: list[str], tile: int) -> dict:
    """One row of the table for ``path``; ``row["ok"]`` is False on any mismatch."""
    import gancodec
    from gancodec.data.imageio import load_image
    from gancodec.eval.metrics import psnr

    pixels = load_image(path)
    data, enc_latents = encode_recording(lm, pixels, quality, encode, tile)
    dec_latents = decoded_latents(lm, data)
    same = torch.equal(enc_latents, dec_latents)
    images = {d: np.asarray(gancodec.decompress(data, device=d)).reshape(pixels.shape) for d in decode}
    first = images[decode[0]]
    diffs = {d: int(np.abs(img.astype(np.int16) - first.astype(np.int16)).max()) for d, img in images.items()}
    return {"image": path.name, "size": f"{pixels.shape[1]}x{pixels.shape[0]}", "bytes": len(data),
            "psnr": round(psnr(first, pixels), 3), "latents_identical": same,
            "latents_differing": int((enc_latents != dec_latents).sum()), "max_abs_diff": diffs}


def format_table(rows: list[dict], decode: list[str], tolerance: int) -> str:
    head = ["image", "size", "bytes", "psnr", "latents"] + [f"maxdiff {d}" for d in decode] + ["ok"]
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        latents = "identical" if r["latents_identical"] else f"DIFFER ({r['latents_differing']})"
        cells = [r["image"], r["size"], str(r["bytes"]), f"{r['psnr']:.2f}", latents]
        cells += [str(r["max_abs_diff"][d]) for d in decode] + ["yes" if r["ok"] else "NO"]
        lines.append(" | ".join(cells))
    bad = sum(not r["ok"] for r in rows)
    lines.append(f"{len(rows)} images, {bad} mismatches (tolerance {tolerance} grey level(s))")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_decode = "cpu,cuda" if torch.cuda.is_available() else "cpu"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER), help=f"images to check (default {DEFAULT_FOLDER})")
    p.add_argument("--encode", default="cuda" if torch.cuda.is_available() else "cpu", help="encoding device")
    p.add_argument("--decode", default=default_decode, help=f"comma-separated decoding devices (default {default_decode})")
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--tile-size", type=int, default=1024)
    p.add_argument("--tolerance", type=int, default=1, help="max abs difference allowed between decode devices")
    p.add_argument("--limit", type=int, default=0, help="check only the first N images (0: all)")
    p.add_argument("--json", help="also write the rows to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from gancodec.weights import load_model

    a = parse_args(argv)
    decode = [d.strip() for d in a.decode.split(",") if d.strip()]
    folder = Path(a.folder)
    from gancodec.data import is_image_name

    files = sorted(p for p in folder.glob("*") if is_image_name(p)) if folder.is_dir() else []
    files = files[: a.limit] if a.limit else files
    wanted = {a.encode, *decode}
    if not files or not decode or (any(d.startswith("cuda") for d in wanted) and not torch.cuda.is_available()):
        print(f"device_check: error: need images in {folder} and available devices (asked for {sorted(wanted)})", file=sys.stderr)
        return 2
    lm = load_model()
    rows = []
    for path in files:
        row = check_image(path, lm, quality=a.quality, encode=a.encode, decode=decode, tile=a.tile_size)
        row["ok"] = row["latents_identical"] and max(row["max_abs_diff"].values()) <= a.tolerance
        rows.append(row)
    print(f"encode on {a.encode}, decode on {', '.join(decode)}, quality {a.quality:g}, model {lm.model_id}")
    print(format_table(rows, decode, a.tolerance))
    if a.json:
        Path(a.json).write_text(json.dumps({"encode": a.encode, "decode": decode, "model_id": lm.model_id, "rows": rows}, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
