"""A user's own setting, declared as the built-in ones are: one class here and one YAML file.

The YAML file (``TOY_SETTING_YAML``) goes into a config folder on Hydra's search path; the class
is found by its ``_target_``. Nothing in ganleaks names it.
"""

from __future__ import annotations

import torch

from ganleaks.attacks.reconstruction import random_latents
from ganleaks.parameters import Parameter
from ganleaks.settings.base import AttackEngine, BatchResult
from ganleaks.status import status_from


class BestOfRandomEngine(AttackEngine):
    """R(x) = the best of ``draws`` random latents per query, each seeded by (seed, id, draw)."""

    reconstructs = True  # the loss is L(x, R(x)): the attack passes the distance

    label = "best of random draws"
    description = (
        "Best of random draws (a toy): the attacker could query the generator at latents of its "
        "choosing and keeps, per record, the closest of a few random draws."
    )
    config_parameters = (
        Parameter("draws", "int", low=1, high=64, help="random latents tried per query"),
        Parameter("scale", "float", low=0.0, help="the latents' standard deviation"),
    )

    def __init__(self, generator, distance, seed, *, draws: int, scale: float) -> None:
        super().__init__()
        self.generator, self.distance, self.seed = generator, distance, int(seed)
        self.draws, self.scale = int(draws), float(scale)

    @torch.no_grad()
    def losses(self, x, ids):
        best_loss, best_z = None, None
        for draw in range(self.draws):
            z = self.scale * random_latents(ids.cpu(), self.generator.latent_dim, self.seed, restart=draw).to(x.device)
            _, loss = self.distance(x, self.generator(z), None)
            if best_loss is None:
                best_loss, best_z = loss, z
            else:
                better = loss < best_loss
                best_loss, best_z = torch.where(better, loss, best_loss), torch.where(better[:, None], z, best_z)
        assert best_loss is not None and best_z is not None
        status = status_from(~torch.isfinite(best_loss))
        return BatchResult(best_loss.cpu(), best_loss.cpu(), best_z.cpu(), status.cpu())


TOY_SETTING_YAML = f"""\
_target_: {__name__}.BestOfRandomEngine
name: bestofrandom
draws: 4
scale: 1.0
reference_model: ${{model.name}}
"""
