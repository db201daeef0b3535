"""ML Privacy Meter v1's white-box attack flow, for PyTorch models, backed by miaudit.

ML Privacy Meter's first version (TensorFlow 2.1, no longer installable) ran Nasr et al.'s
attack with three calls. Scripts written for it run here with the import changed::

    import miaudit.compat.privacy_meter as ml_privacy_meter

    datahandler = ml_privacy_meter.utils.attack_data.AttackData(
        x_population=x_population, y_population=y_population,
        x_target_train=x_target_train, y_target_train=y_target_train,
        batch_size=100, attack_percentage=10, input_shape=(3, 32, 32), normalization=True)
    attackobj = ml_privacy_meter.attack.meminf.initialize(
        target_train_model=model, target_attack_model=model,
        train_datahandler=datahandler, attack_datahandler=datahandler,
        layers_to_exploit=[26], gradients_to_exploit=[6], epochs=10)
    attackobj.train_attack()
    results = attackobj.test_attack()

The older path-based loader, ``attack_data(dataset_path, member_dataset_path, batch_size,
attack_percentage, normalization, input_shape)``, reads v1's files: a ``.txt`` with one
record per line (features comma-separated, one field per image channel, fields separated
by ``;``, the label last) and a ``.npy`` of the members in the same layout (or a numeric
array whose last column is the label).

What is v1's and what is ours:

- *Data.* As v1: the attack trains on the first ``attack_percentage`` % of the members and
  as many non-members (population records that are not members, found by content), and is
  tested on the other members and as many other non-members. ``normalization`` standardises
  each channel with the members' mean and standard deviation (of values / 255), as v1 did.
- *Model.* A PyTorch ``nn.Module``; layers are 1-based indices as in v1 (outputs: among
  the leaf modules; gradients: among leaf modules that hold a weight) or module names.
- *Figures.* ``train_attack`` prints v1's per-epoch test accuracy and its best accuracy.
  That best figure picks the epoch on the test set itself and is optimistic; the results
  also carry the final epoch's accuracy and miaudit's evaluation of the final network's
  scores (AUC with its interval, TPR at 0.1 %, 1 %, 10 % FPR with Clopper-Pearson
  intervals, the held-out ε bound), which is what to report.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from miaudit.attacks.nasr_network import OPTIMIZERS, train_attack_network
from miaudit.attacks.whitebox import WhiteBoxAttack
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.evaluation import evaluate_attack
from miaudit.validation import check_readable_file, is_int, is_real

__all__ = ["AttackData", "attack", "attack_data", "initialize", "utils"]


def _rows_key(x: np.ndarray) -> np.ndarray:
    """One opaque value per record (its bytes), to find members among the population."""
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    return flat.view(np.dtype((np.void, flat.dtype.itemsize * flat.shape[1]))).ravel()


class AttackData:
    """v1's data handler: members, population, and the attack's train and test sets."""

    def __init__(
        self,
        x_population: np.ndarray,
        y_population: np.ndarray,
        x_target_train: np.ndarray,
        y_target_train: np.ndarray,
        batch_size: int,
        attack_percentage: float,
        normalization: bool = False,
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        problems: list[str] = []
        if not is_int(batch_size) or batch_size < 2:
            problems.append(f"batch_size must be an int >= 2, got {batch_size!r}")
        if not is_real(attack_percentage) or not 0 < attack_percentage < 100:
            problems.append(f"attack_percentage must be in (0, 100), got {attack_percentage!r}")
        x_pop, x_train = np.asarray(x_population), np.asarray(x_target_train)
        y_pop = np.asarray(y_population).reshape(-1)
        y_train = np.asarray(y_target_train).reshape(-1)
        if len(x_pop) != len(y_pop) or len(x_train) != len(y_train):
            problems.append("features and labels must have as many rows")
        if x_pop.shape[1:] != x_train.shape[1:]:
            problems.append(
                f"population records {x_pop.shape[1:]} and members {x_train.shape[1:]} "
                "differ in shape"
            )
        raise_if_problems("AttackData", problems)
        if input_shape is not None:
            x_pop = x_pop.reshape(len(x_pop), *input_shape)
            x_train = x_train.reshape(len(x_train), *input_shape)
        self.batch_size = int(batch_size)
        self.attack_percentage = float(attack_percentage)
        self.normalization = bool(normalization)
        self.input_shape = tuple(x_train.shape[1:])
        self.x_members = x_train.astype(np.float32)
        self.y_members = y_train.astype(np.int64)
        # Non-members: population records that are not members (by content), in a fixed
        # shuffled order, as v1 shuffled its population once.
        outside = ~np.isin(_rows_key(x_pop.astype(np.float32)), _rows_key(self.x_members))
        order = np.random.default_rng(0).permutation(np.flatnonzero(outside))
        self.x_nonmembers = x_pop[order].astype(np.float32)
        self.y_nonmembers = y_pop[order].astype(np.int64)
        self.attack_size = int(self.attack_percentage / 100.0 * len(self.x_members))
        if self.attack_size < 1:
            raise InvalidAuditInput(
                f"AttackData: {attack_percentage}% of {len(self.x_members)} members is no record"
            )
        test_size = len(self.x_members) - self.attack_size
        if len(self.x_nonmembers) < self.attack_size + test_size:
            raise InvalidAuditInput(
                f"AttackData: the population holds {len(self.x_nonmembers)} non-members but "
                f"the attack needs {self.attack_size} + {test_size}"
            )
        self.means = self.stddevs = None
        if self.normalization:
            axis = 1 if self.x_members.ndim == 4 and self.x_members.shape[1] in (1, 3) else -1
            moved = np.moveaxis(self.x_members, axis, -1).reshape(-1, self.x_members.shape[axis])
            self.channel_axis = axis
            self.means = list(moved.mean(axis=0) / 255.0)
            self.stddevs = list(moved.std(axis=0) / 255.0)

    def _normalised(self, x: np.ndarray) -> np.ndarray:
        if not self.normalization:
            return x
        shape = [1] * x.ndim
        shape[self.channel_axis] = -1
        mean = np.asarray(self.means, np.float32).reshape(shape)
        std = np.asarray(self.stddevs, np.float32).reshape(shape)
        return ((x / 255.0 - mean) / std).astype(np.float32)

    def load_train(self):
        """(member x, member y, non-member x, non-member y) the attack trains on."""
        a = self.attack_size
        return (
            self._normalised(self.x_members[:a]),
            self.y_members[:a],
            self._normalised(self.x_nonmembers[:a]),
            self.y_nonmembers[:a],
        )

    def load_test(self):
        """(member x, member y, non-member x, non-member y) the attack is tested on."""
        a = self.attack_size
        t = len(self.x_members) - a
        return (
            self._normalised(self.x_members[a:]),
            self.y_members[a:],
            self._normalised(self.x_nonmembers[a : a + t]),
            self.y_nonmembers[a : a + t],
        )


def _read_records(path: Path, input_shape: tuple[int, ...] | None):
    """v1's record layout: fields of comma-separated numbers, the label last."""
    check_readable_file(path, "dataset file")
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
        if arr.dtype.kind in "iuf":
            x, y = arr[:, :-1].astype(np.float32), arr[:, -1]
            return (x if input_shape is None else x.reshape(len(x), *input_shape)), y
        rows = arr.astype(str)
    else:
        text = path.read_text(encoding="utf-8").strip().splitlines()
        rows = np.array([line.strip().split(";") for line in text])
    try:
        fields = [
            np.array([np.array(v.split(","), dtype=np.float32) for v in rows[:, j]])
            for j in range(rows.shape[1] - 1)
        ]
        y = rows[:, -1].astype(np.float64)
    except ValueError as error:
        raise InvalidAuditInput(
            f"{path}: not v1's 'f,f,...;label' record layout ({error})"
        ) from None
    if len(fields) == 1:
        x = fields[0]
        return (x if input_shape is None else x.reshape(len(x), *input_shape)), y
    # One field per channel, each the channel's pixels in row-major order: NCHW.
    x = np.stack(fields, axis=1)
    if input_shape is not None:
        h, w = (
            (input_shape[0], input_shape[1]) if input_shape[-1] == len(fields) else input_shape[1:]
        )
        x = x.reshape(len(x), len(fields), h, w)
    return x, y


