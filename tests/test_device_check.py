"""scripts/device_check.py runs on a CPU-only machine (--encode cpu --decode cpu) and says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from sample_images import astronaut, camera

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_check.py"


def run(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(folder), "--encode", "cpu", "--decode", "cpu", *extra],
                          capture_output=True, text=True, timeout=300)


def test_cpu_to_cpu_on_two_images(tmp_path):
    Image.fromarray(astronaut(96)).save(tmp_path / "a.png")
    Image.fromarray(camera(80)[:, :48]).save(tmp_path / "b.png")  # grayscale, not a multiple of 16
    r = run(tmp_path, "--json", str(tmp_path / "rows.json"), "--tile-size", "64")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 images, 0 mismatches" in r.stdout and "a.png" in r.stdout and "b.png" in r.stdout
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [(x["image"], x["size"], x["latents_identical"], x["max_abs_diff"]) for x in rows] == [
        ("a.png", "96x96", True, {"cpu": 0}), ("b.png", "48x80", True, {"cpu": 0})]
    assert all(x["psnr"] > 20 for x in rows)
    # the exit status follows the comparison: a tolerance no image can meet is a mismatch
    strict = run(tmp_path, "--tolerance", "-1", "--limit", "1")
    assert strict.returncode == 1 and "1 images, 1 mismatches" in strict.stdout


def test_usage_errors_exit_2(tmp_path):
    r = run(tmp_path)  # an empty folder
    assert r.returncode == 2 and "device_check: error:" in r.stderr and "Traceback" not in r.stderr
