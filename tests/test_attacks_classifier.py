"""Trained attack classifiers: features, the estimator contract, parameter grids, cross-fitting
that never scores a record with a model trained on it, and overfit vs null targets."""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from miaudit.attacks import (
    CLASSIFIER_METHODS,
    ClassifierAttack,
    FeatureSubstitutionWarning,
    attack_features,
    check_param_grid,
    feature_names,
)
from miaudit.data import load_dataset
from miaudit.errors import AccessLevelError, InvalidAuditInput, NotFittedError
from miaudit.evaluation import roc_auc
from miaudit.signals import signals_from_logits
from miaudit.targets import AccessLevel, LabelOnlyTarget, PrecomputedTarget, SklearnTarget

# Small, fast search spaces per method (the contract is what is tested here, not the search).
FAST = {
    "lr": {"C": [0.1, 1.0]},
    "knn": {"n_neighbors": [3, 5]},
    "mlp": {"hidden_layer_sizes": [(8,)], "max_iter": [500]},
    "rf": {"n_estimators": [10], "max_depth": [2, 4]},
    "gb": {"n_estimators": [10]},
}
LR_GRID = {"C": [0.001, 0.01, 0.1, 1, 10, 100]}  # the seed example's lr grid


@pytest.fixture(scope="module")
def logits_target():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(50, 4))
    return PrecomputedTarget(logits, output="logits"), logits, rng.integers(0, 4, 50)


@pytest.fixture(scope="module")
def toy():
    """Features where members are shifted a little: learnable, not trivial."""
    rng = np.random.default_rng(1)
    m = np.arange(160) < 80
    f = rng.normal(size=(160, 5)) + 0.8 * m[:, None] * np.array([1.0, 0.5, 0, 0, 0])
    return f, m


@pytest.fixture(scope="module")
def noisy_digits():
    """Digits with 10% of labels flipped: an unregularised MLP memorises its members'
    flipped labels, a leak that a model that never saw them cannot show."""
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    y = data.y.copy()
    flip = rng.random(y.size) < 0.1
    y[flip] = (y[flip] + rng.integers(1, 10, int(flip.sum()))) % 10
    order = rng.permutation(y.size)
    members, nonmembers, other = order[:300], order[300:600], order[600:900]
    audited = np.concatenate([members, nonmembers])
    is_member = np.arange(audited.size) < members.size

    def features_of(train_idx):
        est = MLPClassifier(hidden_layer_sizes=(64,), alpha=0.0, max_iter=2000, random_state=0)
        est.fit(data.x[train_idx], y[train_idx])
        with pytest.warns(FeatureSubstitutionWarning):
            return attack_features(SklearnTarget(est, n_classes=10), data.x[audited], y[audited])

    return features_of(members), features_of(other), is_member


# ------------------------------------------------------------------------------- features


def test_default_features_are_loss_then_logits(logits_target):
    target, logits, y = logits_target
    ids = np.arange(50)
    f = attack_features(target, ids, y)
    assert f.shape == (50, 5) and f.dtype == np.float64
    np.testing.assert_allclose(f[:, 0], signals_from_logits(logits, y).loss)
    np.testing.assert_allclose(f[:, 1:], logits)
    assert feature_names(("loss", "logits"), 4) == ["loss"] + [f"logits[{c}]" for c in range(4)]


def test_optional_feature_blocks(logits_target):
    target, logits, y = logits_target
    names = ("sorted_probabilities", "one_hot_label", "confidence", "correct", "probabilities")
    f = attack_features(target, np.arange(50), y, features=names)
    p = softmax(logits, axis=1)
    assert f.shape == (50, 4 + 4 + 1 + 1 + 4)
    np.testing.assert_allclose(f[:, :4], -np.sort(-p, axis=1))
    np.testing.assert_array_equal(f[:, 4:8], np.eye(4)[y])
    np.testing.assert_allclose(f[:, 8], p[np.arange(50), y])
    np.testing.assert_array_equal(f[:, 9], (logits.argmax(1) == y).astype(float))
    np.testing.assert_allclose(f[:, 10:], p)


