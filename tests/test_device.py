"""gancodec.device: the one device choice and out-of-memory back-off policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gancodec import compress
from gancodec.cli import main
from gancodec.device import DeviceError, backoff_plan, resolve_device, with_backoff

CPU = torch.device("cpu")


def test_auto_and_none_pick_cuda_when_present_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == expected
    assert resolve_device("auto").type == expected
    assert resolve_device(" AUTO ").type == expected
    assert resolve_device("cpu") == CPU


@pytest.mark.parametrize("name, message", [("gpu", "not a device name"), ("cuda:x", "not a device name"),
                                           ("meta", "gancodec codes on cpu or cuda")])
def test_a_bad_device_name_fails_in_one_line_with_the_fix(name, message):
    with pytest.raises(DeviceError, match=f"device '{name}': {message}.*use auto, cpu"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_fails_before_any_work(tmp_path, capsys):
    with pytest.raises(DeviceError, match="no CUDA device.*use --device auto or cpu"):
        resolve_device("cuda")
    with pytest.raises(DeviceError):
        compress(np.zeros((16, 16, 3), np.uint8), device="cuda")
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["compress", str(tmp_path / "a.png"), "-o", str(tmp_path / "a.gcx"), "--device", "cuda"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA device" in err[0] and not (tmp_path / "a.gcx").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_index_past_the_last_device_is_refused():
    with pytest.raises(DeviceError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_backoff_plan_halves_the_tile_to_128_then_moves_to_the_cpu():
    gpu = torch.device("cuda")
    assert backoff_plan(1024, gpu) == [(1024, gpu), (512, gpu), (256, gpu), (128, gpu), (1024, CPU)]
    assert backoff_plan(512, CPU) == [(512, CPU), (256, CPU), (128, CPU)]


def test_with_backoff_retries_only_out_of_memory_and_counts_attempts(caplog):
    seen = []

    def step(tile, dev):
        seen.append((tile, dev.type))
        if len(seen) < 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return tile

    assert with_backoff(step, 512, CPU) == 128
    assert seen == [(512, "cpu"), (256, "cpu"), (128, "cpu")]
    assert "retrying with tile 128 on cpu" in caplog.text

    def never(tile, dev):
        raise MemoryError("no RAM")

    with pytest.raises(MemoryError) as info:
        with_backoff(never, 256, CPU)
    assert info.value.attempts == 2

    calls = []

    def broken(tile, dev):
        calls.append(tile)
        raise ValueError("not memory")

    with pytest.raises(ValueError):
        with_backoff(broken, 1024, CPU)
    assert calls == [1024]  # no retry for anything else
