"""The MindArmour facade: the seed example's call sequence, every kind of model and dataset,
clear configuration errors, MindArmour's metric conventions, the common evaluation."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.neural_network import MLPClassifier

from miaudit.attacks import FeatureSubstitutionWarning
from miaudit.compat import MembershipInference, TrainedOnEvaluatedRecordsWarning
from miaudit.compat.mindarmour import _mindarmour_metric
from miaudit.data import Dataset, load_dataset
from miaudit.errors import InvalidAuditInput
from miaudit.evaluation import AttackEvaluation
from miaudit.targets import PrecomputedTarget, SklearnTarget, TorchTarget

# The caveats below are expected here; the tests that check them use pytest.warns.
pytestmark = [
    pytest.mark.filterwarnings("ignore::miaudit.attacks.FeatureSubstitutionWarning"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

METRICS = ["precision", "accuracy", "recall"]

# The MindArmour tutorial's attack configuration (rf's "auto" included).
TUTORIAL_CONFIG = [
    {"method": "lr", "params": {"C": [0.001, 0.01, 0.1, 1, 10, 100]}},
    {"method": "knn", "params": {"n_neighbors": [3, 5, 7]}},
    {"method": "mlp", "params": {"hidden_layer_sizes": [(64,), (32, 32)], "max_iter": [1000]}},
    {
        "method": "rf",
        "params": {
            "n_estimators": [100],
            "max_features": ["auto", "sqrt"],
            "max_depth": [5, 10, 20, None],
            "min_samples_split": [2, 5, 10],
            "min_samples_leaf": [1, 2, 4],
        },
    },
]
QUICK_CONFIG = [{"method": "lr", "params": {"C": [0.1, 1.0]}}]


@pytest.fixture(scope="module")
def setup():
    """An overfit MLP on 300 digits (10% of labels flipped, so that it memorises), and
    MindArmour's 80/20 split of members and of non-members into attack-training and
    evaluation parts."""
    data = load_dataset("digits")
    rng = np.random.default_rng(0)
    y = data.y.copy()
    flip = rng.random(y.size) < 0.1
    y[flip] = (y[flip] + rng.integers(1, 10, int(flip.sum()))) % 10
    order = rng.permutation(y.size)
    members, nonmembers = order[:300], order[300:600]
    model = MLPClassifier(hidden_layer_sizes=(64,), alpha=0.0, max_iter=2000, random_state=0)
    model.fit(data.x[members], y[members])

    def part(idx):
        return data.x[idx], y[idx]

    return {
        "data": data,
        "y": y,
        "model": model,
        "train_in": part(members[:240]),
        "train_out": part(nonmembers[:240]),
        "eval_in": part(members[240:]),
        "eval_out": part(nonmembers[240:]),
    }


@pytest.fixture(scope="module")
def trained(setup):
    inference = MembershipInference(setup["model"])
    with pytest.warns(FutureWarning, match="max_features='auto'"):
        inference.train(setup["train_in"], setup["train_out"], TUTORIAL_CONFIG)
    return inference


def _in_range(value):
    return value == -1 or 0.0 <= value <= 1.0


def test_seed_example_call_sequence(setup, trained):
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainedOnEvaluatedRecordsWarning)
        result = trained.eval(setup["eval_in"], setup["eval_out"], METRICS)
    assert isinstance(result, list) and len(result) == 4
    for item in result:
        assert list(item) == METRICS
        assert all(isinstance(v, float) and _in_range(v) for v in item.values())
    assert trained.methods_ == ["lr", "knn", "mlp", "rf"]
    assert isinstance(trained.target_, SklearnTarget) and trained.target_.n_classes == 10
    assert trained.attacks_[3].best_params_["max_features"] == "sqrt"


def test_metrics_follow_the_requested_order_without_repeats(setup, trained):
    result = trained.eval(setup["eval_in"], setup["eval_out"], ["recall", "accuracy", "recall"])
    assert [list(item) for item in result] == [["recall", "accuracy"]] * 4


def test_results_flow_through_the_common_evaluation(setup, trained):
    evaluations = trained.evaluate(setup["eval_in"], setup["eval_out"])
    assert [e.name for e in evaluations] == [
        "classifier_lr",
        "classifier_knn",
        "classifier_mlp",
        "classifier_rf",
    ]
    assert all(isinstance(e, AttackEvaluation) and e.family == "classifier" for e in evaluations)
    assert all(e.n_members == 60 and e.n_nonmembers == 60 for e in evaluations)
    assert evaluations[0].auc > 0.6  # the lr attack on an overfit target
    scores, is_member, labels = trained.membership_scores(setup["eval_in"], setup["eval_out"])
    assert scores.shape == (4, 120) and scores.dtype == np.float64
    assert is_member.sum() == 60 and labels.shape == (120,)


def test_evaluating_on_the_attack_training_records_warns(setup, trained):
    with pytest.warns(TrainedOnEvaluatedRecordsWarning, match="240 of the 300"):
        trained.eval(setup["train_in"], setup["eval_out"], ["accuracy"])


def test_unknown_metric_is_a_clear_error(setup, trained):
    with pytest.raises(InvalidAuditInput, match="unknown 'f1'; allowed: precision"):
        trained.eval(setup["eval_in"], setup["eval_out"], ["accuracy", "f1"])
    with pytest.raises(InvalidAuditInput, match="non-empty list"):
        trained.eval(setup["eval_in"], setup["eval_out"], "accuracy")


def test_mindarmour_metric_conventions():
    truth = np.array([True, True, False, False])
    none_predicted = np.zeros(4, dtype=bool)
    assert _mindarmour_metric(none_predicted, truth, "precision") == -1
    assert _mindarmour_metric(none_predicted, truth, "recall") == 0.0
    assert _mindarmour_metric(none_predicted, truth, "accuracy") == 0.5
    no_members = np.zeros(4, dtype=bool)
    assert _mindarmour_metric(np.array([True, False, False, False]), no_members, "recall") == -1
    pred = np.array([True, False, True, False])
    assert _mindarmour_metric(pred, truth, "precision") == 0.5
    assert _mindarmour_metric(pred, truth, "recall") == 0.5


def test_raw_torch_module_is_accepted_and_classes_come_from_a_forward_pass(setup):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    inference = MembershipInference(module).train(
        setup["train_in"], setup["train_out"], QUICK_CONFIG
    )
    assert isinstance(inference.target_, TorchTarget) and inference.target_.n_classes == 10
    assert inference.attacks_[0].n_features_in_ == 11  # loss + 10 logits
    (result,) = inference.eval(setup["eval_in"], setup["eval_out"], METRICS)
    assert all(_in_range(v) for v in result.values())
    # An untrained module leaks nothing: the attack is near chance.
    assert abs(result["accuracy"] - 0.5) < 0.2


def test_raw_sklearn_estimator_target_adapter_and_dataset_forms_agree(setup):
    x_in, y_in = setup["train_in"]
    x_out, y_out = setup["train_out"]
    runs = []
    with pytest.warns(FeatureSubstitutionWarning):
        raw = MembershipInference(setup["model"]).train((x_in, y_in), (x_out, y_out), QUICK_CONFIG)
    runs.append(raw.membership_scores(setup["eval_in"], setup["eval_out"])[0])
    adapter = SklearnTarget(setup["model"], n_classes=10)
    as_dataset = Dataset(name="members", x=x_in, y=y_in, n_classes=10)
    batches = [(torch.from_numpy(x_out[i : i + 64]), y_out[i : i + 64]) for i in range(0, 240, 64)]
    other = MembershipInference(adapter).train(as_dataset, iter(batches), QUICK_CONFIG)
    assert other.target_ is adapter
    runs.append(other.membership_scores(list(setup["eval_in"]), setup["eval_out"])[0])
    np.testing.assert_allclose(runs[0], runs[1])


def test_precomputed_target_queried_by_record_ids(setup):
    data, y = setup["data"], setup["y"]
    proba = setup["model"].predict_proba(data.x)
    inference = MembershipInference(PrecomputedTarget(proba, output="probabilities"))
    ids = np.arange(data.n_records)
    with pytest.warns(FeatureSubstitutionWarning):
        inference.train((ids[:100], y[:100]), (ids[1000:1100], y[1000:1100]), QUICK_CONFIG)
    (result,) = inference.eval((ids[100:150], y[100:150]), (ids[1100:1150], y[1100:1150]))
    assert list(result) == METRICS


def test_bad_configs_name_the_entry_and_field_all_at_once(setup):
    config = [
        {"method": "svm", "params": {}},
        {"method": "rf", "params": {"max_feature": ["sqrt"]}},
        {"method": "knn"},
        {"method": "lr", "params": {"C": 1.0}},
        {"method": "knn", "params": {"n_neighbors": [0]}, "extra": 1},
    ]
    with pytest.raises(InvalidAuditInput) as info:
        MembershipInference(setup["model"]).train(setup["train_in"], setup["train_out"], config)
    msg = str(info.value)
    assert "attack_config[0] (method 'svm'): method must be one of lr, knn, mlp, rf, gb" in msg
    assert "attack_config[1]['params']: unknown parameter 'max_feature' for rf" in msg
    assert "allowed: bootstrap" in msg
    assert "attack_config[2] lacks 'params'" in msg
    assert "attack_config[3]['params']['C'] must be a list of candidate values" in msg
    assert "attack_config[4] has unknown keys 'extra'" in msg
    assert "attack_config[4]['params']['n_neighbors']" in msg and "Got 0" in msg


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"method": "lr", "params": {}}, "must be a list of"),
        ([], "attack_config is empty"),
        (["lr"], r"attack_config\[0\] must be a dict"),
        ([{"method": "lr", "params": None}], r"\['params'\] must be a dict"),
    ],
)
def test_config_shape_errors(setup, config, match):
    with pytest.raises(InvalidAuditInput, match=match):
        MembershipInference(setup["model"]).train(setup["train_in"], setup["train_out"], config)


def test_bad_construction_and_datasets_are_clear_errors(setup):
    with pytest.raises(InvalidAuditInput, match="n_jobs must be -1 or a positive int"):
        MembershipInference(setup["model"], 0)
    inference = MembershipInference(setup["model"])
    with pytest.raises(InvalidAuditInput, match="call train"):
        inference.eval(setup["eval_in"], setup["eval_out"])
    x, y = setup["train_in"]
    with pytest.raises(InvalidAuditInput, match="dataset_test: y must be 1-d with one label"):
        inference.train((x, y), (x, y[:10]), QUICK_CONFIG)
    with pytest.raises(InvalidAuditInput, match="dataset_train must be an"):
        inference.train(42, (x, y), QUICK_CONFIG)
