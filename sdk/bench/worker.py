"""One benchmark row, measured in a fresh child process (``python -m anyedge.bench.worker``).

The parent writes a :class:`~anyedge.bench.plan.Job` as JSON on the child's stdin; the child
writes the row as JSON to the job's ``result`` file and exits. A fresh process per row makes
the cold load time real (the engine's runtime is imported inside it) and keeps each row's peak
RSS its own. The measurement of each task lives in a :class:`TaskBench`, chosen from
:data:`TASK_BENCHES` by the job's ``kind``; :func:`register_task_bench` adds one (face
embedders: fidelity is the cosine of embeddings, see :func:`cosine_fidelity`).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import AnyEdgeError, InputError

__all__ = ["TaskBench", "TASK_BENCHES", "register_task_bench", "run_job", "stats", "peak_rss_mb",
           "cosine_fidelity"]


# -- measurement helpers --------------------------------------------------------------------
def stats(ms: Sequence[float]) -> dict[str, float]:
    """Median / p90 / p99 / mean / min / max of a list of milliseconds (``nan`` when empty)."""
    if not len(ms):
        nan = float("nan")
        return {"median": nan, "p90": nan, "p99": nan, "mean": nan, "min": nan, "max": nan, "n": 0}
    a = np.asarray(ms, np.float64)
    return {"median": round(float(np.median(a)), 4), "p90": round(float(np.percentile(a, 90)), 4),
            "p99": round(float(np.percentile(a, 99)), 4), "mean": round(float(a.mean()), 4),
            "min": round(float(a.min()), 4), "max": round(float(a.max()), 4), "n": int(a.size)}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (VmHWM, else ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(r / (1024 * 1024) if sys.platform == "darwin" else r / 1024, 1)  # bytes on macOS, KiB elsewhere


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _until(items: Sequence[Any], end: float, at_least: int = 0) -> Iterator[tuple[int, Any]]:
    """``(i, items[i % len(items)])`` while ``time.perf_counter() < end``, and at least ``at_least``."""
    i = 0
    while i < at_least or time.perf_counter() < end:
        yield i, items[i % len(items)]
        i += 1


def _instances(make: Callable[[], Any], first: Any, call: Callable[[Any, int], Any], n: int, seconds: float,
               at_least: int = 10, warmup: int = 1) -> dict[str, Any]:
    """``n`` instances, one per Python thread, started together: each makes calls until
    ``seconds`` have passed (its last call starts before that; at least ``at_least`` calls each).
    Every instance is warmed up with ``warmup`` calls (at least one) before the clock starts.

    Returns:
        ``throughput_ips`` (calls per second of wall time until the last call ended), ``calls``,
        ``seconds`` (that wall time) and ``latency_ms`` (statistics of every call).
    """
    instances = [first] + [make() for _ in range(n - 1)]
    ready = threading.Barrier(n + 1)  # every instance warmed up
    go = threading.Event()  # the deadline is set: start
    errors: list[BaseException] = []
    lat: list[list[float]] = [[] for _ in instances]
    end = [0.0]

    def work(inst: Any, k: int) -> None:
        try:
            for i in range(max(1, warmup)):
                call(inst, i)
        except BaseException as e:  # reported after the join
            errors.append(e)
        ready.wait()
        go.wait()
        try:
            for i, _ in _until((None,), end[0], 0 if errors else at_least):
                if errors:
                    return
                t0 = time.perf_counter()
                call(inst, i + 7 * k)
                lat[k].append(_ms(t0))
        except BaseException as e:  # reported after the join
            errors.append(e)

    try:
        workers = [threading.Thread(target=work, args=(inst, k)) for k, inst in enumerate(instances)]
        for w in workers:
            w.start()
        ready.wait()
        t0 = time.perf_counter()
        end[0] = t0 + seconds
        go.set()
        for w in workers:
            w.join()
        wall = time.perf_counter() - t0
    finally:
        for inst in instances[1:]:
            inst.close()
    if errors:
        raise errors[0]
    calls = sum(len(v) for v in lat)
    return {"throughput_ips": round(calls / wall, 2), "calls": calls, "seconds": round(wall, 4),
            "latency_ms": stats([x for v in lat for x in v])}


#: engines whose own profiler anyedge reads (``engine.profile(skip=...)`` after opening with ``profile=True``)
PROFILED_ENGINES = ("onnxruntime", "openvino")
#: why the other engines' rows have no profile
NO_PROFILE = {
    "litert": "LiteRT's Python Interpreter API exposes no per-operator profile (its op profiler is in the "
              "C++ benchmark tool only)",
    "bnn": "the bnn engine has no per-operator profiler (kernel_ms times its kernels as a whole)",
    "numpy": "the numpy float twin has no per-operator profiler",
}


def _profile(tb: TaskBench, timed: Any, threads: int, feeds: Sequence[Any], runs: int, warmup: int) -> dict[str, Any]:
    """Row fields from the engine's own profiler: ``profile`` (operators, per-inference means,
    slowest first), ``profile_ms`` (their sum), ``profile_runs`` and ``profile_engine_ms`` (the
    engine call of the unprofiled instance ``timed``, interleaved call by call with the profiled
    runs: the time the operators should account for); or ``profile_na`` (why there is none).

    A separate instance opened with profiling on runs the engine call alone ``warmup + runs``
    times; the warm-up runs are left out of the means, and none of it enters the timed figures.
    """
    engine = tb.job["engine"]
    if engine not in PROFILED_ENGINES:
        return {"profile_na": NO_PROFILE.get(engine, f"no per-operator profiler for engine {engine}")}
    inst = tb.create(threads, profile=True)
    plain = []
    try:
        for i in range(warmup + runs):
            f = feeds[i % len(feeds)]
            t0 = time.perf_counter()
            tb.engine_call(timed, f)
            plain.append(_ms(t0))
            tb.engine_call(inst, f)
        ops = tb.engine_of(inst).profile(skip=warmup)
    finally:
        inst.close()
    return {"profile": ops, "profile_ms": round(sum(o["ms"] for o in ops), 4), "profile_runs": runs,
            "profile_engine_ms": stats(plain[warmup:])}


@dataclass(frozen=True)
class AsyncMode:
    """How the engine-native throughput mode (``async``) opens its instance on one engine.

    Attributes:
        threads: engine threads per run (``None``: the engine's own choice).
        options: engine options of that instance.
        static_shapes: compile for the shapes of the feeds (as ``benchmark_app -shape``), so a
            model with dynamic inputs is planned for the one shape it runs.
        how: the mode in words.
    """

    threads: int | None
    options: Mapping[str, Any]
    static_shapes: bool
    how: str


#: the engine-native throughput mode of each engine that has one. OpenVINO: asynchronous infer
#: requests under the THROUGHPUT hint (the plugin picks streams, threads and the number of
#: requests; the fp32 pin holds); ONNX Runtime: one session run from one thread per core at once,
#: one intra-op thread each.
ASYNC_MODES: dict[str, AsyncMode] = {
    "openvino": AsyncMode(None, {"performance": "throughput"}, True,
                          "asynchronous infer requests, THROUGHPUT hint"),
    "onnxruntime": AsyncMode(1, {}, False, "one session run from parallel threads, 1 intra-op thread each"),
}
#: the shortest time a throughput mode of ``--async`` runs without ``--duration``, in seconds
ASYNC_MIN_SECONDS = 3.0
# feeds compared call by call between the async mode and serial engine.run calls
_MATCH_FEEDS = 16


def _same_outputs(a: Sequence[Sequence[np.ndarray]], b: Sequence[Sequence[np.ndarray]]) -> bool:
    return len(a) == len(b) and all(len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y))
                                    for x, y in zip(a, b))


def _async_throughput(tb: TaskBench, feeds: Sequence[Any], seconds: float, warmup: int) -> dict[str, Any] | None:
    """The ``async`` throughput record: engine calls per second through ``engine.run_async_each``
    (:data:`ASYNC_MODES`) for ``seconds`` (the last request starts before they are over), each
    request's latency, and whether its outputs are those of serial ``engine.run`` calls (bit for
    bit); ``None`` for an engine without an async mode."""
    mode = ASYNC_MODES.get(tb.job["engine"])
    if mode is None:
        return None
    options = dict(mode.options)
    if mode.static_shapes:
        options["shapes"] = {name: list(np.shape(a)) for name, a in feeds[0].items()}
    inst = tb.create(mode.threads, **options)
    try:
        eng = tb.engine_of(inst)
        n = eng.async_requests
        warm = [f for _, f in _until(feeds, 0.0, max(2, warmup) * n)]  # every request at least twice
        eng.run_async(warm)
        lat: list[float] = []

        def timed(_k: int, _outputs: list[np.ndarray], ms: float) -> None:
            lat.append(ms)

        t0 = time.perf_counter()
        calls = eng.run_async_each((f for _, f in _until(feeds, t0 + seconds)), timed)
        wall = time.perf_counter() - t0
        check = [feeds[i % len(feeds)] for i in range(min(_MATCH_FEEDS, max(len(feeds), 2 * n)))]
        same = _same_outputs(eng.run_async(check), [eng.run(f) for f in check])
        rec = {"mode": "async", "of": "engine", "requests": n, "how": mode.how,
               "throughput_ips": round(calls / wall, 2), "calls": calls, "seconds": round(wall, 4),
               "latency_ms": stats(lat), "matches_serial": bool(same)}
        if mode.static_shapes:
            rec["shapes"] = options["shapes"]
        return rec
    finally:
        inst.close()


class _Borrowed:
    """A task instance several workers share: each borrower calls it, none closes it."""

    def __init__(self, inst: Any) -> None:
        self._inst = inst

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inst, name)

    def close(self) -> None:
        pass


def _workers(tb: TaskBench, n: int, seconds: float, warmup: int) -> dict[str, Any]:
    """The ``workers`` record: ``n`` threads making whole task calls on the instance
    ``anyedge run --workers n`` opens (ONNX Runtime and OpenVINO: one shared, OpenVINO with
    ``n`` CPU streams; the cores shared out as it does, :func:`anyedge.live.workers.worker_threads`)."""
    from ..live.workers import usable_cores, worker_threads

    engine = tb.job["engine"]
    threads = worker_threads(engine, n, usable_cores())
    extra = {"streams": n} if engine == "openvino" and n > 1 else {}
    inst = tb.create(threads, **extra)  # type: ignore[arg-type]
    try:
        rec = _instances(lambda: _Borrowed(inst), inst, tb.call, n, seconds, 1, warmup)
    finally:
        inst.close()
    return {"mode": "workers", "of": "task", "workers": n, "threads": threads, **extra, **rec}


def _throughput_modes(tb: TaskBench, inst: Any, threads: int, feeds: Sequence[Any], timed_s: float,
                      duration: float | None, warmup: int, with_async: bool) -> list[dict[str, Any]]:
    """The row's throughput records: ``instances`` of whole task calls (``threads`` instances
    with one engine thread each, one per Python thread; ``inst`` is the first when it has one
    thread) for ``duration`` (at least one call each) or as long as the timed calls took (at least
    10 calls each); with ``with_async`` also the ``async`` mode and, beside it for the same time,
    as many ``instances`` as it has requests on engine calls and, for detectors, as many
    ``workers`` (whole calls, opened as ``anyedge run --workers`` opens them)."""
    first = inst if threads == 1 else tb.create(1)
    try:
        rec = _instances(lambda: tb.create(1), first, tb.call, threads, duration or timed_s, 1 if duration else 10,
                         warmup)
    finally:
        if first is not inst:
            first.close()
    modes = [{"mode": "instances", "of": "task", "instances": threads, **rec}]
    if not with_async:
        return modes
    seconds = duration or max(timed_s, ASYNC_MIN_SECONDS)
    rec = _async_throughput(tb, feeds, seconds, warmup)
    if rec is None:
        return modes
    n = rec["requests"]

    def engine_call(k: Any, i: int) -> Any:
        return tb.engine_call(k, feeds[i % len(feeds)])

    first = tb.create(1)
    try:
        engine = _instances(lambda: tb.create(1), first, engine_call, n, seconds, 1, warmup)
    finally:
        first.close()
    modes.append({"mode": "instances", "of": "engine", "instances": n, **engine})
    if tb.job["kind"] == "face_detection":
        modes.append(_workers(tb, n, seconds, warmup))
    modes.append(rec)
    return modes


def _ratio(value: float, denominator: int) -> float | None:
    return round(float(value), 4) if denominator else None


def detector_fidelity(ag: Any) -> dict[str, Any]:
    """The fidelity fields of a detector row from an :class:`~anyedge.ops.metrics.Agreement`.

    A figure whose denominator is 0 is ``None`` (n/a), never a vacuous 1.0: F1 and recall need
    reference faces, precision needs candidate faces, mean IoU and score drift need matched
    pairs; ``na`` then says why.
    """
    out: dict[str, Any] = {
        "f1": _ratio(ag.f1, ag.reference_faces), "mean_iou": _ratio(ag.mean_iou, ag.matched),
        "precision": _ratio(ag.precision, ag.candidate_faces), "recall": _ratio(ag.recall, ag.reference_faces),
        "score_drift": _ratio(ag.mean_score_drift, ag.matched), "reference_faces": int(ag.reference_faces),
        "candidate_faces": int(ag.candidate_faces), "matched": int(ag.matched)}
    if not ag.reference_faces:
        out["na"] = "the float model found 0 faces in these images: no F1 to measure"
    elif not ag.matched:
        out["na"] = "no face matched the float model's: no mean IoU"
    return out


def cosine_fidelity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Per-row cosine similarity of two ``(n, d)`` embedding sets: mean, 5th percentile, minimum.

    For face embedders (a :class:`TaskBench` for ``face_embedding`` reports this as its fidelity).
    """
    a = np.asarray(reference, np.float64)
    b = np.asarray(candidate, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"embeddings must both be (n, d) of one shape, got {a.shape} and {b.shape}")
    if not len(a):
        return {"cosine_mean": None, "cosine_p5": None, "cosine_min": None, "n": 0,
                "na": "0 face crops: no cosine to measure"}
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"cosine_mean": round(float(cos.mean()), 5), "cosine_p5": round(float(np.percentile(cos, 5)), 5),
            "cosine_min": round(float(cos.min()), 5), "n": int(len(cos))}


