"""MindArmour's ``MembershipInference`` interface on top of miaudit.

Code written for ``mindarmour.privacy.evaluation.MembershipInference`` runs with the import
changed::

    inference = MembershipInference(model)
    inference.train(members_train, nonmembers_train, config)      # members first
    result = inference.eval(members_eval, nonmembers_eval, ["precision", "accuracy", "recall"])

``model`` may be a PyTorch module, a fitted scikit-learn classifier or a miaudit target;
datasets are ``(x, y)`` array pairs, a miaudit :class:`~miaudit.data.Dataset`, or an iterable
of ``(x, y)`` batches (a PyTorch ``DataLoader``, a MindSpore dataset). The attack models are
:class:`~miaudit.attacks.ClassifierAttack` instances fed MindArmour's ``[loss, logits]``
features. Beyond MindArmour, :meth:`MembershipInference.evaluate` sends the same scores
through :func:`miaudit.evaluation.evaluate_attack` (AUC, TPR at low FPR, ε bound).

Differences, each deliberate: scikit-learn 1.8+ rejects some old parameter spellings, which
are mapped with a warning; the loss is not clipped at 1e-12; ``n_jobs`` defaults to 1; results
keep the order of ``metrics``; evaluating on records the attack trained on warns.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from miaudit.attacks.classifier import (
    DEFAULT_FEATURES,
    ClassifierAttack,
    attack_features,
    check_param_grid,
)
from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.evaluation import DEFAULT_FPRS, evaluate_attack
from miaudit.evaluation.results import AttackEvaluation
from miaudit.targets.adapters import (
    CallableTarget,
    LabelOnlyTarget,
    PrecomputedTarget,
    SklearnTarget,
    Target,
    TorchTarget,
    as_target,
)

__all__ = ["METRICS", "MembershipInference", "TrainedOnEvaluatedRecordsWarning"]

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("precision", "accuracy", "recall")
"""The metrics MindArmour's ``eval`` knows."""

_TARGETS = (TorchTarget, SklearnTarget, CallableTarget, LabelOnlyTarget, PrecomputedTarget)


class TrainedOnEvaluatedRecordsWarning(UserWarning):
    """``eval`` was given records that also trained the attack models: flattering figures."""


def _mindarmour_metric(pred: np.ndarray, truth: np.ndarray, name: str) -> float:
    """Precision, accuracy or recall of hard decisions; -1 where undefined (MindArmour)."""
    if name == "accuracy":
        return float(np.mean(pred == truth))
    hits = int(np.count_nonzero(pred & truth))
    if name == "precision":
        n_pred = int(np.count_nonzero(pred))
        return hits / n_pred if n_pred else -1.0
    n_true = int(np.count_nonzero(truth))
    return hits / n_true if n_true else -1.0


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "asnumpy"):  # mindspore.Tensor
        return value.asnumpy()
    return np.asarray(value)


def _is_pair_item(item: Any) -> bool:
    return isinstance(item, tuple | list) and len(item) >= 2


