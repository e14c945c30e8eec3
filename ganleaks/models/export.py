"""Export trained networks for attacks, and rebuild them without Lightning and without pickle.

A network ``<role>`` (``generator``, ``discriminator``, ``encoder``) is stored as
``<role>.safetensors`` (weights and buffers) plus ``<role>.json``:
``{"class": "ganleaks.models.nets.<module>.<Class>", "kwargs": {...}, "latent_dim": int,
"data_shape": [...], "data_kind": "image" | "tabular"}``. Loading rebuilds the class only from
the allow-list ``ganleaks.models.nets.NETWORK_CLASSES`` and reads weights with safetensors,
so nothing in a run folder can execute code.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ganleaks.io import atomic_path, atomic_write_text
from ganleaks.models.nets import NETWORK_CLASSES

log = logging.getLogger(__name__)

DATA_KINDS = ("image", "tabular")
_TRAIN_HINT = (
    "train it first with `python train.py` (same overrides), which also resumes an interrupted run and exports"
)


def _class_path(network: nn.Module) -> str:
    path = f"{type(network).__module__}.{type(network).__qualname__}"
    if path not in NETWORK_CLASSES:
        raise ValueError(
            f"{path} is not in ganleaks.models.nets.NETWORK_CLASSES and could not be loaded back; "
            "add the class to the allow-list"
        )
    return path


def save_network(network: nn.Module, run_dir: str | Path, role: str, *, latent_dim: int, data_kind: str) -> Path:
    """Write ``<run_dir>/<role>.safetensors`` and ``<role>.json``; return the weights' path.

    Args:
        network: a ``ganleaks.models.nets`` module with a ``kwargs`` attribute.
        role: file stem, e.g. ``"generator"``.
        latent_dim: the latent size of the model the network belongs to.
        data_kind: ``"image"`` or ``"tabular"``.
    """
    if data_kind not in DATA_KINDS:
        raise ValueError(f"data_kind must be one of {DATA_KINDS}, got {data_kind!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "class": _class_path(network),
        "kwargs": network.kwargs,
        "latent_dim": int(latent_dim),
        "data_shape": list(network.data_shape),  # type: ignore[arg-type]
        "data_kind": data_kind,
    }
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
    weights = run_dir / f"{role}.safetensors"
    # Atomic (temp file + os.replace): a run killed mid-export never leaves a half-written file.
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"class": spec["class"]})
    write_json(run_dir / f"{role}.json", spec)
    return weights


def write_json(path: str | Path, content: dict[str, Any]) -> None:
    """Write ``content`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(content, indent=2) + "\n")


def read_network_spec(run_dir: str | Path, role: str) -> dict[str, Any]:
    """Read and validate ``<run_dir>/<role>.json``.

    Raises:
        FileNotFoundError: no run folder or no exported ``role``.
        ValueError: malformed JSON, missing keys, or a class outside the allow-list.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no training run folder at {run_dir}: {_TRAIN_HINT}")
    spec_path = run_dir / f"{role}.json"
    if not spec_path.is_file():
        raise FileNotFoundError(
            f"{run_dir} has no exported {role} ({spec_path.name} is missing); "
            f"training did not finish there: {_TRAIN_HINT}"
        )
    try:
        spec = json.loads(spec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{spec_path} is not valid JSON ({error}); re-export it by re-running training") from error
    missing = {"class", "kwargs", "latent_dim", "data_shape", "data_kind"} - set(spec if isinstance(spec, dict) else ())
    if missing:
        raise ValueError(f"{spec_path} lacks {sorted(missing)}; re-export it by re-running training")
    if spec["class"] not in NETWORK_CLASSES:
        raise ValueError(
            f"{spec_path} names class {spec['class']!r}, which is not an allowed ganleaks network "
            f"({sorted(NETWORK_CLASSES)}); refusing to build it"
        )
    if not isinstance(spec["kwargs"], dict):
        raise ValueError(f"{spec_path}: 'kwargs' must be a JSON object")
    return spec


def load_network(run_dir: str | Path, role: str, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the exported ``role`` network of a run folder, in eval mode with frozen weights.

    Args:
        run_dir: a training run folder written by ``train.py``.
        role: ``"generator"``, ``"discriminator"`` or ``"encoder"`` (VAEGAN).
        map_location: device for the weights.

    Raises:
        FileNotFoundError: missing folder or files (says how to create them).
        ValueError: a malformed spec, a class outside the allow-list, a weights file that is not
            safetensors (e.g. a pickle), or weights that do not match the architecture.
    """
    spec = read_network_spec(run_dir, role)
    weights = Path(run_dir) / f"{role}.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} is missing: {_TRAIN_HINT}")
    spec_path = Path(run_dir) / f"{role}.json"
    try:
        network = NETWORK_CLASSES[spec["class"]](**spec["kwargs"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{spec_path}: cannot build {spec['class']} from its kwargs ({error})") from error
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{weights} is not a readable safetensors file ({error}); only safetensors weights "
            "are loaded, never pickles: re-export by re-running training"
        ) from error
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{weights} does not match the architecture in {spec_path}: {error}") from error
    if list(network.data_shape) != list(spec["data_shape"]):
        raise ValueError(
            f"{spec_path}: data_shape {spec['data_shape']} disagrees with the network's {list(network.data_shape)}"
        )
    if hasattr(network, "latent_dim") and network.latent_dim != spec["latent_dim"]:
        raise ValueError(
            f"{spec_path}: latent_dim {spec['latent_dim']} disagrees with the network's {network.latent_dim}"
        )
    return network.to(map_location).eval().requires_grad_(False)


def load_generator(run_dir: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The exported generator of a run folder: ``G(z: (B, latent_dim)) -> (B, *data_shape)`` in
    ``[-1, 1]``, ``z ~ N(0, I)``; eval mode, weights frozen (``requires_grad=False``; latents
    can still require gradients). Attributes ``latent_dim`` and ``data_shape``."""
    return load_network(run_dir, "generator", map_location)


def load_discriminator(run_dir: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The exported discriminator: ``D(x: (B, *data_shape)) -> (B,)``, higher = more "real";
    eval mode, weights frozen."""
    return load_network(run_dir, "discriminator", map_location)
