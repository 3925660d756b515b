"""``target="host"``: measure instead of guessing, and the speed every conversion reports.

:func:`host_recipes` lists the conversion settings of every engine installed here;
:func:`measure_candidates` converts and gates every precision each engine's backend builds and
keeps the fastest passing candidate; :func:`time_candidates` times candidates against the float
model on this machine (also the ``speed_here`` of a fixed-target conversion).
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import replace
from typing import Any, Mapping, Sequence

from anyedge.errors import ConversionError
from anyedge.targets import TARGETS, Recipe

from .backends import BACKENDS, get_backend
from .job import Job, resolved_settings
from .remedy import Attempt, precision_chain

__all__ = ["HOST_SETTINGS", "host_recipes", "measure_candidates", "time_candidates"]

# Where each engine's conversion settings come from when the target is "host".
HOST_SETTINGS = {"onnxruntime": ("arm-cpu", ".onnx"), "openvino": ("intel-cpu", None), "litert": ("arm-cpu", ".tflite")}


def time_candidates(job: Job, cands: Sequence[tuple[Attempt, Recipe]], runs: int = 15) -> list[dict[str, Any]]:
    """Converted vs float latency on this machine, every model timed in one round robin.

    Each candidate and the float model on each candidate's engine run one after another in
    every round (the order rotating), so background load hits all alike and absolute times are
    comparable across candidates: the engine call (one held-back image's tensor) and the whole
    task call (held-back images in turn), medians, 1 thread. Measured where the conversion
    runs: small models often gain nothing from int8 on a given CPU.
    """
    from contextlib import ExitStack

    with ExitStack() as stack:
        floats: dict[str, Any] = {}
        models = []
        for att, _ in cands:
            opts = {"precision": "bf16"} if att.precision == "bf16" else {}
            models.append(stack.enter_context(job.task.open(next(iter(att.files.values())), att.engine, opts, threads=1)))
            if att.engine not in floats:
                floats[att.engine] = stack.enter_context(job.task.open(job.spec.path, att.engine, {}, threads=1))
        timed = models + list(floats.values())
        inputs = [job.task.tensor(m, job.held_images[0])[0] for m in timed]
        eng: list[list[float]] = [[] for _ in timed]
        task: list[list[float]] = [[] for _ in timed]
        for i in range(runs + 2):
            img = job.held_images[i % len(job.held_images)]
            shift = i % len(timed)
            for j in [*range(shift, len(timed)), *range(shift)]:
                t = time.perf_counter()
                timed[j].run_engine(inputs[j])
                t1 = time.perf_counter()
                job.task.outputs(timed[j], [img])
                t2 = time.perf_counter()
                if i >= 2:
                    eng[j].append((t1 - t) * 1e3)
                    task[j].append((t2 - t1) * 1e3)
        med_e = [statistics.median(v) for v in eng]
        med_t = [statistics.median(v) for v in task]
        base = {e: len(models) + k for k, e in enumerate(floats)}
    res = []
    for j, (att, _) in enumerate(cands):
        f = base[att.engine]
        res.append({"engine_ms": round(med_e[j], 3), "float_engine_ms": round(med_e[f], 3),
                    "ratio": round(med_e[j] / med_e[f], 3), "task_ms": round(med_t[j], 3),
                    "float_task_ms": round(med_t[f], 3), "task_ratio": round(med_t[j] / med_t[f], 3),
                    "threads": 1, "runs": runs, "machine": platform.machine(),
                    "note": "medians; every candidate and the float model on its engine timed in one rotating "
                            "round robin where the conversion ran; the target device may differ"})
    return res


def host_recipes(suffix: str) -> dict[str, Recipe]:
    """Per engine installed here that converts ``suffix`` models: its recipe, on this machine's CPU."""
    from anyedge.engines import ENGINES, available_engines

    out = {}
    for engine in available_engines():
        if engine not in BACKENDS or suffix not in ENGINES[engine].suffixes:
            continue
        name, fmt = HOST_SETTINGS[engine]
        base = TARGETS[name].recipe_for(fmt or suffix)
        if base is None or base.engine != engine:
            continue
        out[engine] = replace(base, device="CPU" if engine == "openvino" else None, providers=())
    return out


def measure_candidates(job: Job, recipes: Mapping[str, Recipe],
                       start: str) -> tuple[Attempt | None, Recipe, dict[str, Any]]:
    """Convert and gate every precision from ``start`` down on every engine; keep the fastest that passes.

    Returns:
        ``(chosen attempt or None when none passed, its recipe, the host report: table, chosen, note)``.
    """
    rows: list[tuple[Attempt, Recipe]] = []
    for engine, recipe in recipes.items():
        try:
            backend = get_backend(engine, job.source(recipe, resolved_settings(recipe)))
        except ConversionError as e:
            job.attempts.append(Attempt(engine, start, error=f"{type(e).__name__}: {e}"))
            continue
        for p in precision_chain(start, backend.precisions):
            # int8 that fails the gate gets its float-layer remedy, as a fixed target does; every
            # other precision is tried plainly (each is its own candidate here)
            got = job.run(backend, [p], float_layers=p == "int8")
            if got is not None:
                rows.append((got, recipe))
    table: list[dict[str, Any]] = []
    if rows:
        for (att, recipe), sp in zip(rows, time_candidates(job, rows)):
            size = sum(f.stat().st_size for f in att.files.values())
            table.append({"engine": att.engine, "precision": att.achieved, "float_layers": len(att.float_layers),
                          "fidelity": att.fidelity.to_dict() if att.fidelity else None,
                          "bytes": size, "size_ratio": round(size / job.spec.path.stat().st_size, 4), "speed": sp})
    if not table:
        return None, next(iter(recipes.values())), {"table": [], "chosen": None}
    best = min(range(len(table)), key=lambda i: table[i]["speed"]["task_ms"])
    att, recipe = rows[best]
    if att.precision == "fp32":
        note = (f"no converted candidate beat the float model here: float (fp32) on {att.engine} is the fastest "
                "passing choice")
    else:
        note = f"{att.engine} {att.achieved} is the fastest candidate that passes the gate"
    return att, recipe, {"chosen": best, "note": note, "criterion": "lowest median task call (ms) among passing",
                         "table": table}