def _as_arrays(data: Any, field: str, problems: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from a pair, a Dataset or an iterable of ``(x, y)`` batches."""
    empty = (np.empty((0, 0)), np.empty(0, dtype=np.int64))
    if isinstance(data, Dataset):
        return data.x, data.y
    if isinstance(data, tuple | list) and len(data) == 2 and not _is_pair_item(data[0]):
        x, y = _to_numpy(data[0]), _to_numpy(data[1])
    elif hasattr(data, "create_tuple_iterator") or (
        isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping | np.ndarray)
    ):
        batches = (
            data.create_tuple_iterator(output_numpy=True)
            if hasattr(data, "create_tuple_iterator")
            else data
        )
        xs, ys = [], []
        for i, batch in enumerate(batches):
            if not _is_pair_item(batch):
                problems.append(f"{field}: batch {i} is not an (x, y) pair")
                return empty
            xs.append(_to_numpy(batch[0]))
            ys.append(_to_numpy(batch[1]).reshape(-1))
        if not xs:
            problems.append(f"{field} holds no batches")
            return empty
        try:
            x, y = np.concatenate(xs), np.concatenate(ys)
        except ValueError as exc:
            problems.append(f"{field}: batches do not stack ({exc})")
            return empty
    else:
        problems.append(
            f"{field} must be an (x, y) pair of arrays, a miaudit Dataset or an iterable of "
            f"(x, y) batches, got {type(data).__name__}"
        )
        return empty
    n_before = len(problems)
    if x.ndim < 1 or len(x) == 0:
        problems.append(f"{field} holds no records")
    if y.ndim != 1 or len(y) != len(x):
        problems.append(f"{field}: y must be 1-d with one label per record, got shape {y.shape}")
    elif y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
        y = y.astype(np.int64)  # MindArmour casts labels to int32 as well
    elif y.dtype.kind not in "iu":
        problems.append(f"{field}: y must hold integer class labels, got dtype {y.dtype}")
    if len(problems) > n_before:
        return empty
    return x, y.astype(np.int64)


def _record_fingerprints(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A 64-bit hash per (record, label), identical for identical records.

    A random linear map of the record's bytes modulo 2**64 (fixed seed, so fingerprints
    compare across calls); distinct records collide with negligible probability.
    """
    flat = np.asarray(x).reshape(len(x), -1)
    if flat.dtype.kind == "f":
        flat = flat.astype(np.float32) + np.float32(0.0)  # one layout; -0.0 becomes 0.0
    raw = np.ascontiguousarray(flat).view(np.uint8).reshape(len(x), -1)
    coef = (
        np.random.default_rng(20240531)
        .integers(1, np.iinfo(np.int64).max, size=raw.shape[1], dtype=np.int64)
        .astype(np.uint64)
    )
    out = np.empty(len(x), dtype=np.uint64)
    step = max(1, (1 << 22) // max(1, raw.shape[1]))  # bound the uint64 temporary
    for start in range(0, len(x), step):  # chunks of records, not records
        chunk = raw[start : start + step].astype(np.uint64)
        out[start : start + step] = (chunk * coef).sum(axis=1, dtype=np.uint64)
    return out ^ (np.asarray(y, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))


def _check_config(attack_config: Any, problems: list[str]) -> list[tuple[str, dict | None]]:
    """Check MindArmour's ``[{"method": ..., "params": {...}}, ...]``; every problem at once."""
    if isinstance(attack_config, Mapping) or not isinstance(attack_config, list | tuple):
        problems.append(
            "attack_config must be a list of {'method': ..., 'params': {...}} dicts, got "
            f"{type(attack_config).__name__}"
        )
        return []
    if not attack_config:
        problems.append("attack_config is empty; give at least one attack")
    entries = []
    for i, entry in enumerate(attack_config):
        where = f"attack_config[{i}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where} must be a dict, got {type(entry).__name__}")
            continue
        missing = [k for k in ("method", "params") if k not in entry]
        extra = sorted(map(str, set(entry) - {"method", "params"}))
        if missing:
            problems.append(f"{where} lacks {' and '.join(map(repr, missing))}")
        if extra:
            problems.append(
                f"{where} has unknown keys {', '.join(map(repr, extra))}; only 'method' "
                "and 'params' are allowed"
            )
        if "method" not in entry:
            continue
        method = entry["method"]
        label = f"{where} (method {method!r})"
        params = entry.get("params")
        if "params" in entry and params is None:
            problems.append(f"{label}['params'] must be a dict (use {{}} for the defaults)")
            continue
        _, found = check_param_grid(method, params, where=f"{where}['params']")
        problems.extend(f"{label}: {p}" if p.startswith("method") else p for p in found)
        if isinstance(method, str):
            entries.append((method.lower(), params))
    return entries


class MembershipInference:
    """MindArmour's membership inference evaluation (Shokri et al. 2017, applied to the
    target itself): attack classifiers trained on records of known membership.

    Parameters
    ----------
    model : torch.nn.Module, scikit-learn classifier, callable or miaudit target
        The target. Raw models are wrapped with :func:`~miaudit.targets.as_target`: a
        PyTorch module gives logits, a scikit-learn classifier probabilities (whose logs
        then stand in for the logits; see :func:`~miaudit.attacks.attack_features`).
    n_jobs : int
        Parallel fits of each attack's search; -1 for all cores. MindArmour's default is
        -1; here it is 1, so a library call never takes over the machine.
    n_classes : int, optional
        Number of classes. By default taken from the target adapter, from a scikit-learn
        classifier's ``classes_``, or from the output width of one forward pass.
    features : sequence of str
        Attack features, MindArmour's ``("loss", "logits")`` by default.
    cv : int
        Folds of each attack's hyper-parameter search (MindArmour: 3).
    seed : int
        Seeds the searches and classifiers (MindArmour: unseeded, except
        ``random_state=1`` for mlp and 0 for rf).

    Attributes
    ----------
    target_ : Target
        The wrapped model, set by :meth:`train`.
    attacks_ : list of ClassifierAttack
        One fitted attack per ``attack_config`` entry, in order.
    methods_ : list of str
        Their methods, lower case.
    """

    def __init__(
        self,
        model: Any,
        n_jobs: int = 1,
        *,
        n_classes: int | None = None,
        features: Sequence[str] = DEFAULT_FEATURES,
        cv: int = 3,
        seed: int = 0,
    ) -> None:
        problems = []
        if (
            isinstance(n_jobs, bool)
            or not isinstance(n_jobs, int)
            or not (n_jobs == -1 or n_jobs > 0)
        ):
            problems.append(f"n_jobs must be -1 or a positive int, got {n_jobs!r}")
        if n_classes is not None and (
            isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2
        ):
            problems.append(f"n_classes must be an int >= 2, got {n_classes!r}")
        if model is None or isinstance(model, str | bytes | int | float | np.ndarray):
            problems.append(
                f"model must be the model to audit (a torch.nn.Module, a fitted scikit-learn "
                f"classifier, a callable or a miaudit target), got {type(model).__name__}"
            )
        raise_if_problems("MembershipInference", problems)
        self.model = model
        self.n_jobs = n_jobs
        self.n_classes = n_classes
        self.features = features
        self.cv = cv
        self.seed = seed

    # -- helpers ------------------------------------------------------------------------

    def _make_target(self, x: np.ndarray, y: np.ndarray) -> Target:
        model = self.model
        if isinstance(model, _TARGETS):
            return model
        n_classes = self.n_classes
        if n_classes is None:
            n_classes = self._infer_n_classes(x)
            if y.max() >= n_classes:
                raise InvalidAuditInput(
                    f"MembershipInference: the datasets hold label {int(y.max())} but the "
                    f"model appears to have {n_classes} classes; pass n_classes"
                )
        return as_target(model, n_classes=n_classes)

    def _infer_n_classes(self, x: np.ndarray) -> int:
        model = self.model
        classes = getattr(model, "classes_", None)
        if classes is not None:
            classes = np.asarray(classes)
            if classes.dtype.kind not in "iu" or classes.min() < 0:
                raise InvalidAuditInput(
                    f"MembershipInference: {type(model).__name__}.classes_ "
                    f"{classes.tolist()[:10]} are not class indices 0, 1, ...; refit the "
                    "model on integer labels"
                )
            return int(classes.max()) + 1
        try:
            import torch

            is_torch = isinstance(model, torch.nn.Module)
        except ImportError:  # pragma: no cover - torch is a dependency
            is_torch = False
        if is_torch:
            from miaudit.models.training import predict_logits

            out = predict_logits(model, x[:1])
        elif callable(model) and not hasattr(model, "fit"):
            out = np.asarray(model(x[:1]))
        else:
            raise InvalidAuditInput(
                f"MembershipInference: cannot tell how many classes a {type(model).__name__} "
                "has; pass n_classes"
            )
        if out.ndim != 2 or out.shape[1] < 2:
            raise InvalidAuditInput(
                f"MembershipInference: the model's output on one record has shape {out.shape}; "
                "expected (1, n_classes)"
            )
        return int(out.shape[1])

    def _features(
        self, dataset_train: Any, dataset_test: Any, method: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Features, is_member, labels and fingerprints of members then non-members."""
        problems: list[str] = []
        x_in, y_in = _as_arrays(dataset_train, "dataset_train", problems)
        x_out, y_out = _as_arrays(dataset_test, "dataset_test", problems)
        if not problems and x_in.shape[1:] != x_out.shape[1:]:
            problems.append(
                f"dataset_train records have shape {x_in.shape[1:]} but dataset_test "
                f"records {x_out.shape[1:]}"
            )
        raise_if_problems(f"MembershipInference.{method}", problems)
        x = np.concatenate([x_in, x_out])
        y = np.concatenate([y_in, y_out])
        if method == "train":
            self.target_ = self._make_target(x, y)
        feats = attack_features(self.target_, x, y, features=self.features)
        is_member = np.zeros(len(y), dtype=bool)
        is_member[: len(y_in)] = True
        return feats, is_member, y, _record_fingerprints(x, y)

    def _check_fitted(self, what: str) -> None:
        if not hasattr(self, "attacks_"):
            raise InvalidAuditInput(f"MembershipInference.{what}: call train(...) first")

    # -- MindArmour's interface ---------------------------------------------------------

    def train(
        self, dataset_train: Any, dataset_test: Any, attack_config: Sequence[Mapping]
    ) -> MembershipInference:
        """Train one attack model per ``attack_config`` entry.

        Parameters
        ----------
        dataset_train : pair, Dataset or iterable of batches
            Records the target trained on (members) that the attacker knows.
        dataset_test : pair, Dataset or iterable of batches
            Records the target did not train on (non-members) that the attacker knows.
        attack_config : list of dict
            ``[{"method": "knn", "params": {"n_neighbors": [3, 5, 7]}}, ...]``: methods
            ``lr``, ``knn``, ``mlp``, ``rf`` (and ``gb``), any case; ``params`` is the
            search space of that scikit-learn classifier, every value a list.

        Returns
        -------
        self
            (MindArmour returns None.)

        Raises
        ------
        InvalidAuditInput
            Every problem of the configuration at once, each naming its entry
            (``attack_config[2] (method 'rf')``) and field; bad datasets.
        """
        problems: list[str] = []
        entries = _check_config(attack_config, problems)
        raise_if_problems("MembershipInference.train", problems)
        feats, is_member, _, prints = self._features(dataset_train, dataset_test, "train")
        attacks = []
        with warnings.catch_warnings():
            # check_config already warned once per entry about mapped spellings.
            warnings.simplefilter("ignore", FutureWarning)
            for method, params in entries:
                attack = ClassifierAttack(
                    method=method,
                    params=params,
                    features=self.features,
                    cv=self.cv,
                    seed=self.seed,
                    n_jobs=self.n_jobs,
                )
                attacks.append(attack.fit(feats, is_member))
                log.info("trained %s attack (best %s)", method, attack.best_params_)
        self.attacks_ = attacks
        self.methods_ = [method for method, _ in entries]
        self.train_fingerprints_ = np.unique(prints)
        return self

    def membership_scores(
        self, dataset_train: Any, dataset_test: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every attack's membership scores on members then non-members.

        Returns
        -------
        scores : (n_attacks, n) float64
            Row ``k`` from ``attacks_[k]``; higher = more likely a member.
        is_member : (n,) bool
            True for the records of ``dataset_train``.
        labels : (n,) int64
            The records' classes.

        Warns
        -----
        TrainedOnEvaluatedRecordsWarning
            When some records also trained the attacks (MindArmour allows it; the figures
            are then optimistic).
        """
        self._check_fitted("membership_scores")
        feats, is_member, labels, prints = self._features(dataset_train, dataset_test, "eval")
        self._warn_overlap(prints)
        scores = np.stack([attack.score(feats) for attack in self.attacks_])
        return scores, is_member, labels

    def _warn_overlap(self, prints: np.ndarray) -> None:
        seen = np.isin(prints, self.train_fingerprints_)
        if seen.any():
            warnings.warn(
                f"{int(seen.sum())} of the {seen.size} evaluated records also trained the "
                "attack models, which then score records they have seen: the figures are "
                "optimistic. Evaluate on records kept out of train() (MindArmour's examples "
                "split each set 80/20)",
                TrainedOnEvaluatedRecordsWarning,
                stacklevel=3,
            )

    def eval(
        self,
        dataset_train: Any,
        dataset_test: Any,
        metrics: Sequence[str] = METRICS,
    ) -> list[dict[str, float]]:
        """MindArmour's figures: each attack model's own hard decisions, scored.

        Parameters
        ----------
        dataset_train, dataset_test
            Members and non-members to evaluate on, as in :meth:`train`; they should be
            records that :meth:`train` did not see.
        metrics : sequence of str
            Any of ``"precision"``, ``"accuracy"``, ``"recall"``.

        Returns
        -------
        list of dict
            One dict per ``attack_config`` entry, in its order, mapping each metric (in the
            order given) to a float. Precision is -1 when an attack predicts no member,
            recall -1 when there is no member (MindArmour's convention).
        """
        problems: list[str] = []
        if isinstance(metrics, str) or not isinstance(metrics, Sequence) or not metrics:
            problems.append(
                f"metrics must be a non-empty list drawn from {list(METRICS)}, got {metrics!r}"
            )
        else:
            unknown = [m for m in metrics if m not in METRICS]
            if unknown:
                problems.append(
                    f"metrics: unknown {', '.join(map(repr, unknown))}; allowed: "
                    f"{', '.join(METRICS)}"
                )
        raise_if_problems("MembershipInference.eval", problems)
        self._check_fitted("eval")
        feats, is_member, _, prints = self._features(dataset_train, dataset_test, "eval")
        self._warn_overlap(prints)
        names = list(dict.fromkeys(metrics))
        result = []
        for attack in self.attacks_:
            pred = attack.predict(feats)
            result.append({name: _mindarmour_metric(pred, is_member, name) for name in names})
        return result

    def evaluate(
        self,
        dataset_train: Any,
        dataset_test: Any,
        *,
        fprs: Sequence[float] = DEFAULT_FPRS,
        seed: int = 0,
    ) -> list[AttackEvaluation]:
        """The same attacks through miaudit's common evaluation.

        Scores of :meth:`membership_scores` go to
        :func:`~miaudit.evaluation.evaluate_attack`: AUC, ROC, TPR at each FPR with
        Clopper-Pearson intervals, and accuracy / precision / recall at a threshold chosen
        on half of these records and measured on the other half (unlike :meth:`eval`, which
        uses each attack model's own 0.5 decision on all records).

        Returns
        -------
        list of AttackEvaluation
            In ``attack_config`` order, named ``classifier_<method>`` (``_2``, ``_3`` for
            repeated methods).
        """
        scores, is_member, labels = self.membership_scores(dataset_train, dataset_test)
        out = []
        seen: dict[str, int] = {}
        for method, row in zip(self.methods_, scores, strict=True):
            seen[method] = seen.get(method, 0) + 1
            name = f"classifier_{method}" + (f"_{seen[method]}" if seen[method] > 1 else "")
            out.append(
                evaluate_attack(
                    name, "classifier", row, is_member, labels=labels, fprs=fprs, seed=seed
                )
            )
        return out
