"""Verification metrics against scikit-learn and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest

from anyedge.errors import InputError
from anyedge.recognition.verification import (balanced_threshold, cosine, cross_validated_threshold,
                                              equal_error_rate, roc_auc, roc_curve, tar_at_far,
                                              verification_report)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_and_auc_match_scikit_learn(seed: int) -> None:
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sk_roc

    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.2
    s = np.round(rng.normal(y * 1.2, 1.0), 1)  # rounded: many ties
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    far, tar, thr = roc_curve(s, y)
    sfar, star, _ = sk_roc(y, s, drop_intermediate=False)
    np.testing.assert_allclose(far, sfar)
    np.testing.assert_allclose(tar, star)


def test_hand_worked_example() -> None:
    # genuine 0.9 0.8 0.4, impostor 0.7 0.3 0.2 0.1
    s = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    y = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    # accept >= 0.8: TAR 2/3, FAR 0; >= 0.7: TAR 2/3, FAR 1/4; >= 0.4: TAR 1, FAR 1/4
    assert tar_at_far(s, y, 0.0) == (pytest.approx(2 / 3), 0.8)
    assert tar_at_far(s, y, 0.25) == (pytest.approx(1.0), 0.4)
    assert roc_auc(s, y) == pytest.approx(11 / 12)  # 11 of 12 genuine/impostor orderings right
    eer, t = equal_error_rate(s, y)
    assert 0.0 < eer <= 1 / 3 and 0.4 <= t <= 0.8
    thr = balanced_threshold(s, y)
    assert 0.3 < thr < 0.4  # (TAR 1 + TNR 3/4)/2 = 0.875 is the best balanced accuracy
    assert cosine([1, 0], [0, 2]) == 0.0 and cosine([1, 1], [2, 2]) == pytest.approx(1.0)


def test_separable_scores_give_perfect_report() -> None:
    rng = np.random.default_rng(0)
    s = np.r_[rng.uniform(0.6, 0.9, 40), rng.uniform(-0.2, 0.3, 200)]
    y = np.r_[np.ones(40, bool), np.zeros(200, bool)]
    r = verification_report(s, y)
    assert r.roc_auc == 1.0 and r.eer == 0.0 and r.tar_at_far_1e2 == 1.0
    assert 0.3 < r.recommended_threshold < 0.6 and r.cv_accuracy == 1.0
    assert r.min_resolvable_far == pytest.approx(1 / 200)
    thr, acc, bacc = cross_validated_threshold(s, y)
    assert acc == bacc == 1.0


@pytest.mark.parametrize(("s", "y"), [
    ([0.1, 0.2], [1, 1]),                 # no impostors
    ([0.1, 0.2], [0, 0]),                 # no genuine pairs
    ([0.1, 0.2, 0.3], [0, 1]),            # lengths differ
    ([0.1, np.nan], [0, 1]),              # NaN
    ([], []),                             # empty
])
def test_malformed_input(s: list, y: list) -> None:
    with pytest.raises(InputError):
        roc_auc(np.array(s, float), np.array(y))
