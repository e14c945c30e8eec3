"""A user's own generator (and discriminator), wrapped to look like the project's networks.

The attacks call a generator as ``G(z (B, latent_dim)) -> (B, *data_shape)`` in ``[-1, 1]`` with
``z ~ N(0, I)``, and read its ``latent_dim`` and ``data_shape`` attributes (the exported nets of
:mod:`ganleaks.models.export` do the same). A user's network is built from a ``_target_`` node
(``hydra.utils.instantiate``: the class and its keyword arguments), its weights are read from a
safetensors file or a ``state_dict`` file through :func:`ganleaks.io.load_weights_only` (a file
that would run code is refused, nothing is executed), and :class:`ExternalGenerator` adapts it:

* **latent distribution**: the wrapper's latent is always standard normal, so the sample bank,
  the random starts and the latent prior of the distance work unchanged; for a generator trained
  on ``U(low, high)`` latents it maps ``z`` through the normal CDF (``u = low + (high - low)
  Phi(z)``), which turns ``N(0, 1)`` into ``U(low, high)`` exactly and keeps the search
  unconstrained;
* **latent layout**: ``(B, d)``, or ``(B, d, 1, 1)`` for DCGAN-style networks (found at load);
* **output range**: ``[0, 1]`` (or any ``[low, high]``) is mapped onto ``[-1, 1]``.

Everything a user can get wrong is checked once, at load, with one forward pass on a zero latent
and a few on seeded latents, and refused with a message that names the key to change.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from ganleaks.io import UnsafeFileError, load_weights_only

log = logging.getLogger(__name__)

LATENT_DISTRIBUTIONS = ("normal", "uniform")
#: Seeded probe latents for the output-range check.
NUM_PROBES = 64
PROBE_SEED = 0
#: Outputs may overshoot the declared range by this fraction of its width (interpolation, float error).
RANGE_TOLERANCE = 0.02
#: A declared output range this wide or wider is an 8- or 16-bit one (``[0, 255]``); outputs all in
#: ``[-1, 1]`` contradict it (refused). Outputs spanning under ``NARROW_FRACTION`` of it are warned.
WIDE_RANGE = 255.0
NARROW_FRACTION = 0.02


class ExternalModelError(ValueError):
    """A user's network that cannot be built, loaded or attacked as configured."""


