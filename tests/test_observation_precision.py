"""Answers are stored in float32: the attacks' scores must not notice.

The same pool of real models is observed twice, once as stored (float32) and once with
the storage dtype switched to float64 (the module constant every path reads), and every
reference attack is fitted and scored on both. The tolerance stated in
:mod:`miaudit.signals.observations`: scores agree to 1e-4 (relative, with an absolute floor
of 1e-4 for scores near 0) and the AUC to 1e-6. Images with flips give two queries per
record, so the per-query paths (LiRA's sum, RMIA's log-mean over queries) are covered.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from synthetic import memorising_recipe

from miaudit.attacks import RMIA, AttackR, LiRA
from miaudit.compute import QuerySet, ReferencePool
from miaudit.compute import pool as pool_module
from miaudit.data.dataset import Dataset
from miaudit.evaluation.roc import roc_auc
from miaudit.signals import observations as observations_module

SCORE_TOLERANCE = 1e-4
AUC_TOLERANCE = 1e-6


def _images(n: int = 400) -> Dataset:
    x, y = make_classification(
        n_samples=n, n_features=64, n_informative=8, n_classes=3, flip_y=0.1, random_state=3
    )
    return Dataset("tiny-images", x.reshape(n, 1, 8, 8).astype(np.float32), y.astype(np.int64), 3)


def _stored_as(dtype):
    """Patch the storage dtype; every Observations built inside (selections too) uses it."""
    patch = pytest.MonkeyPatch()
    patch.setattr(observations_module, "OBSERVATION_DTYPE", dtype)
    patch.setattr(pool_module, "OBSERVATION_DTYPE", dtype)
    return patch


@pytest.fixture(scope="module")
def pool():
    data = _images()
    pool = ReferencePool(
        memorising_recipe(epochs=60, hidden=(32,)), data, np.arange(300), n_models=10, seed=1
    )
    pool.train()
    return pool


ATTACKS = {
    "lira-online": lambda: LiRA(online=True),
    "lira-offline": lambda: LiRA(online=False),
    "lira-per-record-variance": lambda: LiRA(online=True, fixed_variance=False),
    "rmia-online": lambda: RMIA(online=True),
    "rmia-offline": lambda: RMIA(online=False),
    "attack-r": lambda: AttackR(),
}


def _audit(pool: ReferencePool, name: str, dtype) -> tuple[np.ndarray, float, np.ndarray]:
    """Model 0 audited with the others' answers, all stored in ``dtype``: its scores,
    their AUC and the references' φ."""
    patch = _stored_as(dtype)
    try:
        audited = pool.observe(np.arange(300), queries=QuerySet.flips())
        population = pool.observe(np.arange(300, 400), queries=QuerySet.flips())
        split = pool.leave_one_out(0, audited)
        refs = split.references
        assert refs.scaled_logit.dtype == split.target.log_confidence.dtype == dtype
        assert refs.n_queries == 2
        attack = ATTACKS[name]().fit(
            refs,
            population_references=population.select_models(split.reference_indices),
            population_target=population.select_models(slice(0, 1)),  # model 0's answers
        )
        scores = attack.score(split.target)
    finally:
        patch.undo()
    assert scores.dtype == np.float64
    return scores, roc_auc(scores, split.is_member), refs.scaled_logit


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_float32_answers_leave_scores_unchanged(pool, name):
    s32, auc32, phi32 = _audit(pool, name, np.float32)
    s64, auc64, phi64 = _audit(pool, name, np.float64)
    # The stored answers are the float64 ones rounded once, nothing else ...
    np.testing.assert_array_equal(phi32, phi64.astype(np.float32))
    assert not np.array_equal(phi32.astype(np.float64), phi64)  # ... and they were rounded
    np.testing.assert_allclose(s32, s64, rtol=SCORE_TOLERANCE, atol=SCORE_TOLERANCE)
    assert abs(auc32 - auc64) <= AUC_TOLERANCE
    assert auc64 > 0.6  # the models leak: the comparison is about a working attack
