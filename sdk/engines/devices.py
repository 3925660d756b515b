"""Where models run: an OpenVINO device, ONNX Runtime execution providers, and how strictly.

A :class:`DeviceRequest` is what ``--device``, ``--providers`` and ``--strict-device`` say on
the command line (and ``device=`` says to a task). Each model takes the part meant for the
engine it runs on: OpenVINO the device, ONNX Runtime the providers. What cannot be honoured
behaves one documented way everywhere:

* a device or provider that is not here: the model runs on the CPU instead, with one notice
  naming what was asked, what is here and what runs instead (said once per process);
* a model on an engine that has no such choice (LiteRT, bnn; OpenVINO for providers, ONNX
  Runtime for a device): it runs where it runs, with one notice;
* with ``strict=True`` both are a :class:`~anyedge.errors.DeviceUnavailableError` instead.

Asking for the CPU (``CPU``, ``AUTO``, ``CPUExecutionProvider``) is never a notice: every engine
runs there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import DeviceUnavailableError, InputError
from .base import notice

__all__ = ["DeviceRequest", "DEVICE_ENGINE", "PROVIDERS_ENGINE"]

log = logging.getLogger(__name__)

DEVICE_ENGINE = "openvino"  # the engine a device string is for
PROVIDERS_ENGINE = "onnxruntime"  # the engine execution providers are for
_CPU_DEVICES = ("CPU", "AUTO")
_CPU_PROVIDERS = ("CPUExecutionProvider",)


@dataclass(frozen=True)
class DeviceRequest:
    """Where to run models, checked and spelled as the engines want it.

    Attributes:
        device: an OpenVINO device (``"GPU"``, ``"NPU"``, ``"AUTO"``, ``"AUTO:GPU,CPU"``...);
            lower case is accepted. ``None``: the engine's default (the CPU), or a bundle's own.
        providers: ONNX Runtime execution providers in order of preference, short names
            accepted (``("cuda", "cpu")``); empty: the default (the CPU provider).
        strict: fail instead of falling back to the CPU.

    Raises:
        InputError: an unknown device or provider name; the message lists the valid ones.
    """

    device: str | None = None
    providers: tuple[str, ...] = field(default_factory=tuple)
    strict: bool = False

    def __post_init__(self) -> None:
        from .onnxruntime import provider_name
        from .openvino import normalize_device

        if self.device is not None:
            object.__setattr__(self, "device", normalize_device(self.device))
        providers = self.providers
        if isinstance(providers, str):
            providers = tuple(p for p in providers.split(","))
        if not isinstance(providers, (tuple, list)):
            raise InputError(f"providers must be a list of names, got {type(providers).__name__}")
        if any(not str(p).strip() for p in providers):
            raise InputError(f"providers must be non-empty names, got {list(providers)}")
        object.__setattr__(self, "providers", tuple(dict.fromkeys(provider_name(p) for p in providers)))
        if not isinstance(self.strict, bool):
            raise InputError(f"strict must be True or False, got {self.strict!r}")

    @classmethod
    def of(cls, value: "DeviceRequest | str | Mapping[str, Any] | None") -> "DeviceRequest | None":
        """A request from what a caller passed: a request, an OpenVINO device string, or its :meth:`to_dict`."""
        if value is None or isinstance(value, DeviceRequest):
            return value
        if isinstance(value, str):
            return cls(device=value)
        if isinstance(value, Mapping):
            return cls(device=value.get("device"), providers=tuple(value.get("providers") or ()),
                       strict=bool(value.get("strict", False)))
        raise InputError(f"device must be an OpenVINO device string or a DeviceRequest, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "providers": list(self.providers), "strict": self.strict}

    def __bool__(self) -> bool:
        return bool(self.device or self.providers or self.strict)

    # -- what each engine gets -------------------------------------------------------------
    def takes(self, engine: str) -> bool:
        """Whether part of this request is meant for ``engine``."""
        return bool((engine == DEVICE_ENGINE and self.device) or (engine == PROVIDERS_ENGINE and self.providers))

    def engine_options(self, engine: str) -> dict[str, Any]:
        """The options for ``engine`` (``device`` / ``providers`` and ``strict_device``); ``{}`` for others."""
        opts: dict[str, Any] = {}
        if engine == DEVICE_ENGINE and self.device:
            opts["device"] = self.device
        if engine == PROVIDERS_ENGINE and self.providers:
            opts["providers"] = list(self.providers)
        if engine in (DEVICE_ENGINE, PROVIDERS_ENGINE) and self.strict:
            opts["strict_device"] = True
        return opts

    def for_model(self, engine: str, model: str) -> dict[str, Any]:
        """:meth:`engine_options` for a model about to open on ``engine``, saying what it ignores.

        Raises:
            DeviceUnavailableError: ``strict`` and the model's engine cannot run where asked.
        """
        ignored = []
        if self.device and self.device not in _CPU_DEVICES and engine != DEVICE_ENGINE:
            ignored.append((f"device {self.device}", "is", "OpenVINO devices", DEVICE_ENGINE))
        if self.providers and engine != PROVIDERS_ENGINE and any(p not in _CPU_PROVIDERS for p in self.providers):
            ignored.append((f"providers {','.join(self.providers)}", "are", "ONNX Runtime providers",
                            PROVIDERS_ENGINE))
        for what, verb, kind, name in ignored:
            text = f"{model} runs on {engine}, which takes no {kind}: {what}"
            hint = f"(run it on engine {name} if it reads the model)"
            if self.strict:
                raise DeviceUnavailableError(f"{text} cannot be honoured {hint}")
            notice(log, f"{text} {verb} ignored there {hint}")
        return self.engine_options(engine)

    def resolved(self, engines: Iterable[str]) -> "DeviceRequest":
        """This request checked once against this machine, for processes that run the models elsewhere.

        ``anyedge bench`` runs each row in a child process: the parent resolves the request here
        (one notice, or the strict failure) and hands the children what runs.

        Raises:
            DeviceUnavailableError: ``strict`` and a device or provider is not here.
        """
        engines = set(engines)
        device, providers = self.device, self.providers
        if device and DEVICE_ENGINE in engines:
            import openvino as ov

            from .openvino import resolve_device

            device = resolve_device(device, list(ov.Core().available_devices), strict=self.strict)
        if providers and PROVIDERS_ENGINE in engines:
            import onnxruntime as ort

            from .onnxruntime import resolve_providers

            providers = tuple(resolve_providers(list(providers), ort.get_available_providers(), strict=self.strict))
        return DeviceRequest(device, providers, self.strict)
