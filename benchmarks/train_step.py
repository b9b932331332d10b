"""Training step time, float32 against bf16 autocast, in one process (ratios, not timings).

    python benchmarks/train_step.py [--threads 1] [--rounds 4]

One rate-distortion step of the shipped model (forward, loss, backward, Adam) on a batch of
8 random 128² crops, alternating the two arms round by round; prints each round's seconds per
step and the median bf16 / float32 ratio. It also prints the loss of both arms on the same
batch (eval mode, no update), so a speed-up that changes the loss shows. On a CPU with AMX,
bf16 pays (`gancodec.device.bf16_autocast_pays`); elsewhere expect a ratio above 1.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gancodec.device import bf16_autocast_pays
from gancodec.train.losses import rate_distortion
from gancodec.weights import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4, help="steps per arm per round")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = load_model().model.to(memory_format=torch.channels_last)
    x = torch.rand(8, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    rate = torch.linspace(0, model.num_rates - 1, 8)

    model.eval()
    with torch.no_grad():
        for bf16 in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = model(x, rate)
            rd = rate_distortion(out, x, model.gain.lmbda(rate))
            print(f"{'bf16' if bf16 else 'fp32'} loss {float(rd.loss):.5f}  bpp {float(rd.bpp):.4f}  mse {float(rd.mse):.4e}")

    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-7)

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x, rate)
        rd = rate_distortion(out, x, model.gain.lmbda(rate))
        opt.zero_grad(set_to_none=True)
        rd.loss.backward()
        opt.step()

    for bf16 in (False, True):  # warm-up
        step(bf16)
    ratios = []
    for r in range(a.rounds):
        t = {}
        for bf16 in (False, True):
            t0 = time.perf_counter()
            for _ in range(a.steps):
                step(bf16)
            t[bf16] = (time.perf_counter() - t0) / a.steps
        ratios.append(t[True] / t[False])
        print(f"round {r}: fp32 {t[False]:.3f} s/step, bf16 {t[True]:.3f} s/step, bf16/fp32 {ratios[-1]:.2f}")
    print(f"median bf16/fp32: {statistics.median(ratios):.2f} (threads {a.threads}; "
          f"bf16_autocast_pays(cpu) = {bf16_autocast_pays(torch.device('cpu'))})")


if __name__ == "__main__":
    main()
