"""The remedy loop, written once over every engine backend.

For each precision from the requested one to the safest the target allows:
plain precision -> (int8 only) keep the k most sensitive layers in float, k = 1, 2, 4, ...
-> the next precision (``int8w``, weights-only, comes next where the backend has it).
The first attempt whose fidelity passes the gate wins. Every attempt is a typed
:class:`Attempt`; nothing decides on strings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from anyedge.errors import AnyEdgeError, ConversionError

from .backends import Backend
from .fidelity import Fidelity, rank_layers

__all__ = ["PRECISIONS", "Attempt", "search", "precision_chain"]

log = logging.getLogger(__name__)

#: every precision a converter can produce, most aggressive first
PRECISIONS = ("int8", "int8w", "bf16", "fp16", "fp32")
FLOAT_STEPS = (1, 2, 4, 8, 16)  # how many of the most sensitive layers to keep in float, in turn


@dataclass
class Attempt:
    """One conversion try and how it scored.

    Attributes:
        engine: backend engine.
        precision: the precision built (``int8``, ``int8w``, ``bf16``, ``fp16``, ``fp32``).
        float_layers: layers kept in float (int8 only); non-empty means ``int8-mixed``.
        fidelity: the evaluator's verdict, ``None`` when the artifact could not be built or run.
        error: why it could not be built or run.
        detail: how the float layers were chosen (ranking scores, search parameters).
        runs_as: what the engine reports running the artifact at (``engine.precision``); it can
            say ``int8-mixed`` for a plain int8 build when the tool left some layers in float.
    """

    engine: str
    precision: str
    float_layers: tuple[str, ...] = ()
    fidelity: Fidelity | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    runs_as: str | None = None
    files: dict[str, Path] = field(default_factory=dict, repr=False)

    @property
    def achieved(self) -> str:
        """The precision the result runs at: as the engine reported it, else as built."""
        return self.runs_as or ("int8-mixed" if self.float_layers else self.precision)

    @property
    def passed(self) -> bool:
        return self.fidelity is not None and self.fidelity.passed

    def label(self) -> str:
        return f"{self.precision} + {len(self.float_layers)} float layers" if self.float_layers else self.precision

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"engine": self.engine, "precision": self.achieved, "remedy": self.label(),
                             "float_layer_count": len(self.float_layers), "float_layers": list(self.float_layers),
                             "passed": self.passed}
        if self.fidelity is not None:
            d["fidelity"] = self.fidelity.to_dict()
        if self.detail:
            d["detail"] = self.detail
        if self.error:
            d["error"] = self.error
        return d


Evaluate = Callable[[Attempt], Attempt]  # runs the artifact in attempt.files, sets fidelity or error


def precision_chain(requested: str, allowed: Sequence[str]) -> list[str]:
    """The requested precision, then every safer one ``allowed`` offers."""
    start = PRECISIONS.index(requested)
    return [p for p in PRECISIONS[start:] if p in allowed]


def _built(backend: Backend, attempt: Attempt, evaluate: Evaluate) -> Attempt:
    try:
        attempt.files = backend.build(attempt.precision, attempt.float_layers)
    except AnyEdgeError as e:
        attempt.error = f"{type(e).__name__}: {e}"
        log.warning("%s %s could not be built: %s", attempt.engine, attempt.label(), e)
        return attempt
    return evaluate(attempt)


def _ranking(backend: Backend, evaluate: Evaluate, progress: Callable[..., Any],
             attempts: list[Attempt]) -> list[tuple[str, float]]:
    """Layers by how much keeping each one alone in float raises the gated value (leave-one-out).

    Measured with the task's own evaluator on the held-back inputs, as NNCF's accuracy control
    does: the output error of raw tensors (HAWQ-style) ranked layers whose float-ness did not
    move F1 at all, and the k "most sensitive" of them composed badly (SCRFD on ONNX Runtime).
    Ties (F1 is discrete) are broken by the evaluator's secondary value (mean IoU for faces).
    """
    layers = backend.layers()

    def value(float_layers: tuple[str, ...]) -> float:
        att = evaluate(Attempt(backend.engine, "int8", float_layers, files=backend.build("int8", float_layers)))
        if att.fidelity is None:
            raise ConversionError(att.error or "the candidate could not be evaluated")
        return att.fidelity.rank_value

    base = value(())
    failed: list[tuple[str, str]] = []
    ranking = rank_layers(layers, lambda n: value((n,)) - base, progress, failed)
    if failed:
        attempts.append(Attempt(backend.engine, "int8", error=f"sensitivity: {len(failed)} of {len(layers)} layers "
                                f"not measured; first: {failed[0][0]}: {failed[0][1]}",
                                detail={"unmeasured": [n for n, _ in failed]}))
    if not ranking:
        raise ConversionError(f"no layer's sensitivity could be measured ({len(layers)} tried)")
    return ranking


def _float_steps(backend: Backend, evaluate: Evaluate, attempts: list[Attempt], progress: Callable[..., Any],
                 own_search: Callable[[Backend], Attempt] | None, steps: Sequence[int]) -> Iterator[Attempt]:
    if not steps:
        return
    if own_search is not None and backend.own_float_search is not None:
        yield own_search(backend)
        return
    try:
        ranking = _ranking(backend, evaluate, progress, attempts)
    except AnyEdgeError as e:
        yield Attempt(backend.engine, "int8", error=f"sensitivity: {type(e).__name__}: {e}")
        return
    names = [n for n, _ in ranking]
    for k in steps:
        keep = tuple(names[:k])
        detail = {"ranked_layers": len(ranking), "gain": {n: round(s, 6) for n, s in ranking[:k]}}
        yield _built(backend, Attempt(backend.engine, "int8", keep, detail=detail), evaluate)
        if k >= len(names):
            return


def search(backend: Backend, chain: Sequence[str], evaluate: Evaluate, *,
           progress: Callable[..., Any],
           own_search: Callable[[Backend], Attempt] | None = None, steps: Sequence[int] = FLOAT_STEPS,
           attempts: list[Attempt] | None = None) -> tuple[Attempt | None, list[Attempt]]:
    """Run the remedy loop; return the first passing attempt (or ``None``) and every attempt made.

    Args:
        backend: the engine backend, prepared on the source.
        chain: precisions to try in order (see :func:`precision_chain`).
        evaluate: builds nothing; runs ``attempt.files`` and sets its fidelity or error.
        own_search: runs the backend's own float-layer search into an evaluated attempt.
        steps: the k of "keep k most sensitive layers in float", in turn.
    """
    attempts = [] if attempts is None else attempts
    for precision in chain:
        if precision not in backend.precisions:
            continue
        att = _built(backend, Attempt(backend.engine, precision), evaluate)
        attempts.append(att)
        if att.passed:
            return att, attempts
        if precision != "int8" or att.error:
            continue
        for att in _float_steps(backend, evaluate, attempts, progress, own_search, steps):
            attempts.append(att)
            if att.passed:
                return att, attempts
    return None, attempts
