"""Bundles the tests build and edit: a small YuNet face bundle, and a manifest edit re-sealed as anyone can."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from anyedge.bundle import write_bundle
from anyedge.manifest import manifest_digest
from anyedge.registry import resolve_model


def yunet_bundle(out: Path) -> Path:
    """Write a face-detection bundle of yunet-n-320 at ``out`` and return it."""
    from .test_manifest import face_manifest  # test_manifest imports this module

    write_bundle(out, {"model.onnx": resolve_model("yunet-n-320")[0]}, face_manifest())
    return out


def reseal(bundle: Path, edit: Callable[[dict[str, Any]], Any]) -> None:
    """Apply ``edit`` to the manifest and recompute its unkeyed digest, as anyone holding the bundle can."""
    m = json.loads((bundle / "manifest.json").read_text())
    edit(m)
    m["manifest_sha256"] = manifest_digest(m)
    (bundle / "manifest.json").write_text(json.dumps(m))
