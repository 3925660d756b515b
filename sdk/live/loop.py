"""Scheduling: a capture thread feeds a tiny queue that drops stale frames, so latency stays flat.

When inference is slower than the camera, a frame that waits in the queue while a newer one
arrives is dropped (and counted) instead of queued: the processing always works on the newest
frame, and the capture-to-result latency is one inference plus at most one frame interval,
however long the stream runs. A video file is paced at its own frame rate so it behaves like a
camera (``every_frame=True`` processes every frame instead, dropping none).

``workers=N`` runs N inference threads: a free worker takes the newest frame, so on a board
with several cores N frames are in inference at once, and the results are handed on in capture
order, from the calling thread. Each worker runs its frame on the shared ``process`` callable
(thread-safe, as anyedge's tasks are) or on its own one of a list (one LiteRT interpreter each).

:func:`run_live` knows nothing of faces: ``process`` is any callable on a frame (a detector, a
tracker, a pipeline), and what becomes of its results is the ``on_frame`` / ``on_second``
callbacks' business (:mod:`.sinks`).
"""

from __future__ import annotations

import collections
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from .sources import FrameSource

__all__ = ["DropQueue", "LiveSummary", "run_live"]


# -- the queue ------------------------------------------------------------------------------
class DropQueue:
    """A bounded queue whose :meth:`put` drops the oldest item when full (counted in ``dropped``).

    With ``block=True`` a full queue makes :meth:`put` wait instead (every item is kept).
    """

    def __init__(self, size: int = 1) -> None:
        if size < 1:
            raise InputError(f"queue size must be at least 1, got {size}")
        self.size = size
        self.dropped = 0
        self._items: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any, *, block: bool = False, stop: threading.Event | None = None) -> None:
        with self._cond:
            while block and len(self._items) >= self.size and not self._closed:
                if stop is not None and stop.is_set():
                    return
                self._cond.wait(0.1)
            if len(self._items) >= self.size:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()

    def get(self, timeout: float) -> Any:
        """The oldest item; ``None`` on timeout or when closed and empty."""
        with self._cond:
            end = time.monotonic() + timeout
            while not self._items and not self._closed:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            if not self._items:
                return None
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed_and_empty(self) -> bool:
        with self._cond:
            return self._closed and not self._items


