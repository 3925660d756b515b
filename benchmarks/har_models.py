"""Helpers of the HAR benchmarks: the float twin (now in the package, ``anyedge.bench.har``) and results I/O."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from anyedge.bench.har import FloatTwin as _PackageTwin
from anyedge.bench.har import packaged_twin_dir

__all__ = ["RESULTS", "FloatTwin", "write_results"]

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODELS = packaged_twin_dir()


class FloatTwin(_PackageTwin):
    """The float twin saved by ``converters/train_har.py``; see :class:`anyedge.bench.har.FloatTwin`."""

    @classmethod
    def for_dataset(cls, dataset: str) -> "FloatTwin":
        return cls(MODELS / f"float-{dataset.lower()}.npz")


def write_results(stem: str, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``results/<stem>.json`` (meta + rows) and ``results/<stem>.csv`` (rows)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    jpath, cpath = RESULTS / f"{stem}.json", RESULTS / f"{stem}.csv"
    jpath.write_text(json.dumps({"meta": dict(meta), "rows": list(rows)}, indent=2) + "\n")
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(cpath, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    return jpath, cpath
