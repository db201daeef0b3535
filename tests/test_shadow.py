"""Shadow-model attack (Shokri et al. 2017): per-class attack models that really are per
class, classes without shadow records, the cache, overfit vs never-seen targets, errors."""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, clone

from miaudit.attacks.shadow import (
    ShadowCoverageWarning,
    ShadowModelAttack,
    per_class_metrics,
)
from miaudit.compute.cache import ModelCache
from miaudit.data import Dataset, load_dataset
from miaudit.data.synthesis import synthesize_noisy
from miaudit.errors import AccessLevelError, InvalidAuditInput, NotFittedError
from miaudit.evaluation import roc_auc
from miaudit.models import SklearnRecipe, TorchRecipe, TrainingConfig
from miaudit.targets import LabelOnlyTarget, TorchTarget

# ------------------------------------------------------------------- a model we control


class Memoriser(BaseEstimator):
    """Records are ``[id, class]``. The true-class probability depends on membership,
    oppositely for the two halves of the classes: even classes get 0.9 on training records
    and 0.6 on others, odd classes 0.6 and 0.9. Sorted prediction vectors therefore look
    the same for members and non-members (a pooled attack is blind), raw vectors of one
    class do not (a per-class attack separates them)."""

    def __init__(self, n_classes=2):
        self.n_classes = n_classes

    def fit(self, x, y):
        self.seen_ = np.unique(np.asarray(x)[:, 0])
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, x):
        x = np.asarray(x)
        return pattern(np.isin(x[:, 0], self.seen_), x[:, 1].astype(int), self.n_classes)

    def predict(self, x):
        return self.predict_proba(x).argmax(axis=1)


def pattern(member, labels, n_classes):
    high = np.where(labels % 2 == 0, member, ~member)
    conf = np.where(high, 0.9, 0.6)
    proba = np.tile(((1 - conf) / (n_classes - 1))[:, None], (1, n_classes))
    proba[np.arange(labels.size), labels] = conf
    return proba


def memoriser_data(n_classes, n_records=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n_records).astype(np.int64)
    x = np.stack([np.arange(n_records), y], axis=1).astype(np.float32)
    return Dataset("memoriser", x, y, n_classes)


class CountingRecipe:
    """A recipe that counts its trainings (delegating to a scikit-learn recipe)."""

    def __init__(self, inner):
        self.inner = inner
        self.trained = 0

    def train(self, dataset, indices, *, seed, eval_indices=None, progress=None):
        self.trained += 1
        return self.inner.train(dataset, indices, seed=seed, eval_indices=eval_indices)

    def fingerprint(self):
        return self.inner.fingerprint()

    def trusted_types(self):
        return self.inner.trusted_types()

    def validate(self, dataset):
        self.inner.validate(dataset)


FAST = {"attack_model": "lr", "n_shadow": 3}


# ---------------------------------------------------------------------------- per class


def test_one_attack_model_per_class_and_each_record_goes_to_its_class_model():
    data = memoriser_data(4)
    recipe = SklearnRecipe(Memoriser(n_classes=4))
    attack = ShadowModelAttack(**FAST).fit(data, np.arange(600), recipe=recipe)
    assert sorted(attack.attack_models_) == [0, 1, 2, 3]
    assert attack.pooled_model_ is None and attack.classes_without_model_ == ()
    assert attack.class_counts_.sum() == attack.n_attack_records_ == 3 * 2 * 300

    # The same prediction vector (true-class confidence 0.9) means "member" for class 0 and
    # "non-member" for class 1: only per-class models can tell.
    labels = np.array([0, 0, 1, 1, 2, 3])
    member = np.array([True, False, True, False, True, True])
    scores = attack.score(pattern(member, labels, 4), labels)
    assert scores.dtype == np.float64 and scores.shape == (6,)
    assert scores[0] > 0.9 and scores[1] < 0.1 and scores[2] > 0.9 and scores[3] < 0.1
    assert scores[4] > 0.9 and scores[5] > 0.9
    conf_09 = pattern(np.array([True, False]), np.array([0, 1]), 4)  # both 0.9 on their class
    s = attack.score(conf_09, np.array([0, 1]))
    assert s[0] > 0.9 and s[1] < 0.1

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 400)
    member = rng.random(400) < 0.5
    proba = pattern(member, labels, 4)
    assert roc_auc(attack.score(proba, labels), member) > 0.99
    pooled = ShadowModelAttack(per_class=False, **FAST).fit(data, np.arange(600), recipe=recipe)
    assert pooled.attack_models_ == {} and pooled.pooled_model_ is not None
    assert abs(roc_auc(pooled.score(proba, labels), member) - 0.5) < 0.1


