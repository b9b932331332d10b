"""Stage-2 (realism decoder) settings in one place, saved inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class RealismConfig:
    data_dirs: list[str] = field(default_factory=list)  # folders (or CSV lists) of training images
    base: str | None = None  # stage-1 weights to freeze (None: the shipped ones)
    out_dir: str = "runs/stage2"  # last.pt (resumable) and realism.pt (the decoder, float16)
    init_from: str | None = None  # a realism.pt to continue from (no optimiser state needed)
    steps: int = 20_000
    max_seconds: float = 0.0  # wall-clock budget (0 = none)
    batch_size: int = 8
    crop: int = 256  # multiple of 64
    lr: float = 1e-4
    d_lr: float = 0.0  # the discriminator's learning rate (0: the same as lr; TTUR uses a larger one)
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    checkpoint_every_s: float = 300.0
    log_every: int = 50
    d_warmup_steps: int = 0  # train only the discriminator first (generator frozen)
    rate_max: float = -1.0  # rate points drawn from [0, rate_max] (-1: all; 3 = qualities 1-4)
    # loss weights (HiFiC's beta = 0.15 on the adversarial term; MSE on [0, 1] pixels)
    w_adv: float = 0.15
    w_mse: float = 150.0
    w_ms_ssim: float = 1.0
    w_fm: float = 1.0
    w_lpips: float = 1.0  # used only when LPIPS weights are on the machine
    w_artifact: float = 0.0  # structure added that the input lacks (losses.artifact_loss)
    amp: bool = True  # bf16 autocast where it pays: CUDA, or a CPU with AMX (gancodec.device)
    compile: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "RealismConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown realism settings {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)
