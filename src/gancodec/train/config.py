"""All training settings in one place (nanoGPT style), saved inside every checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class TrainConfig:
    data_dirs: list[str] = field(default_factory=list)  # folders (or CSV lists) of training images
    # share of the crops drawn from each entry of data_dirs (same length; normalised); None = every
    # image in proportion to its pixels, whatever its source
    source_weights: list[float] | None = None
    out_dir: str = "runs/stage1"  # checkpoints go here: last.pt (resumable) and model.pt (weights)
    init_from: str | None = None  # weights (.pt) to start from, e.g. the shipped model; None = scratch
    steps: int = 100_000  # stop after this many steps ...
    max_seconds: float = 0.0  # ... or after this much wall time (0 = no limit)
    batch_size: int = 8
    crop: int = 128  # multiple of 64
    lr: float = 1e-4
    lr_final_fraction: float = 0.1  # cosine decay to lr * this over `steps`
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"  # auto = cuda when present, else cpu
    threads: int = 0  # torch CPU threads (0 = torch's default)
    checkpoint_every_s: float = 300.0
    log_every: int = 50
    rate_min: float = 0.0  # rate points sampled uniformly in [rate_min, rate_max] (of the gain units)
    rate_max: float = -1.0  # -1 = the highest rate point
    lmbda: float | None = None  # train one rate only: the gain-unit position of this lambda (overrides rate_min/max)
    amp: bool = True  # bf16 autocast where it pays: CUDA, or a CPU with AMX (gancodec.device)
    compile: bool = False  # torch.compile the model (GPU)
    model: dict = field(default_factory=lambda: {})  # ModelConfig overrides (with init_from: only new parts, e.g. context)
    trainable: list[str] = field(default_factory=list)  # parts to train, e.g. [context, h_a, h_s, z_prior]; [] = all

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        valid = {f.name for f in fields(cls)}
        unknown = set(d) - valid
        if unknown:
            raise ValueError(f"unknown train settings {sorted(unknown)}; valid ones are {sorted(valid)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)