# -- what a task bench provides -------------------------------------------------------------
class TaskBench:
    """How to benchmark one task: load, the whole call, the engine call alone, fidelity.

    Subclasses fill in the hooks; :func:`run_job` does the timing the same way for all.
    """

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job

    def load_inputs(self) -> None:
        """Read the inputs (images, sensor windows) once, before anything is timed."""
        raise NotImplementedError

    def create(self, threads: int, **engine_options: Any) -> Any:
        """A new task instance with ``threads`` engine threads (``engine_options`` go to its engine:
        ``profile=True`` for the profiled runs)."""
        raise NotImplementedError

    def call(self, inst: Any, i: int) -> Any:
        """The whole task call on input ``i`` (modulo the number of inputs)."""
        raise NotImplementedError

    def engine_feeds(self, inst: Any, i: int) -> Any:
        """What :meth:`engine_call` needs for input ``i``, prepared before timing."""
        raise NotImplementedError

    def engine_call(self, inst: Any, feeds: Any) -> Any:
        """The engine call alone."""
        raise NotImplementedError

    def engine_of(self, inst: Any) -> Any:
        """The engine under a task instance (the profile is read from it)."""
        return inst.engine

    def extra_calls(self, inst: Any) -> dict[str, Callable[[int], Any]]:
        """More calls to time, interleaved with the whole and engine calls (e.g. the BNN kernels
        alone): ``{name: call(i)}``, reported as ``<name>_ms``."""
        return {}

    def describe(self, inst: Any) -> dict[str, Any]:
        """Row fields known once the model is loaded (engine precision, input size, bytes)."""
        return {}

    def fidelity(self, inst: Any) -> dict[str, Any]:
        """Outputs on every input compared with the reference (saving them when asked)."""
        return {}

    @property
    def n_inputs(self) -> int:
        raise NotImplementedError


