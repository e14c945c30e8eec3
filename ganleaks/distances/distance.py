"""Reconstruction distances of GAN-Leaks (paper eq. 8-10): pixel L2, LPIPS and the latent prior.

All functions return one value per query, shape ``(B,)``. Images are ``float32 (B, C, H, W)`` in
``[-1, 1]``; tabular rows are ``(B, D)`` in ``[-1, 1]``; latent codes are ``(B, d)``.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from hydra.utils import get_class
from torch import Tensor, nn

from ganleaks.parameters import Parameter, check_node

log = logging.getLogger(__name__)

LPIPS_NETS = ("vgg", "alex")
INSTALL_COMMAND = "ganleaks-install-lpips-weights"


class LPIPSWeightsMissingError(FileNotFoundError):
    """The torchvision backbone weights that LPIPS needs are not in the torch hub cache."""


def mean_squared_error(x: Tensor, y: Tensor) -> Tensor:
    """The L2 term of eq. 8: squared error *averaged* over every element of a sample.

    The paper's code takes the mean over height, width and channels, and its weights
    (lambda_2 = 0.2 for LPIPS, lambda_3 = 0.001 for the latent prior) are chosen for that scale;
    a sum would multiply this term by the number of elements (1,024 for 32x32 grey, 12,288 for
    64x64 RGB) and silence the other two.

    Args:
        x, y: ``(B, *shape)``, any range (images in ``[-1, 1]``); same shape.

    Returns:
        ``(B,)`` ``||x - y||_2^2 / prod(shape)``.
    """
    if x.shape != y.shape:
        raise ValueError(f"mean_squared_error needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    return (x - y).pow(2).flatten(1).mean(dim=1)


def latent_prior(z: Tensor) -> Tensor:
    """Latent regulariser ``(||z||_2^2 - dim z)^2`` (paper eq. 10): 0 on the typical set of N(0, I).

    Args:
        z: ``(B, d)`` latent codes.

    Returns:
        ``(B,)``.
    """
    return (z.pow(2).sum(dim=1) - z.shape[1]).pow(2)


def lpips_backbone_file(net: str) -> Path:
    """Where torchvision looks for the ImageNet backbone of LPIPS ``net`` (``vgg`` or ``alex``)."""
    from torchvision import models

    weights = {"vgg": models.VGG16_Weights.IMAGENET1K_V1, "alex": models.AlexNet_Weights.IMAGENET1K_V1}
    if net not in weights:
        raise ValueError(f"lpips_net must be one of {LPIPS_NETS}, got {net!r}")
    filename = os.path.basename(urlparse(weights[net].url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def check_lpips_backbone(net: str) -> Path:
    """Raise :class:`LPIPSWeightsMissingError` unless the backbone file of ``net`` is cached.

    Called before ``lpips.LPIPS`` is built, so that torchvision never tries to download.
    """
    path = lpips_backbone_file(net)
    if not path.is_file():
        raise LPIPSWeightsMissingError(
            f"LPIPS ({net}) needs the torchvision ImageNet backbone weights at {path}, which are missing "
            f"(this machine may be offline). Install them with `{INSTALL_COMMAND}` (writes into "
            f"$TORCH_HOME/hub/checkpoints, currently {path.parent}), or run without LPIPS with the "
            f"override `distance=l2`."
        )
    return path


class LPIPSDistance(nn.Module):
    """LPIPS v0.1 ("lin" head) between image batches, from the ``lpips`` package; frozen.

    Inputs are ``(B, C, H, W)`` in ``[-1, 1]`` with C = 1 (repeated to 3 channels) or 3.
    Images whose shorter side is below ``min_size`` are bilinearly upsampled (aspect kept) so that
    the shorter side equals ``min_size``: AlexNet cannot run below 31 px, and the LPIPS heads were
    trained on 64 x 64 patches, so the default 64 makes 16 / 28 / 32 px data comparable to the
    paper's 64 x 64 CelebA (on which it is a no-op).

    Args:
        net: ``"vgg"`` (the paper's code) or ``"alex"``.
        version: LPIPS head version.
        min_size: smallest image side fed to the network.

    Raises:
        LPIPSWeightsMissingError: the backbone weights are not installed (before any download).
    """

    def __init__(self, net: str = "vgg", version: str = "0.1", min_size: int = 64) -> None:
        super().__init__()
        check_lpips_backbone(net)
        import lpips

        with warnings.catch_warnings():
            # torchvision's deprecated `pretrained=` argument, used inside lpips.
            warnings.simplefilter("ignore", UserWarning)
            self.model = lpips.LPIPS(net=net, version=version, pretrained=True, verbose=False)
        self.model.eval()
        self.model.requires_grad_(False)
        self.net = net
        self.min_size = int(min_size)

    def train(self, mode: bool = True) -> LPIPSDistance:
        # The LPIPS network stays in eval mode (no dropout) whatever its parent does.
        super().train(mode)
        self.model.eval()
        return self

    def _prepare(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS needs images (B, 1 or 3, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        height, width = x.shape[-2:]
        short = min(height, width)
        if short < self.min_size:
            scale = self.min_size / short
            size = (max(self.min_size, round(height * scale)), max(self.min_size, round(width * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return x

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """LPIPS per pair: ``(B, C, H, W)`` x 2 in ``[-1, 1]`` -> ``(B,)``."""
        if x.shape != y.shape:
            raise ValueError(f"LPIPS needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
        return self.model(self._prepare(x), self._prepare(y), normalize=False).flatten()

    def features(self, x: Tensor) -> list[Tensor]:
        """Unit-normalised backbone features of ``x (B, C, H, W)`` in ``[-1, 1]``, one tensor per layer.

        A query's features do not change during a latent search: compute them once and use
        :meth:`from_features`, which halves the LPIPS cost of every objective evaluation.
        """
        import lpips

        outputs = self.model.net(self.model.scaling_layer(self._prepare(x)))
        return [lpips.normalize_tensor(output) for output in outputs]

    def from_features(self, features: list[Tensor], y: Tensor) -> Tensor:
        """LPIPS between images with cached :meth:`features` and ``y (B, C, H, W)`` -> ``(B,)``.

        Same computation as ``lpips.LPIPS.forward`` (v0.1, lin head, spatial average).
        """
        total: Tensor | int = 0
        for layer, (target, feature) in enumerate(zip(features, self.features(y), strict=False)):
            total = total + self.model.lins[layer]((target - feature) ** 2).mean(dim=(2, 3))
        assert isinstance(total, Tensor), "LPIPS has at least one layer"
        return total.flatten()


@dataclass
class DistanceTarget:
    """Queries prepared once for many distance evaluations (see :meth:`ReconstructionDistance.prepare`).

    Attributes:
        x: ``(B, *shape)`` queries in ``[-1, 1]``.
        lpips_features: cached LPIPS features of ``x`` (``None`` without LPIPS).
    """

    x: Tensor
    lpips_features: list[Tensor] | None = None

    def __len__(self) -> int:
        return len(self.x)

    def select(self, index: Tensor) -> DistanceTarget:
        """The targets of rows ``index (n,)`` (repeats allowed)."""
        features = None if self.lpips_features is None else [f[index] for f in self.lpips_features]
        return DistanceTarget(self.x[index], features)


class ReconstructionDistance(nn.Module):
    """The GAN-Leaks distance L(x, G(z)) (eq. 8-10): a query's loss and the objective an optimiser minimises.

    ``loss = l2_weight * MSE(x, x_hat) + lpips_weight * LPIPS(x, x_hat)`` (MSE averaged over the
    elements of a sample, as in the paper's code) is what an attack stores as the query's loss
    (lower = better reconstructed = more likely a member); ``objective = loss + latent_weight *
    (||z||^2 - dim z)^2`` is what the latent search minimises (the prior steers the search and is
    not part of the loss, as in the paper's code).
    With ``lpips_weight == 0`` no LPIPS network is built (tabular data, ``distance=l2``).

    Args:
        l2_weight: lambda_1.
        lpips_weight: lambda_2; needs image data.
        latent_weight: lambda_3.
        lpips_net: ``"vgg"`` or ``"alex"``.
        lpips_min_size: see :class:`LPIPSDistance`.
        name: the config's name (``paper``, ``l2``, ...), kept for run records only.
    """

    #: The keys of a ``conf/distance/*.yaml`` node that are checked before an attack reads anything
    #: (:func:`check_distance_config`); all have defaults here.
    config_parameters = (
        Parameter("l2_weight", "float", low=0.0, required=False, help="lambda_1, the pixel MSE's weight"),
        Parameter("lpips_weight", "float", low=0.0, required=False, help="lambda_2, LPIPS's weight (image data)"),
        Parameter("latent_weight", "float", low=0.0, required=False, help="lambda_3, the latent prior's weight"),
        Parameter("lpips_min_size", "int", low=1, required=False, help="LPIPS upsamples smaller images to this"),
    )

    def __init__(
        self,
        l2_weight: float = 1.0,
        lpips_weight: float = 0.0,
        latent_weight: float = 0.0,
        lpips_net: str = "vgg",
        lpips_min_size: int = 64,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        if min(l2_weight, lpips_weight, latent_weight) < 0:
            raise ValueError("distance weights must be >= 0")
        self.l2_weight = float(l2_weight)
        self.lpips_weight = float(lpips_weight)
        self.latent_weight = float(latent_weight)
        self.lpips_net = lpips_net
        self.lpips = LPIPSDistance(lpips_net, min_size=lpips_min_size) if self.lpips_weight > 0 else None

    @torch.no_grad()
    def prepare(self, x: Tensor) -> DistanceTarget:
        """Precompute what depends on the queries ``x (B, *shape)`` only (their LPIPS features)."""
        features = self.lpips.features(x) if self.lpips is not None else None
        return DistanceTarget(x, features)

    def terms(self, x: Tensor | DistanceTarget, x_hat: Tensor, z: Tensor | None = None) -> dict[str, Tensor]:
        """Each *weighted* term of eq. 8 separately, ``(B,)`` each: ``l2``, ``lpips``, ``prior`` (where present)."""
        target = x if isinstance(x, DistanceTarget) else DistanceTarget(x)
        terms = {"l2": self.l2_weight * mean_squared_error(target.x, x_hat)}
        if self.lpips is not None:
            if target.lpips_features is not None:
                perceptual = self.lpips.from_features(target.lpips_features, x_hat)
            else:
                perceptual = self.lpips(target.x, x_hat)
            terms["lpips"] = self.lpips_weight * perceptual
        if z is not None and self.latent_weight > 0:
            terms["prior"] = self.latent_weight * latent_prior(z)
        return terms

    def loss(self, x: Tensor | DistanceTarget, x_hat: Tensor) -> Tensor:
        """``l2_weight * MSE + lpips_weight * LPIPS``: queries (or a prepared target) and ``x_hat`` -> ``(B,)``."""
        terms = self.terms(x, x_hat)
        return terms["l2"] + terms["lpips"] if "lpips" in terms else terms["l2"]

    def forward(self, x: Tensor | DistanceTarget, x_hat: Tensor, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(objective (B,), loss (B,))``.

        Args:
            x: queries ``(B, *shape)`` in ``[-1, 1]``, or a :class:`DistanceTarget` from :meth:`prepare`.
            x_hat: reconstructions, same shape.
            z: latent codes ``(B, d)``; ``None`` (full black-box: the latent is not controlled)
                drops the prior term, so the objective equals the loss.
        """
        loss = self.loss(x, x_hat)
        if z is None or self.latent_weight == 0:
            return loss, loss
        return loss + self.latent_weight * latent_prior(z), loss

    def extra_repr(self) -> str:
        return (
            f"l2_weight={self.l2_weight}, lpips_weight={self.lpips_weight}, "
            f"latent_weight={self.latent_weight}, lpips_net={self.lpips_net!r}"
        )


def check_distance_config(node: Any, where: str = "distance") -> None:
    """A ``conf/distance/*.yaml`` node's values, by the parameters its class (``_target_``) declares.

    A class that cannot be imported is not checked here: the attack builds the distance only when
    its setting reconstructs, and fails there.
    """
    if node is None:
        return
    target = node.get("_target_")
    cls: Any = ReconstructionDistance
    if target and target != f"{ReconstructionDistance.__module__}.{ReconstructionDistance.__qualname__}":
        try:
            cls = get_class(target)
        except Exception:  # an unimportable target fails where the distance is built, if it is
            return
    check_node(where, node, getattr(cls, "config_parameters", ()))
