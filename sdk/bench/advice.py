"""Which mode a live loop should run a detector in, reasoned from a benchmark's measured rows.

A live loop (``anyedge run``) processes the newest frame, so what one frame costs matters: one
worker delivers ``1000 / latency`` frames per second, each ``latency`` ms after capture. Several
workers (``anyedge run --workers N``) deliver more frames per second only when the cores allow
it, and each frame then takes longer: the ``workers`` throughput of whole task calls (measured
on the instance ``anyedge run --workers N`` opens) and its per-call latency say how much of each. The
engine's own ``async`` mode reaches its figure on engine calls alone; it is given beside, since
a live loop runs whole calls.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["live_modes", "format_live_modes", "WORKERS_GAIN"]

#: several workers are recommended only when they deliver at least this many times the frames
#: per second of the best single worker (below it, the gain is within a shared machine's noise
#: and every frame waits longer)
WORKERS_GAIN = 1.2
# the tasks a live loop runs per frame
_LIVE_TASKS = ("face_detection",)


def _figure(r: Mapping[str, Any]) -> bool:
    return "error" not in r and "skipped" not in r and isinstance(r.get("latency_ms"), Mapping)


def _median(stats: Any) -> float | None:
    v = stats.get("median") if isinstance(stats, Mapping) else None
    return float(v) if isinstance(v, (int, float)) and v == v and v > 0 else None


def live_modes(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One recommendation per detector model x engine x precision of ``rows`` (bench rows).

    Candidates: one worker with each measured thread count (frames/s = 1000 / the median whole
    call, the row's latency) and from ``instances`` records of whole task calls with one
    instance; ``N`` workers from ``workers`` records (the instance ``anyedge run --workers N``
    opens), else from ``instances`` records of whole task calls with ``N > 1`` (their throughput
    and per-call median latency). Several workers win when
    they deliver at least :data:`WORKERS_GAIN` times the best single worker's frames per second;
    otherwise the single worker with the most frames per second (the fewest threads on a tie).

    Returns:
        ``[{"model", "engine", "precision", "mode": "one worker" | "workers", "workers",
        "threads", "frames_per_s", "frame_ms", "one_worker": {...}, "workers_figure": {...} |
        None, "async_ips": float | None, "text"}]``, where ``text`` is the one line the terminal
        shows ("for anyedge run: ... because ...").
    """
    groups: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        if _figure(r) and r.get("task") in _LIVE_TASKS:
            groups.setdefault((str(r["model"]), str(r["engine"]), str(r["precision"])), []).append(r)
    out = []
    for (model, engine, precision), rs in groups.items():
        single = []
        for r in rs:
            ms = _median(r["latency_ms"])
            if ms:
                single.append({"threads": int(r["threads"]), "frames_per_s": round(1000.0 / ms, 2), "frame_ms": ms})
        several, engine_async, workers = [], [], []
        for r in rs:
            for m in r.get("throughput") or []:
                if not isinstance(m, Mapping) or not isinstance(m.get("throughput_ips"), (int, float)):
                    continue
                ms = _median(m.get("latency_ms"))
                if m.get("mode") == "instances" and m.get("of") == "task" and ms:
                    n = int(m.get("instances", 1))
                    if n == 1:  # one worker, timed the way the several workers are
                        single.append({"threads": 1, "frames_per_s": float(m["throughput_ips"]), "frame_ms": ms})
                    else:
                        several.append({"workers": n, "frames_per_s": float(m["throughput_ips"]), "frame_ms": ms})
                elif m.get("mode") == "workers" and int(m.get("workers", 1)) > 1 and ms:
                    workers.append({"workers": int(m["workers"]), "frames_per_s": float(m["throughput_ips"]),
                                    "frame_ms": ms})
                elif m.get("mode") == "async":
                    engine_async.append(float(m["throughput_ips"]))
        if not single:
            continue
        several = workers or several  # what anyedge run --workers opens, when it was measured
        one = max(single, key=lambda c: (c["frames_per_s"], -c["threads"]))
        many = max(several, key=lambda c: (c["frames_per_s"], -c["workers"])) if several else None
        rec: dict[str, Any] = {"model": model, "engine": engine, "precision": precision, "one_worker": one,
                               "workers_figure": many, "async_ips": max(engine_async) if engine_async else None}
        fps1, ms1 = one["frames_per_s"], one["frame_ms"]
        if many and many["frames_per_s"] >= WORKERS_GAIN * fps1:
            n = many["workers"]
            rec.update({"mode": "workers", "workers": n, "threads": None, "frames_per_s": many["frames_per_s"],
                        "frame_ms": many["frame_ms"]})
            text = (f"--workers {n} when the camera gives more than {fps1:.0f} frames/s, "
                    f"because {n} workers process {many['frames_per_s']:.1f} frames/s against one worker's "
                    f"{fps1:.1f} (x{many['frames_per_s'] / fps1:.2f}), though each frame takes "
                    f"{many['frame_ms']:.1f} ms instead of {ms1:.1f} ms")
        else:
            t = one["threads"]
            rec.update({"mode": "one worker", "workers": 1, "threads": t, "frames_per_s": fps1, "frame_ms": ms1})
            text = f"--threads {t} (one worker), because it processes {fps1:.1f} frames/s at {ms1:.1f} ms a frame"
            if many:
                text += (f", and {many['workers']} workers would process {many['frames_per_s']:.1f} frames/s "
                         f"(x{many['frames_per_s'] / fps1:.2f}, under x{WORKERS_GAIN}) at {many['frame_ms']:.1f} ms "
                         "a frame")
            else:
                text += "; no several-worker figure was measured (--async or --threads 1,N measures one)"
        if rec["async_ips"] is not None:
            text += f"; the engine's async mode reaches {rec['async_ips']:.1f}/s on engine calls alone"
        rec["text"] = f"for anyedge run: {text}"
        out.append(rec)
    return out


def format_live_modes(doc: Mapping[str, Any]) -> str:
    """The ``live_modes`` of a run, one line per detector model x engine x precision (``""`` when
    none); a run saved without them gets them from its rows."""
    saved = doc.get("live_modes")
    modes = saved if isinstance(saved, list) else live_modes(doc.get("rows") or [])
    modes = [m for m in modes if isinstance(m, Mapping) and m.get("text")]
    if not modes:
        return ""
    return "\n".join(["live mode (what anyedge run should use, from the figures above)",
                      *(f"  {m['model']} {m['engine']} {m['precision']}: {m['text']}" for m in modes)])
