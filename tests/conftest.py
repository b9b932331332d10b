"""Shared pytest fixtures. Keep them generic; add your own below with a short docstring.

* ``moto_server`` (session): a real S3 API on loopback (moto's threaded server); sets
  ``AWS_ENDPOINT_URL`` and dummy credentials for the whole session, so any boto3 client made
  afterwards talks to it and nothing can reach real AWS.
* ``s3_client``: a plain boto3 client on that server (for set-up and inspection).
* ``s3_bucket``: a fresh, empty bucket per test (its name); ``s3_url``: ``s3://<bucket>/``.
* ``prefect_harness`` (session): Prefect on a throw-away database and PREFECT_HOME, analytics
  off; yields the API URL (give it to subprocesses as PREFECT_API_URL). Costs ~10 s once per
  session: only flow tests should ask for it.
* ``small_images``: ~24 small RGB/gray crops of skimage.data images as uint8 arrays.
"""

from __future__ import annotations

import itertools
import os
import socket
import uuid

import numpy as np
import pytest

_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """Endpoint URL of a moto S3 server running in a thread of this test process."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in _AWS_ENV.items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        mp.setenv("AWS_ENDPOINT_URL", url)
        yield url
    server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_server):
    import boto3

    return boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client):
    """A new empty bucket for this test; its name."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_url(s3_bucket):
    return f"s3://{s3_bucket}/"


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """Prefect on a temporary database and PREFECT_HOME (session-wide); yields the API URL."""
    home = tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_HOME", str(home))
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        mp.setenv("DO_NOT_TRACK", "1")
        mp.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
        mp.delenv("PREFECT_API_URL", raising=False)
        from prefect.testing.utilities import prefect_test_harness

        import prefect.settings

        with prefect_test_harness(server_startup_timeout=600):
            yield prefect.settings.PREFECT_API_URL.value()


def _crops() -> list[np.ndarray]:
    from skimage import data

    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry(), data.camera(), data.coins()]
    sizes = [(64, 64), (96, 64), (64, 96), (128, 96), (80, 112)]
    out = []
    for i, (src, (h, w)) in enumerate(zip(itertools.cycle(sources), itertools.islice(itertools.cycle(sizes), 24))):
        y = (37 * i) % (src.shape[0] - h)
        x = (53 * i) % (src.shape[1] - w)
        out.append(np.ascontiguousarray(src[y : y + h, x : x + w]))
    return out


@pytest.fixture(scope="session")
def small_images() -> list[np.ndarray]:
    """24 small crops (64x64 .. 128x96, RGB and gray) of images bundled with scikit-image."""
    return _crops()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """Path of a tiny random-init codec (N=16, M=24) exported like shipped weights.

    Codes a 128x96 image in a few ms on CPU, so flow tests can push many images through the
    real codec path. It is untrained: decoded PSNR is ~5 dB, so set a PSNR floor of 0 with it.
    """
    import torch

    from gancodec.models import HyperpriorCodec, ModelConfig
    from gancodec.weights import export_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    export_weights(HyperpriorCodec(ModelConfig(N=16, M=24)), path)
    return str(path)