def attack_data(
    dataset_path: str | Path,
    member_dataset_path: str | Path,
    batch_size: int,
    attack_percentage: float,
    normalization: bool = False,
    input_shape: tuple[int, ...] | None = None,
) -> AttackData:
    """v1's path-based loader: the whole data set (``.txt``) and the members (``.npy``)."""
    x_pop, y_pop = _read_records(Path(dataset_path), input_shape)
    x_mem, y_mem = _read_records(Path(member_dataset_path), input_shape)
    return AttackData(x_pop, y_pop, x_mem, y_mem, batch_size, attack_percentage, normalization)


class initialize:
    """v1's ``ml_privacy_meter.attack.meminf.initialize``: configure Nasr et al.'s attack."""

    def __init__(
        self,
        target_train_model,
        target_attack_model,
        train_datahandler: AttackData,
        attack_datahandler: AttackData,
        device: Any = None,
        optimizer: str = "adam",
        model_name: str = "sample_model",
        layers_to_exploit: list | None = None,
        gradients_to_exploit: list | None = None,
        exploit_loss: bool = True,
        exploit_label: bool = True,
        learning_rate: float = 0.001,
        epochs: int = 100,
    ) -> None:
        from torch import nn

        problems: list[str] = []
        for name, model in (
            ("target_train_model", target_train_model),
            ("target_attack_model", target_attack_model),
        ):
            if not isinstance(model, nn.Module):
                problems.append(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
        for name, handler in (
            ("train_datahandler", train_datahandler),
            ("attack_datahandler", attack_datahandler),
        ):
            if not isinstance(handler, AttackData):
                problems.append(f"{name} must be an AttackData, got {type(handler).__name__}")
        if optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        raise_if_problems("initialize", problems)
        self.target_train_model = target_train_model
        self.target_attack_model = target_attack_model
        self.train_datahandler = train_datahandler
        self.attack_datahandler = attack_datahandler
        self.model_name = model_name
        self.epochs = epochs
        self.attack = WhiteBoxAttack(
            layers_to_exploit=list(layers_to_exploit or []),
            gradients_to_exploit=list(gradients_to_exploit or []),
            exploit_loss=exploit_loss,
            exploit_label=exploit_label,
            optimizer=optimizer,
            learning_rate=learning_rate,
            epochs=epochs,
            batch_size=train_datahandler.batch_size,
            train_on="known_members",
        )
        self.attack.check_params()
        self.attack.check_model(target_train_model)
        self.attack.check_model(target_attack_model)
        self.history: list[dict] = []
        self.results: dict | None = None

    def _features(self, model, xm, ym, xn, yn) -> tuple[dict, np.ndarray]:
        n_classes = self._n_classes(model, xm)
        x = np.concatenate([xm, xn])
        y = np.concatenate([ym, yn])
        inputs = self.attack._inputs(self._source(model, n_classes), x, y, n_classes)
        return inputs, np.arange(len(x)) < len(xm)

    def _source(self, model, n_classes: int):
        return self.attack._model_source(model, n_classes)

    @staticmethod
    def _n_classes(model, x) -> int:
        import torch

        with torch.no_grad():
            device = next(model.parameters()).device
            return int(model(torch.as_tensor(x[:1], device=device)).shape[1])

    def train_attack(self) -> dict:
        """Train the attack network; print v1's per-epoch test accuracy; return the results."""
        train = self._features(self.target_train_model, *self.train_datahandler.load_train())
        test_inputs, test_member = self._features(
            self.target_attack_model, *self.attack_datahandler.load_test()
        )
        n_classes = self._n_classes(self.target_train_model, self.train_datahandler.x_members)
        best = 0.0

        def on_epoch(epoch: int, predict, loss: float) -> None:
            nonlocal best
            accuracy = float(np.mean((predict(test_inputs) > 0) == test_member))
            best = max(best, accuracy)
            self.history.append({"epoch": epoch, "loss": loss, "accuracy": accuracy})
            print(
                f"Epoch {epoch} over: Attack test accuracy: {accuracy:.4f}, "
                f"Best accuracy: {best:.4f}"
            )

        predict = train_attack_network(
            train[0],
            train[1],
            n_classes=n_classes,
            width=self.attack.width,
            optimizer=self.attack.optimizer,
            learning_rate=float(self.attack.learning_rate),
            epochs=int(self.epochs),
            batch_size=int(self.attack.batch_size),
            on_epoch=on_epoch,
        )
        scores = predict(test_inputs)
        evaluation = evaluate_attack(self.model_name, "whitebox", scores, test_member)
        self.scores_, self.is_member_ = scores, test_member
        self.results = {
            "attack_accuracy": self.history[-1]["accuracy"] if self.history else math.nan,
            "best_accuracy": best,
            "best_accuracy_note": "the epoch is chosen on the test records (v1's figure); "
            "report the final epoch's figures",
            "auc": evaluation.auc,
            "auc_interval": evaluation.auc_ci,
            "tpr_at_fpr": {f: p.tpr for f, p in evaluation.tpr_at_fpr.items()},
            "tpr_at_fpr_interval": {
                f: (p.ci_low, p.ci_high) for f, p in evaluation.tpr_at_fpr.items()
            },
            "epsilon_lower_bound": evaluation.epsilon.epsilon,
            "n_members": evaluation.n_members,
            "n_nonmembers": evaluation.n_nonmembers,
        }
        self.evaluation = evaluation
        return self.results

    def test_attack(self) -> dict:
        """v1 drew plots here; this returns the results of :meth:`train_attack` (training
        first when it has not run)."""
        if self.results is None:
            self.train_attack()
        r = self.results
        print(
            f"{self.model_name}: AUC {r['auc']:.3f} "
            f"[{r['auc_interval'][0]:.3f}, {r['auc_interval'][1]:.3f}], TPR at 1% FPR "
            f"{r['tpr_at_fpr'][0.01]:.3f}, final accuracy {r['attack_accuracy']:.3f}"
        )
        return r


#: ``ml_privacy_meter.utils.attack_data.AttackData`` and ``.attack.meminf.initialize``.
utils = SimpleNamespace(attack_data=SimpleNamespace(AttackData=AttackData, attack_data=attack_data))
attack = SimpleNamespace(meminf=SimpleNamespace(initialize=initialize))