def test_a_class_without_shadow_records_is_reported_and_scored_by_the_pooled_model():
    data = memoriser_data(3, n_records=900)
    attacker = np.flatnonzero(data.y != 2)  # the attacker owns no record of class 2
    recipe = SklearnRecipe(Memoriser(n_classes=3))
    with pytest.warns(ShadowCoverageWarning, match=r"1 of 3 classes.*2 \(0 in / 0 out\)"):
        attack = ShadowModelAttack(**FAST).fit(data, attacker, recipe=recipe)
    assert attack.classes_without_model_ == (2,)
    assert sorted(attack.attack_models_) == [0, 1] and attack.pooled_model_ is not None
    np.testing.assert_array_equal(attack.class_counts_[2], [0, 0])
    labels = np.array([0, 1, 2, 2])
    scores = attack.score(pattern(np.array([True, True, True, False]), labels, 3), labels)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_a_class_seen_only_in_or_only_out_falls_back_too():
    data = memoriser_data(3, n_records=900)
    one_of_class_2 = np.flatnonzero(data.y == 2)[:1]
    attacker = np.concatenate([np.flatnonzero(data.y != 2)[:399], one_of_class_2])
    attack = ShadowModelAttack(n_shadow=1, attack_model="lr")  # 200 in, 200 out
    with pytest.warns(ShadowCoverageWarning, match=r"2 \((1 in / 0 out|0 in / 1 out)\)"):
        attack.fit(data, attacker, recipe=SklearnRecipe(Memoriser(n_classes=3)))
    assert attack.classes_without_model_ == (2,) and sorted(attack.class_counts_[2]) == [0, 1]


# ------------------------------------------------------------------- shadow bookkeeping


