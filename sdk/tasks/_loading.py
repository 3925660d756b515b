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
    manifest: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    quantization: Mapping[str, Any] = field(default_factory=dict)  # converter hints from the registry


def _from_bundle(path: Path, task: str) -> ModelSpec:
    b = load_bundle(path)
    m = b.manifest
    model = m["model"]
    if model.get("task") != task:
        raise InputError(f"bundle {path} holds a {model.get('task')!r} model, not {task!r}")
    opts: dict[str, Any] = {}
    if m.get("engine") == "openvino" and m.get("device"):
        opts = {"device": m["device"], "fallback_device": "CPU"}
    if m.get("engine") == "openvino" and m.get("precision") == "bf16":
        opts["precision"] = "bf16"  # bf16 is a compute precision the bundle asks for, not a file type
    elif m.get("engine") == "onnxruntime" and m.get("providers"):
        opts = {"providers": list(m["providers"])}
    return ModelSpec(
        name=model.get("name", path.stem),
        task=task,
        family=model["family"],
        path=b.model_path,
        input=InputSpec.from_dict(m["input"]) if m.get("input") else None,
        decoder=m.get("decoder", {}),
        engine=m.get("engine"),
        engine_options=opts,
        manifest=m,
        extra={k: v for k, v in m.items() if k not in {"input", "decoder", "files"}},
    )


def resolve_spec(
    model: str | os.PathLike[str],
    *,
    task: str,
    family: str | None = None,
    input_spec: InputSpec | None = None,
    decoder: Mapping[str, Any] | None = None,
) -> ModelSpec:
    """Resolve ``model`` for ``task``.

    Raises:
        UnknownModelError: not a registry name, bundle or existing file.
        InputError: the model is for another task, or a bare file comes without ``family``.
    """
    text = os.fspath(model)
    if text in REGISTRY:
        path, info = resolve_model(text)
        if info.task != task:
            raise InputError(f"model {text!r} is a {info.task!r} model, not {task!r}")
        return ModelSpec(info.name, task, info.family, path, input_spec or info.input,
                         {**info.decoder, **(decoder or {})}, quantization=info.quantization)
    if text in PACKAGED_BUNDLES:
        bdir = packaged_bundle(text)
        assert bdir is not None
        return _from_bundle(bdir, task)
    p = Path(text).expanduser()
    if p.exists() and is_bundle(p):
        return _from_bundle(p, task)
    if p.is_file():
        if family is None:
            raise InputError(
                f"{p} is a bare model file: pass family=... (which decoder it needs) and, if it is not "
                "the family default, input_spec=...; anyedge does not guess models from tensor shapes"
            )
        base = next((m for m in REGISTRY.values() if m.family == family and m.task == task), None)
        if base is None:
            raise InputError(f"unknown {task} family {family!r}")
        settings = dict(decoder) if decoder is not None else dict(base.decoder)
        return ModelSpec(p.stem, task, family, p, input_spec or base.input, settings)
    raise UnknownModelError(
        f"{text!r} is not a registered model, a bundle or a model file; "
        f"known models: {', '.join(sorted([*REGISTRY, *PACKAGED_BUNDLES]))}"
    )
