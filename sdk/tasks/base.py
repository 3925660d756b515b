"""What every task shares: create -> resolve the model -> open its engine -> run -> close.

A task (``FaceDetector``, ``ActivityClassifier``, a future ``FaceEmbedder``) is a
:class:`Task` subclass. Adopting the base takes four lines of declaration and one hook:

    @dataclass(frozen=True)
    class FaceEmbedderOptions(TaskOptions):      # threads and engine_options come with the base
        normalize: bool = True                   # task-specific options, all with defaults

    class FaceEmbedder(Task):
        TASK = "face_embedding"                  # the manifest/registry task it runs
        Options = FaceEmbedderOptions

        def _setup(self) -> None:                # self.spec, self.engine, self.options are set
            ...                                  # check the model fits the task, precompute state;
                                                 # raise ModelLoadError/InputError (the engine is closed for you)

        def embed(self, image): ...              # the task's own API, built on self.run_engine(...)

Then ``FaceEmbedder.create(model, engine=..., options=..., engine_options=..., **overrides)``
resolves ``model`` (registry name, bundle directory or zip, bare file with ``family=``),
opens the engine with ``threads`` and the merged engine options (the bundle's device or
providers, then ``options.engine_options``, then ``engine_options=``), builds the task and
closes the engine again if building fails. Tasks are context managers; ``close()`` frees the
engine.

Threads: engines are safe to share across threads (see ``anyedge.engines``); a task that
keeps buffers between calls must keep them per thread (``threading.local``), as
``FaceDetector`` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Mapping, TypeVar

import numpy as np

from ..engines import Engine, default_engine_for, open_engine
from ..engines.base import dequantize_output
from ..errors import InputError
from ..registry import InputSpec
from ._loading import ModelSpec, resolve_spec

__all__ = ["TaskOptions", "Task"]

T = TypeVar("T", bound="Task")


@dataclass(frozen=True, kw_only=True)
class TaskOptions:
    """Options every task takes (keyword-only, after the task's own options).

    Attributes:
        threads: engine CPU threads; ``None`` leaves the engine's default.
        engine_options: passed to the engine (``{"device": "NPU"}`` for OpenVINO,
            ``{"providers": [...]}`` for ONNX Runtime, ``{"kernels": "reference"}`` for bnn).
        device: where to run, whatever the engine: an OpenVINO device string (``"GPU"``) or a
            :class:`~anyedge.engines.devices.DeviceRequest` (device, ONNX Runtime providers,
            strict). The engine the model opens on takes its part; see :mod:`anyedge.engines.devices`
            for the fallback to the CPU and its notice.
    """

    threads: int | None = None
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    device: Any = None  # DeviceRequest | str | None

    def __post_init__(self) -> None:
        t = self.threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise InputError(f"threads must be a positive integer or None, got {t!r}")
        if not isinstance(self.engine_options, Mapping):
            raise InputError(f"engine_options must be a mapping, got {type(self.engine_options).__name__}")
        if self.device is not None:
            from ..engines.devices import DeviceRequest

            object.__setattr__(self, "device", DeviceRequest.of(self.device))


class Task:
    """Base class of every task; see the module docstring for how to write one.

    Attributes:
        spec: the resolved model (:class:`~anyedge.tasks._loading.ModelSpec`).
        engine: the open engine.
        options: the task's options (a :class:`TaskOptions` subclass).
    """

    TASK: ClassVar[str] = ""
    Options: ClassVar[type[TaskOptions]] = TaskOptions

    def __init__(self, spec: ModelSpec, engine: Engine, options: TaskOptions) -> None:
        self.spec = spec
        self.engine = engine
        self.options = options
        # output names when every output is plain float32 (most models): run_engine hands the
        # engine's arrays over as they are, without a dequantize step per output per call
        outs = engine.outputs
        self._float_outputs = (tuple(o.name for o in outs)
                               if all(o.dtype == "float32" and o.quantization is None for o in outs) else None)
        self._setup()

    def _setup(self) -> None:
        """Check the model fits the task and precompute per-model state (override)."""

    # -- creation ---------------------------------------------------------------------------
    @classmethod
    def make_options(cls, options: TaskOptions | None = None, **overrides: Any) -> TaskOptions:
        """``options`` (or the defaults) with keyword overrides applied and validated."""
        opts = options if options is not None else cls.Options()
        if not isinstance(opts, cls.Options):
            raise InputError(f"options must be a {cls.Options.__name__}, got {type(opts).__name__}")
        if overrides:
            known = {f.name for f in fields(cls.Options)}
            bad = set(overrides) - known
            if bad:
                raise InputError(f"unknown option(s) {sorted(bad)}; known: {sorted(known)}")
            opts = replace(opts, **overrides)
        return opts

    @classmethod
    def open_engine(cls, spec: ModelSpec, engine: str | None, options: TaskOptions,
                    engine_options: Mapping[str, Any] | None = None) -> Engine:
        """Open ``spec``'s model on ``engine`` (``None``: the bundle's or the format's own).

        Engine options merge in this order: the bundle's own (device, providers; only when
        running on the engine the bundle was built for), ``options.engine_options``,
        ``engine_options``, then the part of ``options.device`` meant for the chosen engine.
        """
        chosen = engine or spec.engine
        merged = dict(spec.engine_options) if chosen == spec.engine else {}
        merged.update(options.engine_options)
        merged.update(engine_options or {})
        if options.device:
            chosen = chosen or default_engine_for(spec.path)
            merged.update(options.device.for_model(chosen, spec.name))
        return open_engine(spec.path, chosen, threads=options.threads, **merged)

    @classmethod
    def create(
        cls: type[T],
        model: str | os.PathLike[str],
        *,
        engine: str | None = None,
        options: TaskOptions | None = None,
        engine_options: Mapping[str, Any] | None = None,
        family: str | None = None,
        input_spec: InputSpec | None = None,
        decoder: Mapping[str, Any] | None = None,
        trusted_keys: Any = None,
        **option_overrides: Any,
    ) -> T:
        """Load a model for this task.

        Args:
            model: registry name, bundle directory or .zip, or a model file (then ``family``
                is required).
            engine: engine name; ``None`` takes the bundle's engine or the file format's own.
            options: the task's options; keyword overrides are applied on top.
            engine_options: passed to the engine, on top of ``options.engine_options``.
            family: model family of a bare model file.
            input_spec: preprocessing that differs from the model's (bare files mostly).
            decoder: settings merged over the model's own decoder settings.
            trusted_keys: public keys a bundle must be signed by: a folder of ``*.pub`` files,
                a ``.pub`` file or a list of them (default: ``$ANYEDGE_TRUSTED_KEYS``; unset:
                digests only). See :mod:`anyedge.signing`.

        Raises:
            UnknownModelError, ModelNotFoundError, IntegrityError, BundleError: model resolution.
            EngineUnavailableError: engine not installed or cannot read the file.
            ModelLoadError: the file cannot be loaded or does not fit the task.
            InputError: invalid options, or a model for another task.
        """
        opts = cls.make_options(options, **option_overrides)
        spec = resolve_spec(model, task=cls.TASK, family=family, input_spec=input_spec, decoder=decoder,
                            trusted_keys=trusted_keys)
        return cls.from_spec(spec, engine, opts, engine_options)

    @classmethod
    def from_spec(cls: type[T], spec: ModelSpec, engine: str | None, opts: Any,
                  engine_options: Mapping[str, Any] | None = None) -> T:
        """Open the engine for a resolved ``spec`` and build the task; the engine is closed if that fails."""
        eng = cls.open_engine(spec, engine, opts, engine_options)
        try:
            return cls(spec, eng, opts)
        except BaseException:
            eng.close()
            raise

    # -- running ----------------------------------------------------------------------------
    def run_engine(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        """One engine call on the model's inputs in order; outputs by name, dequantized to float32."""
        specs = self.engine.inputs
        if len(inputs) != len(specs):
            raise InputError(f"{self.spec.name} takes {len(specs)} input(s), got {len(inputs)}")
        outs = self.engine.run({s.name: x for s, x in zip(specs, inputs)})
        if self._float_outputs is not None:
            return dict(zip(self._float_outputs, outs))
        return {s.name: dequantize_output(s, y) for s, y in zip(self.engine.outputs, outs)}

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Free the engine; the task cannot run afterwards."""
        self.engine.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.spec.name!r}, family={self.spec.family!r}, engine={self.engine.name!r})"
