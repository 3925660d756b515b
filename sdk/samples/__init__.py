"""A small public-domain photo shipped inside anyedge, so ``anyedge demo`` works with no extras.

``astronaut.jpg``: a 256x256 crop of NASA photo S116-E-05983 (astronaut Eileen Collins, 1999),
public domain as a work of NASA, downscaled and saved at JPEG quality 90 (the same photo
scikit-image ships as ``skimage.data.astronaut()``). Provenance and sha256 in ``PROVENANCE.md``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

__all__ = ["sample_image", "SAMPLES"]

SAMPLES = {"astronaut": "astronaut.jpg"}


def sample_image(name: str = "astronaut") -> Path:
    """Path of a packaged sample image.

    Raises:
        InputError: unknown name, or the file is missing from this installation.
    """
    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; samples: {', '.join(SAMPLES)}")
    path = Path(__file__).with_name(SAMPLES[name])
    if not path.is_file():
        raise InputError(f"the packaged sample {path} is missing; reinstall anyedge or pass --image")
    return path
