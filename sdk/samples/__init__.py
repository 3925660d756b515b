"""The demo photo, for ``anyedge demo`` on a machine without ``../shared``: fetched, not shipped.

NASA's official portrait of astronaut Eileen Collins (photo S116-E-05983, 1999), public domain
as a work of NASA, exactly as scikit-image ships it (``skimage/data/astronaut.png``, 512x512 RGB
PNG). It comes out of the scikit-image wheel on PyPI once, sha256-checked, into anyedge's cache,
by the same machinery as the models (:func:`anyedge.registry.fetch_wheel_file`); anyedge's
source and wheel carry no photos.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

__all__ = ["sample_image", "SAMPLES"]

# name -> (PyPI requirement, member in its wheel, cached file name, sha256)
SAMPLES = {
    "astronaut": ("scikit-image==0.25.2", "skimage/data/astronaut.png", "sample-astronaut.png",
                  "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
}


def sample_image(name: str = "astronaut") -> Path:
    """Path of a sample photo in anyedge's cache, fetched on first use.

    Raises:
        InputError: unknown name.
        ModelNotFoundError: not cached and it cannot be fetched (offline, no PyPI wheel for
            this platform); the message says so and how to pass a photo of your own.
    """
    from ..errors import ModelNotFoundError
    from ..registry import fetch_wheel_file

    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; samples: {', '.join(SAMPLES)}")
    requirement, member, filename, sha = SAMPLES[name]
    try:
        return fetch_wheel_file(requirement, member, filename, sha, f"the sample photo {name!r}")
    except ModelNotFoundError as e:
        raise ModelNotFoundError(f"{e}; pass a photo of your own with --image") from None