class DetectorBench(TaskBench):
    """Face detectors: the whole ``detect()`` vs ``engine.run`` on the same images; F1 / IoU vs float."""

    def load_inputs(self) -> None:
        from ..ops.image import check_image  # noqa: F401  (import cost outside the timings)
        from .data import read_images

        self.images = read_images(self.job.get("images"), self.job.get("max_images"))

    @property
    def n_inputs(self) -> int:
        return len(self.images)

    def create(self, threads: int, **engine_options: Any) -> Any:
        from ..tasks.face_detector import FaceDetector

        return FaceDetector.create(self.job["model"], engine=self.job["engine"], channels="BGR", threads=threads,
                                   device=self.job.get("device"), engine_options=engine_options or None)

    def call(self, inst: Any, i: int) -> Any:
        return inst.detect(self.images[i % len(self.images)])

    def engine_feeds(self, inst: Any, i: int) -> Any:
        x, _ = inst.preprocess(self.images[i % len(self.images)])
        return {inst.engine.inputs[0].name: x.copy()}

    def engine_call(self, inst: Any, feeds: Any) -> Any:
        return inst.engine.run(feeds)

    def describe(self, inst: Any) -> dict[str, Any]:
        w, h = inst.input_size
        return {"task": "face_detection", "input": f"{w}x{h}",
                "engine_precision": inst.engine.precision, "device": inst.engine.device}

    def fidelity(self, inst: Any) -> dict[str, Any]:
        from ..ops.metrics import detection_agreement

        faces = [inst.detect(img) for img in self.images]
        save = self.job.get("save_reference")
        if save:
            arrays: dict[str, np.ndarray] = {}
            for k, f in enumerate(faces):
                arrays[f"b{k}"], arrays[f"s{k}"] = f.boxes, f.scores
            _save_npz(save, arrays)
        ref = self.job.get("reference")
        out: dict[str, Any] = {"images": len(faces), "faces": int(sum(len(f) for f in faces))}
        if save:
            out["reference"] = "self"  # this row is the float reference the others are compared with
            if not out["faces"]:
                out["na"] = "the float model found 0 faces in these images: nothing to compare with"
        if not ref:
            return out
        z = np.load(ref)
        n = min(len(faces), len([k for k in z.files if k.startswith("b")]))
        ag = detection_agreement([((z[f"b{k}"], z[f"s{k}"]), (faces[k].boxes, faces[k].scores)) for k in range(n)])
        out.update(detector_fidelity(ag))
        out["reference"] = self.job.get("reference_label")
        return out


