"""Turn what a user passes as ``model`` into a file, an engine choice and its metadata.

``model`` may be a registry name, a bundle (directory or .zip), or a path to a bare model
file (then ``family`` must say which decoder it needs: anyedge never guesses a model from
its tensor shapes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..bundle import is_bundle, load_bundle
from ..errors import InputError, UnknownModelError
from ..manifest import Manifest
from ..registry import REGISTRY, PACKAGED_BUNDLES, InputSpec, packaged_bundle, resolve_model

__all__ = ["ModelSpec", "resolve_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything a task needs to know about the model it runs."""

    name: str
    task: str
    family: str
    path: Path
    input: InputSpec | None
    decoder: Mapping[str, Any] = field(default_factory=dict)
    engine: str | None = None  # the engine a bundle was built for
    engine_options: Mapping[str, Any] = field(default_factory=dict)  # device/providers a bundle asks for
    manifest: Mapping[str, Any] | None = None  # a bundle's manifest.json as read
    extra: Mapping[str, Any] = field(default_factory=dict)
    quantization: Mapping[str, Any] = field(default_factory=dict)  # converter hints from the registry
    info: Manifest | None = None  # a bundle's typed, validated manifest


def _from_bundle(path: Path, task: str, input_spec: InputSpec | None,
                 decoder: Mapping[str, Any] | None, trusted_keys: Any = None) -> ModelSpec:
    b = load_bundle(path, trusted_keys=trusted_keys)
    m = b.info
    if m.task != task:
        raise InputError(f"bundle {path} holds a {m.task!r} model, not {task!r}")
    opts: dict[str, Any] = {}
    if m.engine == "openvino" and m.device:
        opts = {"device": m.device, "fallback_device": "CPU"}
    if m.engine == "openvino" and m.precision == "bf16":
        opts["precision"] = "bf16"  # bf16 is a compute precision the bundle asks for, not a file type
    elif m.engine == "onnxruntime" and m.providers:
        opts = {"providers": list(m.providers)}
    return ModelSpec(
        name=m.model.name,
        task=task,
        family=m.model.family,
        path=b.model_path,
        input=input_spec or m.input,
        decoder=_merge(m.decoder, decoder),
        engine=m.engine,
        engine_options=opts,
        manifest=b.manifest,
        extra={k: v for k, v in b.manifest.items() if k not in {"input", "decoder", "files"}},
        info=m,
    )


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model's decoder settings with the caller's overrides on top (every path alike)."""
    return {**base, **(overrides or {})}


def resolve_spec(
    model: str | os.PathLike[str],
    *,
    task: str,
    family: str | None = None,
    input_spec: InputSpec | None = None,
    decoder: Mapping[str, Any] | None = None,
    trusted_keys: Any = None,
) -> ModelSpec:
    """Resolve ``model`` for ``task``.

    ``input_spec`` replaces the model's input spec and ``decoder`` is merged over the model's
    decoder settings, the same way for a registry name, a bundle and a bare file. A bundle
    must be signed by one of ``trusted_keys`` (default: ``$ANYEDGE_TRUSTED_KEYS``) when trust
    is configured (see :mod:`anyedge.signing`).

    Raises:
        UnknownModelError: not a registry name, bundle or existing file.
        IntegrityError: a bundle that fails its digests or the configured trust.
        InputError: the model is for another task, or a bare file comes without ``family``.
    """
    text = os.fspath(model)
    if text in REGISTRY:
        path, info = resolve_model(text)
        if info.task != task:
            raise InputError(f"model {text!r} is a {info.task!r} model, not {task!r}")
        return ModelSpec(info.name, task, info.family, path, input_spec or info.input,
                         _merge(info.decoder, decoder), quantization=info.quantization)
    if text in PACKAGED_BUNDLES:
        bdir = packaged_bundle(text)
        assert bdir is not None
        return _from_bundle(bdir, task, input_spec, decoder, trusted_keys)
    p = Path(text).expanduser()
    if p.exists() and is_bundle(p):
        return _from_bundle(p, task, input_spec, decoder, trusted_keys)
    if p.is_file():
        if family is None:
            raise InputError(
                f"{p} is a bare model file: pass family=... (which decoder it needs) and, if it is not "
                "the family default, input_spec=...; anyedge does not guess models from tensor shapes"
            )
        base = next((m for m in REGISTRY.values() if m.family == family and m.task == task), None)
        if base is None:
            raise InputError(f"unknown {task} family {family!r}")
        return ModelSpec(p.stem, task, family, p, input_spec or base.input, _merge(base.decoder, decoder))
    if p.exists() and not p.is_dir():  # a FIFO or device: say so rather than "not a model"
        from ..inputs import regular_file

        regular_file(p, "model file or bundle")
    raise UnknownModelError(
        f"{text!r} is not a registered model, a bundle or a model file; "
        f"known models: {', '.join(sorted([*REGISTRY, *PACKAGED_BUNDLES]))}"
    )
