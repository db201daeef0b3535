"""Known answers, equivalences and null models for miaudit.evaluation."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
from scipy.stats import beta
from sklearn.metrics import roc_auc_score

from miaudit.errors import InvalidAuditInput
from miaudit.evaluation import (
    AttackEvaluation,
    LowFprResolutionWarning,
    SmallSliceWarning,
    calibration_mask,
    choose_advantage_threshold,
    clopper_pearson,
    clopper_pearson_upper,
    epsilon_bound,
    epsilon_lower_bound,
    evaluate_attack,
    max_advantage,
    roc_auc,
    roc_curve,
    threshold_metrics,
    tpr_at_fpr,
    validate_scores,
)

# ----------------------------------------------------------------------------- helpers


def _gaussian_audit(n: int, shift: float, seed: int, ties: bool = False):
    rng = np.random.default_rng(seed)
    is_member = rng.random(n) < 0.5
    scores = rng.normal(size=n) + shift * is_member
    if ties:
        scores = np.round(scores, 1)  # many tied groups holding members and non-members
    return scores, is_member


def _brute_force_points(scores, is_member):
    """(threshold, tpr, fpr) for every distinct score plus one above them all."""
    thresholds = np.append(np.unique(scores), np.inf)
    n_pos, n_neg = is_member.sum(), (~is_member).sum()
    out = []
    for thr in thresholds:  # a reference loop: slow and obviously right
        pred = scores >= thr
        out.append((thr, (pred & is_member).sum() / n_pos, (pred & ~is_member).sum() / n_neg))
    return out


# --------------------------------------------------------------------------- ROC, AUC


def test_auc_hand_computed():
    # members score 0.9, 0.8, 0.6, 0.5; non-members 0.7, 0.55, 0.4, 0.3.
    # Member-over-non-member pairs: 0.9 -> 4, 0.8 -> 4, 0.6 -> 3 (0.55, 0.4, 0.3),
    # 0.5 -> 2 (0.4, 0.3): 13 of 16 pairs.
    scores = [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3]
    is_member = [1, 1, 0, 1, 0, 1, 0, 0]
    assert roc_auc(scores, is_member) == pytest.approx(13 / 16, abs=1e-15)
    # Reversing the scores reverses every pair.
    assert roc_auc(-np.asarray(scores), is_member) == pytest.approx(3 / 16, abs=1e-15)


def test_auc_and_roc_with_ties():
    # members 0.9, 0.5; non-members 0.5, 0.5, 0.1.
    # 0.9 beats all 3 -> 3; 0.5 ties two (1/2 each) and beats 0.1 -> 2. AUC = 5/6.
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    is_member = np.array([True, True, False, False, False])
    assert roc_auc(scores, is_member) == pytest.approx(5 / 6, abs=1e-15)

    fpr, tpr, thr = roc_curve(scores, is_member)
    # One point per distinct score plus the origin: the tied group enters at once.
    np.testing.assert_allclose(fpr, [0, 0, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_array_equal(thr[1:], [0.9, 0.5, 0.1])
    assert thr[0] > 0.9 and np.isfinite(thr[0])
    assert not (scores >= thr[0]).any()


def test_all_tied_scores_give_auc_half():
    assert roc_auc(np.zeros(6), [1, 0, 1, 0, 0, 1]) == 0.5
    fpr, tpr, _ = roc_curve(np.zeros(6), [1, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(fpr, [0, 1])
    np.testing.assert_array_equal(tpr, [0, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_equals_sklearn(seed, ties):
    scores, is_member = _gaussian_audit(3000, 0.4, seed, ties=ties)
    assert roc_auc(scores, is_member) == pytest.approx(roc_auc_score(is_member, scores), abs=1e-12)


def test_roc_points_match_brute_force():
    scores, is_member = _gaussian_audit(400, 0.5, 3, ties=True)
    fpr, tpr, thr = roc_curve(scores, is_member)
    brute = sorted(_brute_force_points(scores, is_member), key=lambda p: -p[0])
    assert len(fpr) == len(brute)
    np.testing.assert_allclose(tpr, [p[1] for p in brute])
    np.testing.assert_allclose(fpr, [p[2] for p in brute])
    np.testing.assert_array_equal(thr[1:], [p[0] for p in brute[1:]])


# ------------------------------------------------------------------------- TPR at FPR


@pytest.mark.parametrize("fpr_target", [0.0005, 0.001, 0.01, 0.05, 0.1, 0.3, 1.0])
@pytest.mark.parametrize("ties", [False, True])
def test_tpr_at_fpr_equals_brute_force(fpr_target, ties):
    scores, is_member = _gaussian_audit(1500, 1.0, 7, ties=ties)
    result = tpr_at_fpr(scores, is_member, fpr_target)
    best = max(tpr for _, tpr, fpr in _brute_force_points(scores, is_member) if fpr <= fpr_target)
    assert result.tpr == pytest.approx(best, abs=1e-15)
    assert result.fpr <= fpr_target
    # The threshold reproduces the reported operating point.
    pred = scores >= result.threshold
    assert pred[is_member].mean() == pytest.approx(result.tpr, abs=1e-15)
    assert pred[~is_member].mean() == pytest.approx(result.fpr, abs=1e-15)
    n_neg = int((~is_member).sum())
    assert result.resolvable == (n_neg * fpr_target >= 1)


def test_tpr_at_fpr_interval_is_clopper_pearson_of_true_positives():
    scores, is_member = _gaussian_audit(2000, 1.0, 11)
    result = tpr_at_fpr(scores, is_member, 0.01, confidence=0.9)
    n_pos = int(is_member.sum())
    k = round(result.tpr * n_pos)
    assert (result.ci_low, result.ci_high) == pytest.approx(clopper_pearson(k, n_pos, 0.9))
    assert result.ci_low <= result.tpr <= result.ci_high


def test_tpr_at_fpr_rejects_bad_target():
    scores, is_member = _gaussian_audit(100, 1.0, 0)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(InvalidAuditInput, match="fpr_target"):
            tpr_at_fpr(scores, is_member, bad)


def test_max_advantage_equals_brute_force():
    scores, is_member = _gaussian_audit(800, 0.8, 5, ties=True)
    adv, thr = max_advantage(scores, is_member)
    best = max(tpr - fpr for _, tpr, fpr in _brute_force_points(scores, is_member))
    assert adv == pytest.approx(best, abs=1e-15)
    pred = scores >= thr
    assert pred[is_member].mean() - pred[~is_member].mean() == pytest.approx(adv, abs=1e-15)


# ------------------------------------------------------------------------ Clopper-Pearson


def test_clopper_pearson_equals_beta_ppf():
    # Equal up to the rounding of 1 - confidence (0.05 is not a binary fraction).
    exact = pytest.approx
    low, high = clopper_pearson(7, 40, 0.95)
    assert low == exact(beta.ppf(0.025, 7, 34), rel=1e-12)
    assert high == exact(beta.ppf(0.975, 8, 33), rel=1e-12)
    assert clopper_pearson_upper(7, 40, 0.95) == exact(beta.ppf(0.95, 8, 33), rel=1e-12)
    low, high = clopper_pearson(3, 10, 0.8)
    assert (low, high) == exact((beta.ppf(0.1, 3, 8), beta.ppf(0.9, 4, 7)), rel=1e-12)


def test_clopper_pearson_conventions():
    assert clopper_pearson(0, 10)[0] == 0.0
    assert clopper_pearson(0, 10)[1] == pytest.approx(1 - 0.025 ** (1 / 10))  # closed form
    assert clopper_pearson(10, 10)[1] == 1.0
    assert clopper_pearson(10, 10)[0] == pytest.approx(0.025 ** (1 / 10))
    assert clopper_pearson_upper(10, 10) == 1.0
    assert clopper_pearson_upper(0, 10) == pytest.approx(1 - 0.05 ** (1 / 10))
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    assert clopper_pearson_upper(0, 0) == 1.0


def test_clopper_pearson_is_vectorised():
    k = np.arange(0, 21)
    low, high = clopper_pearson(k, 20)
    upper = clopper_pearson_upper(k, 20)
    assert low.shape == high.shape == upper.shape == (21,)
    for i in (0, 5, 20):
        assert (low[i], high[i]) == clopper_pearson(int(k[i]), 20)
        assert upper[i] == clopper_pearson_upper(int(k[i]), 20)
    assert np.all(np.diff(low) > 0) and np.all(np.diff(high) > 0)


def test_clopper_pearson_covers_at_least_nominal():
    rng = np.random.default_rng(0)
    for p in (0.02, 0.3, 0.9):
        k = rng.binomial(60, p, size=4000)
        low, high = clopper_pearson(k, 60, 0.95)
        assert np.mean((low <= p) & (p <= high)) >= 0.94  # conservative: >= 0.95 in theory
        assert np.mean(p <= clopper_pearson_upper(k, 60, 0.95)) >= 0.94


@pytest.mark.parametrize(
    ("k", "n", "confidence"), [(-1, 10, 0.95), (11, 10, 0.95), (2.5, 10, 0.95), (3, 10, 1.0)]
)
def test_clopper_pearson_rejects_bad_input(k, n, confidence):
    with pytest.raises(InvalidAuditInput):
        clopper_pearson(k, n, confidence)
    with pytest.raises(InvalidAuditInput):
        clopper_pearson_upper(k, n, confidence)


# ------------------------------------------------------------------------------ epsilon


def test_epsilon_lower_bound_hand_computed():
    # FPR_u = 0.01, FNR_u = 0.5, delta = 1e-5:
    #   log((1 - 1e-5 - 0.01) / 0.5) = log(1.97998) = 0.683
    #   log((1 - 1e-5 - 0.5) / 0.01) = log(49.999)  = 3.912   <- the larger
    assert epsilon_lower_bound(0.01, 0.5, 1e-5) == pytest.approx(math.log(49.999), rel=1e-12)
    # Symmetric in the two error rates.
    assert epsilon_lower_bound(0.5, 0.01, 1e-5) == pytest.approx(math.log(49.999), rel=1e-12)
    # Coin flipping proves nothing: both logs are negative -> 0.
    assert epsilon_lower_bound(0.5, 0.5, 1e-5) == 0.0
    assert epsilon_lower_bound(1.0, 1.0, 0.0) == 0.0
    # A perfect (FPR_u = 0) test with informative FNR: no finite epsilon.
    assert epsilon_lower_bound(0.0, 0.3, 1e-5) == math.inf


def test_epsilon_lower_bound_rejects_bad_input():
    with pytest.raises(InvalidAuditInput, match=r"fpr_upper.*fnr_upper.*delta"):
        epsilon_lower_bound(-0.1, 1.5, 1.0)


# ------------------------------------------------------------------- held-out thresholds


def test_calibration_mask_is_stratified_and_seeded():
    is_member = np.r_[np.ones(101, bool), np.zeros(300, bool)]
    mask = calibration_mask(is_member, fraction=0.5, seed=3)
    assert mask.dtype == bool and mask.shape == is_member.shape
    assert mask[is_member].sum() == 50 or mask[is_member].sum() == 51
    assert mask[~is_member].sum() == 150
    np.testing.assert_array_equal(mask, calibration_mask(is_member, fraction=0.5, seed=3))
    assert not np.array_equal(mask, calibration_mask(is_member, fraction=0.5, seed=4))
    # Tiny groups still leave one of each on both sides.
    tiny = calibration_mask(np.array([1, 1, 0, 0], bool), fraction=0.1)
    assert tiny.tolist().count(True) == 2 and tiny[:2].sum() == 1 and tiny[2:].sum() == 1


def test_threshold_metrics_hand_computed():
    # Calibration: members 0.9, 0.7, 0.6; non-members 0.8, 0.2. TPR - FPR at each score:
    # 0.9 -> 1/3, 0.8 -> 1/3 - 1/2, 0.7 -> 2/3 - 1/2, 0.6 -> 1 - 1/2 (best), 0.2 -> 0.
    # Placed midway to the next lower calibration score 0.2: threshold 0.4.
    # Evaluation: members 0.95, 0.5, 0.3; non-members 0.6, 0.1 -> predicted 0.95, 0.5, 0.6:
    # TP 2, FP 1, TN 1, FN 1.
    scores = np.array([0.9, 0.7, 0.6, 0.8, 0.2, 0.95, 0.5, 0.3, 0.6, 0.1])
    is_member = np.array([1, 1, 1, 0, 0, 1, 1, 1, 0, 0], bool)
    calibration = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    tm = threshold_metrics(scores, is_member, calibration)
    assert tm.threshold == pytest.approx(0.4)
    assert (tm.n_calibration, tm.n_evaluation) == (5, 5)
    assert tm.accuracy == pytest.approx(3 / 5)
    assert tm.precision == pytest.approx(2 / 3)
    assert tm.recall == tm.tpr == pytest.approx(2 / 3)
    assert tm.f1 == pytest.approx(2 / 3)
    assert tm.fpr == pytest.approx(1 / 2)
    assert tm.advantage == pytest.approx(2 / 3 - 1 / 2)
    assert choose_advantage_threshold(scores[calibration], is_member[calibration]) == tm.threshold


def test_threshold_metrics_precision_minus_one_when_nobody_predicted():
    # Calibration perfectly separated at 0.9 (gap to 0.1 -> threshold 0.5); every
    # evaluation record scores below it.
    scores = np.array([0.9, 0.1, 0.3, 0.2])
    is_member = np.array([1, 0, 1, 0], bool)
    calibration = np.array([1, 1, 0, 0], bool)
    tm = threshold_metrics(scores, is_member, calibration)
    assert tm.precision == -1.0 and tm.f1 == -1.0
    assert tm.recall == 0.0 and tm.accuracy == 0.5


def test_thresholds_use_only_calibration_records():
    scores, is_member = _gaussian_audit(4000, 1.0, 9)
    cal = calibration_mask(is_member, seed=1)
    tm = threshold_metrics(scores, is_member, cal)
    eb = epsilon_bound(scores, is_member, cal)

    rng = np.random.default_rng(0)
    perturbed = scores.copy()
    perturbed[~cal] = rng.normal(size=(~cal).sum()) * 10  # rewrite every evaluation score
    assert threshold_metrics(perturbed, is_member, cal).threshold == tm.threshold
    assert epsilon_bound(perturbed, is_member, cal).threshold == eb.threshold
    # ...whereas the calibration records do steer it.
    shifted = scores.copy()
    shifted[cal] += 5.0
    assert threshold_metrics(shifted, is_member, cal).threshold != tm.threshold


def test_epsilon_bound_equals_brute_force_search():
    scores, is_member = _gaussian_audit(600, 1.5, 4, ties=True)
    cal = calibration_mask(is_member, seed=2)
    eb = epsilon_bound(scores, is_member, cal, delta=1e-5, confidence=0.95)

    def eps_at(s, m, thr):
        pred = s >= thr
        fp, n_neg = int((pred & ~m).sum()), int((~m).sum())
        fn, n_pos = int((~pred & m).sum()), int(m.sum())
        fpr_u = clopper_pearson_upper(fp, n_neg, 0.95)
        fnr_u = clopper_pearson_upper(fn, n_pos, 0.95)
        return epsilon_lower_bound(fpr_u, fnr_u, 1e-5), fpr_u, fnr_u

    s_cal, m_cal = scores[cal], is_member[cal]
    best = max(eps_at(s_cal, m_cal, thr)[0] for thr in np.append(np.unique(s_cal), np.inf))
    assert eps_at(s_cal, m_cal, eb.threshold)[0] == pytest.approx(best, rel=1e-12)
    eps, fpr_u, fnr_u = eps_at(scores[~cal], is_member[~cal], eb.threshold)
    assert (eb.epsilon, eb.fpr_upper, eb.fnr_upper) == pytest.approx((eps, fpr_u, fnr_u))
    assert eb.epsilon > 0


# ------------------------------------------------------------- null and perfect attacks


def test_null_scores_give_auc_half_and_no_epsilon():
    rng = np.random.default_rng(12345)
    scores = rng.random(10_000)
    is_member = rng.random(10_000) < 0.5
    ev = evaluate_attack("null", "metric", scores, is_member)
    assert abs(ev.auc - 0.5) < 0.02
    assert ev.epsilon.epsilon < 0.2
    assert abs(ev.threshold_metrics.advantage) < 0.05
    assert ev.tpr_at_fpr[0.001].tpr < 0.01


def test_perfectly_separating_scores():
    rng = np.random.default_rng(1)
    is_member = rng.random(10_000) < 0.5
    scores = np.where(is_member, 1.0, 0.0) + 0.5 * rng.random(10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 10k records resolve every default FPR
        ev = evaluate_attack("perfect", "metric", scores, is_member)
    assert ev.auc == 1.0 and ev.max_advantage == 1.0
    assert ev.tpr_at_fpr[0.001].tpr == 1.0
    assert ev.threshold_metrics.accuracy == 1.0 and ev.threshold_metrics.advantage == 1.0
    assert ev.epsilon.epsilon > 5.0  # limited only by the CP upper bounds at n ~ 2500
    assert ev.warnings == []


# ------------------------------------------------------------------------ evaluate_attack


def test_evaluate_attack_fields_agree_with_parts():
    scores, is_member = _gaussian_audit(3000, 0.7, 21)
    ev = evaluate_attack("loss", "metric", scores, is_member, seconds=1.5, seed=4)
    assert isinstance(ev, AttackEvaluation)
    assert (ev.name, ev.family, ev.seconds) == ("loss", "metric", 1.5)
    assert ev.n_members == is_member.sum() and ev.n_nonmembers == (~is_member).sum()
    assert ev.auc == pytest.approx(roc_auc_score(is_member, scores), abs=1e-12)
    fpr, tpr, _ = roc_curve(scores, is_member)
    np.testing.assert_array_equal(ev.roc_fpr, fpr)
    np.testing.assert_array_equal(ev.roc_tpr, tpr)
    assert set(ev.tpr_at_fpr) == {0.001, 0.01, 0.1}
    assert ev.tpr_at_fpr[0.01] == tpr_at_fpr(scores, is_member, 0.01)
    assert ev.max_advantage == max_advantage(scores, is_member)[0]
    cal = calibration_mask(is_member, fraction=0.5, seed=4)
    assert ev.threshold_metrics == threshold_metrics(scores, is_member, cal)
    assert ev.epsilon == epsilon_bound(scores, is_member, cal)
    assert ev.per_class == []


def test_unresolvable_fpr_is_flagged_and_warned():
    scores, is_member = _gaussian_audit(1000, 1.0, 0)  # ~500 non-members
    n_neg = int((~is_member).sum())
    with pytest.warns(LowFprResolutionWarning, match="1000 non-members"):
        ev = evaluate_attack("a", "metric", scores, is_member)
    assert ev.tpr_at_fpr[0.001].resolvable is False
    assert ev.tpr_at_fpr[0.001].fpr == 0.0  # still reported, at FPR 0
    assert ev.tpr_at_fpr[0.01].resolvable is True
    assert len(ev.warnings) == 1
    assert "0.001" in ev.warnings[0] and str(n_neg) in ev.warnings[0]


def test_per_class_lacking_nonmembers_gives_none_and_note():
    rng = np.random.default_rng(5)
    n = 3000
    labels = rng.integers(0, 3, n)
    is_member = rng.random(n) < 0.5
    is_member[labels == 2] = True  # class 2 has no non-members
    scores = rng.normal(size=n) + is_member
    with pytest.warns(SmallSliceWarning, match="lack members or non-members"):
        ev = evaluate_attack(
            "a",
            "metric",
            scores,
            is_member,
            labels=labels,
            class_names=["x", "y", "z", "w"],
            fprs=(0.01, 0.1),
        )
    by_class = {r.class_index: r for r in ev.per_class}
    assert sorted(by_class) == [0, 1, 2, 3]  # class 3 is named but absent: kept, not dropped
    z = by_class[2]
    assert z.class_name == "z" and z.auc is None and z.advantage is None
    assert z.n_nonmembers == 0 and "non-members" in z.note
    assert by_class[3].auc is None and by_class[3].n_members == 0
    assert "no audited records" in by_class[3].note
    for c in (0, 1):
        sel = labels == c
        assert by_class[c].auc == pytest.approx(roc_auc_score(is_member[sel], scores[sel]))
        assert by_class[c].tpr_at_fpr[0.1] == tpr_at_fpr(scores[sel], is_member[sel], 0.1)
    assert any("2 (z)" in w and "3 (w)" in w for w in ev.warnings)


@pytest.mark.filterwarnings("ignore::miaudit.evaluation.LowFprResolutionWarning")
def test_tiny_class_is_flagged_not_dropped():
    rng = np.random.default_rng(6)
    n = 2000
    labels = np.where(np.arange(n) < 10, 1, 0)  # class 1 holds only 10 records
    is_member = np.arange(n) % 2 == 0
    scores = rng.normal(size=n)
    with pytest.warns(SmallSliceWarning, match="fewer than 20"):
        ev = evaluate_attack("a", "metric", scores, is_member, labels=labels)
    tiny = next(r for r in ev.per_class if r.class_index == 1)
    assert tiny.auc is not None and "noisy" in tiny.note
    assert tiny.tpr_at_fpr[0.1].resolvable is False and "0.1" in tiny.note  # 5 non-members
    assert any("fewer than 20" in w for w in ev.warnings)
    assert any("per-class TPR at FPR 0.1 is unresolvable in 1 of 2" in w for w in ev.warnings)


def test_evaluate_attack_is_fast_on_100k_records():
    scores, is_member = _gaussian_audit(100_000, 0.3, 8, ties=True)
    labels = np.random.default_rng(8).integers(0, 10, 100_000)
    start = time.perf_counter()
    evaluate_attack("a", "metric", scores, is_member, labels=labels)
    # About 0.1 s here; a per-record Python loop would take many seconds.
    assert time.perf_counter() - start < 5.0


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("scores", "is_member", "match"),
    [
        ([0.1, np.nan, 0.3, 0.4], [1, 0, 1, 0], "NaN"),
        ([0.1, np.inf, 0.3, 0.4], [1, 0, 1, 0], "infinite"),
        ([0.1, 0.2, 0.3], [1, 0, 1, 0], "same length"),
        ([0.1, 0.2, 0.3, 0.4], [1, 1, 1, 1], "no non-members"),
        ([0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], "no members"),
        ([], [], "empty"),
        ([[0.1, 0.2], [0.3, 0.4]], [1, 0, 1, 0], "1-d"),
        ([0.1, 0.2, 0.3, 0.4], [1, 2, 1, 0], "boolean"),
        (["a", "b", "c", "d"], [1, 0, 1, 0], "real numbers"),
    ],
)
def test_bad_scores_raise(scores, is_member, match):
    with pytest.raises(InvalidAuditInput, match=match):
        validate_scores(scores, is_member)
    with pytest.raises(InvalidAuditInput, match=match):
        evaluate_attack("a", "metric", scores, is_member)
    with pytest.raises(InvalidAuditInput):
        roc_auc(scores, is_member)


def test_bad_labels_raise():
    with pytest.raises(InvalidAuditInput, match="negative"):
        validate_scores([0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0], labels=[0, -1, 2, 3])
    with pytest.raises(InvalidAuditInput, match="as long as"):
        validate_scores([0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0], labels=[0, 1])
    with pytest.raises(InvalidAuditInput, match="integers"):
        validate_scores([0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0], labels=[0.5, 1, 2, 3])


def test_all_problems_are_reported_at_once():
    with pytest.raises(InvalidAuditInput) as info:
        evaluate_attack(
            "",
            "metric",
            [0.1, np.nan, 0.3],
            [1, 1, 1, 1],
            fprs=(0.0, 0.01),
            delta=2.0,
            confidence=1.5,
        )
    message = str(info.value)
    for part in ("name", "NaN", "same length", "non-members", "fprs", "delta", "confidence"):
        assert part in message


def test_validate_scores_cleans_types():
    s, m, lab = validate_scores(np.array([1, 2, 3], np.int32), [1, 0, 1], labels=[0.0, 1.0, 2.0])
    assert s.dtype == np.float64 and m.dtype == bool and lab.dtype == np.int64
    assert validate_scores([0.5, 0.2], [True, False])[2] is None


def test_evaluate_attack_needs_two_of_each_for_held_out_threshold():
    with pytest.raises(InvalidAuditInput, match="at least 2 of each"):
        evaluate_attack("a", "metric", [0.9, 0.1, 0.2, 0.3], [1, 0, 0, 0])


def test_split_without_both_classes_raises():
    scores = np.array([0.9, 0.1, 0.8, 0.2])
    is_member = np.array([1, 0, 1, 0], bool)
    with pytest.raises(InvalidAuditInput, match="calibration records hold"):
        threshold_metrics(scores, is_member, np.array([1, 0, 0, 0], bool))
    with pytest.raises(InvalidAuditInput, match="boolean mask"):
        epsilon_bound(scores, is_member, np.array([1, 0, 1], bool))


def test_per_class_precision_recall_at_the_held_out_threshold():
    from miaudit.evaluation import calibration_mask, evaluate_attack

    rng = np.random.default_rng(7)
    n = 4000
    labels = rng.integers(0, 3, n)
    is_member = rng.random(n) < 0.5
    scores = rng.normal(size=n) + is_member * (labels == 0) * 2.0  # only class 0 leaks
    result = evaluate_attack("a", "metric", scores, is_member, labels=labels, seed=3)
    held = ~calibration_mask(is_member, fraction=0.5, seed=3)
    t = result.threshold_metrics.threshold
    for cls in result.per_class:
        sel = held & (labels == cls.class_index)
        pred, mem = scores[sel] >= t, is_member[sel]
        assert cls.precision == pytest.approx((pred & mem).sum() / pred.sum())
        assert cls.recall == pytest.approx((pred & mem).sum() / mem.sum())
    by_class = {c.class_index: c for c in result.per_class}
    assert by_class[0].precision > by_class[1].precision + 0.1


# ------------------------------------------------- AUC interval and the verdict's lower bounds


def _pairwise_delong(scores: np.ndarray, is_member: np.ndarray) -> float:
    pos, neg = scores[is_member], scores[~is_member]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(np.sqrt(psi.mean(1).var(ddof=1) / pos.size + psi.mean(0).var(ddof=1) / neg.size))


def test_auc_interval_is_delong_with_ties():
    from scipy.stats import norm

    from miaudit.evaluation import auc_interval

    rng = np.random.default_rng(11)
    is_member = rng.random(300) < 0.4
    scores = np.round(rng.normal(size=300) + 0.5 * is_member, 1)  # many ties
    auc, low, high = auc_interval(scores, is_member, confidence=0.9)
    se = _pairwise_delong(scores, is_member)
    assert auc == pytest.approx(roc_auc_score(is_member, scores), abs=1e-12)
    assert low == pytest.approx(auc - norm.ppf(0.95) * se, abs=1e-12)
    assert high == pytest.approx(auc + norm.ppf(0.95) * se, abs=1e-12)
    result = evaluate_attack("a", "metric", scores, is_member, confidence=0.9)
    assert result.auc_se == pytest.approx(se, abs=1e-12)
    assert result.auc_ci == pytest.approx((low, high), abs=1e-12)
    with pytest.raises(InvalidAuditInput, match="at least 2 members"):
        auc_interval([0.1, 0.2, 0.3], [1, 0, 0])


def test_auc_lower_bound_and_epsilon_at_a_chosen_confidence():
    from scipy.stats import norm

    from miaudit.evaluation.lower_bounds import auc_lower_bound, epsilon_lower_bound_at

    rng = np.random.default_rng(5)
    is_member = rng.random(800) < 0.5
    scores = rng.normal(size=800) + 1.0 * is_member
    result = evaluate_attack("a", "metric", scores, is_member, confidence=0.95)
    expected = result.auc - norm.ppf(0.99) * _pairwise_delong(scores, is_member)
    assert auc_lower_bound(result, 0.99) == pytest.approx(expected, abs=1e-12)
    # Each error bound at 1 - (1 - c) / 2: at c = 0.9 that is the evaluation's own 0.95.
    assert epsilon_lower_bound_at(result, 0.9) == pytest.approx(result.epsilon.epsilon)
    assert 0 < epsilon_lower_bound_at(result, 0.999) < result.epsilon.epsilon


def test_tpr_lower_bound_fixes_the_threshold_on_non_members_alone():
    from miaudit.evaluation.lower_bounds import nonmembers_to_bound_fpr, tpr_lower_bound

    rng = np.random.default_rng(2)
    n_neg, n_pos = 3000, 700
    neg, pos = rng.normal(size=n_neg), rng.normal(2.5, 1.0, size=n_pos)
    scores = np.concatenate([pos, neg])
    is_member = np.arange(scores.size) < n_pos
    result = evaluate_attack("a", "metric", scores, is_member)
    confidence = 0.99
    side = 1 - (1 - confidence) / 2
    # By hand: the most false positives whose one-sided CP bound stays within 1%, the
    # threshold just above the next non-member, the members above it, their CP lower bound.
    k = max(j for j in range(n_neg) if beta.ppf(side, j + 1, n_neg - j) <= 0.01)
    cut = np.sort(neg)[::-1][k]
    tp = int((pos > cut).sum())
    expected = beta.ppf(1 - side, tp, n_pos - tp + 1)
    assert tpr_lower_bound(result, 0.01, confidence) == pytest.approx(expected, abs=1e-12)
    # Too few non-members to bound any threshold's FPR by 1%: no bound, not a guess.
    need = nonmembers_to_bound_fpr(0.01, side)
    assert need == math.ceil(math.log(1 - side) / math.log(0.99))
    few = evaluate_attack("a", "metric", scores[: n_pos + need - 1], is_member[: n_pos + need - 1])
    assert tpr_lower_bound(few, 0.01, confidence) is None


def test_auc_resolution_counts():
    from miaudit.evaluation.lower_bounds import auc_chance_halfwidth, records_for_auc_halfwidth

    assert auc_chance_halfwidth(50, 50) == pytest.approx(1.959964 * math.sqrt(101 / 30000), 1e-6)
    n = records_for_auc_halfwidth(0.05)
    assert auc_chance_halfwidth(n, n) <= 0.05 < auc_chance_halfwidth(n - 1, n - 1)


@pytest.mark.parametrize("n_each", [50, 200])
def test_verdict_false_alarms_stay_within_their_rate_on_null_scores(n_each):
    # 400 null audits of 6 correlated attacks (the metric attacks read one model's output,
    # so their scores are strongly correlated). Under the old rule (AUC point >= 0.6, TPR
    # bound at a threshold chosen on the same records, no correction) 50 + 50 raised
    # several per cent of false alarms; the bounds' nominal rate is 5% for an audit.
    from miaudit.report import decide_verdict

    rng = np.random.default_rng(n_each)
    is_member = np.arange(2 * n_each) < n_each
    alarms = 0
    for _ in range(400):
        base = rng.normal(size=2 * n_each)
        attacks = [
            evaluate_attack(
                f"a{j}", "metric", base + 0.3 * rng.normal(size=base.size), is_member, seed=j
            )
            for j in range(6)
        ]
        alarms += decide_verdict(attacks)["risk"] != "low"
    assert alarms <= 4  # 1%; the nominal bound is 20 of 400


def test_verdict_flags_a_clear_leak_at_fifty_and_fifty():
    from miaudit.report import decide_verdict

    rng = np.random.default_rng(1)
    is_member = np.arange(100) < 50
    flagged = 0
    for _ in range(40):
        scores = rng.normal(size=100) + 1.8 * is_member  # AUC about 0.9
        attacks = [evaluate_attack(f"a{j}", "metric", scores, is_member) for j in range(6)]
        flagged += decide_verdict(attacks)["risk"] != "low"
    assert flagged >= 38