class EmbedderBench(TaskBench):
    """Face embedders: the whole ``embed()`` of one aligned crop vs ``engine.run``; cosine vs float.

    The crops are aligned once by the parent (:func:`anyedge.bench.data.face_crops`) and read
    from the job's ``crops`` file, so no detector runs (or warms an engine) in this process.
    """

    def load_inputs(self) -> None:
        crops = self.job.get("crops")
        if crops:
            self.crops = np.load(crops)["crops"]
        else:  # no photos: one stand-in crop, timing only
            from .data import synthetic_frame

            self.crops = synthetic_frame(self.job["crop_size"][0], self.job["crop_size"][1])[None]

    @property
    def n_inputs(self) -> int:
        return len(self.crops)

    def create(self, threads: int, **engine_options: Any) -> Any:
        from ..tasks.face_embedder import FaceEmbedder

        return FaceEmbedder.create(self.job["model"], engine=self.job["engine"], channels="BGR", threads=threads,
                                   device=self.job.get("device"), engine_options=engine_options or None)

    def call(self, inst: Any, i: int) -> Any:
        return inst.embed(self.crops[i % len(self.crops)])

    def engine_feeds(self, inst: Any, i: int) -> Any:
        return {inst.input_name: inst.preprocess(self.crops[i % len(self.crops)]), **inst.extra_inputs}

    def engine_call(self, inst: Any, feeds: Any) -> Any:
        return inst.engine.run(feeds)

    def describe(self, inst: Any) -> dict[str, Any]:
        w, h = inst.geometry.size
        return {"task": "face_embedding", "input": f"{w}x{h}",
                "engine_precision": inst.engine.precision, "device": inst.engine.device}

    def fidelity(self, inst: Any) -> dict[str, Any]:
        if not self.job.get("crops"):
            return {}
        emb = inst.embed(self.crops)
        out: dict[str, Any] = {"crops": int(len(emb))}
        if self.job.get("save_reference"):
            _save_npz(self.job["save_reference"], {"embeddings": emb})
            out["reference"] = "self"
        if self.job.get("reference"):
            out.update(cosine_fidelity(np.load(self.job["reference"])["embeddings"], emb))
            out["reference"] = self.job.get("reference_label")
        return out


