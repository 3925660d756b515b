"""Argument types shared by the command-line modules (argparse ``type=`` callables).

A bad value is a usage error (one line, exit 2) that names what was expected and what arrived;
no option accepts NaN, an infinity or a number outside its range.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = ["size_arg", "int_at_least", "positive_int", "float_in", "positive_float", "unit_float"]


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
