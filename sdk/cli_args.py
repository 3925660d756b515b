"""Argument types shared by the command-line modules (argparse ``type=`` callables).

A bad value is a usage error (one line, exit 2) that names what was expected and what arrived;
no option accepts NaN, an infinity or a number outside its range.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Callable

__all__ = ["size_arg", "int_at_least", "positive_int", "float_in", "positive_float", "unit_float",
           "device_arg", "providers_arg", "add_device_args", "device_request", "listen_address", "token_arg"]


def size_arg(text: str) -> tuple[int, int]:
    """``"320x240"`` -> ``(320, 240)``; anything else is a usage error naming what arrived."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"expected a positive WIDTHxHEIGHT, got {text!r}")
    return w, h


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number ``>= low``."""
    what = "a positive integer" if low == 1 else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    parse.__name__ = "integer"
    return parse


positive_int = int_at_least(1)


def float_in(low: float | None = None, high: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[low, high]`` (``above=True``: strictly more than ``low``).

    NaN and infinities are refused whatever the range.
    """
    if low is not None and high is not None:
        what = f"a number in [{low:g}, {high:g}]"
    elif low is not None:
        what = f"a number {'>' if above else '>='} {low:g}"
    else:
        what = "a finite number" if high is None else f"a number <= {high:g}"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        bad = (not math.isfinite(v) or (low is not None and (v <= low if above else v < low))
               or (high is not None and v > high))
        if bad:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    parse.__name__ = "number"
    return parse


positive_float = float_in(0.0, above=True)
unit_float = float_in(0.0, 1.0)


def listen_address(text: str) -> tuple[str, int]:
    """``"8080"`` -> ``("127.0.0.1", 8080)``; ``"0.0.0.0:8080"``, ``"[::1]:8080"``, ``"localhost:8080"`` as written.

    A bare port is loopback only; any other interface must be written out. Port 0 lets the
    system pick a free one.
    """
    what = f"expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080 (port 0-65535), got {text!r}"
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host = "127.0.0.1"
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise argparse.ArgumentTypeError(what)
    elif ":" in host or not host:
        raise argparse.ArgumentTypeError(what)  # an IPv6 address goes in brackets
    if not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(what)
    if not all(c.isalnum() or c in ".-:" for c in host):
        raise argparse.ArgumentTypeError(what)
    return host, int(port)


def token_arg(text: str) -> str:
    """An argparse type: a secret of printable ASCII without spaces (it travels in URLs and headers)."""
    if not text or not all("!" <= c <= "~" for c in text):
        raise argparse.ArgumentTypeError("expected a token of printable ASCII without spaces, got "
                                         f"{len(text)} characters that are not")
    return text


def device_arg(text: str) -> str:
    """An argparse type: an OpenVINO device string (``gpu`` -> ``GPU``); a typo lists the valid choices."""
    from .engines.openvino import DEVICE_CHOICES, is_device

    device = text.strip().upper()
    if not is_device(device):
        raise argparse.ArgumentTypeError(f"expected {DEVICE_CHOICES}; got {text!r}")
    return device


def providers_arg(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated ONNX Runtime providers, short names mapped to real ones."""
    from .engines.onnxruntime import PROVIDERS, provider_name
    from .errors import InputError

    out = []
    for name in text.split(","):
        try:
            out.append(provider_name(name))
        except InputError:
            raise argparse.ArgumentTypeError(f"unknown provider {name.strip()!r} in {text!r}; expected "
                                             f"{', '.join(PROVIDERS)} or a real name such as "
                                             "CUDAExecutionProvider") from None
    return tuple(dict.fromkeys(out))


def add_device_args(parser: argparse.ArgumentParser, *, what: str = "the model") -> None:
    """``--device``, ``--providers`` and ``--strict-device``: where the engines run ``what``.

    Turn the parsed options into what the tasks take with :func:`device_request`.
    """
    g = parser.add_argument_group(
        "device selection",
        f"Where {what} runs. --device is for models on OpenVINO, --providers for models on ONNX Runtime; a "
        "model on another engine ignores them with a notice. A device or provider that is not here falls back "
        "to the CPU with one notice on stderr, unless --strict-device.")
    g.add_argument("--device", type=device_arg, default=None, metavar="DEVICE",
                   help="OpenVINO device: CPU, GPU, NPU or AUTO, or OpenVINO's own forms (GPU.0, AUTO:GPU,CPU, "
                        "MULTI:GPU,CPU, HETERO:NPU,CPU); lower case accepted (default: CPU, or a bundle's own)")
    g.add_argument("--providers", type=providers_arg, default=None, metavar="LIST",
                   help="ONNX Runtime execution providers in order of preference, comma-separated, by short "
                        "name (cuda,cpu or tensorrt,cuda,cpu; also openvino, directml, coreml, ...) or real name "
                        "(CUDAExecutionProvider) (default: CPUExecutionProvider, or a bundle's own)")
    g.add_argument("--strict-device", action="store_true",
                   help="fail (exit 2, one line) instead of falling back to the CPU when the device or a provider "
                        "is not available, or the model's engine cannot use it (default: fall back with a notice)")


def device_request(args: argparse.Namespace) -> Any:
    """The :class:`~anyedge.engines.devices.DeviceRequest` the options of :func:`add_device_args` ask
    for, or ``None`` when none was given (pass it on as the tasks' ``device=``)."""
    device, providers, strict = (getattr(args, k, None) for k in ("device", "providers", "strict_device"))
    if not (device or providers or strict):
        return None
    from .engines.devices import DeviceRequest

    return DeviceRequest(device=device, providers=tuple(providers or ()), strict=bool(strict))
