"""Where anyedge looks for files: the model cache, the model search path and the data folder.

Every location comes from an environment variable; nothing else in anyedge computes one. The
MQTT password of ``anyedge run --mqtt`` is read here too, with the others.

==========================  ===========================================================
``ANYEDGE_CACHE_DIR``       fetched models and sample files; default
                            ``$XDG_CACHE_HOME/anyedge/models`` (``~/.cache/anyedge/models``)
``ANYEDGE_MODEL_PATH``      folders (``os.pathsep``-separated) searched recursively for a
                            model's file before the cache; default: none
``ANYEDGE_MODEL_MIRROR``    a base URL serving model files in the upstream raw-file layout,
                            ``BASE_URL/<owner>/<repo>/<commit>/<path>`` (a company mirror, or
                            ``anyedge models pack DIR`` served by any static HTTP server);
                            used instead of ``https://raw.githubusercontent.com``; default: none
``ANYEDGE_FETCH_TIMEOUT``   seconds a model download may wait for the server (to connect, or
                            for the next bytes) before it fails; default: 30
``ANYEDGE_ACCEPT_LICENCE``  ``1`` accepts the licence of non-commercial or unlicensed weights,
                            so they download on first use like permissive ones; default: off
``ANYEDGE_OFFLINE``         ``1`` turns model downloads off; default: off
``ANYEDGE_DATA``            the data folder (``widerface_val/images``, ``faces/``,
                            ``har/<name>/``) that commands needing data default to;
                            default: none, such a command then names the variable to set
                            (the BasicMotions split files are fetched from a PyPI wheel
                            when it lacks them)
``ANYEDGE_SERVE_TOKEN``     the token ``anyedge run --serve`` asks viewers for when
                            ``--serve-token`` is not given (it keeps the secret out of the
                            process list); default: none
``ANYEDGE_HAR_TWINS``       folders (``os.pathsep``-separated) holding float twins of
                            activity nets (``float-<dataset>.npz``) that ``bench`` compares
                            against, searched before the twins shipped in the package
``ANYEDGE_MQTT_PASSWORD``   the MQTT broker's password for ``anyedge run --mqtt`` when
                            the URL names a user but no password (so it need not be on
                            the command line); default: none
==========================  ===========================================================
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

__all__ = ["cache_dir", "model_path", "model_mirror", "data_dir", "data_path", "require_data_dir", "har_twin_dirs",
           "mqtt_password", "serve_token"]


def cache_dir() -> Path:
    """The user cache for fetched models (``ANYEDGE_CACHE_DIR`` overrides it)."""
    env = os.environ.get("ANYEDGE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "anyedge" / "models"


def model_path() -> list[Path]:
    """The directories in ``ANYEDGE_MODEL_PATH``, in order, that exist."""
    raw = os.environ.get("ANYEDGE_MODEL_PATH", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p and Path(p).expanduser().is_dir()]


def model_mirror() -> str | None:
    """The base URL in ``ANYEDGE_MODEL_MIRROR`` without a trailing ``/``, or ``None`` when unset.

    Raises:
        InputError: the value is not an ``http://``, ``https://`` or ``file://`` URL.
    """
    env = os.environ.get("ANYEDGE_MODEL_MIRROR", "").strip()
    if not env:
        return None
    if not env.lower().startswith(("http://", "https://", "file://")):
        raise InputError(f"ANYEDGE_MODEL_MIRROR must be an http://, https:// or file:// base URL, got {env!r}")
    return env.rstrip("/")


def data_dir() -> Path | None:
    """The data folder named by ``ANYEDGE_DATA``, or ``None`` when the variable is unset or empty."""
    env = os.environ.get("ANYEDGE_DATA")
    return Path(env).expanduser() if env else None


def data_path(*parts: str) -> Path | None:
    """``$ANYEDGE_DATA/<parts>`` when the variable is set and that file or folder exists, else ``None``."""
    root = data_dir()
    found = root.joinpath(*parts) if root is not None else None
    return found if found is not None and found.exists() else None


def require_data_dir(what: str) -> Path:
    """:func:`data_dir`, for a command that cannot go on without it.

    Args:
        what: what the data folder should hold, e.g. ``"har/<name>/"``; named in the error.

    Raises:
        InputError: ``ANYEDGE_DATA`` is not set (one line saying what to set).
    """
    root = data_dir()
    if root is None:
        raise InputError(f"no data folder: set ANYEDGE_DATA to the folder holding {what}")
    return root


def har_twin_dirs() -> list[Path]:
    """The directories in ``ANYEDGE_HAR_TWINS``, in order (the float twins of the activity nets)."""
    raw = os.environ.get("ANYEDGE_HAR_TWINS", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def mqtt_password() -> str | None:
    """The MQTT password in ``ANYEDGE_MQTT_PASSWORD``, or ``None`` when unset or empty."""
    return os.environ.get("ANYEDGE_MQTT_PASSWORD") or None
def serve_token() -> str | None:
    """The live view's token in ``ANYEDGE_SERVE_TOKEN``, or ``None`` when the variable is unset or empty."""
    return os.environ.get("ANYEDGE_SERVE_TOKEN") or None
