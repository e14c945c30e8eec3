"""DP-SGD on the discriminator through Opacus (the only module of ganleaks that imports Opacus).

Only the discriminator's module, optimiser and data loader are made private (as in Opacus'
``examples/dcgan.py``): the generator sees the members only through the discriminator's
privatised gradients, so its weights inherit the guarantee by post-processing. The discriminator
must have per-sample-separable layers (GroupNorm, not BatchNorm; no in-place activations), the
fake batch must match the Poisson-sampled real batch in size (each private "sample" is a
(real, fake) pair), and the discriminator's per-sample hooks are paused during other networks'
steps.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from opacus import PrivacyEngine
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DPOptimizer
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader

log = logging.getLogger(__name__)

#: The environment variable that must be "1" for ``privacy.test_only_noise_override`` to be accepted.
TEST_ONLY_ENV = "GANLEAKS_TEST_ONLY"


class UnsupportedPrivacyError(ValueError):
    """A victim that DP-SGD on the discriminator cannot be applied to (raised before training)."""


@dataclass(frozen=True)
class PrivacySettings:
    """The ``privacy`` config group (``privacy=dp``).

    Args:
        noise_multiplier: Gaussian noise std relative to ``max_grad_norm``; ignored when
            ``target_epsilon`` is set.
        target_epsilon: if set, the noise multiplier is calibrated so that training ends at this
            epsilon (needs ``epochs`` or the trainer's ``max_steps``).
        epochs: training length used to calibrate ``target_epsilon`` (``None``: from ``max_steps``).
        max_grad_norm: per-sample gradient clipping bound.
        delta: target delta, should be well below ``1 / num_train_samples``.
        accountant: Opacus accountant (``rdp``, ``prv`` or ``gdp``).
        secure_mode: cryptographically safe noise (slow; for releases, not experiments).
        test_only_noise_override: FOR TESTS OF THE PRIVACY AUDIT ONLY: the noise multiplier the
            discriminator really trains with, while the accountant is told the configured one, so its
            epsilon is a false claim that ``audit=canaries`` must flag. Refused unless the environment
            sets ``GANLEAKS_TEST_ONLY=1``; recorded in ``privacy.json``.
    """

    noise_multiplier: float | None = 1.0
    target_epsilon: float | None = None
    epochs: int | None = None
    max_grad_norm: float = 1.0
    delta: float = 1e-5
    accountant: str = "rdp"
    secure_mode: bool = False
    test_only_noise_override: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> PrivacySettings:
        fields = {key: cfg[key] for key in cls.__dataclass_fields__ if key in cfg}
        settings = cls(**fields)
        if settings.target_epsilon is None and settings.noise_multiplier is None:
            raise ValueError("privacy=dp needs privacy.noise_multiplier or privacy.target_epsilon")
        if settings.max_grad_norm <= 0 or not 0 < settings.delta < 1:
            raise ValueError(
                f"privacy.max_grad_norm must be > 0 and 0 < privacy.delta < 1, got "
                f"{settings.max_grad_norm} and {settings.delta}"
            )
        if settings.test_only_noise_override is not None:
            if os.environ.get(TEST_ONLY_ENV) != "1":
                raise ValueError(
                    "privacy.test_only_noise_override trains with less noise than the privacy accountant is told, "
                    "so the epsilon it reports is false: it exists only to test that the privacy audit catches a "
                    f"false claim, and is refused unless {TEST_ONLY_ENV}=1. Remove it (use privacy.noise_multiplier)"
                )
            if settings.test_only_noise_override < 0:
                raise ValueError("privacy.test_only_noise_override must be >= 0")
        return settings


def check_private_discriminator(discriminator: nn.Module, model_name: str) -> None:
    """Refuse a discriminator whose layers Opacus cannot give per-sample gradients.

    Raises:
        UnsupportedPrivacyError: listing the offending layers and what to use instead.
    """
    errors = ModuleValidator.validate(discriminator, strict=False)
    if errors:
        details = "; ".join(str(error) for error in errors)
        raise UnsupportedPrivacyError(
            f"privacy=dp cannot train the discriminator of model={model_name} with DP-SGD: {details}. "
            "Use model=dpgan (DCGAN with a GroupNorm discriminator), or give this model's "
            "discriminator GroupNorm, e.g. model.nets.image.discriminator.norm=group"
        )


class DiscriminatorPrivacy:
    """The Opacus state of a DP-trained discriminator: per-sample gradient hooks, the DP optimiser
    (clipping + noise) and the privacy accountant.

    Build it with :func:`make_discriminator_private`.
    """

    def __init__(
        self,
        engine: PrivacyEngine,
        hooks: Any,
        optimizer: DPOptimizer,
        settings: PrivacySettings,
        noise_multiplier: float,
        sample_rate: float,
    ) -> None:
        self.engine = engine
        self.hooks = hooks
        self.optimizer = optimizer
        self.settings = settings
        self.noise_multiplier = noise_multiplier
        self.sample_rate = sample_rate

    @contextmanager
    def hooks_paused(self) -> Iterator[None]:
        """Pause per-sample gradient capture (for the generator's or encoder's step)."""
        self.hooks.disable_hooks()
        try:
            yield
        finally:
            self.hooks.enable_hooks()

    def prepare_empty_step(self) -> None:
        """Set zero-row per-sample gradients so the next optimiser step on an empty Poisson batch
        adds noise only and is counted by the accountant, exactly as Opacus treats empty batches."""
        for param in self.optimizer.params:
            param.grad_sample = torch.zeros((0, *param.shape), device=param.device, dtype=param.dtype)

    @property
    def steps(self) -> int:
        return sum(steps for _, _, steps in self.engine.accountant.history)

    def epsilon(self) -> float:
        """Epsilon spent so far at the configured delta (0 before the first step)."""
        if not self.engine.accountant.history:
            return 0.0
        return float(self.engine.get_epsilon(self.settings.delta))

    def state_dict(self) -> dict[str, Any]:
        return self.engine.accountant.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.engine.accountant.load_state_dict(dict(state))

    def report(self) -> dict[str, Any]:
        """The content of ``privacy.json``."""
        return {
            "epsilon": self.epsilon(),
            "delta": self.settings.delta,
            "noise_multiplier": self.noise_multiplier,
            "max_grad_norm": self.settings.max_grad_norm,
            "steps": self.steps,
            "sample_rate": self.sample_rate,
            "accountant": self.settings.accountant,
            "target_epsilon": self.settings.target_epsilon,
            **(
                {"test_only_noise_override": self.settings.test_only_noise_override}
                if self.settings.test_only_noise_override is not None
                else {}
            ),
        }


def make_discriminator_private(
    discriminator: nn.Module,
    optimizer: torch.optim.Optimizer,
    data_loader: DataLoader,
    settings: PrivacySettings,
    *,
    planned_steps: int | None,
) -> tuple[DiscriminatorPrivacy, DataLoader]:
    """Attach Opacus to the discriminator: per-sample gradient hooks (the module itself stays the
    same object), a DP optimiser wrapping ``optimizer`` and a Poisson-sampling loader.

    Args:
        discriminator: the discriminator network (validated with :func:`check_private_discriminator`).
        optimizer: its plain optimiser.
        data_loader: the members' training loader; its batch size sets the sampling rate.
        settings: the privacy config.
        planned_steps: number of discriminator steps training will take; used only to calibrate
            ``target_epsilon`` when ``settings.epochs`` is not set.

    Returns:
        the privacy state and the Poisson-sampling loader to train on.
    """
    sample_rate = 1.0 / len(data_loader)
    noise_multiplier = settings.noise_multiplier
    if settings.target_epsilon is not None:
        if settings.epochs is None and not planned_steps:
            raise ValueError(
                "privacy.target_epsilon needs privacy.epochs or a positive trainer.max_steps "
                "to know how long training runs"
            )
        steps = settings.epochs * len(data_loader) if settings.epochs is not None else planned_steps
        noise_multiplier = get_noise_multiplier(
            target_epsilon=settings.target_epsilon,
            target_delta=settings.delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=settings.accountant,
        )
        log.info(
            "noise multiplier %.4f reaches epsilon %.3f at delta %g after %d discriminator steps",
            noise_multiplier,
            settings.target_epsilon,
            settings.delta,
            steps,
        )
    num_samples = len(data_loader.dataset)  # type: ignore[arg-type]  # torch's Dataset type has no __len__
    if settings.delta >= 1.0 / num_samples:
        log.warning("privacy.delta=%g is not below 1/N = %g: the guarantee is weak", settings.delta, 1.0 / num_samples)
    assert noise_multiplier is not None  # PrivacySettings.from_config requires it or target_epsilon
    engine = PrivacyEngine(accountant=settings.accountant, secure_mode=settings.secure_mode)
    hooks, private_optimizer, private_loader = engine.make_private(
        module=discriminator,
        optimizer=optimizer,
        data_loader=data_loader,
        noise_multiplier=noise_multiplier,
        max_grad_norm=settings.max_grad_norm,
        poisson_sampling=True,
        wrap_model=False,
    )
    if settings.test_only_noise_override is not None:
        _train_with_other_noise(
            engine, private_optimizer, sample_rate, float(noise_multiplier), settings.test_only_noise_override
        )
    privacy = DiscriminatorPrivacy(
        engine, hooks, private_optimizer, settings, float(noise_multiplier), private_loader.sample_rate
    )
    return privacy, private_loader


def _train_with_other_noise(
    engine: PrivacyEngine, optimizer: DPOptimizer, sample_rate: float, claimed: float, used: float
) -> None:
    """TEST ONLY: add noise of multiplier ``used`` while the accountant records ``claimed`` (a false epsilon).

    Opacus' step hook reads the optimiser's ``noise_multiplier`` for the accountant, and its noise
    step reads the same attribute: the hook is replaced by one that records ``claimed``.
    """
    log.warning(
        "+privacy.test_only_noise_override=%g: the discriminator trains with noise multiplier %g but the accountant "
        "is told %g, so the epsilon in privacy.json is FALSE (a test of the privacy audit only)",
        used,
        used,
        claimed,
    )
    hook = engine.accountant.get_optimizer_hook_fn(sample_rate=sample_rate)

    class _Claimed:
        noise_multiplier = claimed

        def __init__(self, accumulated: int) -> None:
            self.accumulated_iterations = accumulated

    optimizer.attach_step_hook(lambda optim: hook(_Claimed(optim.accumulated_iterations)))
    optimizer.noise_multiplier = used
