"""Can the stage-2 discriminator tell real crops from the fidelity decoder's output? (issue 5)

    python benchmarks/discriminator_probe.py [--weights W.pt] [--data .gpu/crops] [--steps 600]
        [--lr 2e-4] [--crop 128] [--batch-size 8] [--condition latent|none] [--no-spectral-norm]
        [--rates LO HI] [--device cpu|cuda]

Trains only the discriminator, on fixed batches of real crops and their reconstructions by the
frozen fidelity decoder (hard-quantised latents, random rate points), and prints its accuracy on
two held-out batches every 50 steps (0.5 = chance). A realism generator can only learn once its
discriminator gets above chance, so this is the cheap first check of a discriminator recipe.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from gancodec.realism.discriminator import ConditionalPatchDiscriminator
from gancodec.realism.loop import quantised_latents
from gancodec.realism.losses import discriminator_loss
from gancodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from gancodec.train.crops import CropSampler, list_images
from gancodec.weights import SHIPPED_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=str(SHIPPED_WEIGHTS))
    p.add_argument("--data", nargs="+", default=[str(ROOT / ".gpu/crops")])
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--train-batches", type=int, default=16)
    p.add_argument("--condition", choices=["latent", "none"], default="latent")
    p.add_argument("--no-spectral-norm", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rates", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="rate points drawn from [LO, HI] (0..7 = qualities 1..8; default: all)")
    a = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    base = model_from_checkpoint(load_checkpoint(a.weights), a.weights).to(device).eval()
    sampler = CropSampler(list_images(a.data), a.crop, seed=1)
    lo, hi = a.rates or (0, base.num_rates - 1)
    batches = []  # (real, fake, condition); the last two are held out
    with torch.no_grad():
        for _ in range(a.train_batches + 2):
            x = sampler.batch(a.batch_size, uint8=True).to(device).float() / 255
            rate = torch.empty(a.batch_size, device=device).uniform_(lo, hi)
            y_hat, y_in = quantised_latents(base, x, rate)
            cond = y_hat if a.condition == "latent" else torch.zeros_like(y_hat)
            batches.append((x, base.g_s(y_in).clamp(0, 1), cond))
    mse = sum(float(((x - f) ** 2).mean()) for x, f, _ in batches) / len(batches)
    disc = ConditionalPatchDiscriminator(base.config.M, spectral=not a.no_spectral_norm).to(device)
    opt = torch.optim.Adam(disc.parameters(), lr=a.lr, betas=(0.5, 0.999))
    print(f"{len(sampler.images)} images, crops {a.crop}, fakes at mean MSE {mse:.5f}; rates {a.rates or 'all'}, condition {a.condition}, "
          f"spectral norm {not a.no_spectral_norm}, lr {a.lr}")
    t0 = time.time()
    for step in range(1, a.steps + 1):
        x, fake, cond = batches[step % a.train_batches]
        loss = discriminator_loss(disc(x, cond), disc(fake, cond))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0:
            with torch.no_grad():
                acc = []
                for x, fake, cond in batches[-2:]:
                    for r, f in zip(disc(x, cond), disc(fake, cond)):
                        acc.append(float((r[-1] > 0).float().mean() + (f[-1] < 0).float().mean()) / 2)
            print(f"step {step:5d}  train loss {loss.item():.3f} (chance {2 * 0.6931 * len(disc.nets):.3f})  "
                  f"held-out accuracy {sum(acc) / len(acc):.3f}  {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