def test_shadow_samples_sizes_disjointness_and_accuracies():
    data = memoriser_data(2, n_records=600)
    pool = np.arange(100, 600)
    recipe = SklearnRecipe(Memoriser())
    attack = ShadowModelAttack(n_shadow=4, shadow_size=60, attack_model="lr")
    attack.fit(data, pool, recipe=recipe)
    for inside, outside in zip(attack.shadow_in_, attack.shadow_out_, strict=True):
        assert inside.size == outside.size == 60
        assert np.intersect1d(inside, outside).size == 0
        assert np.isin(inside, pool).all() and np.isin(outside, pool).all()
    assert attack.n_shadow_ == 4 and attack.shadow_seeds_.shape == (4,)
    # The memoriser is right on everything: accuracies are recorded per shadow and averaged.
    np.testing.assert_array_equal(attack.shadow_train_accuracies_, 1.0)
    assert attack.shadow_train_accuracy_ == 1.0 and attack.shadow_test_accuracy_ == 1.0

    disjoint = ShadowModelAttack(n_shadow=4, disjoint=True, attack_model="lr")
    disjoint.fit(data, pool, recipe=recipe)
    everything = np.concatenate(disjoint.shadow_in_ + disjoint.shadow_out_)
    assert everything.size == 4 * 2 * (500 // 8) and np.unique(everything).size == everything.size


def test_shadow_models_are_trained_once_with_a_cache(tmp_path):
    data = memoriser_data(2, n_records=300)
    counting = CountingRecipe(SklearnRecipe(Memoriser()))
    cache = ModelCache(tmp_path)
    seen = []
    first = ShadowModelAttack(**FAST).fit(
        data, np.arange(300), recipe=counting, cache=cache, progress=lambda *a: seen.append(a)
    )
    assert counting.trained == 3 and first.n_cached_ == 0
    assert [(d, t) for d, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert not seen[0][2]["cached"]
    # A second fit, and a larger pool sharing the first three shadows, train nothing twice.
    again = ShadowModelAttack(**FAST).fit(data, np.arange(300), recipe=counting, cache=cache)
    assert counting.trained == 3 and again.n_cached_ == 3
    bigger = ShadowModelAttack(n_shadow=5, attack_model="lr")
    bigger.fit(data, np.arange(300), recipe=counting, cache=cache)
    assert counting.trained == 5 and bigger.n_cached_ == 3
    proba = pattern(np.array([True, False]), np.array([0, 0]), 2)
    np.testing.assert_array_equal(
        first.score(proba, np.array([0, 0])), again.score(proba, np.array([0, 0]))
    )


def test_estimator_contract():
    data = memoriser_data(2, n_records=300)
    attack = ShadowModelAttack(**FAST)
    with pytest.raises(NotFittedError):
        attack.score(np.full((1, 2), 0.5), np.array([0]))
    params = attack.get_params()
    fresh = clone(attack)
    fresh.fit(data, np.arange(300), recipe=SklearnRecipe(Memoriser()))
    assert fresh.get_params() == params
    assert fresh.recipe is None and fresh.recipe_ is not None  # the parameter is untouched
    with pytest.raises(InvalidAuditInput, match=r"\(n, 2\).*labels must lie"):
        fresh.score(np.full((3, 4), 0.25), np.array([0, 5, 1]))
    with pytest.raises(InvalidAuditInput, match="sum to 1"):
        fresh.score(np.full((2, 2), 0.9), np.array([0, 1]))


# --------------------------------------------------------------- real targets on Location


@pytest.fixture(scope="module")
def location():
    from miaudit.errors import DataNotFoundError

    try:
        data = load_dataset("location")
    except DataNotFoundError:
        pytest.skip("the shared data directory (location.npz) is not available")
    order = np.random.default_rng(0).permutation(data.n_records)
    recipe = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (64,), "activation": "tanh"},
        training=TrainingConfig(
            epochs=40, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0,
            schedule="constant", device="cpu",
        ),
    )  # fmt: skip
    members, nonmembers, pool, other = order[:300], order[300:600], order[600:1800], order[1800:]
    target = recipe.train(data, members, seed=0, eval_indices=nonmembers)
    never_saw = recipe.train(data, other[:300], seed=1)
    return {
        "data": data,
        "recipe": recipe,
        "pool": pool,
        "audited": np.concatenate([members, nonmembers]),
        "is_member": np.arange(600) < 300,
        "target": TorchTarget(target.model, n_classes=30, access="probabilities"),
        "null": TorchTarget(never_saw.model, n_classes=30, access="probabilities"),
        "accuracy": (target.train_accuracy, target.test_accuracy),
    }


@pytest.mark.parametrize("attack_model", ["lr", "torch_mlp"])
def test_overfit_target_leaks_and_a_target_that_never_saw_the_records_does_not(
    location, attack_model
):
    train_acc, test_acc = location["accuracy"]
    assert train_acc - test_acc > 0.3  # the target overfits
    data, aud, member = location["data"], location["audited"], location["is_member"]
    attack = ShadowModelAttack(n_shadow=2, shadow_size=300, attack_model=attack_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShadowCoverageWarning)
        attack.fit(data, location["pool"], recipe=location["recipe"])
    assert attack.shadow_train_accuracy_ > 0.95 and attack.shadow_test_accuracy_ < 0.7
    scores = attack.score_target(location["target"], data.x[aud], data.y[aud])
    assert scores.dtype == np.float64 and scores.shape == (600,)
    assert roc_auc(scores, member) > 0.8
    null = attack.score_target(location["null"], data.x[aud], data.y[aud])
    assert abs(roc_auc(null, member) - 0.5) < 0.08