class HarBench(TaskBench):
    """Activity classifiers: ``classify`` vs ``engine.run`` vs the BNN kernels; test-split accuracy."""

    def load_inputs(self) -> None:
        from .har import test_split

        self.x, self.y, self.labels = test_split(self.job["dataset"], self.job.get("data_file"))

    @property
    def n_inputs(self) -> int:
        return len(self.x)

    def create(self, threads: int, **engine_options: Any) -> Any:
        from ..tasks.activity_classifier import ActivityClassifier

        return ActivityClassifier.create(self.job["model"], engine=self.job["engine"], device=self.job.get("device"),
                                         engine_options=engine_options or None)

    def call(self, inst: Any, i: int) -> Any:
        return inst.classify(self.x[i % len(self.x)])

    def engine_feeds(self, inst: Any, i: int) -> Any:
        return {inst.engine.inputs[0].name: np.ascontiguousarray(self.x[i % len(self.x)][None])}

    def engine_call(self, inst: Any, feeds: Any) -> Any:
        return inst.engine.run(feeds)

    def extra_calls(self, inst: Any) -> dict[str, Callable[[int], Any]]:
        model = getattr(inst.engine, "model", None)
        if inst.engine.name != "bnn" or model is None or getattr(inst.engine, "kernels", "") != "cython":
            return {}
        from ..targets.bnn import kernels

        plan = kernels.prepare(model)
        xs = [np.ascontiguousarray(w[None]) for w in self.x]
        return {"kernel": lambda i: kernels.forward(model, xs[i % len(xs)], plan=plan)}

    def describe(self, inst: Any) -> dict[str, Any]:
        return {"task": "activity_classification", "input": f"{inst.window}x{inst.channels}",
                "engine_precision": inst.engine.precision, "device": inst.engine.device}

    def fidelity(self, inst: Any) -> dict[str, Any]:
        pred = np.array([r.label for r in inst.classify_batch(self.x)])
        return _har_fidelity(self.job, pred, np.array(self.labels)[self.y])


