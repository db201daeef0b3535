"""ML Privacy Meter v1's attack_data / initialize / train_attack flow on PyTorch models."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import memorising_recipe, synthetic_dataset

import miaudit.compat.privacy_meter as ml_privacy_meter
from miaudit.errors import InvalidAuditInput

#: The tutorial's three configurations (its AlexNet indices become the last layers here).
CONFIGURATIONS = {
    "whitebox, last layer": {"layers_to_exploit": [-1], "gradients_to_exploit": [-1]},
    "whitebox, last two layers": {"layers_to_exploit": [-3, -1], "gradients_to_exploit": [-1]},
    "blackbox": {
        "layers_to_exploit": [-1],
        "gradients_to_exploit": [],
        "exploit_loss": False,
        "exploit_label": False,
    },
}


#: The output-only attack must learn the labels' role from the logits alone: more epochs.
EPOCHS = {"whitebox, last layer": 8, "whitebox, last two layers": 8, "blackbox": 40}


@pytest.fixture(scope="module")
def v1_setting():
    data = synthetic_dataset()
    members = np.arange(300)
    recipe = memorising_recipe()
    model = recipe.train(data, members, seed=0).model
    return data, members, model


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_the_tutorial_configurations_run_and_detect_the_overfit_model(v1_setting, name, capsys):
    data, members, model = v1_setting
    handler = ml_privacy_meter.utils.attack_data.AttackData(
        x_population=data.x,
        y_population=data.y,
        x_target_train=data.x[members],
        y_target_train=data.y[members],
        batch_size=64,
        attack_percentage=50,
    )
    attackobj = ml_privacy_meter.attack.meminf.initialize(
        target_train_model=model,
        target_attack_model=model,
        train_datahandler=handler,
        attack_datahandler=handler,
        optimizer="adam",
        learning_rate=0.001,
        epochs=EPOCHS[name],
        **CONFIGURATIONS[name],
    )
    attackobj.train_attack()
    results = attackobj.test_attack()
    printed = capsys.readouterr().out
    assert printed.count("Attack test accuracy") == EPOCHS[name] and "AUC" in printed
    assert results["n_members"] == 150 and results["n_nonmembers"] == 150
    assert results["best_accuracy"] >= results["attack_accuracy"]
    low, high = results["auc_interval"]
    assert low <= results["auc"] <= high
    assert results["auc"] > 0.6, results["auc"]  # the model memorised its members
    assert set(results["tpr_at_fpr"]) == {0.001, 0.01, 0.1}


def test_v1_files_are_read(tmp_path, v1_setting):
    data, members, _ = v1_setting
    lines = [
        ",".join(f"{v:g}" for v in row) + f";{label}"
        for row, label in zip(data.x, data.y, strict=True)
    ]
    (tmp_path / "dataset.txt").write_text("\n".join(lines) + "\n")
    rows = np.column_stack([data.x[members], data.y[members]])
    np.save(tmp_path / "members.npy", rows)
    handler = ml_privacy_meter.attack_data(
        tmp_path / "dataset.txt", tmp_path / "members.npy", 32, 20
    )
    assert handler.attack_size == 60 and handler.x_members.shape == (300, 30)
    xm, ym, xn, yn = handler.load_train()
    assert len(ym) == len(yn) == 60
    assert len(xm) == len(xn) == 60
    # Non-members never include a member.
    member_rows = {r.tobytes() for r in handler.x_members}
    assert not any(r.tobytes() in member_rows for r in xn)
    with pytest.raises(InvalidAuditInput, match="dataset file"):
        ml_privacy_meter.attack_data(tmp_path / "absent.txt", tmp_path / "members.npy", 32, 20)


def test_misuse_is_named(v1_setting):
    data, members, model = v1_setting
    with pytest.raises(InvalidAuditInput, match="attack_percentage"):
        ml_privacy_meter.AttackData(data.x, data.y, data.x[members], data.y[members], 32, 0)
    handler = ml_privacy_meter.AttackData(data.x, data.y, data.x[members], data.y[members], 32, 50)
    with pytest.raises(InvalidAuditInput, match=r"target_train_model must be a torch\.nn\.Module"):
        ml_privacy_meter.initialize("model.h5", model, handler, handler)
    with pytest.raises(InvalidAuditInput, match="no gradient layer named 'dense_3'"):
        ml_privacy_meter.initialize(
            model, model, handler, handler, gradients_to_exploit=["dense_3"]
        )