def test_shadows_on_noisy_attacker_data_still_leak(location):
    data, aud, member = location["data"], location["audited"], location["is_member"]
    pool = location["pool"]
    noisy = synthesize_noisy(data.x[pool], 0.1, labels=data.y[pool], seed=0).as_dataset(30)
    attack = ShadowModelAttack(n_shadow=2, shadow_size=300, attack_model="lr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShadowCoverageWarning)
        attack.fit(noisy, np.arange(noisy.n_records), recipe=location["recipe"])
    scores = attack.score_target(location["target"], data.x[aud], data.y[aud])
    assert roc_auc(scores, member) > 0.6


def test_label_only_target_is_refused(location):
    data = memoriser_data(2, n_records=200)
    attack = ShadowModelAttack(**FAST).fit(data, np.arange(200), recipe=SklearnRecipe(Memoriser()))
    with pytest.raises(AccessLevelError):
        attack.score_target(LabelOnlyTarget(location["target"]), data.x[:2], data.y[:2])


# ------------------------------------------------------------------------------- errors


def test_bad_settings_are_listed_together():
    data = memoriser_data(2, n_records=100)
    recipe = SklearnRecipe(Memoriser())
    with pytest.raises(InvalidAuditInput) as err:
        ShadowModelAttack(n_shadow=0, attack_model="svm", seed=-1).fit(
            data, np.arange(100), recipe=recipe
        )
    msg = str(err.value)
    assert "n_shadow must be an int >= 1" in msg
    assert "attack_model must be one of ('rf', 'lr', 'mlp', 'torch_mlp'), got 'svm'" in msg
    assert "seed" in msg


def test_not_enough_attacker_records_for_disjoint_shadows():
    data = memoriser_data(2, n_records=100)
    attack = ShadowModelAttack(n_shadow=10, disjoint=True, shadow_size=10)
    with pytest.raises(InvalidAuditInput, match=r"not enough attacker records.*holds 100"):
        attack.fit(data, np.arange(100), recipe=SklearnRecipe(Memoriser()))
    with pytest.raises(InvalidAuditInput, match="2 x shadow_size = 2 x 60"):
        ShadowModelAttack(shadow_size=60).fit(
            data, np.arange(100), recipe=SklearnRecipe(Memoriser())
        )


def test_missing_recipe_bad_indices_and_attack_params():
    data = memoriser_data(2, n_records=100)
    with pytest.raises(InvalidAuditInput, match="no recipe"):
        ShadowModelAttack().fit(data, np.arange(100))
    with pytest.raises(InvalidAuditInput, match="appear more than once"):
        ShadowModelAttack().fit(data, np.zeros(10, int), recipe=SklearnRecipe(Memoriser()))
    with pytest.raises(InvalidAuditInput, match="unknown 'depth'"):
        ShadowModelAttack(attack_model="torch_mlp", attack_params={"depth": 3}).fit(
            data, np.arange(100), recipe=SklearnRecipe(Memoriser())
        )
    with pytest.raises(InvalidAuditInput, match="unknown parameter 'bogus'"):
        ShadowModelAttack(attack_model="rf", attack_params={"bogus": [1]}).fit(
            data, np.arange(100), recipe=SklearnRecipe(Memoriser())
        )


# ---------------------------------------------------------------------- per-class metrics


def test_per_class_precision_and_recall_by_hand():
    scores = np.array([0.9, 0.2, 0.7, 0.6, 0.1, 0.4, 0.8])
    member = np.array([1, 1, 0, 1, 0, 0, 1], bool)
    labels = np.array([0, 0, 0, 1, 1, 1, 3])
    m = per_class_metrics(scores, member, labels, n_classes=4)
    np.testing.assert_array_equal(m.classes, [0, 1, 2, 3])
    np.testing.assert_array_equal(m.n_members, [2, 1, 0, 1])
    np.testing.assert_array_equal(m.n_nonmembers, [1, 2, 0, 0])
    np.testing.assert_array_equal(m.n_predicted_members, [2, 1, 0, 1])
    # class 0 predicts {0.9 (member), 0.7 (not)}: precision 1/2, recall 1/2;
    # class 1 predicts {0.6 (member)}: 1, 1; class 2 is absent: -1, -1.
    np.testing.assert_allclose(m.precision, [0.5, 1.0, -1.0, 1.0])
    np.testing.assert_allclose(m.recall, [0.5, 1.0, -1.0, 1.0])
    assert m.overall_precision == pytest.approx(3 / 4)
    assert m.overall_recall == pytest.approx(3 / 4)
    present = per_class_metrics(scores, member, labels)
    np.testing.assert_array_equal(present.classes, [0, 1, 3])
    with pytest.raises(InvalidAuditInput, match="is_member"):
        per_class_metrics(scores, member[:3], labels)
