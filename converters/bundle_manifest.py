"""The manifest of a converted face bundle: the one place it is written.

:func:`converted_manifest` turns a finished :class:`~.job.Job` and its chosen candidate into the
bundle manifest (model card, input, decoder or embedding, target and engine) with the report:
source, tools, quantization, calibration, fidelity (every attempt), speed and the host table.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from anyedge.registry import sha256_file
from anyedge.targets import Recipe

from .job import Job, resolved_settings
from .remedy import Attempt

__all__ = ["converted_manifest", "input_names", "tool_versions"]


def input_names(chosen: Attempt) -> set[str]:
    """Input names of the chosen artifact, read by its own engine."""
    from anyedge.engines import open_engine

    eng = open_engine(next(iter(chosen.files.values())), chosen.engine)
    try:
        return {s.name for s in eng.inputs}
    finally:
        eng.close()


def tool_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("anyedge", "onnxruntime", "onnx", "openvino", "nncf", "ai-edge-litert", "ai-edge-quantizer",
                 "onnxconverter-common", "numpy", "opencv-python-headless"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def converted_manifest(job: Job, target: str, recipe: Recipe, requested: str, chosen: Attempt,
                       origin: Mapping[str, Any],
                       calib_files: Sequence[Path], held_files: Sequence[Path], seconds: float,
                       speed: Mapping[str, Any], host: Mapping[str, Any] | None) -> dict[str, Any]:
    """The manifest (as JSON data) of the bundle holding ``chosen``, with the conversion's report.

    ``origin`` says where calibration came from: ``kind`` and ``source`` (a folder), plus what was
    sampled and dropped for a video or live source (:meth:`.frames.SampledFrames.record`).
    """
    from anyedge.registry import REGISTRY

    spec = job.spec
    embedder = spec.task == "face_embedding"
    w, h = job.task.input_size  # type: ignore[misc]
    input_spec = replace(spec.input, size=(w, h), dynamic=False) if recipe.static_shape else spec.input
    source_bytes = spec.path.stat().st_size
    out_bytes = sum(p.stat().st_size for p in chosen.files.values())
    from anyedge.manifest import Embedding, Manifest, ModelCard

    info = REGISTRY.get(spec.name)
    extra: dict[str, Any] = {
        "requested_precision": requested,
        "remedy": chosen.label(),
        "float_layers": list(chosen.float_layers),
        "source": {"file": spec.path.name, "sha256": sha256_file(spec.path), "bytes": source_bytes},
        "bytes": out_bytes,
        "size_ratio": round(out_bytes / source_bytes, 4),
        "tools": tool_versions(),
        "quantization": resolved_settings(recipe),
        "calibration": {**({"folder": origin["source"]} if origin.get("kind") == "folder" else {}), **origin,
                        "images": len(calib_files), "held_back": len(held_files),
                        "input_shape": job.input_shape, "first": calib_files[0].name if calib_files else None},
        "fidelity": {
            "metric": job.evaluator.description,
            "max_drop": job.evaluator.max_drop,
            "gate": round(1.0 - job.evaluator.max_drop, 4),
            ("gate_cosine_p5" if embedder else "gate_f1"): round(1.0 - job.evaluator.max_drop, 4),
            ("min_reference_crops" if embedder else "min_reference_faces"): job.evaluator.min_reference,
            "passed": True,
            "chosen": chosen.to_dict(),
            "attempts": [a.to_dict() for a in job.attempts],
            "seconds": round(seconds, 1),
        },
        "speed_here": dict(speed),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if host is not None:
        extra["host"] = dict(host)
    extra.update(job.data)
    task_parts: dict[str, Any] = {"decoder": dict(spec.decoder)}
    if embedder:
        from anyedge.tasks.face_embedder import EmbedderSettings

        st = EmbedderSettings.from_mapping(spec.decoder, spec.name)
        stripped = sorted(set(st.extra_inputs or {}) - input_names(chosen))
        task_parts = {"embedding": Embedding(st.embedding_dim, st.threshold)}
        extra["embedder"] = {
            "output": st.output,
            "extra_inputs": {k: v for k, v in (st.extra_inputs or {}).items() if k not in stripped},
            "stripped_inputs": stripped,
            "threshold_source": f"the float {spec.name}'s default, kept: {st.threshold_source}; the gate held "
                                "this model's verification accuracy at the float-chosen threshold",
        }
    return Manifest(
        model=ModelCard(spec.name, spec.family, spec.task, license=info.license if info else None),
        model_file=next(iter(chosen.files)),
        input=input_spec,
        **task_parts,
        target=target,
        engine=chosen.engine,
        device=recipe.device,
        providers=tuple(recipe.providers),
        precision=chosen.achieved,
        extra=extra,
    ).to_json()
