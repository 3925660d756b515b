"""Shared helpers of the HAR/BNN tests (plain functions, no fixtures: conftest.py stays free)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from anyedge.converters.bnn import BatchNorm, FloatLayer, convert_bnn
from anyedge.targets.bnn.format import BnnModel

__all__ = ["ROOT", "DATA", "har_file", "random_model", "extreme_windows"]

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ANYEDGE_DATA", ROOT.parent / "shared" / "data"))


def har_file(name: str, split: str) -> Path:
    """``<data>/har/<name>/<name>_<SPLIT>.ts``."""
    return DATA / "har" / name / f"{name}_{split.upper()}.ts"


def _bn(rng: np.random.Generator, n: int, scale: float) -> BatchNorm:
    gamma = rng.normal(size=n)
    gamma[rng.random(n) < 0.15] = 0.0  # constant outputs
    return BatchNorm(gamma, rng.normal(size=n) * 2, rng.normal(size=n) * scale, rng.random(n) * scale**2 + 1)


def random_model(seed: int, *, window: int = 30, channels: int = 6, f1: int = 32, k1: int = 5, pool1: int = 2,
                 f2: int = 64, k2: int = 3, pool2: int = 2, hidden: int = 0, classes: int = 4) -> BnnModel:
    """A packed BNN with random weights, batch-norms (some negative or zero scales) and quantization."""
    rng = np.random.default_rng(seed)
    l1 = (window - k1 + 1) // pool1
    l2 = (l1 - k2 + 1) // pool2
    layers = [FloatLayer("conv_q8", rng.normal(size=(f1, channels, k1)), _bn(rng, f1, 40.0), pool1),
              FloatLayer("conv_bin", rng.normal(size=(f2, f1, k2)), _bn(rng, f2, 5.0), pool2)]
    flat = f2 * l2
    if hidden:
        layers.append(FloatLayer("dense_bin", rng.normal(size=(hidden, flat)), _bn(rng, hidden, 5.0)))
        flat = hidden
    layers.append(FloatLayer("dense_out", rng.normal(size=(classes, flat)), bias=rng.normal(size=classes), scale=0.05))
    model, _ = convert_bnn(layers, window=window, channels=channels,
                           offset=rng.normal(size=channels).astype(np.float32),
                           inv_scale=(rng.random(channels) * 30 + 0.5).astype(np.float32))
    return model


def extreme_windows(model: BnnModel, n: int, seed: int) -> np.ndarray:
    """Windows mixing ordinary values, values far past the int8 clamp, exact .5 boundaries and zeros."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, model.window, model.channels)).astype(np.float32) * 3
    x[: n // 4] *= 1e4
    # values that land exactly on k + 0.5 after quantization, where rounding direction matters
    k = rng.integers(-130, 130, size=(n // 4, model.window, model.channels)).astype(np.float32) + np.float32(0.5)
    x[n // 4 : n // 2] = (k / model.inv_scale + model.offset).astype(np.float32)
    x[-1] = 0.0
    return x
