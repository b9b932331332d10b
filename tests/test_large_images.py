"""Any image size at bounded memory: a 12-megapixel round trip stays under 2.5 GiB of RAM on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, resource, time
    import numpy as np
    import gancodec
    h, w = {h}, {w}
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    img = np.stack([128 + 60 * np.sin(xx / 97 + c) * np.cos(yy / 61 - c) for c in range(3)], -1)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    del yy, xx
    t = time.time()
    data = gancodec.compress(img, quality=2, device="cpu")
    t_enc = time.time() - t
    t = time.time()
    out = np.asarray(gancodec.decompress(data, device="cpu"))
    t_dec = time.time() - t
    mse = np.mean((out.astype(np.float32) - img) ** 2)
    print(json.dumps({{"shape": list(out.shape), "bytes": len(data), "psnr": float(10 * np.log10(255**2 / mse)),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "encode_s": t_enc, "decode_s": t_dec}}))
""")


@pytest.mark.slow
def test_12_megapixel_round_trip_under_2_5_gib():
    h, w = 3000, 4096  # 12.3 MP
    r = subprocess.run([sys.executable, "-c", SCRIPT.format(h=h, w=w)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    print(result)
    assert result["shape"] == [h, w, 3]
    assert result["peak_rss_mib"] < 2.5 * 1024
    assert result["psnr"] > 20