def test_probabilities_only_target_uses_log_probabilities_and_says_so(logits_target):
    _, logits, y = logits_target
    proba = softmax(logits, axis=1)
    target = PrecomputedTarget(proba, output="probabilities")
    with pytest.warns(FeatureSubstitutionWarning, match="log-probabilities"):
        f = attack_features(target, np.arange(50), y)
    np.testing.assert_allclose(logsumexp(f[:, 1:], axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(f[:, 1:], logits - logsumexp(logits, axis=1, keepdims=True))


def test_label_only_target_allows_label_features_only(logits_target):
    target, _, y = logits_target
    label_only = LabelOnlyTarget(target)
    with pytest.raises(AccessLevelError, match="label_only"):
        attack_features(label_only, np.arange(50), y)
    f = attack_features(label_only, np.arange(50), y, features=("correct", "one_hot_label"))
    assert f.shape == (50, 5)
    attack = ClassifierAttack(features=("correct",))
    assert attack.required_access == AccessLevel.LABEL_ONLY
    assert ClassifierAttack().required_access == AccessLevel.PROBABILITIES


@pytest.mark.parametrize(
    ("features", "match"),
    [("loss", "sequence"), (("loss", "bogus"), "known: loss"), (("loss", "loss"), "twice")],
)
def test_bad_feature_names_are_clear_errors(logits_target, features, match):
    target, _, y = logits_target
    with pytest.raises(InvalidAuditInput, match=match):
        attack_features(target, np.arange(50), y, features=features)


def test_bad_labels_are_gathered(logits_target):
    target, _, _ = logits_target
    with pytest.raises(InvalidAuditInput, match=r"must lie in \[0, 4\).*x has 50"):
        attack_features(target, np.arange(50), np.full(49, 7))


# ------------------------------------------------------------------------ estimator contract


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("method", list(CLASSIFIER_METHODS))
def test_attack_contract(method, toy):
    f, m = toy
    attack = ClassifierAttack(method=method, params=FAST[method])
    fresh = clone(attack)
    with pytest.raises(NotFittedError):
        fresh.score(f)
    params = fresh.get_params()
    scores = fresh.fit(f, m).score(f[:40])
    assert fresh.get_params() == params
    assert scores.dtype == np.float64 and scores.shape == (40,)
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    assert set(fresh.best_params_) <= set(FAST[method])
    assert fresh.predict(f[:40]).dtype == bool


def test_method_is_case_insensitive_and_defaults_need_no_search(toy):
    f, m = toy
    attack = ClassifierAttack(method="KNN").fit(f, m)
    assert attack.best_params_ == {} and attack.method == "KNN"
    assert attack.score(f).shape == (160,)


def test_score_checks_columns(toy):
    f, m = toy
    attack = ClassifierAttack().fit(f, m)
    with pytest.raises(InvalidAuditInput, match="fitted on 5"):
        attack.score(f[:, :3])


# ----------------------------------------------------------------------------- param grids


def test_unknown_method_lists_the_allowed_ones(toy):
    with pytest.raises(InvalidAuditInput, match=r"lr, knn, mlp, rf, gb.*'svm'"):
        ClassifierAttack(method="svm").fit(*toy)


def test_every_param_problem_in_one_error(toy):
    params = {
        "max_feature": ["sqrt"],
        "n_estimators": 100,
        "max_depth": [],
        "min_samples_leaf": [0],
    }
    with pytest.raises(InvalidAuditInput) as info:
        ClassifierAttack(method="rf", params=params).fit(*toy)
    msg = str(info.value)
    assert "unknown parameter 'max_feature' for rf (RandomForestClassifier)" in msg
    assert "allowed: bootstrap, ccp_alpha" in msg and "max_features" in msg
    assert "params['n_estimators'] must be a list" in msg and "[100]" in msg
    assert "params['max_depth'] is an empty list" in msg
    assert "min_samples_leaf" in msg and "Got 0" in msg


def test_max_features_auto_warns_and_works(toy):
    params = {"n_estimators": [10], "max_features": ["auto", "sqrt"], "max_depth": [2, None]}
    with pytest.warns(FutureWarning, match="max_features='auto' -> 'sqrt'"):
        attack = ClassifierAttack(method="rf", params=params, n_iter=7).fit(*toy)
    assert attack.best_params_["max_features"] == "sqrt"
    # Both spellings meant the same candidate: the deduplicated grid has 2 candidates.
    assert len(attack.model_.cv_results_["params"]) == 2


def test_whole_number_floats_and_removed_parameters_are_mapped():
    with pytest.warns(FutureWarning, match="min_samples_split"):
        grids, problems = check_param_grid(
            "rf", {"min_samples_split": [2.0, 0.5], "min_impurity_split": [None]}
        )
    assert problems == [] and grids == [{"min_samples_split": [2, 0.5]}]
    _, problems = check_param_grid("rf", {"min_impurity_split": [0.1]})
    assert any("min_impurity_decrease" in p for p in problems)


def test_old_logistic_regression_penalties_are_mapped(toy):
    params = {"penalty": ["l1", "l2", "none"], "C": [0.1, 1.0]}
    with pytest.warns(FutureWarning, match="penalty"):
        attack = ClassifierAttack(method="lr", params=params).fit(*toy)
    assert len(attack.model_.cv_results_["params"]) == 2 + 2 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # only scikit-learn >= 1.8 warns here
        _, problems = check_param_grid("lr", {"penalty": ["l1"], "solver": ["lbfgs"]})
        _, more = check_param_grid("lr", {"penalty": ["elasticnet"]})
    assert problems and "needs a solver among ['liblinear', 'saga']" in problems[0]
    assert more and "l1_ratio" in more[0]


def test_seed_example_grids_are_accepted_silently_where_modern():
    for method, params in [
        ("lr", LR_GRID),
        ("knn", {"n_neighbors": [3, 5, 7]}),
        ("mlp", {"hidden_layer_sizes": [(64,), (32, 32)], "max_iter": [1000]}),
        ("lr", {"C": np.logspace(-4, 2, 10)}),
    ]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            grids, problems = check_param_grid(method, params)
        assert problems == [] and len(grids) == 1


def test_unconverged_chosen_model_warns(toy):
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        ClassifierAttack(method="mlp", params={"max_iter": [3]}).fit(*toy)


# ---------------------------------------------------------------------------- cross-fitting


def test_score_refuses_the_records_it_trained_on(toy):
    f, m = toy
    attack = ClassifierAttack().fit(f[:100], m[:100], record_ids=np.arange(100))
    attack.score(f[100:], record_ids=np.arange(100, 160))
    with pytest.raises(InvalidAuditInput, match="never scores its own training records"):
        attack.score(f[90:110], record_ids=np.arange(90, 110))


class _RecordingAttack(ClassifierAttack):
    log: list = []  # noqa: RUF012 - shared on purpose: clones write to it

    def fit(self, features, is_member, *, record_ids=None):
        _RecordingAttack.log.append(("fit", id(self), set(record_ids.tolist())))
        return super().fit(features, is_member, record_ids=record_ids)

    def score(self, features, *, record_ids=None):
        _RecordingAttack.log.append(("score", id(self), set(record_ids.tolist())))
        return super().score(features, record_ids=record_ids)


def test_cross_fitting_scores_each_record_once_with_a_model_that_never_saw_it(toy):
    f, m = toy
    _RecordingAttack.log.clear()
    attack = _RecordingAttack(method="knn", params={"n_neighbors": [1]})
    scores = attack.cross_fit_scores(f, m, n_folds=3)
    assert not hasattr(attack, "model_")  # the folds fit clones; self stays unfitted
    fitted = {who: ids for kind, who, ids in _RecordingAttack.log if kind == "fit"}
    scored = [(who, ids) for kind, who, ids in _RecordingAttack.log if kind == "score"]
    assert len(fitted) == len(scored) == 3
    for who, ids in scored:
        assert not ids & fitted[who]
    assert sorted(i for _, ids in scored for i in ids) == list(range(160))
    assert scores.dtype == np.float64 and np.isfinite(scores).all()


def test_one_nearest_neighbour_is_perfect_on_its_training_records_but_not_cross_fitted():
    # Null features: membership is a coin flip. A 1-NN attack scored on the records it
    # trained on recalls each label (AUC 1); cross-fitted, it must be at chance.
    rng = np.random.default_rng(3)
    f = rng.normal(size=(400, 4))
    m = rng.permutation(np.arange(400) < 200)
    knn = ClassifierAttack(method="knn", params={"n_neighbors": [1]})
    assert roc_auc(clone(knn).fit(f, m).score(f), m) == 1.0
    assert abs(roc_auc(knn.cross_fit_scores(f, m), m) - 0.5) < 0.08


def test_cross_fit_input_errors(toy):
    f, m = toy
    with pytest.raises(InvalidAuditInput, match=r"n_folds must be an int >= 2.*rows"):
        ClassifierAttack().cross_fit_scores(f[:10], m, n_folds=1)


def test_overfit_target_leaks_and_a_target_that_never_saw_the_records_does_not(noisy_digits):
    overfit, null, is_member = noisy_digits
    attack = ClassifierAttack(method="lr", params=LR_GRID)
    assert roc_auc(attack.cross_fit_scores(overfit, is_member), is_member) > 0.6
    assert abs(roc_auc(attack.cross_fit_scores(null, is_member), is_member) - 0.5) < 0.07
