"""Detectors for ``anyedge run --workers N``: how many instances, and how many engine threads each.

N workers run N frames at once (:func:`~anyedge.live.loop.run_live`). What may run in parallel
depends on the engine (README, "Threads"), and so does how the cores are shared out when
``--threads`` is not given (with it, each instance gets exactly that, as without workers):

* **LiteRT**: an interpreter runs one call at a time, so each worker gets its own detector;
  each interpreter gets ``cores // N`` threads (at least 1), N interpreters fill the cores.
* **ONNX Runtime**: one session runs concurrent calls, so the workers share one detector. Each
  call computes on its calling thread plus the session's intra-op pool, which all calls share:
  the session gets ``cores - N + 1`` intra-op threads, so the N callers and the pool make one
  thread per core.
* **OpenVINO**: one compiled model, shared, compiled with N CPU streams (a stream runs one
  request at a time; the latency hint's single stream would make the workers take turns); the
  streams share all the cores between them, as OpenVINO's own threads setting does.

One worker changes nothing: one detector, the engine's default threads.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InputError

__all__ = ["usable_cores", "worker_threads", "open_detectors"]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under ``taskset``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def worker_threads(engine: str, workers: int, cores: int) -> int | None:
    """Engine threads per instance for ``workers`` workers on ``cores`` cores, when none are asked for.

    Returns:
        ``None`` (the engine's default) for one worker and for engines not named below.
    """
    if workers < 1 or cores < 1:
        raise InputError(f"workers and cores must be positive, got workers={workers}, cores={cores}")
    if workers == 1:
        return None
    if engine == "litert":
        return max(1, cores // workers)
    if engine == "onnxruntime":
        return max(1, cores - workers + 1)
    return None


def open_detectors(model: Any, *, workers: int, engine: str | None = None, threads: int | None = None,
                   cores: int | None = None, **options: Any) -> list[Any]:
    """Open the detectors ``workers`` workers run on: one per worker on LiteRT, else one shared.

    The model is resolved once; the engine it lands on decides the rest (module docstring).

    Args:
        model: as :meth:`FaceDetector.create <anyedge.tasks.face_detector.FaceDetector.create>`.
        workers: how many workers will call them.
        engine: the engine to run on (``None``: the model's own).
        threads: engine threads per instance; ``None`` shares the cores out (:func:`worker_threads`).
        cores: cores to share out (default: :func:`usable_cores`).
        **options: detector options (``channels``, ``score_threshold``, ``device``...).

    Returns:
        ``workers`` detectors (LiteRT) or one, open; the caller closes them.
    """
    from ..engines import default_engine_for
    from ..tasks._loading import resolve_spec
    from ..tasks.face_detector import FaceDetector

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    trusted = options.pop("trusted_keys", None)
    spec = resolve_spec(model, task=FaceDetector.TASK, trusted_keys=trusted)
    chosen = engine or spec.engine or default_engine_for(spec.path)
    if threads is None:
        threads = worker_threads(chosen, workers, cores or usable_cores())
    opts = FaceDetector.make_options(threads=threads, **options)
    extra = {"streams": workers} if chosen == "openvino" and workers > 1 else None
    count = workers if chosen == "litert" else 1
    detectors: list[Any] = []
    try:
        for _ in range(count):
            detectors.append(FaceDetector.from_spec(spec, engine, opts, extra))
    except BaseException:
        for d in detectors:
            d.close()
        raise
    return detectors
