"""Density-ratio baseline (DOMIAS, van Breugel et al. 2023): log p_G(x) - log p_R(x) at each query.

p_G is a kernel density fitted on k generated samples, p_R one fitted on real reference records of
the queries' distribution that are disjoint from every query (a training run's split ``reference``
part; the user's ``queries.reference`` for the user's victims), both in a PCA of the reference
records (:mod:`ganleaks.attacks.density_ratio`, docs/DENSITY_RATIO.md).
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from ganleaks.attacks.density_ratio import DensityRatioAttack
from ganleaks.attacks.nearest_neighbor import make_sample_bank
from ganleaks.parameters import Parameter
from ganleaks.settings.base import (
    CHUNK_SIZE,
    AttackEngine,
    BatchResult,
    non_finite_queries,
    searchable,
    status_and_values,
)

log = logging.getLogger(__name__)


class DensityRatioEngine(AttackEngine):
    """DOMIAS: loss = -(log p_G(x) - log p_R(x)), Gaussian kernel densities in a PCA of the reference records.

    The PCA and both densities are fitted once, when the engine is built; a batch only evaluates
    them, so a query's loss depends on that query alone.

    Args:
        generator: the victim's generator (or its stored sample set); its k samples fit p_G.
        seed: the latents of the k samples.
        reference_records: ``(R, *shape)`` real records, disjoint from every query; they fit the PCA and p_R.
        k, chunk_size, dims: the setting's keys (``conf/setting/domias.yaml``).
    """

    needs_latent_space = False
    needs_reference_records = True
    calibration_refusal = (
        "its score already divides by a density of real reference data (log p_G - log p_R, with p_R fitted on "
        "the reference records), so there is nothing left for a reference model to calibrate"
    )

    label = "density ratio (DOMIAS)"
    description = (
        "DOMIAS baseline (van Breugel et al.): the attacker saw a set of generated samples and real reference "
        "records of the same distribution; each record is scored by how much denser the samples are than the "
        "reference records around it (ratio of kernel densities in a PCA of the reference records)."
    )
    knowledge = 1
    baseline = True
    uses_k = True
    config_parameters = (
        Parameter("k", "int", low=1, help="generated samples the density p_G is fitted on"),
        CHUNK_SIZE,
        Parameter("dims", "int", low=1, help="PCA components (fitted on the reference records) the densities live in"),
    )

    def __init__(
        self,
        generator: nn.Module,
        seed: int,
        reference_records: Tensor,
        *,
        k: int,
        chunk_size: int,
        dims: int,
    ) -> None:
        super().__init__()
        bank = make_sample_bank(generator, int(k), seed=int(seed), chunk_size=int(chunk_size))
        self.k = len(bank)
        self.n_reference = len(reference_records)
        with torch.no_grad():
            try:
                self.attack = DensityRatioAttack(bank, reference_records, int(dims))
            except ValueError as error:  # too few records or samples for the dimension
                raise ValueError(
                    f"density ratio of {self.k} samples and {self.n_reference} reference records: {error}"
                ) from None
        log.info(
            "density ratio: p_G on %d generated samples, p_R on %d reference records, in %d PCA components",
            self.k,
            self.n_reference,
            int(dims),
        )

    def counts_used(self) -> dict[str, int]:
        return {"k": self.k}  # a stored sample set caps k at its size

    @torch.no_grad()
    def losses(self, x: Tensor, ids: Tensor) -> BatchResult:
        bad = non_finite_queries(x)
        score = self.attack.score(searchable(x, bad)).float()  # fitted on the CPU, in float64
        loss, status = status_and_values(-score, bad.cpu())
        return BatchResult(loss.cpu(), loss.cpu(), None, status.cpu())
