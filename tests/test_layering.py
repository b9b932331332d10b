"""The codec path is free of training and orchestration code (docs/architecture.md).

The import-linter contracts in pyproject.toml check the static import graph (`lint-imports`, run
by `make test`); these tests check what a real decode actually loads, in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gancodec import compress
from gancodec.errors import ModelError

#: Module prefixes a worker that only decodes must never load.
FORBIDDEN = ("gancodec.train", "gancodec.realism.loop", "gancodec.realism.losses", "gancodec.realism.discriminator",
             "gancodec.eval", "gancodec.bulk", "gancodec.cli", "gancodec.data.download", "prefect", "dvc", "dvclive")


def _loaded_by(code: str) -> list[str]:
    """Module names a fresh interpreter has loaded after running ``code``."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    path = tmp_path_factory.mktemp("layering") / "x.gcx"
    rng = np.random.default_rng(0)
    path.write_bytes(compress(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8), quality=3, fallback=False))
    return path


def test_decompressing_a_stream_loads_no_training_evaluation_or_orchestration_module(stream):
    loaded = _loaded_by(f"""
        from gancodec import decompress
        image = decompress(open({str(stream)!r}, "rb").read())
        assert image.size == (80, 48), image.size
    """)
    assert "gancodec.codec" in loaded and "gancodec.models.coder" in loaded  # it did decode
    assert _forbidden(loaded) == []


def test_decoding_a_webp_fallback_stream_needs_no_weights(tmp_path):
    from PIL import Image

    from gancodec import bitstream

    webp = tmp_path / "x.webp"
    Image.new("RGB", (40, 24), (200, 30, 30)).save(webp, quality=80)
    stream = tmp_path / "x.gcx"
    stream.write_bytes(bitstream.write_classic("webp", 24, 40, 3, webp.read_bytes()))
    loaded = _loaded_by(f"""
        from gancodec import codec, decompress
        def no_weights(*args, **kwargs):
            raise AssertionError("a WebP stream loaded weights")
        codec.load_model = codec.find_weights = no_weights
        image = decompress(open({str(stream)!r}, "rb").read())
        assert image.size == (40, 24) and image.getpixel((3, 3))[0] > 150, image.getpixel((3, 3))
    """)
    assert "gancodec.fallback" in loaded
    assert _forbidden(loaded) == []


def test_decoding_with_a_realism_decoder_loads_no_realism_training_module(stream, tmp_path):
    from gancodec.models import HyperpriorCodec
    from gancodec.weights import load_model
    from gancodec.weights.realism import export_realism

    path = tmp_path / "realism.pt"
    export_realism(HyperpriorCodec().g_s, load_model().model_id, path)
    loaded = _loaded_by(f"""
        from gancodec import decompress
        decompress(open({str(stream)!r}, "rb").read(), realism=0.5, realism_weights={str(path)!r})
    """)
    assert "gancodec.weights.realism" in loaded
    assert _forbidden(loaded) == []


def test_importing_the_realism_package_loads_no_training_code_until_asked():
    loaded = _loaded_by("import gancodec.realism, gancodec.realism.weights")
    assert _forbidden(loaded) == []
    loaded = _loaded_by("from gancodec.realism import train_realism")
    assert "gancodec.realism.loop" in loaded  # the lazy names still resolve


def test_an_unknown_architecture_is_refused_naming_the_valid_ones(tmp_path):
    import torch

    from gancodec.models import architectures, model_from_checkpoint
    from gancodec.weights import load_checkpoint, load_model

    ckpt = load_checkpoint(load_model().path)
    assert "hyperprior" in architectures()
    model = model_from_checkpoint(ckpt, "shipped")
    assert type(model).__name__ == "HyperpriorCodec"
    ckpt["model_config"] = {**ckpt["model_config"], "architecture": "transformer-xl"}
    torch.save(ckpt, tmp_path / "odd.pt")
    with pytest.raises(ModelError, match=r"odd\.pt: .*unknown architecture 'transformer-xl'; valid architectures are \['hyperprior'"):
        load_model(tmp_path / "odd.pt")


SRC = __import__("pathlib").Path(__file__).resolve().parents[1] / "src" / "gancodec"


def test_no_library_module_is_over_600_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def test_the_library_never_loads_the_flows_or_stages_shells():
    """flows/ and stages/ import the library, never the reverse (by import or by file path)."""
    import re

    pattern = re.compile(r"spec_from_file_location|^\s*(from|import)\s+(flows|stages)\b|[\"'](flows|stages)/", re.M)
    hits = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if pattern.search(p.read_text())]
    assert hits == []
