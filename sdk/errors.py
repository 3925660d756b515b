"""The one error hierarchy of anyedge.

Every failure the SDK reports on purpose is an :class:`AnyEdgeError`. Subclasses also
inherit the matching builtin (``ValueError``, ``FileNotFoundError``...) so callers that
already catch those keep working.
"""

from __future__ import annotations

__all__ = [
    "AnyEdgeError",
    "InputError",
    "UnknownModelError",
    "ModelNotFoundError",
    "IntegrityError",
    "DownloadError",
    "CorruptDownloadError",
    "LicenceNotAcceptedError",
    "ModelLoadError",
    "EngineUnavailableError",
    "EngineError",
    "DeviceUnavailableError",
    "BundleError",
    "ConversionError",
    "UnsupportedTargetError",
    "CalibrationError",
    "FidelityError",
    "GalleryError",
    "EmbedderMismatchError",
    "FaceQualityError",
]


class AnyEdgeError(Exception):
    """Base class of every error raised on purpose by anyedge."""


class InputError(AnyEdgeError, ValueError):
    """An input (image, sensor window, option) is not what the task expects."""


class UnknownModelError(AnyEdgeError, LookupError):
    """A model name is neither in the registry nor a path."""

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class ModelNotFoundError(AnyEdgeError, FileNotFoundError):
    """A known model's file is not on this machine and could not be fetched."""


class IntegrityError(AnyEdgeError, ValueError):
    """A file's sha256 does not match the one the registry or manifest pins."""


class DownloadError(ModelNotFoundError):
    """A model's file could not be downloaded: HTTP error, timeout, refused or no connection.

    ``anyedge`` exits with :data:`anyedge.cli_common.EXIT_DOWNLOAD` on it.
    """


class CorruptDownloadError(DownloadError, IntegrityError):
    """A download arrived complete but with the wrong sha256 (nothing was cached)."""


class LicenceNotAcceptedError(AnyEdgeError, PermissionError):
    """A model's weights are non-commercial or unlicensed, and fetching them was not accepted.

    ``anyedge`` exits with :data:`anyedge.cli_common.EXIT_LICENCE` on it.
    """


class ModelLoadError(AnyEdgeError, ValueError):
    """A model file exists but an engine cannot read it (corrupt, truncated, wrong format)."""


class EngineUnavailableError(AnyEdgeError, ImportError):
    """The requested engine is not installed or cannot run this file format."""


class EngineError(AnyEdgeError, RuntimeError):
    """The engine failed while running a model."""


class DeviceUnavailableError(AnyEdgeError, RuntimeError):
    """Strict device selection: the device or execution provider asked for cannot run the model here."""


class BundleError(AnyEdgeError, ValueError):
    """A bundle is malformed: missing files, bad hashes, unsafe member paths."""


class ConversionError(AnyEdgeError, RuntimeError):
    """A conversion step failed."""


class UnsupportedTargetError(ConversionError, ValueError):
    """This model cannot be converted for this target."""


class CalibrationError(ConversionError, ValueError):
    """The calibration data is missing, empty or unreadable."""


class FidelityError(ConversionError):
    """No remedy brought the converted model within the allowed accuracy drop."""


class GalleryError(AnyEdgeError, RuntimeError):
    """A face gallery database is unreadable, of another schema version, or misused."""


class EmbedderMismatchError(GalleryError, ValueError):
    """A gallery built with one embedder was queried or filled with another."""


class FaceQualityError(InputError):
    """A photo cannot be enrolled: no face, several faces, a face too small or too blurred."""
