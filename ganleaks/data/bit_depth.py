"""High-bit-depth images scaled to 8 bits, instead of clipped.

PIL's ``convert("L")`` / ``convert("RGB")`` of a 16-bit grayscale image (mode ``I;16`` or ``I``)
clips every value above 255 to 255: a 16-bit PNG comes out almost all white. Here the full 16-bit
range is mapped onto 0..255 first. (16-bit-per-channel RGB PNGs are read by PIL as 8-bit ``RGB``,
already scaled.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def to_8_bit(image: Image.Image, path: Path) -> Image.Image:
    """``image`` itself when it has 8 bits per channel, else its 16-bit values scaled to an 8-bit ``L`` image."""
    if image.mode not in (*SIXTEEN_BIT_MODES, "I", "F"):
        return image
    array = np.asarray(image)
    if image.mode == "F" or (image.mode == "I" and array.size and (array.min() < 0 or array.max() > 65535)):
        raise ValueError(
            f"{path} is a {image.mode!r} image (32-bit integer or float pixels), which ganleaks cannot "
            "map to [-1, 1] without knowing its range: convert it to an 8- or 16-bit image"
        )
    return Image.fromarray(np.round(array.astype(np.float64) / 257.0).astype(np.uint8), mode="L")
