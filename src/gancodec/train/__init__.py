"""Training: crops, rate-distortion loss, the resumable loop, checkpoints."""

from .config import TrainConfig
from .loop import train

__all__ = ["TrainConfig", "train"]
