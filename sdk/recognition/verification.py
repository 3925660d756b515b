"""Face verification metrics from pair scores: ROC, AUC, EER, TAR at FAR, thresholds.

All functions take ``scores`` (higher = more alike, e.g. cosine similarity) and boolean
``same`` labels of the same length, and need at least one genuine and one impostor pair.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import InputError

__all__ = [
    "cosine",
    "roc_curve",
    "roc_auc",
    "equal_error_rate",
    "tar_at_far",
    "balanced_threshold",
    "cross_validated_threshold",
    "VerificationReport",
    "verification_report",
]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0.0 when either is all zeros)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def _check(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(same).ravel().astype(bool)
    if len(s) != len(y):
        raise InputError(f"{len(s)} scores but {len(y)} labels")
    if not np.isfinite(s).all():
        raise InputError("scores contain NaN or infinity")
    if y.all() or not y.any():
        raise InputError(f"need genuine and impostor pairs, got {int(y.sum())} genuine of {len(y)}")
    return s, y


def roc_curve(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, tar, thresholds)``: accepting ``score >= thresholds[i]`` gives ``far[i]``, ``tar[i]``.

    Thresholds are the distinct scores in decreasing order, preceded by ``+inf`` (accept none).
    """
    s, y = _check(scores, same)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = np.cumsum(~y)[last]
    tar = np.r_[0.0, tp / y.sum()]
    far = np.r_[0.0, fp / (~y).sum()]
    return far, tar, np.r_[np.inf, s[last]]


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half)."""
    far, tar, _ = roc_curve(scores, same)
    return float(np.trapezoid(tar, far) if hasattr(np, "trapezoid") else np.trapz(tar, far))


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """``(eer, threshold)``: where the false accept and false reject rates cross (interpolated)."""
    far, tar, thr = roc_curve(scores, same)
    frr = 1.0 - tar
    i = int(np.argmax(far >= frr))  # first point where FAR has caught up with FRR
    if i == 0:
        return 0.0, float(thr[1])
    d0, d1 = frr[i - 1] - far[i - 1], frr[i] - far[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    eer = far[i - 1] + t * (far[i] - far[i - 1])
    t_hi = thr[i - 1] if np.isfinite(thr[i - 1]) else thr[i]
    return float(eer), float(t_hi + t * (thr[i] - t_hi))


def tar_at_far(scores: np.ndarray, same: np.ndarray, far_target: float) -> tuple[float, float]:
    """``(tar, threshold)``: the best genuine-accept rate with FAR <= ``far_target``.

    With ``m`` impostor pairs the smallest FAR that can be told from zero is ``1/m``; a target
    below that is answered at FAR 0 (the threshold just above the highest impostor score).
    """
    far, tar, thr = roc_curve(scores, same)
    ok = np.flatnonzero(far <= far_target)
    i = int(ok[-1])
    return float(tar[i]), float(thr[i]) if np.isfinite(thr[i]) else float(thr[1])


def balanced_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold maximising balanced accuracy ``(TAR + TNR) / 2`` (midpoint between scores).

    Balanced rather than plain accuracy because pair lists hold far more impostor than
    genuine pairs (315 vs 63 in ``faces/pairs.csv``).
    """
    s, y = _check(scores, same)
    u = np.unique(s)
    cands = np.r_[u[0] - 1e-6, (u[:-1] + u[1:]) / 2, u[-1] + 1e-6]
    acc = (((s[None, :] >= cands[:, None]) & y).sum(1) / y.sum()
           + ((s[None, :] < cands[:, None]) & ~y).sum(1) / (~y).sum()) / 2
    best = np.flatnonzero(acc == acc.max())
    return float(np.median(cands[best]))


def cross_validated_threshold(scores: np.ndarray, same: np.ndarray, folds: int = 10,
                              seed: int = 0) -> tuple[float, float, float]:
    """``(threshold, cv_accuracy, cv_balanced_accuracy)`` by ``folds``-fold cross-validation.

    Each fold's threshold is chosen (:func:`balanced_threshold`) on the other folds and scored
    on the fold itself, so the accuracies are not fitted to the pairs they are measured on.
    The returned threshold is the median of the per-fold thresholds. Folds are stratified.
    """
    s, y = _check(scores, same)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(s), int)
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(len(idx)) % folds
    thrs, hit, tp, tn = [], 0, 0, 0
    for f in range(folds):
        test = fold == f
        if not test.any():
            continue
        t = balanced_threshold(s[~test], y[~test])
        thrs.append(t)
        pred = s[test] >= t
        hit += int((pred == y[test]).sum())
        tp += int((pred & y[test]).sum())
        tn += int((~pred & ~y[test]).sum())
    return float(np.median(thrs)), hit / len(s), (tp / y.sum() + tn / (~y).sum()) / 2


@dataclass(frozen=True)
class VerificationReport:
    """Verification quality of a set of scored pairs."""

    pairs: int
    genuine: int
    roc_auc: float
    eer: float
    eer_threshold: float
    tar_at_far_1e2: float
    tar_at_far_1e3: float
    recommended_threshold: float
    cv_accuracy: float
    cv_balanced_accuracy: float
    min_resolvable_far: float

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def verification_report(scores: np.ndarray, same: np.ndarray) -> VerificationReport:
    """Everything ``anyedge calibrate-threshold`` prints, from pair scores and labels.

    The recommended threshold is the 10-fold cross-validated one
    (:func:`cross_validated_threshold`); the accuracies reported with it are cross-validated.
    """
    s, y = _check(scores, same)
    eer, eer_t = equal_error_rate(s, y)
    thr, acc, bacc = cross_validated_threshold(s, y)
    return VerificationReport(
        pairs=len(s), genuine=int(y.sum()), roc_auc=roc_auc(s, y), eer=eer, eer_threshold=eer_t,
        tar_at_far_1e2=tar_at_far(s, y, 1e-2)[0], tar_at_far_1e3=tar_at_far(s, y, 1e-3)[0],
        recommended_threshold=thr, cv_accuracy=acc, cv_balanced_accuracy=bacc,
        min_resolvable_far=1.0 / int((~y).sum()),
    )
