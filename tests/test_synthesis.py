"""Shadow-training data (Shokri et al. 2017, §V-C): model-based hill climbing (Algorithm 1,
step by step on hand-made targets), statistics-based and noisy records."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from miaudit.data.synthesis import (
    SynthesisShortfallWarning,
    synthesize_model_based,
    synthesize_noisy,
    synthesize_statistics,
)
from miaudit.errors import AccessLevelError, InvalidAuditInput
from miaudit.targets import CallableTarget, LabelOnlyTarget, SklearnTarget


class Recorder:
    """A black-box API that logs every batch it answers."""

    def __init__(self, fn, n_classes):
        self.batches = []
        self.fn = fn
        self.target = CallableTarget(self._call, n_classes=n_classes)

    def _call(self, x):
        self.batches.append(np.array(x))
        return self.fn(x)


def constant(p):
    p = np.asarray(p, dtype=np.float64)
    return lambda x: np.tile(p, (len(x), 1))


@pytest.fixture(scope="module")
def binary_target():
    """Location-like data: 3 classes, 30 sparse binary features, a class prototype each."""
    rng = np.random.default_rng(0)
    protos = rng.random((3, 30)) < 0.3
    y = rng.integers(0, 3, 600)
    x = (protos[y] ^ (rng.random((600, 30)) < 0.1)).astype(np.float32)
    est = LogisticRegression(C=10.0, max_iter=2000).fit(x, y)
    return SklearnTarget(est, n_classes=3)


# ------------------------------------------------------------------------------ model-based


def test_synthetic_records_are_classified_above_conf_min_and_queries_are_counted(binary_target):
    rec = Recorder(binary_target.predict_proba, 3)
    data = synthesize_model_based(
        rec.target, 30, [0, 1, 2], 25, k_max=6, conf_min=0.7, iter_max=300, seed=1, batch_size=40
    )
    assert data.x.shape == (75, 30) and data.x.dtype == np.float32
    np.testing.assert_array_equal(data.y, np.repeat([0, 1, 2], 25))
    assert np.isin(data.x, (0.0, 1.0)).all()
    proba = binary_target.predict_proba(data.x)
    conf = proba[np.arange(75), data.y]
    assert (conf > 0.7).all() and (proba.argmax(axis=1) == data.y).all()
    report = data.report
    assert report.produced_per_class == {0: 25, 1: 25, 2: 25} and report.shortfall == {}
    assert report.n_query_calls == len(rec.batches)
    assert report.n_queries == sum(len(b) for b in rec.batches)
    assert sum(report.queries_per_class.values()) == report.n_queries
    assert max(len(b) for b in rec.batches) <= 40  # one query per step for the whole batch
    assert report.n_query_calls < report.n_queries  # batched, not one record at a time


def test_acceptance_has_probability_p_c():
    # Every query is "not worse", confident and the argmax: accepted with probability 0.3,
    # so a record costs a geometric number of queries with mean 1 / 0.3.
    target = CallableTarget(constant([0.3, 0.2, 0.25, 0.25]), n_classes=4)
    data = synthesize_model_based(
        target, 8, 0, 3000, conf_min=0.2, iter_max=10_000, seed=0, batch_size=500
    )
    per_record = data.report.n_queries / 3000
    assert abs(per_record - 1 / 0.3) < 0.2
    assert data.report.chains_gave_up == {0: 0}


def test_chains_give_up_after_iter_max_and_the_shortfall_is_reported():
    target = CallableTarget(constant([0.9, 0.1]), n_classes=2)
    with pytest.warns(SynthesisShortfallWarning, match="class 1: 2 missing"):
        data = synthesize_model_based(
            target, 5, 1, 2, k_max=2, iter_max=7, max_chains=4, seed=0, batch_size=3
        )
    assert data.x.shape == (0, 5) and data.y.shape == (0,)
    assert data.report.chains_started == {1: 4} and data.report.chains_gave_up == {1: 4}
    assert data.report.n_queries == 4 * 7  # exactly iter_max queries per chain
    assert data.report.shortfall == {1: 2}


def test_candidates_redraw_at_most_k_features_of_the_best_record():
    # Constant answers are never worse, so every query becomes the best record and the next
    # candidate differs from it in at most k_max re-drawn features (some keep their value).
    rec = Recorder(constant([0.5, 0.5]), 2)
    with pytest.warns(SynthesisShortfallWarning):
        synthesize_model_based(
            rec.target, 40, 0, 1, k_max=3, conf_min=0.9, iter_max=200, max_chains=1, batch_size=1
        )
    xs = np.concatenate(rec.batches)
    changed = (xs[1:] != xs[:-1]).sum(axis=1)
    assert xs.shape == (200, 40)
    assert changed.max() == 3 and (changed <= 3).all()


def test_k_halves_after_rej_max_rejections_in_a_row_and_stops_at_k_min():
    # The first answer is the best there will ever be: every later query is a rejection.
    # With rej_max = 20, k goes 16 -> 8 after the 21st rejection in a row (j > rej_max),
    # 8 -> 4 after the 42nd, then 4 -> 2 = k_min; every candidate is the first record with
    # k features re-drawn. With 10,000 categories per feature a re-drawn feature almost
    # surely changes, so a candidate differs from the best record in exactly k features.
    calls = {"n": 0}

    def decreasing(x):
        calls["n"] += 1
        conf = 0.5 if calls["n"] == 1 else 0.4 - 1e-3 * calls["n"]
        return np.tile([conf, 1 - conf], (len(x), 1))

    rec = Recorder(decreasing, 2)
    with pytest.warns(SynthesisShortfallWarning):
        synthesize_model_based(
            rec.target,
            64,
            0,
            1,
            k_max=16,
            k_min=2,
            conf_min=0.9,
            rej_max=20,
            iter_max=120,
            max_chains=1,
            batch_size=1,
            seed=3,
            feature_kind="categorical",
            categories=[np.arange(10_000)] * 64,
        )
    xs = np.concatenate(rec.batches)
    assert xs.shape == (120, 64)
    dist = (xs[1:] != xs[0]).sum(axis=1)  # candidate for query t + 2 vs the best record
    expected = np.concatenate([np.full(21, 16), np.full(21, 8), np.full(21, 4), np.full(56, 2)])
    assert np.mean(dist == expected) > 0.95  # a re-draw keeps its value with p = 1e-4
    assert (dist <= expected).all()


def test_categorical_features_stay_within_their_categories():
    cats = [[0.0, 1.0, 2.0], [5.0, 7.0], [-1.0, 0.5, 3.0, 9.0]] * 3

    def likes_large_first_feature(x):
        p0 = np.clip(x[:, 0] / 2.0, 0.05, 0.95)
        return np.stack([p0, 1 - p0], axis=1)

    target = CallableTarget(likes_large_first_feature, n_classes=2)
    data = synthesize_model_based(
        target, 9, 0, 50, k_max=3, conf_min=0.6, feature_kind="categorical", categories=cats,
        seed=0, batch_size=16,
    )  # fmt: skip
    assert data.x.shape == (50, 9)
    for j, allowed in enumerate(cats):
        assert np.isin(data.x[:, j], allowed).all()
    assert (data.x[:, 0] == 2.0).all()  # only 2 gives p_0 > 0.6


def test_same_seed_same_records(binary_target):
    kwargs = dict(k_max=6, conf_min=0.5, seed=7, batch_size=32)
    a = synthesize_model_based(binary_target, 30, [0, 2], 10, **kwargs)
    b = synthesize_model_based(binary_target, 30, [0, 2], 10, **kwargs)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)


def test_model_based_needs_probabilities_and_lists_every_bad_setting(binary_target):
    with pytest.raises(AccessLevelError):
        synthesize_model_based(LabelOnlyTarget(binary_target), 30, 0, 5)
    with pytest.raises(InvalidAuditInput) as err:
        synthesize_model_based(
            binary_target, 30, [0, 5], 0, k_max=40, conf_min=1.5, iter_max=0, seed=-1
        )
    msg = str(err.value)
    for part in ("class_label", "n_records", "k_max", "conf_min", "iter_max", "seed"):
        assert part in msg
    with pytest.raises(InvalidAuditInput, match="categories"):
        synthesize_model_based(binary_target, 30, 0, 5, feature_kind="categorical")


# ------------------------------------------------------------------------- statistics-based


def test_statistics_from_records_follow_each_class_marginal():
    rng = np.random.default_rng(0)
    p = np.array([[0.9, 0.1, 0.0, 0.5], [0.2, 0.8, 1.0, 0.5]])
    y = np.repeat([0, 1], 500)
    x = (rng.random((1000, 4)) < p[y]).astype(np.float32)
    data = synthesize_statistics(4000, records=x, labels=y, seed=1)
    assert data.x.shape == (8000, 4) and data.x.dtype == np.float32
    np.testing.assert_array_equal(data.y, np.repeat([0, 1], 4000))
    for c in (0, 1):
        observed = x[y == c].mean(axis=0)
        np.testing.assert_allclose(data.x[data.y == c].mean(axis=0), observed, atol=0.03)
    assert (data.x[data.y == 0, 2] == 0).all() and (data.x[data.y == 1, 2] == 1).all()
    assert data.report.method == "statistics" and data.report.n_queries == 0


def test_statistics_from_records_keep_continuous_values_and_lose_correlations():
    rng = np.random.default_rng(1)
    a = rng.normal(size=2000)
    x = np.stack([a, a + 0.01 * rng.normal(size=2000)], axis=1)  # almost equal columns
    data = synthesize_statistics(2000, records=x, seed=0)
    assert data.y is None and data.x.shape == (2000, 2)
    assert np.isin(data.x[:, 0], x[:, 0].astype(np.float32)).all()
    assert abs(np.corrcoef(data.x.T)[0, 1]) < 0.1


def test_statistics_from_given_marginals():
    probs = np.array([0.1, 0.5, 0.95])
    data = synthesize_statistics(20_000, marginals=probs, seed=0)
    assert data.y is None
    np.testing.assert_allclose(data.x.mean(axis=0), probs, atol=0.015)
    values = np.array([[1.0, 2.0, 3.0], [0.0, 10.0, 0.0]])
    per_class = np.array([[[0.2, 0.3, 0.5], [0.5, 0.5, 0.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    data = synthesize_statistics(10_000, marginals=per_class, values=values, seed=0)
    first = data.x[data.y == 0, 0]
    np.testing.assert_allclose([np.mean(first == v) for v in (1, 2, 3)], [0.2, 0.3, 0.5], atol=0.02)
    assert (data.x[data.y == 1] == [1.0, 10.0]).all()


def test_statistics_errors_are_gathered():
    with pytest.raises(InvalidAuditInput, match="exactly one of records or marginals"):
        synthesize_statistics(5)
    with pytest.raises(InvalidAuditInput, match=r"n_records.*labels must be \(3,\)"):
        synthesize_statistics(0, records=np.zeros((3, 2)), labels=[0, 1])
    with pytest.raises(InvalidAuditInput, match="sum to 1"):
        synthesize_statistics(5, marginals=np.full((2, 3), 0.5), values=np.zeros((2, 3)))


# ------------------------------------------------------------------------------- noisy data


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2])
def test_noisy_binary_flips_exactly_the_fraction(fraction):
    rng = np.random.default_rng(0)
    x = (rng.random((300, 50)) < 0.12).astype(np.float32)
    y = rng.integers(0, 4, 300)
    data = synthesize_noisy(x, fraction, labels=y, seed=2)
    assert data.x.shape == x.shape and data.x.dtype == np.float32
    np.testing.assert_array_equal(data.y, y)
    flips = (data.x != x).sum(axis=1)
    assert (flips == round(fraction * 50)).all()
    assert data.report.fraction_changed == pytest.approx(round(fraction * 50) / 50)
    assert np.isin(data.x, (0.0, 1.0)).all()


def test_noisy_categorical_replaces_with_another_category():
    rng = np.random.default_rng(0)
    cats = [[0.0, 1.0, 2.0]] * 10 + [[4.0]] * 2  # the last two features cannot change
    x = np.concatenate([rng.integers(0, 3, (200, 10)), np.full((200, 2), 4)], axis=1)
    data = synthesize_noisy(x, 0.5, feature_kind="categorical", categories=cats, seed=0)
    assert np.isin(data.x[:, :10], [0, 1, 2]).all() and (data.x[:, 10:] == 4).all()
    changed = (data.x != x).sum(axis=1)
    assert changed.max() <= 6 and changed.mean() > 4.5  # 6 chosen; unchangeable ones stay
    # Categories default to the values seen in each column.
    data = synthesize_noisy(x, 0.5, feature_kind="categorical", seed=0)
    assert np.isin(data.x[:, :10], [0, 1, 2]).all()


def test_noisy_continuous_draws_from_the_column():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 20))
    data = synthesize_noisy(x, 0.25, feature_kind="continuous", seed=0)
    changed = data.x != x.astype(np.float32)
    assert changed.sum(axis=1).max() <= 5
    for j in range(20):
        assert np.isin(data.x[:, j], x[:, j].astype(np.float32)).all()


def test_noisy_errors_are_gathered():
    with pytest.raises(InvalidAuditInput) as err:
        synthesize_noisy(np.full((4, 3), 0.5), 1.5, feature_kind="binary", seed=-2)
    msg = str(err.value)
    assert "fraction" in msg and "0s and 1s" in msg and "seed" in msg


def test_every_chain_is_accounted_for(binary_target):
    data = synthesize_model_based(binary_target, 30, [0, 1], 20, k_max=6, seed=0, batch_size=64)
    r = data.report
    for c in (0, 1):
        ended = r.chains_succeeded[c] + r.chains_gave_up[c] + r.chains_stopped[c]
        assert r.chains_started[c] == ended
        assert r.chains_succeeded[c] >= r.produced_per_class[c] == 20
