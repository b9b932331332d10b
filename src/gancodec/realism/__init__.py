"""Stage 2: the realism decoder (a GAN-trained synthesis transform over a frozen stage-1 model)."""

from .config import RealismConfig
from .discriminator import ConditionalPatchDiscriminator
from .loop import quantised_latents, train_realism
from .weights import ENV_REALISM, SHIPPED_REALISM, export_realism, load_realism_state, realism_model

__all__ = ["ConditionalPatchDiscriminator", "ENV_REALISM", "RealismConfig", "SHIPPED_REALISM", "export_realism",
           "load_realism_state", "quantised_latents", "realism_model", "train_realism"]