class HarFloatBench(TaskBench):
    """The float twin of a shipped BNN as ONNX on ONNX Runtime (the float baseline of the HAR rows)."""

    def load_inputs(self) -> None:
        import tempfile

        from .har import FloatTwin, test_split

        self.x, self.y, self.labels = test_split(self.job["dataset"], self.job.get("data_file"))
        self.twin = FloatTwin.find(self.job["dataset"])
        if self.job["engine"] == "numpy":  # no onnx package: the twin's own numpy forward pass
            self.path = self.twin.path
            return
        self._tmp = tempfile.TemporaryDirectory(prefix="anyedge-bench-")
        self.path = self.twin.to_onnx(Path(self._tmp.name) / "twin.onnx", self.x.shape[1])

    @property
    def n_inputs(self) -> int:
        return len(self.x)

    def create(self, threads: int, **engine_options: Any) -> Any:
        if self.job["engine"] == "numpy":
            return _NumpyTwin(self.twin)
        from ..engines import open_engine
        from ..engines.devices import DeviceRequest

        device = DeviceRequest.of(self.job.get("device"))
        return open_engine(self.path, self.job["engine"], threads=threads,
                           **(device.engine_options(self.job["engine"]) if device else {}), **engine_options)

    def engine_of(self, inst: Any) -> Any:
        return inst

    def call(self, inst: Any, i: int) -> Any:
        x = np.ascontiguousarray(self.x[i % len(self.x)][None], dtype=np.float32)
        return int(np.argmax(inst.run({"x": x})[0][0]))

    def engine_feeds(self, inst: Any, i: int) -> Any:
        return {"x": np.ascontiguousarray(self.x[i % len(self.x)][None])}

    def engine_call(self, inst: Any, feeds: Any) -> Any:
        return inst.run(feeds)

    def describe(self, inst: Any) -> dict[str, Any]:
        return {"task": "activity_classification", "input": f"{self.x.shape[1]}x{self.x.shape[2]}",
                "engine_precision": inst.precision, "device": inst.device, "size_bytes": self.path.stat().st_size}

    def fidelity(self, inst: Any) -> dict[str, Any]:
        pred = np.array(self.twin.labels)[np.argmax(inst.run({"x": np.ascontiguousarray(self.x)})[0], axis=1)]
        return _har_fidelity(self.job, pred, np.array(self.labels)[self.y])


