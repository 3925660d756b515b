"""Helpers shared by the benchmark scripts: paths, percentiles, result writing, machine facts."""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ANYEDGE_SHARED", ROOT.parent / "shared"))
RESULTS = ROOT / "benchmarks" / "results"


def use_shared_models() -> None:
    """Point the registry at ../shared/models unless the caller chose a path."""
    os.environ.setdefault("ANYEDGE_MODEL_PATH", str(SHARED / "models"))


def pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def write_results(name: str, rows: list[dict[str, Any]], meta: dict[str, Any], out: Path | None = None) -> tuple[Path, Path]:
    """Write ``<name>.json`` (meta + rows) and ``<name>.csv`` (rows) atomically."""
    out = out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    jpath, cpath = out / f"{name}.json", out / f"{name}.csv"
    tmp = jpath.with_suffix(".json.part")
    tmp.write_text(json.dumps({"meta": {**machine(), **meta}, "rows": rows}, indent=1) + "\n")
    os.replace(tmp, jpath)
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        tmp = cpath.with_suffix(".csv.part")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, cpath)
    return jpath, cpath


def markdown_table(rows: list[dict[str, Any]], cols: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def wider_clip(path: Path, seconds: float, fps: float = 30.0, size: tuple[int, int] = (640, 480)) -> int:
    """An MJPG clip of the WIDER FACE val photos, each held for 4 frames; returns its frame count."""
    import cv2

    photos = sorted((SHARED / "data" / "widerface_val" / "images").glob("*.jpg"))
    n = int(seconds * fps)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        w.write(cv2.resize(cv2.imread(str(photos[(i // 4) % len(photos)])), size))
    w.release()
    return n