# -- the loop -------------------------------------------------------------------------------
@dataclass
class LiveSummary:
    """What a live run did. Latencies are capture-to-result, in milliseconds."""

    source: str
    captured: int = 0
    processed: int = 0
    dropped: int = 0
    seconds: float = 0.0
    stopped_by: str = "end of source"
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    infer_ms: list[float] = field(default_factory=list, repr=False)
    source_fps: float | None = None
    workers: int = 1

    def to_dict(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        half = len(self.latencies_ms) // 2

        def med(v: list[float]) -> float | None:
            return round(statistics.median(v), 2) if v else None

        return {
            "type": "summary", "source": self.source, "source_fps": self.source_fps, "workers": self.workers,
            "captured": self.captured, "processed": self.processed, "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fps": round(self.processed / self.seconds, 2) if self.seconds > 0 else None,
            "latency_ms": {"median": med(lat), "p90": round(lat[int(0.9 * (len(lat) - 1))], 2) if lat else None,
                           "max": round(lat[-1], 2) if lat else None,
                           "first_half_median": med(self.latencies_ms[:half]),
                           "second_half_median": med(self.latencies_ms[half:])},
            "infer_ms_median": med(self.infer_ms),
            "stopped_by": self.stopped_by,
        }


def _processes(process: Callable[[np.ndarray], Any] | Sequence[Callable[[np.ndarray], Any]],
               workers: int | None) -> list[Callable[[np.ndarray], Any]]:
    """One ``process`` callable per worker, checked."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if callable(process):
        return [process] * (workers or 1)
    if isinstance(process, (str, bytes)) or not isinstance(process, Sequence):
        raise InputError(f"process must be a callable or a list of callables (one per worker), "
                         f"got {type(process).__name__}")
    fns = list(process)
    if not fns or not all(callable(f) for f in fns):
        raise InputError(f"process must be a non-empty list of callables (one per worker), got "
                         f"{[type(f).__name__ for f in fns]}")
    if workers is not None and workers != len(fns):
        raise InputError(f"workers={workers} but {len(fns)} process callables were given; expected one per worker")
    return fns


def run_live(
    source: FrameSource,
    process: Callable[[np.ndarray], Any] | Sequence[Callable[[np.ndarray], Any]],
    *,
    workers: int | None = None,
    queue_size: int = 1,
    every_frame: bool = False,
    pace: bool | None = None,
    max_frames: int | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    on_frame: Callable[[int, np.ndarray, Any, float, float], None] | None = None,
    on_second: Callable[[dict[str, Any]], None] | None = None,
) -> LiveSummary:
    """Run ``process`` on the newest frame of ``source`` until it ends or ``stop`` is set.

    ``workers`` inference threads each take the newest frame when they are free; their results
    reach ``on_frame`` in capture order, on the calling thread, so what ``on_frame`` does (a
    tracker, a gallery, the sinks) stays single-threaded. A worker holds at most ``workers``
    frames in flight (taken, not yet handed on), so a slow ``on_frame`` slows the workers down
    instead of piling results up.

    Args:
        source: from :func:`open_source`.
        process: called on each processed frame (e.g. ``detector.detect``); its result is passed on.
            One callable is shared by every worker (it must be thread-safe, as anyedge's tasks
            are); a list gives each worker its own (e.g. one LiteRT detector each).
        workers: inference threads (default 1, or one per callable of a ``process`` list).
        queue_size: frames held between capture and processing (1 or 2); older ones are dropped.
        every_frame: never drop: the capture waits for processing (offline use of a file).
        pace: read a file at its own frame rate, like a camera (default: True for files unless
            ``every_frame``).
        max_frames: stop after this many processed frames.
        duration_s: stop after this many seconds.
        stop: set it (e.g. from a signal handler) to stop cleanly.
        on_frame: ``(index, frame, result, latency_ms, infer_ms)`` after each processed frame, in
            capture order; ``index`` is the frame's capture number, ``latency_ms`` runs from the
            capture to this call (a result that waits for an earlier frame's includes the wait),
            ``infer_ms`` is the ``process`` call alone.
        on_second: a stats dict (``fps``, ``latency_ms``, ``dropped``, ``workers``...) about once a
            second.

    Returns:
        The run's :class:`LiveSummary`.

    Raises:
        InputError: bad arguments, or reading frames failed.
        Exception: the first exception a ``process`` call raised, as it was raised (the run
            stops at once; frames still in flight are not handed on).
    """
    fns = _processes(process, workers)
    n = len(fns)
    stop = stop or threading.Event()
    pace = (source.is_file and not every_frame) if pace is None else pace
    queue = DropQueue(queue_size)
    summary = LiveSummary(source=source.name, source_fps=source.fps, workers=n)
    errors: list[BaseException] = []

    def capture() -> None:
        period = 1.0 / (source.fps or 30.0)
        t0 = time.monotonic()
        i = 0
        try:
            while not stop.is_set():
                frame = source.read()
                if frame is None:
                    break
                if pace:
                    wait = t0 + i * period - time.monotonic()
                    if wait > 0:
                        stop.wait(wait)
                summary.captured = i + 1
                queue.put((i, time.monotonic(), frame), block=every_frame, stop=stop)
                i += 1
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
        finally:
            queue.close()

    # Workers take frames in capture order (taking and numbering is one step, under `take`) and
    # leave their results in `done` under their take number; the caller hands them on in order.
    take = threading.Lock()
    cond = threading.Condition()
    halt = threading.Event()  # the caller is done: workers stop after their current frame
    done: dict[int, tuple[int, float, np.ndarray, Any, float]] = {}
    failed: list[BaseException] = []
    state = {"taken": 0, "handed": 0, "alive": n}

    def work(fn: Callable[[np.ndarray], Any]) -> None:
        try:
            while not halt.is_set():
                with take:
                    with cond:  # at most n frames between taking and handing on
                        while state["taken"] - state["handed"] >= n and not halt.is_set():
                            cond.wait(0.1)
                    if halt.is_set():
                        break
                    item = queue.get(timeout=0.1)
                    if item is None:
                        if queue.closed_and_empty:
                            break
                        continue
                    seq = state["taken"]
                    state["taken"] = seq + 1
                index, captured_at, frame = item
                t = time.monotonic()
                result = fn(frame)
                infer = (time.monotonic() - t) * 1e3
                with cond:
                    done[seq] = (index, captured_at, frame, result, infer)
                    cond.notify_all()
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller's thread
            with cond:
                failed.append(e)
            halt.set()
        finally:
            with cond:
                state["alive"] -= 1
                cond.notify_all()

    thread = threading.Thread(target=capture, name="anyedge-capture", daemon=True)
    pool = [threading.Thread(target=work, args=(fn,), name=f"anyedge-worker-{k}", daemon=True)
            for k, fn in enumerate(fns)]
    t_start = time.monotonic()
    thread.start()
    for w in pool:
        w.start()
    window_t, window_lat, window_n, window_dropped = t_start, [], 0, 0
    try:
        while not failed:
            if stop.is_set():
                summary.stopped_by = "signal"
                break
            if duration_s is not None and time.monotonic() - t_start >= duration_s:
                summary.stopped_by = "duration"
                break
            with cond:
                seq = state["handed"]
                if seq not in done and state["alive"] and not failed:
                    cond.wait(0.1)
                entry = done.pop(seq, None)
                if entry is None:
                    if not state["alive"] and not failed:  # every worker ran out of frames
                        summary.stopped_by = source.ended
                        break
                    continue
                state["handed"] = seq + 1
                cond.notify_all()
            index, captured_at, frame, result, infer = entry
            now = time.monotonic()
            latency = (now - captured_at) * 1e3
            summary.processed += 1
            summary.latencies_ms.append(latency)
            summary.infer_ms.append(infer)
            window_lat.append(latency)
            window_n += 1
            if on_frame is not None:
                on_frame(index, frame, result, latency, infer)
            if max_frames is not None and summary.processed >= max_frames:
                summary.stopped_by = "frames"
                break
            if on_second is not None and now - window_t >= 1.0:
                on_second({"type": "stats", "t": round(now - t_start, 3),
                           "fps": round(window_n / (now - window_t), 2),
                           "latency_ms": round(statistics.fmean(window_lat), 2),
                           "latency_max_ms": round(max(window_lat), 2),
                           "dropped": queue.dropped, "dropped_last_second": queue.dropped - window_dropped,
                           "processed": summary.processed, "workers": n})
                window_t, window_lat, window_n, window_dropped = now, [], 0, queue.dropped
    finally:
        halt.set()
        stop.set()
        for w in pool:  # a worker finishes its current frame: the engine must outlive the call
            w.join()
        thread.join(timeout=2.0)
        summary.seconds = time.monotonic() - t_start
        summary.dropped = queue.dropped
        source.close()
    if failed:
        raise failed[0]
    if errors and not isinstance(errors[0], (KeyboardInterrupt, SystemExit)):
        raise InputError(f"{source.name}: reading frames failed: {errors[0]}")
    return summary