class _NumpyTwin:
    """The float twin's numpy forward pass behind the engine calls the float-twin bench makes."""

    name = "numpy"
    precision = "fp32"
    device = "CPU"

    def __init__(self, twin: Any) -> None:
        self.twin = twin

    def run(self, feeds: Any) -> list[np.ndarray]:
        return [self.twin.forward(feeds["x"])]

    def close(self) -> None:
        pass


def _har_fidelity(job: dict[str, Any], pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy of predicted label names against the true ones, and agreement with the float model
    (``None`` with an ``na`` reason over 0 windows)."""
    n = int(len(y))
    out: dict[str, Any] = {"windows": n, "accuracy": round(float((pred == y).mean()), 4) if n else None}
    if not n:
        out["na"] = "0 test windows: no accuracy to measure"
    if job.get("save_reference"):
        _save_npz(job["save_reference"], {"pred": pred})
        out["reference"] = "self"
    if job.get("reference"):
        ref = np.load(job["reference"])["pred"]
        out["reference"] = job.get("reference_label")
        same = min(len(ref), len(pred))
        out["agreement"] = round(float((ref[:same] == pred[:same]).mean()), 4) if same else None
    return out


def _save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    tmp = f"{path}.part.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


TASK_BENCHES: dict[str, type[TaskBench]] = {
    "face_detection": DetectorBench,
    "face_embedding": EmbedderBench,
    "activity_classification": HarBench,
    "activity_float_twin": HarFloatBench,
}


def register_task_bench(kind: str, cls: type[TaskBench]) -> None:
    """Add the benchmark of another task (e.g. ``"face_embedding"``; see :func:`cosine_fidelity`).

    Rows run in fresh processes that import this module, so a task bench must be registered at
    import time of a module they load: add it to :data:`TASK_BENCHES` here (keyed by the
    registry's task name) or call this from the task's own module.
    """
    TASK_BENCHES[kind] = cls


# -- one row --------------------------------------------------------------------------------
def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Measure one row in this process (which should be fresh: see the module docstring)."""
    cls = TASK_BENCHES.get(job["kind"])
    if cls is None:
        raise InputError(f"no benchmark for task {job['kind']!r}; known: {', '.join(TASK_BENCHES)}")
    tb = cls(job)
    tb.load_inputs()
    if job.get("reference_only"):  # only the float model's outputs, for other rows to compare with
        inst = tb.create(1)
        try:
            return {"reference_only": True, "fidelity": tb.fidelity(inst)}
        finally:
            inst.close()
    threads = int(job["threads"])
    runs, warmup = int(job["runs"]), int(job["warmup"])
    # --duration: timed calls until the budget is spent (the last one started before it ran out)
    duration = float(job["duration"]) if job.get("duration") else None

    t0 = time.perf_counter()
    inst = tb.create(threads)
    load_cold = _ms(t0)
    t0 = time.perf_counter()
    tb.call(inst, 0)
    first = _ms(t0)
    inst.close()
    t0 = time.perf_counter()
    inst = tb.create(threads)
    load_warm = _ms(t0)
    try:
        row: dict[str, Any] = tb.describe(inst)
        feeds = [tb.engine_feeds(inst, i) for i in range(tb.n_inputs if duration else min(runs, tb.n_inputs))]
        for i in range(warmup):
            tb.call(inst, i)
            tb.engine_call(inst, feeds[i % len(feeds)])
        extra = tb.extra_calls(inst)
        for i in range(warmup):
            for fn in extra.values():
                fn(i)
        whole, engine, whole_cpu, engine_cpu = [], [], [], []
        extra_ms: dict[str, list[float]] = {k: [] for k in extra}
        cpu = time.thread_time
        i = 0
        timed0 = time.perf_counter()
        end = timed0 + (duration or 0.0)
        # interleaved, so a busy moment slows all alike
        while (i < runs) if duration is None else (i == 0 or time.perf_counter() < end):
            c0, t0 = cpu(), time.perf_counter()
            tb.call(inst, i)
            whole.append(_ms(t0))
            whole_cpu.append((cpu() - c0) * 1e3)
            c0, t0 = cpu(), time.perf_counter()
            tb.engine_call(inst, feeds[i % len(feeds)])
            engine.append(_ms(t0))
            engine_cpu.append((cpu() - c0) * 1e3)
            for name, fn in extra.items():
                t0 = time.perf_counter()
                fn(i)
                extra_ms[name].append(_ms(t0))
            i += 1
        timed_s = time.perf_counter() - timed0
        row.update({"runs": i, "timed_s": round(timed_s, 4)})
        row.update({f"{name}_ms": stats(v) for name, v in extra_ms.items()})
        fid = tb.fidelity(inst) if job.get("fidelity") else {}
        modes = _throughput_modes(tb, inst, threads, feeds, timed_s, duration, warmup, bool(job.get("async_throughput")))
        tput = modes[0]["throughput_ips"]
        rss = peak_rss_mb()  # before the profiled instance loads
        if job.get("profile"):
            row.update(_profile(tb, inst, threads, feeds, max(10, min(i, 200)), max(warmup, 2)))
    finally:
        inst.close()
    lat, eng = stats(whole), stats(engine)
    # CPU time of the calling thread: steadier than wall time on a busy machine, and the whole
    # story for engines that compute on the caller (LiteRT / ONNX Runtime at 1 thread, bnn)
    lat_cpu, eng_cpu = stats(whole_cpu), stats(engine_cpu)
    row.update({
        "latency_cpu_ms": lat_cpu, "engine_cpu_ms": eng_cpu,
        "overhead_ratio_cpu": round(lat_cpu["median"] / eng_cpu["median"], 3) if eng_cpu["median"] > 0 else None,
    })
    row.update({
        "load_ms": round(load_cold, 3), "load_warm_ms": round(load_warm, 3), "first_ms": round(first, 3),
        "latency_ms": lat, "engine_ms": eng,
        "overhead_ratio": round(lat["median"] / eng["median"], 3) if eng["median"] > 0 else None,
        "throughput_ips": tput, "throughput": modes, "peak_rss_mb": rss, "fidelity": fid,
    })
    return row


def main() -> int:
    """Child entry point: job JSON on stdin, row JSON written to ``job["result"]``."""
    job = json.loads(sys.stdin.read())
    try:
        row = run_job(job)
    except AnyEdgeError as e:
        row = {"error": f"{type(e).__name__}: {e}"}
    except Exception as e:  # a crash in one row must not end the whole run
        row = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=8)}
    tmp = job["result"] + ".part"
    Path(tmp).write_text(json.dumps(row))
    os.replace(tmp, job["result"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
