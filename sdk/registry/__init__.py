"""The model registry: what each known model is (:mod:`.table`), and where its file is found
or fetched from (:mod:`.fetch`), packs of model files for offline machines and mirrors
(:mod:`.pack`); ``anyedge models`` lists, fetches and packs them (:mod:`.cli`).

Locations (cache, ``ANYEDGE_MODEL_PATH``) come from :mod:`anyedge.paths`.
"""

from __future__ import annotations

from ..paths import cache_dir
from ..paths import model_path as search_path
from .fetch import (
    Fetched,
    extract_wheel_members,
    fetch_model,
    fetch_timeout,
    fetch_wheel_file,
    file_mode,
    find_model_file,
    licence_accepted,
    packaged_bundle,
    resolve_model,
    sha256_file,
)
from .table import (
    PACKAGED_BUNDLES,
    REGISTRY,
    USER_SUPPLIED,
    UPSTREAM_RAW_HOST,
    InputSpec,
    LicenceClass,
    ModelInfo,
    RawFile,
    Source,
    get_model_info,
    list_models,
)
from .pack import PackedModel, pack_models

__all__ = [
    "InputSpec",
    "RawFile",
    "Source",
    "LicenceClass",
    "UPSTREAM_RAW_HOST",
    "ModelInfo",
    "REGISTRY",
    "USER_SUPPLIED",
    "get_model_info",
    "list_models",
    "resolve_model",
    "fetch_model",
    "Fetched",
    "fetch_timeout",
    "licence_accepted",
    "pack_models",
    "PackedModel",
    "find_model_file",
    "sha256_file",
    "PACKAGED_BUNDLES",
    "packaged_bundle",
    "cache_dir",
    "search_path",
    "extract_wheel_members",
    "fetch_wheel_file",
    "file_mode",
]
