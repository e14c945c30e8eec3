"""Checks of an attacked model's outputs before any query is scored.

A model whose outputs are NaN or inf (a diverged training run, a corrupted export) gives no
membership signal, yet the attacks downstream would not all notice: the Monte-Carlo count of
samples within epsilon of a query is 0 for every query, a finite score, and the audit would report
AUC 0.5, a false "no leakage" verdict. So every model is run on a few fixed inputs first and
refused if any output is non-finite (the sample bank, :mod:`ganleaks.attacks.nearest_neighbor`,
repeats the check on every sample it makes).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ganleaks.attacks.nearest_neighbor import NonFiniteOutputError, non_finite_rows

#: Fixed test inputs per model: enough to catch broken weights, cheap next to any attack.
NUM_PROBES = 8
PROBE_SEED = 0


def _refuse(what: str, run_dir: Path, n_bad: int, n: int, inputs: str) -> NonFiniteOutputError:
    return NonFiniteOutputError(
        f"the {what} in {run_dir} produces non-finite outputs (NaN or inf) on {n_bad} of {n} {inputs}: its weights "
        "are broken (training diverged, or the export is corrupt), so any membership score computed from it would "
        "be meaningless and no AUC is reported. Retrain it (or re-export it from a good checkpoint); nothing was "
        "scored"
    )


@torch.no_grad()
def check_generator_outputs(generator: nn.Module, run_dir: Path, what: str) -> None:
    """Refuse ``generator`` if ``G(z)`` is non-finite for any of a few fixed, seeded standard-normal latents."""
    z = torch.randn(NUM_PROBES, int(generator.latent_dim), generator=torch.Generator().manual_seed(PROBE_SEED))  # type: ignore[arg-type]
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    n_bad = non_finite_rows(generator(z.to(device)))
    if n_bad:
        raise _refuse(what, run_dir, n_bad, NUM_PROBES, "fixed test latents")


@torch.no_grad()
def check_discriminator_outputs(discriminator: nn.Module, samples: Tensor, run_dir: Path, what: str) -> None:
    """Refuse ``discriminator`` if ``D(x)`` is non-finite for any of the first few finite ``samples``."""
    from ganleaks.attacks.discriminator_score import discriminator_scores

    finite = samples[torch.isfinite(samples.reshape(len(samples), -1)).all(dim=1)][:NUM_PROBES]
    if len(finite) == 0:
        return
    device = next((p.device for p in discriminator.parameters()), torch.device("cpu"))
    n_bad = non_finite_rows(discriminator_scores(discriminator, finite.to(device)).reshape(-1, 1))
    if n_bad:
        raise _refuse(what, run_dir, n_bad, len(finite), "data samples")