def _as_range(value: Sequence[float], key: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ExternalModelError(f"{key} must be [low, high], e.g. {key}=[0,1]; got {value!r}") from None
    if not low < high:
        raise ExternalModelError(f"{key} must be [low, high] with low < high, got [{low}, {high}]")
    return low, high


def _to_unit(x: Tensor, low: float, high: float) -> Tensor:
    """``[low, high]`` -> ``[-1, 1]`` (the identity for ``[-1, 1]``)."""
    if (low, high) == (-1.0, 1.0):
        return x
    return (x - low) * (2.0 / (high - low)) - 1.0


class ExternalGenerator(nn.Module):
    """A user's generator behind the project's interface: ``forward(z (B, latent_dim)) -> (B, *data_shape)``.

    ``z`` is standard normal; outputs are in ``[-1, 1]``. Eval mode, weights frozen.

    Args:
        network: the user's module.
        latent_dim: the size of its latent.
        data_shape: the shape of one output.
        latent_distribution: ``"normal"`` or ``"uniform"`` (on ``latent_range``).
        latent_range: ``[low, high]`` of a uniform latent.
        output_range: ``[low, high]`` of the network's outputs.
        spatial_latent: the network takes ``(B, d, 1, 1)`` latents.
    """

    def __init__(
        self,
        network: nn.Module,
        latent_dim: int,
        data_shape: Sequence[int],
        latent_distribution: str = "normal",
        latent_range: Sequence[float] = (-1.0, 1.0),
        output_range: Sequence[float] = (-1.0, 1.0),
        spatial_latent: bool = False,
    ) -> None:
        super().__init__()
        if latent_distribution not in LATENT_DISTRIBUTIONS:
            raise ExternalModelError(
                f"victim.latent_distribution must be one of {LATENT_DISTRIBUTIONS}, got {latent_distribution!r}"
            )
        self.network = network.eval().requires_grad_(False)
        self.latent_dim = int(latent_dim)
        self.data_shape = tuple(int(s) for s in data_shape)
        self.latent_distribution = latent_distribution
        self.latent_range = _as_range(latent_range, "victim.latent_range")
        self.output_range = _as_range(output_range, "victim.output_range")
        self.spatial_latent = bool(spatial_latent)

    def train(self, mode: bool = True) -> ExternalGenerator:
        super().train(mode)
        self.network.eval()  # batch-norm statistics and dropout must never couple queries
        return self

    def native_latent(self, z: Tensor) -> Tensor:
        """The latent the user's network takes for the standard-normal ``z (B, d)``."""
        if self.latent_distribution == "uniform":
            low, high = self.latent_range
            z = low + (high - low) * 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
        return z.reshape(len(z), self.latent_dim, 1, 1) if self.spatial_latent else z

    def raw(self, z: Tensor) -> Tensor:
        """The network's own output for the standard-normal ``z``, in ``output_range``."""
        return self.network(self.native_latent(z))

    def forward(self, z: Tensor) -> Tensor:
        return _to_unit(self.raw(z), *self.output_range)


class ExternalDiscriminator(nn.Module):
    """A user's discriminator behind the project's interface: ``forward(x (B, *data_shape)) -> (B,)``.

    ``x`` is in ``[-1, 1]`` and is mapped to ``input_range`` first; higher = more "real".
    """

    def __init__(self, network: nn.Module, data_shape: Sequence[int], input_range: Sequence[float] = (-1.0, 1.0)):
        super().__init__()
        self.network = network.eval().requires_grad_(False)
        self.data_shape = tuple(int(s) for s in data_shape)
        self.input_range = _as_range(input_range, "victim.discriminator_input_range")

    def train(self, mode: bool = True) -> ExternalDiscriminator:
        super().train(mode)
        self.network.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        low, high = self.input_range
        native = x if (low, high) == (-1.0, 1.0) else low + (x + 1.0) * ((high - low) / 2.0)
        return self.network(native).reshape(len(x))


# --------------------------------------------------------------------------- building and loading


def _config(node: Mapping[str, Any] | DictConfig, key: str) -> DictConfig:
    config = node if isinstance(node, DictConfig) else OmegaConf.create(dict(node))
    if not isinstance(config, DictConfig) or not config.get("_target_"):
        raise ExternalModelError(
            f"{key} needs a _target_: the import path of your network class, e.g. {key}._target_=mypkg.nets.Generator "
            f"(its keyword arguments beside it, e.g. {key}.latent_dim=128)"
        )
    return config


def build_network(node: Mapping[str, Any] | DictConfig, key: str = "victim.generator") -> nn.Module:
    """Instantiate the ``_target_`` class of ``node`` with its keyword arguments.

    Raises:
        ExternalModelError: no ``_target_``, a class that cannot be imported or built, or not an ``nn.Module``.
    """
    config = _config(node, key)
    target = config._target_
    try:
        network = hydra.utils.instantiate(config, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ExternalModelError(
            f"cannot build {key}._target_={target} ({cause}); make its package importable (pip install it, or "
            f"run from the folder that holds it) and pass the constructor's keyword arguments as {key}.NAME=VALUE"
        ) from None
    if not isinstance(network, nn.Module):
        raise ExternalModelError(f"{key}._target_={target} built a {type(network).__name__}, not a torch.nn.Module")
    return network


def read_weights(path: str | os.PathLike, key: str = "victim.weights", weights_key: str | None = None) -> dict:
    """A state dict from a safetensors file or a ``torch.save``-d state dict, never running code.

    Args:
        path: ``.safetensors`` (read with safetensors), anything else with ``torch.load(weights_only=True)``.
        key: the config key that named ``path``, for messages.
        weights_key: the entry of a checkpoint dict that holds the state dict (``"state_dict"``,
            ``"generator"``, ...); ``None``: the file is the state dict itself.

    Raises:
        FileNotFoundError: no such file.
        ExternalModelError: a file that is not plain tensors (``UnsafeFileError`` is its cause), or
            a checkpoint whose state dict is not where ``weights_key`` says.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"{key}={file} does not exist; pass the .safetensors or state_dict file of your network"
        )
    if file.suffix.lower() == ".safetensors":
        try:
            return load_file(str(file), device="cpu")
        except (SafetensorError, OSError) as error:
            raise ExternalModelError(f"{key}={file} is not a readable safetensors file ({error})") from error
    try:
        state = load_weights_only(file)
    except UnsafeFileError as error:
        raise ExternalModelError(
            f"{key}: {error}. Nothing was executed. Save the weights alone: "
            "torch.save(model.state_dict(), path), or safetensors.torch.save_file(model.state_dict(), path)"
        ) from error
    if weights_key is not None:
        if not isinstance(state, dict) or weights_key not in state:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ExternalModelError(f"{key}_key={weights_key!r} is not an entry of {file} (it holds {keys})")
        state = state[weights_key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        entries = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ExternalModelError(
            f"{key}={file} is not a state dict of tensors (it holds {entries}); if the state dict is one "
            f"entry of a checkpoint, name it with {key}_key=ENTRY"
        )
    if state and all(name.startswith("module.") for name in state):  # saved from DataParallel / DDP
        state = {name.removeprefix("module."): tensor for name, tensor in state.items()}
    return state


def _load_state(network: nn.Module, state: dict, key: str, weights: str | os.PathLike) -> None:
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ExternalModelError(
            f"{key}={weights} does not fit the network built from {key.rsplit('.', 1)[0]} config: {error}. "
            "Pass the constructor arguments the weights were trained with"
        ) from None


def _first_layer_hint(network: nn.Module) -> str:
    for module in network.modules():
        if isinstance(module, nn.Linear):
            return f" (its first layer, {type(module).__name__}, takes {module.in_features} inputs)"
        if isinstance(module, (nn.ConvTranspose2d, nn.Conv2d)):
            return f" (its first layer, {type(module).__name__}, takes {module.in_channels} channels)"
    return ""


@torch.no_grad()
def _find_latent_layout(network: nn.Module, latent_dim: int, key: str) -> tuple[bool, Tensor]:
    """Whether ``network`` takes ``(B, d, 1, 1)`` latents, and its output for two zero latents."""
    errors = []
    for spatial in (False, True):
        z = torch.zeros(2, latent_dim, *((1, 1) if spatial else ()))
        try:
            return spatial, network(z)
        except (RuntimeError, ValueError, IndexError) as error:
            errors.append(str(error).splitlines()[0])
    if any("dtype" in error or "scalar type" in error for error in errors):  # not a size: float64 / half weights
        raise ExternalModelError(
            f"{key} ({type(network).__name__}) fails on a float32 latent: {errors[0]}. The attack feeds float32 "
            "latents: give the generator in float32 (generator.float())"
        )
    raise ExternalModelError(
        f"{key} ({type(network).__name__}) fails on a zero latent of size victim.latent_dim={latent_dim}"
        f"{_first_layer_hint(network)}: {errors[0]}. Set victim.latent_dim to the latent size your generator takes"
    )


def _shape_hint(made: tuple[int, ...], expected: tuple[int, ...]) -> str:
    if len(made) == 3 and len(expected) == 3:
        return (
            f"load the queries at the generator's size (queries.resolution={made[-1]}, queries.channels={made[0]}) "
            "or fix the generator's keyword arguments"
        )
    return "fix the generator's keyword arguments, or bring queries of the generator's shape"


def load_external_generator(
    generator: Mapping[str, Any] | DictConfig,
    weights: str | os.PathLike,
    latent_dim: int,
    *,
    latent_distribution: str = "normal",
    latent_range: Sequence[float] = (-1.0, 1.0),
    output_range: Sequence[float] = (-1.0, 1.0),
    data_shape: Sequence[int] | None = None,
    weights_key: str | None = None,
    map_location: str | torch.device = "cpu",
) -> ExternalGenerator:
    """Build, load and check a user's generator (config keys as in ``victim=generator``).

    Args:
        generator: ``{"_target_": "mypkg.nets.Generator", **kwargs}`` (``victim.generator``).
        weights: its ``.safetensors`` or ``state_dict`` file (``victim.weights``).
        latent_dim: its latent size (``victim.latent_dim``).
        latent_distribution: ``"normal"`` or ``"uniform"`` (``victim.latent_distribution``).
        latent_range: ``[low, high]`` of a uniform latent (``victim.latent_range``).
        output_range: ``[low, high]`` of its outputs, e.g. ``[0, 1]`` (``victim.output_range``).
        data_shape: the queries' record shape; the generator's output must match it.
        weights_key: the checkpoint entry holding the state dict (``victim.weights_key``).
        map_location: device of the returned module.

    Returns:
        An :class:`ExternalGenerator`: ``G(z ~ N(0, I) (B, latent_dim)) -> (B, *data_shape)`` in ``[-1, 1]``.

    Raises:
        FileNotFoundError: no weights file.
        ExternalModelError: the class cannot be built, the weights are unsafe or do not fit, the
            latent size is wrong, the output shape differs from ``data_shape``, the outputs are
            non-finite or outside ``output_range``.
    """
    if int(latent_dim) < 1:
        raise ExternalModelError(f"victim.latent_dim must be >= 1, got {latent_dim}")
    network = build_network(generator, "victim.generator")
    _load_state(network, read_weights(weights, "victim.weights", weights_key), "victim.weights", weights)
    return wrap_external_generator(
        network,
        int(latent_dim),
        latent_distribution=latent_distribution,
        latent_range=latent_range,
        output_range=output_range,
        data_shape=data_shape,
    ).to(map_location)


def wrap_external_generator(
    network: nn.Module,
    latent_dim: int,
    *,
    latent_distribution: str = "normal",
    latent_range: Sequence[float] = (-1.0, 1.0),
    output_range: Sequence[float] = (-1.0, 1.0),
    data_shape: Sequence[int] | None = None,
) -> ExternalGenerator:
    """Check a loaded generator (latent size and layout, output shape and range) and wrap it.

    What :func:`load_external_generator` does after loading the weights; ``ganleaks.audit`` calls
    it for a generator given as an ``nn.Module``. Raises :class:`ExternalModelError` as that function.
    """
    if int(latent_dim) < 1:
        raise ExternalModelError(f"victim.latent_dim must be >= 1, got {latent_dim}")
    network.eval().requires_grad_(False)
    spatial, out = _find_latent_layout(network, int(latent_dim), "victim.generator")
    made = tuple(out.shape[1:])
    if out.shape[0] != 2 or not made:
        raise ExternalModelError(
            f"victim.generator returns shape {tuple(out.shape)} for 2 latents; it must return (B, *record_shape)"
        )
    if data_shape is not None and made != tuple(int(s) for s in data_shape):
        raise ExternalModelError(
            f"victim.generator makes records of shape {made} but the queries have shape {tuple(data_shape)}: "
            + _shape_hint(made, tuple(int(s) for s in data_shape))
        )
    wrapped = ExternalGenerator(
        network, int(latent_dim), made, latent_distribution, latent_range, output_range, spatial
    )
    _check_output_range(wrapped)
    return wrapped


@torch.no_grad()
def _check_output_range(generator: ExternalGenerator) -> None:
    z = torch.randn(NUM_PROBES, generator.latent_dim, generator=torch.Generator().manual_seed(PROBE_SEED))
    raw = generator.raw(z)
    if not torch.isfinite(raw).all():
        raise ExternalModelError(
            "victim.generator produces NaN or inf on seeded test latents: its weights are broken (or "
            "victim.latent_distribution / victim.latent_range do not match how it was trained)"
        )
    low, high = generator.output_range
    found_low, found_high = float(raw.min()), float(raw.max())
    slack = RANGE_TOLERANCE * (high - low)
    if found_low < low - slack or found_high > high + slack:
        raise ExternalModelError(
            f"victim.generator outputs span [{found_low:.3g}, {found_high:.3g}] on seeded test latents, outside "
            f"victim.output_range=[{low:g},{high:g}]: set victim.output_range to the range it produces "
            "([-1,1] for a tanh output, [0,1] for a sigmoid)"
        )
    if high - low >= WIDE_RANGE and found_low >= -1.0 - RANGE_TOLERANCE and found_high <= 1.0 + RANGE_TOLERANCE:
        suggested = (0, 1) if found_low >= -RANGE_TOLERANCE else (-1, 1)
        raise ExternalModelError(
            f"victim.generator outputs span [{found_low:.3g}, {found_high:.3g}] on {NUM_PROBES} seeded test latents, "
            f"but victim.output_range=[{low:g},{high:g}]: read that way every sample would map to a sliver of "
            f"[-1, 1] and the attack would measure nothing. Set victim.output_range=[{suggested[0]},{suggested[1]}] "
            "(the range its outputs suggest)"
        )
    if found_high - found_low < NARROW_FRACTION * (high - low):
        log.warning(
            "victim.generator outputs span [%.3g, %.3g] on %d seeded test latents, %.1f%% of victim.output_range="
            "[%g,%g]: if it outputs a narrower range, set victim.output_range to it; a generator that makes nearly "
            "the same sample for every latent (mode collapse) is fine as it is",
            found_low,
            found_high,
            NUM_PROBES,
            100.0 * (found_high - found_low) / (high - low),
            low,
            high,
        )
    if (low, high) == (-1.0, 1.0) and found_low >= 0.0 and found_high > 0.5:
        log.warning(
            "victim.generator never produced a negative value on %d test latents (outputs span [%.3g, %.3g]); "
            "if it outputs [0, 1] images, set victim.output_range=[0,1]",
            NUM_PROBES,
            found_low,
            found_high,
        )


def load_external_discriminator(
    discriminator: Mapping[str, Any] | DictConfig,
    weights: str | os.PathLike,
    data_shape: Sequence[int],
    *,
    input_range: Sequence[float] = (-1.0, 1.0),
    weights_key: str | None = None,
    map_location: str | torch.device = "cpu",
) -> ExternalDiscriminator:
    """Build, load and check a user's discriminator (``victim.discriminator``, ``victim.discriminator_weights``).

    Args:
        discriminator: ``{"_target_": ..., **kwargs}``.
        weights: its ``.safetensors`` or ``state_dict`` file.
        data_shape: the queries' record shape.
        input_range: the range it was trained on (``[0, 1]`` images are mapped from ``[-1, 1]``).
        weights_key: the checkpoint entry holding the state dict.

    Raises:
        ExternalModelError: as :func:`load_external_generator`; also a discriminator that does not
            return one finite value per record.
    """
    network = build_network(discriminator, "victim.discriminator")
    key = "victim.discriminator_weights"
    _load_state(network, read_weights(weights, key, weights_key), key, weights)
    wrapped = ExternalDiscriminator(network, data_shape, input_range)
    probe = torch.zeros(2, *wrapped.data_shape)
    try:
        with torch.no_grad():
            out = network(probe)
    except (RuntimeError, ValueError, IndexError) as error:
        raise ExternalModelError(
            f"victim.discriminator fails on records of the queries' shape {wrapped.data_shape}: "
            f"{str(error).splitlines()[0]}; pass the constructor arguments it was trained with"
        ) from None
    if out.numel() != 2:
        raise ExternalModelError(
            f"victim.discriminator returns shape {tuple(out.shape)} for 2 records; it must return one value per "
            "record ((B,) or (B, 1)), the logit or probability of 'real'"
        )
    if not torch.isfinite(out).all():
        raise ExternalModelError("victim.discriminator produces NaN or inf: its weights are broken")
    return wrapped.to(map_location)
