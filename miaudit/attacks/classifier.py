"""Trained attack classifiers: a binary classifier learns "member or not" from model outputs.

Shokri et al. (S&P 2017) train an attack model on a model's answers to records whose
membership is known; MindArmour's ``MembershipInference`` applies the idea directly to the
target: features ``[loss, logits]`` per record, an attacker that knows the membership of part
of the records, and one of four scikit-learn classifiers tuned by cross-validated search.
:func:`attack_features` builds those features from any target; :class:`ClassifierAttack` is
the attack itself.

A learned attack scores only records it did not train on. :meth:`ClassifierAttack.cross_fit_scores`
is how an audit obtains a score for *every* audited record under that rule: the records are
split into folds, a fresh attack is trained on all folds but one and scores the held-out
fold, and assertions prove that every record was scored exactly once, by a model that never
saw it. This assumes an attacker who knows the membership of the other folds' records, a
stronger attacker than the population-based attacks, and the one MindArmour evaluates.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    ParameterGrid,
    RandomizedSearchCV,
    StratifiedKFold,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from miaudit.attacks.protocol import Requirements
from miaudit.errors import AccessLevelError, InvalidAuditInput, raise_if_problems
from miaudit.signals.evidence import Evidence
from miaudit.signals.table import (
    SignalTable,
    check_query_labels,
    compute_signals,
    signals_from_labels,
)
from miaudit.targets.adapters import AccessLevel, Target, require_access
from miaudit.validation import is_int

try:  # scikit-learn's own value checks, run early so that every bad value is listed at once
    from sklearn.utils._param_validation import (
        InvalidParameterError,
        validate_parameter_constraints,
    )
except ImportError:  # pragma: no cover - private API moved; sklearn still checks at fit time
    validate_parameter_constraints = None
    InvalidParameterError = ValueError

__all__ = [
    "CLASSIFIER_METHODS",
    "DEFAULT_FEATURES",
    "FEATURES",
    "ClassifierAttack",
    "FeatureSubstitutionWarning",
    "attack_features",
    "check_param_grid",
    "feature_names",
]

log = logging.getLogger(__name__)

DEFAULT_FEATURES: tuple[str, ...] = ("loss", "logits")
"""What MindArmour feeds its attack models: the cross-entropy loss, then the logits."""

# feature -> (access level it needs, columns: 1 or "classes", what it is)
FEATURES: dict[str, tuple[AccessLevel, str, str]] = {
    "loss": (AccessLevel.PROBABILITIES, "1", "cross-entropy loss -log p_y"),
    "logits": (
        AccessLevel.PROBABILITIES,
        "classes",
        "logits z; log-probabilities log p when the target gives probabilities only",
    ),
    "probabilities": (AccessLevel.PROBABILITIES, "classes", "softmax probabilities p"),
    "sorted_probabilities": (
        AccessLevel.PROBABILITIES,
        "classes",
        "probabilities sorted in decreasing order (class-agnostic, Salem et al. 2019)",
    ),
    "one_hot_label": (AccessLevel.LABEL_ONLY, "classes", "one-hot true label"),
    "confidence": (AccessLevel.PROBABILITIES, "1", "true-class probability p_y"),
    "entropy": (AccessLevel.PROBABILITIES, "1", "prediction entropy"),
    "modified_entropy": (AccessLevel.PROBABILITIES, "1", "modified entropy (Song & Mittal)"),
    "scaled_logit": (AccessLevel.PROBABILITIES, "1", "log(p_y / (1 - p_y))"),
    "correct": (AccessLevel.LABEL_ONLY, "1", "1 if the prediction is the true label"),
}

# method -> (scikit-learn classifier, how its parameters are searched: "grid" or "random")
CLASSIFIER_METHODS: dict[str, tuple[type, str]] = {
    "lr": (LogisticRegression, "grid"),
    "knn": (KNeighborsClassifier, "grid"),
    "mlp": (MLPClassifier, "grid"),
    "rf": (RandomForestClassifier, "random"),
    "gb": (GradientBoostingClassifier, "grid"),
}

# Which LogisticRegression solvers accept which penalty (scikit-learn's solver table).
_SOLVERS_FOR_PENALTY: dict[str | None, frozenset[str]] = {
    "l2": frozenset({"lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"}),
    "l1": frozenset({"liblinear", "saga"}),
    "elasticnet": frozenset({"saga"}),
    None: frozenset({"lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"}),
}


class FeatureSubstitutionWarning(UserWarning):
    """A requested attack feature was replaced by its closest equivalent (log-probabilities
    in place of logits for a target that only gives probabilities)."""


# --------------------------------------------------------------------------------- features


def check_feature_names(features: Any, problems: list[str], field: str = "features") -> tuple:
    if isinstance(features, str) or not isinstance(features, Sequence):
        problems.append(
            f"{field} must be a sequence of feature names such as ('loss', 'logits'), "
            f"got {features!r}"
        )
        return ()
    names = tuple(features)
    if not names:
        problems.append(f"{field} must name at least one feature")
    unknown = [f for f in names if f not in FEATURES]
    if unknown:
        problems.append(
            f"{field}: unknown {', '.join(map(repr, unknown))}; known: {', '.join(FEATURES)}"
        )
    repeated = sorted({f for f in names if names.count(f) > 1}, key=str)
    if repeated:
        problems.append(f"{field}: {', '.join(map(repr, repeated))} named twice")
    return names


def _features_access(names: tuple[str, ...]) -> AccessLevel:
    return max((FEATURES[n][0] for n in names), default=AccessLevel.LABEL_ONLY)


def feature_names(features: Sequence[str], n_classes: int) -> list[str]:
    """Column names of :func:`attack_features`' matrix, e.g. ``["loss", "logits[0]", ...]``."""
    problems: list[str] = []
    names = check_feature_names(features, problems)
    raise_if_problems("feature_names", problems)
    out = []
    for name in names:
        if FEATURES[name][1] == "1":
            out.append(name)
        else:
            out.extend(f"{name}[{c}]" for c in range(n_classes))
    return out


def attack_features(
    target: Target,
    x: np.ndarray,
    y: np.ndarray,
    *,
    features: Sequence[str] = DEFAULT_FEATURES,
) -> np.ndarray:
    """Per-record attack features from one query of ``target``.

    Parameters
    ----------
    target : Target
        The audited model behind its access adapter.
    x : np.ndarray
        ``(n, ...)`` records (record ids for a target whose ``queries_by_index`` is True).
    y : (n,) int array
        True classes of the records.
    features : sequence of str
        Column blocks, in this order. Default ``("loss", "logits")``, MindArmour's features.
        Also ``probabilities``, ``sorted_probabilities``, ``one_hot_label`` (``n_classes``
        columns each) and the signals ``confidence``, ``entropy``, ``modified_entropy``,
        ``scaled_logit``, ``correct`` (one column each; see :mod:`miaudit.signals`).

    Returns
    -------
    (n, d) float64
        ``d`` is the sum of the blocks' widths; :func:`feature_names` names the columns.

    Raises
    ------
    AccessLevelError
        A feature needs more than the target's access level (only ``correct`` and
        ``one_hot_label`` work on a label-only target).
    InvalidAuditInput
        Unknown features, labels that do not match ``x`` or the target's classes.

    Warns
    -----
    FeatureSubstitutionWarning
        When ``logits`` are asked of a target that gives probabilities only: the block then
        holds the log-probabilities ``log p = z - logsumexp(z)``. They equal the logits up to
        one additive constant per record, which the softmax discards, so the two carry the
        same information about the prediction; what is lost is the constant itself, and
        precision where a probability was rounded to 0 (floored at the smallest double).

    Notes
    -----
    The loss is the exact ``-log p_y`` of :mod:`miaudit.signals`; MindArmour clips ``p`` to
    ``[1e-12, 1 - 1e-12]`` first, which caps the loss at about 27.6.
    """
    problems: list[str] = []
    names = check_feature_names(features, problems)
    raise_if_problems("attack_features", problems)
    labels = check_query_labels(x, y, target.n_classes, "attack_features")
    needed = _features_access(names)
    require_access(target, needed, f"attack features {', '.join(names)}")

    if needed <= AccessLevel.LABEL_ONLY:
        table: SignalTable = signals_from_labels(target.predict_labels(x), labels)
    else:
        table = compute_signals(target, x, labels)
    return features_from_signals(
        table, names, n_classes=target.n_classes, source=target.description
    )


def features_from_signals(
    table: SignalTable,
    features: Sequence[str] = DEFAULT_FEATURES,
    *,
    n_classes: int,
    source: str = "the target",
) -> np.ndarray:
    """Attack features from signals already computed (the audit queries the target once).

    Same blocks and warnings as :func:`attack_features`; ``n_classes`` sizes the one-hot
    block. A feature the table cannot provide (e.g. ``loss`` from a label-only target) is
    an :class:`~miaudit.errors.AccessLevelError`.
    """
    problems: list[str] = []
    names = check_feature_names(features, problems)
    raise_if_problems("features_from_signals", problems)
    needs_outputs = _features_access(names) > AccessLevel.LABEL_ONLY
    if needs_outputs and table.log_proba is None:
        raise AccessLevelError(
            f"attack features {', '.join(names)} need probability or logit access, but "
            f"{source} gives labels only"
        )
    log_out = table.logits if table.logits is not None else table.log_proba
    if "logits" in names and table.logits is None:
        warnings.warn(
            f"{source} gives probabilities only: the 'logits' attack features are "
            "log-probabilities (the logits up to a per-record constant)",
            FeatureSubstitutionWarning,
            stacklevel=2,
        )
    labels = table.labels
    blocks = []
    for name in names:
        if name == "logits":
            blocks.append(log_out)
        elif name in ("probabilities", "sorted_probabilities"):
            proba = np.exp(table.log_proba)
            blocks.append(-np.sort(-proba, axis=1) if name == "sorted_probabilities" else proba)
        elif name == "one_hot_label":
            blocks.append(np.eye(n_classes)[labels])
        else:
            blocks.append(table.get(name)[:, None])
    return np.ascontiguousarray(np.hstack(blocks), dtype=np.float64)


# ------------------------------------------------------------------------------ param grids


def _is_integral_float(value: Any) -> bool:
    return isinstance(value, float) and value.is_integer()


def _lr_penalty_deprecated() -> bool:
    """scikit-learn >= 1.8 deprecates ``penalty`` for ``l1_ratio`` (and ``C=inf`` for none)."""
    return LogisticRegression().get_params().get("penalty") == "deprecated"


def _map_old_spellings(method: str, grid: dict, where: str, problems: list[str]) -> None:
    """Rewrite, in place and with a warning, values and names modern scikit-learn rejects."""
    notes: list[str] = []

    def replace(name: str, old: Any, new: Any, why: str) -> None:
        if name in grid and any(_same(v, old) for v in grid[name]):
            grid[name] = _dedup([new if _same(v, old) else v for v in grid[name]])
            notes.append(f"{name}={old!r} -> {new!r} ({why})")

    if method in ("rf", "gb"):
        # 'auto' meant sqrt(n_features) for forests and all features for boosting.
        replace("max_features", "auto", "sqrt" if method == "rf" else None, "removed in 1.3")
        for name, smallest in (("min_samples_split", 2), ("min_samples_leaf", 1)):
            if name in grid:
                values = grid[name]
                if any(_is_integral_float(v) and v >= smallest for v in values):
                    grid[name] = _dedup(
                        [int(v) if _is_integral_float(v) and v >= smallest else v for v in values]
                    )
                    notes.append(f"{name}: whole-number floats read as counts")
    if method == "rf" and "min_impurity_split" in grid:
        if all(v is None for v in grid["min_impurity_split"]):
            del grid["min_impurity_split"]
            notes.append("min_impurity_split=None dropped (parameter removed in 1.0)")
        else:
            problems.append(
                f"{where}['min_impurity_split'] was removed from scikit-learn in 1.0; "
                "use min_impurity_decrease"
            )
    if method == "gb":
        replace("loss", "deviance", "log_loss", "renamed in 1.1")
        if "criterion" in grid and GradientBoostingClassifier().criterion == "deprecated":
            del grid["criterion"]
            notes.append("criterion dropped (deprecated: always friedman_mse)")
    if method == "lr":
        if "multi_class" in grid and "multi_class" not in LogisticRegression().get_params():
            del grid["multi_class"]
            notes.append("multi_class dropped (removed; membership is a binary task)")
    if notes:
        warnings.warn(
            f"{where}: old scikit-learn spellings mapped: {'; '.join(notes)}",
            FutureWarning,
            stacklevel=3,
        )


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _dedup(values: list) -> list:
    out: list = []
    for v in values:
        if not any(_same(v, w) for w in out):
            out.append(v)
    return out


def _lr_penalty_grids(grid: dict, where: str, problems: list[str]) -> list[dict]:
    """Split a LogisticRegression grid on ``penalty`` into sub-grids modern sklearn accepts.

    MindArmour-era configs search ``penalty`` (with the string ``'none'``, removed in 1.4)
    alongside ``solver``; scikit-learn 1.8 deprecates ``penalty`` for ``l1_ratio`` and
    ``C=inf``. Each penalty becomes its own sub-grid, restricted to the solvers that support
    it (so no combination fails at fit time).
    """
    if "penalty" not in grid:
        return [grid]
    new_api = _lr_penalty_deprecated()
    rest = {k: v for k, v in grid.items() if k != "penalty"}
    solvers = rest.get("solver")
    notes: list[str] = []
    out: list[dict] = []
    for value in _dedup(list(grid["penalty"])):
        key = value.lower() if isinstance(value, str) else value
        if key == "none":
            notes.append("'none' -> no penalty (the string was removed in 1.4)")
            key = None
        if not (key is None or isinstance(key, str)) or key not in _SOLVERS_FOR_PENALTY:
            problems.append(
                f"{where}['penalty']: unknown value {value!r}; allowed: 'l2', 'l1', "
                "'elasticnet', None"
            )
            continue
        if key == "elasticnet" and "l1_ratio" not in rest:
            problems.append(f"{where}: penalty 'elasticnet' needs an 'l1_ratio' list in params")
            continue
        sub = dict(rest)
        allowed = _SOLVERS_FOR_PENALTY[key]
        if solvers is None:
            if "lbfgs" not in allowed:  # the default solver cannot do it
                choice = "liblinear" if key == "l1" else "saga"
                sub["solver"] = [choice]
                notes.append(f"penalty {key!r} searched with solver {choice!r}")
        else:
            kept = [s for s in solvers if s in allowed]
            if not kept:
                problems.append(
                    f"{where}: penalty {key!r} needs a solver among {sorted(allowed)}, "
                    f"got {list(solvers)}"
                )
                continue
            if len(kept) < len(solvers):
                notes.append(f"penalty {key!r} searched with solvers {kept} only")
            sub["solver"] = kept
        if new_api:
            if key is None:
                if "C" in sub:
                    notes.append("C is ignored without a penalty")
                sub["C"] = [np.inf]
                sub.pop("l1_ratio", None)
            elif key in ("l1", "l2"):
                sub["l1_ratio"] = [1.0 if key == "l1" else 0.0]
        else:
            sub["penalty"] = [key]
            if key != "elasticnet":
                sub.pop("l1_ratio", None)
        out.append(sub)
    if new_api:
        notes.append("penalty is deprecated since scikit-learn 1.8: translated to l1_ratio / C")
    if notes:
        warnings.warn(
            f"{where}: LogisticRegression penalty mapped: {'; '.join(_dedup(notes))}",
            FutureWarning,
            stacklevel=3,
        )
    return out


def check_param_grid(
    method: Any, params: Any, *, where: str = "params"
) -> tuple[list[dict[str, list]], list[str]]:
    """Validate and modernise a MindArmour-style search space for one attack method.

    Parameters
    ----------
    method : str
        ``"lr"``, ``"knn"``, ``"mlp"``, ``"rf"`` or ``"gb"`` (any case).
    params : dict or None
        ``{parameter: [candidate values]}`` of the scikit-learn classifier. A value must be
        a list, tuple or 1-d array of candidates (``"rf"`` also takes scipy distributions,
        sampled by its randomised search). ``None`` or ``{}``: the defaults, no search.
    where : str
        How messages refer to ``params`` (e.g. ``"attack_config[2]['params']"``).

    Returns
    -------
    grids : list of dict
        One or more scikit-learn grids (a list, because a ``penalty`` search is split per
        penalty); empty when there is nothing to search.
    problems : list of str
        Every problem found; the caller raises them together.

    Warns
    -----
    FutureWarning
        When old spellings are rewritten: ``max_features='auto'``, LogisticRegression's
        ``penalty`` (``'none'``, and ``l1_ratio`` since scikit-learn 1.8), whole-number
        float ``min_samples_*``, removed parameters set to their no-op value.
    """
    problems: list[str] = []
    key = method.lower() if isinstance(method, str) else method
    if key not in CLASSIFIER_METHODS:
        problems.append(
            f"method must be one of {', '.join(CLASSIFIER_METHODS)} (any case), got {method!r}"
        )
        return [], problems
    if params is None:
        return [], problems
    if not isinstance(params, Mapping):
        problems.append(
            f"{where} must be a dict of {{parameter: [values]}}, got {type(params).__name__}"
        )
        return [], problems
    cls, search = CLASSIFIER_METHODS[key]
    grid: dict[str, list] = {}
    for name, values in params.items():
        if not isinstance(name, str):
            problems.append(f"{where}: parameter names must be strings, got {name!r}")
        elif search == "random" and hasattr(values, "rvs"):
            grid[name] = values  # a distribution for the randomised search
        elif isinstance(values, str | bytes | Mapping) or not isinstance(
            values, Sequence | np.ndarray
        ):
            problems.append(
                f"{where}[{name!r}] must be a list of candidate values, got {values!r} "
                f"(write [{values!r}] for a single value)"
            )
        elif isinstance(values, np.ndarray) and values.ndim != 1:
            problems.append(f"{where}[{name!r}] must be a 1-d list, got shape {values.shape}")
        elif len(values) == 0:
            problems.append(f"{where}[{name!r}] is an empty list")
        else:
            grid[name] = [v.item() if isinstance(v, np.generic) else v for v in values]
    lists = {k: v for k, v in grid.items() if isinstance(v, list)}
    _map_old_spellings(key, lists, where, problems)
    grid = {**{k: v for k, v in grid.items() if not isinstance(v, list)}, **lists}
    allowed = cls().get_params()
    unknown = sorted(k for k in grid if k not in allowed)
    if unknown:
        problems.append(
            f"{where}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))} for {key} ({cls.__name__}); "
            f"allowed: {', '.join(sorted(allowed))}"
        )
        grid = {k: v for k, v in grid.items() if k in allowed}
    if validate_parameter_constraints is not None:
        constraints = getattr(cls, "_parameter_constraints", {})
        for name, values in grid.items():
            if name == "penalty" or name not in constraints or not isinstance(values, list):
                continue  # penalty values are checked (and translated) below
            for v in values:
                try:
                    validate_parameter_constraints(
                        {name: constraints[name]}, {name: v}, caller_name=cls.__name__
                    )
                except InvalidParameterError as exc:
                    problems.append(f"{where}[{name!r}]: {exc}")
    grids = _lr_penalty_grids(grid, where, problems) if key == "lr" else [grid]
    return [g for g in grids if g], problems


def _base_estimator(method: str, seed: int) -> BaseEstimator:
    """The classifier before search, with MindArmour's defaults where it set any."""
    if method == "lr":
        return LogisticRegression(C=1.0, max_iter=300, random_state=seed)
    if method == "knn":
        return KNeighborsClassifier()
    if method == "mlp":
        return MLPClassifier(max_iter=300, random_state=seed)
    if method == "rf":
        return RandomForestClassifier(max_depth=2, random_state=seed)
    return GradientBoostingClassifier(random_state=seed)


def _grid_size(grids: list[dict]) -> int | None:
    if any(not isinstance(v, list) for g in grids for v in g.values()):
        return None  # a distribution: unbounded
    return len(ParameterGrid(grids)) if grids else 1


# -------------------------------------------------------------------------------- the attack


class ClassifierAttack(BaseEstimator):
    """A binary classifier trained on records of known membership (Shokri et al. 2017, as
    applied to the target itself by MindArmour).

    Parameters
    ----------
    method : str
        ``"lr"`` (logistic regression), ``"knn"`` (k nearest neighbours), ``"mlp"``
        (multi-layer perceptron), ``"rf"`` (random forest) or ``"gb"`` (gradient boosting);
        any case.
    params : dict, optional
        Search space ``{parameter: [values]}`` of that scikit-learn classifier (see
        :func:`check_param_grid`, which also maps old spellings such as
        ``max_features='auto'``). ``rf`` draws ``n_iter`` candidates at random
        (``RandomizedSearchCV``, as MindArmour does); the others try every combination
        (``GridSearchCV``). Each candidate is scored by ``cv``-fold stratified
        cross-validated accuracy, MindArmour's criterion. None: the defaults, no search.
    features : sequence of str
        Which :func:`attack_features` the attack is meant for; sets
        :attr:`required_access`. The matrix given to :meth:`fit` is taken as is.
    cv : int
        Folds of the hyper-parameter search (at least 2).
    n_iter : int
        Candidates drawn by ``rf``'s randomised search (capped at the grid's size).
    seed : int
        Seeds the search folds, the random search and the classifiers' own randomness.
    n_jobs : int
        Parallel fits of the search (scikit-learn's ``n_jobs``; -1 for all cores).

    Attributes
    ----------
    model_ : sklearn estimator
        The fitted search (or pipeline): standardisation, then the classifier.
    best_params_ : dict
        The chosen classifier parameters (empty without a search).
    n_features_in_ : int
    train_record_ids_ : (n_train,) int64 or None
        Ids of the training records when :meth:`fit` was given them; :meth:`score` refuses
        to score these.

    Notes
    -----
    Features are standardised inside the pipeline (fitted on the training records only):
    loss and logits live on very different scales, and k-NN and the MLP need comparable ones.
    """

    family: ClassVar[str] = "classifier"

    def __init__(
        self,
        *,
        method: str = "lr",
        params: dict | None = None,
        features: Sequence[str] = DEFAULT_FEATURES,
        cv: int = 3,
        n_iter: int = 7,
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.method = method
        self.params = params
        self.features = features
        self.cv = cv
        self.n_iter = n_iter
        self.seed = seed
        self.n_jobs = n_jobs

    @property
    def required_access(self) -> AccessLevel:
        """The access level :func:`attack_features` needs for ``features``."""
        problems: list[str] = []
        names = check_feature_names(self.features, problems)
        raise_if_problems("ClassifierAttack", problems)
        return _features_access(names)

    # -- validation helpers -------------------------------------------------------------

    @property
    def requirements(self) -> Requirements:
        return Requirements(access=self.required_access, membership=True)

    def check_params(self) -> None:
        """Raise, naming each bad parameter, before the audit trains or queries anything."""
        problems: list[str] = []
        self._check_settings(problems)
        problems.extend(check_param_grid(self.method, self.params)[1])
        raise_if_problems("ClassifierAttack", problems)

    def default_label(self) -> str:
        return f"classifier_{self.method}"

    def _check_settings(self, problems: list[str]) -> None:
        check_feature_names(self.features, problems)
        if not is_int(self.cv) or self.cv < 2:
            problems.append(f"cv must be an int >= 2, got {self.cv!r}")
        if not is_int(self.n_iter) or self.n_iter < 1:
            problems.append(f"n_iter must be an int >= 1, got {self.n_iter!r}")
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        if not is_int(self.n_jobs) or not (self.n_jobs == -1 or self.n_jobs >= 1):
            problems.append(f"n_jobs must be -1 or a positive int, got {self.n_jobs!r}")

    @staticmethod
    def _check_matrix(features: Any, problems: list[str]) -> np.ndarray:
        try:
            f = np.asarray(features, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"features must be a numeric (n, d) array, got {type(features)}")
            return np.empty((0, 0))
        if f.ndim != 2 or f.shape[1] == 0:
            problems.append(f"features must be a 2-d (n, d) array with d >= 1, got {f.shape}")
        elif not np.isfinite(f).all():
            bad = int((~np.isfinite(f)).any(axis=1).sum())
            problems.append(f"features: {bad} rows contain NaN or infinite values")
        return f

    @staticmethod
    def _check_ids(record_ids: Any, n: int, problems: list[str]) -> np.ndarray | None:
        if record_ids is None:
            return None
        ids = np.asarray(record_ids)
        if ids.shape != (n,) or (ids.size and ids.dtype.kind not in "iu"):
            problems.append(f"record_ids must be ({n},) integers, got {ids.dtype} {ids.shape}")
            return None
        if np.unique(ids).size != ids.size:
            problems.append("record_ids must be unique")
        return ids.astype(np.int64)

    # -- the estimator ------------------------------------------------------------------

    def fit(
        self,
        features: np.ndarray | Evidence,
        is_member: np.ndarray | None = None,
        *,
        record_ids: np.ndarray | None = None,
    ) -> Self:
        """Search the classifier's parameters and fit it on records of known membership.

        Parameters
        ----------
        features : (n, d) array of float
            From :func:`attack_features`.
        is_member : (n,) array of bool
            The attacker's knowledge: True for records the target trained on. Each side
            needs at least ``cv`` records.
        record_ids : (n,) array of int, optional
            Ids of the records; :meth:`score` then refuses these ids.

        Returns
        -------
        self

        Raises
        ------
        InvalidAuditInput
            Listing every problem with the settings, the search space and the arrays; or
            scikit-learn's reason when a candidate fails to fit.
        """
        if isinstance(features, Evidence):
            return self._cross_fit_evidence(features)
        problems: list[str] = []
        self._check_settings(problems)
        grids, grid_problems = check_param_grid(self.method, self.params)
        problems.extend(grid_problems)
        f = self._check_matrix(features, problems)
        m = np.asarray(is_member if is_member is not None else [])
        if m.ndim != 1 or not (
            m.dtype == np.bool_ or (m.dtype.kind in "iuf" and np.isin(m, (0, 1)).all())
        ):
            problems.append(f"is_member must be a 1-d boolean array, got {m.dtype} {m.shape}")
        elif f.ndim == 2 and len(f) != m.size:
            problems.append(f"features has {len(f)} rows but is_member has {m.size}")
        else:
            n_pos = int(np.count_nonzero(m))
            need = self.cv if is_int(self.cv) else 2
            if min(n_pos, m.size - n_pos) < need:
                problems.append(
                    f"is_member has {n_pos} members and {m.size - n_pos} non-members; "
                    f"the {need}-fold search needs at least {need} of each"
                )
        ids = self._check_ids(record_ids, m.size if m.ndim == 1 else -1, problems)
        raise_if_problems("ClassifierAttack", problems)

        method = self.method.lower()
        m = m.astype(bool)
        pipe = Pipeline([("scale", StandardScaler()), ("clf", _base_estimator(method, self.seed))])
        prefixed = [{f"clf__{k}": v for k, v in g.items()} for g in grids]
        size = _grid_size(grids)
        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.seed)
        if size == 1:  # nothing to choose between: no search
            model: Any = pipe.set_params(**{k: v[0] for g in prefixed for k, v in g.items()})
        elif CLASSIFIER_METHODS[method][1] == "random":
            model = RandomizedSearchCV(
                pipe,
                prefixed,
                n_iter=self.n_iter if size is None else min(self.n_iter, size),
                cv=folds,
                random_state=self.seed,
                n_jobs=self.n_jobs,
                error_score="raise",
            )
        else:
            model = GridSearchCV(pipe, prefixed, cv=folds, n_jobs=self.n_jobs, error_score="raise")
        with warnings.catch_warnings():
            # Candidates of a search often stop at max_iter; only the chosen one matters,
            # and it is checked below.
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                model.fit(f, m)
            except ValueError as exc:
                raise InvalidAuditInput(
                    f"ClassifierAttack({method}): scikit-learn could not fit the attack: "
                    f"{str(exc).strip().splitlines()[-1]}"
                ) from exc
        best = model.best_estimator_ if hasattr(model, "best_estimator_") else model
        clf = best.named_steps["clf"]
        max_iter = getattr(clf, "max_iter", None)
        n_iter_done = np.max(getattr(clf, "n_iter_", 0))
        if max_iter is not None and n_iter_done >= max_iter:
            warnings.warn(
                f"ClassifierAttack({method}): the chosen classifier stopped at max_iter="
                f"{max_iter} before converging; add larger max_iter values to params",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.model_ = model
        self.best_params_ = {
            k.removeprefix("clf__"): v for k, v in getattr(model, "best_params_", {}).items()
        }
        self.n_features_in_ = int(f.shape[1])
        self.train_record_ids_ = ids
        log.debug("ClassifierAttack(%s) fitted; best params %s", method, self.best_params_)
        return self

    def _checked_rows(self, features: Any, record_ids: Any, owner: str) -> np.ndarray:
        check_is_fitted(self, "model_")
        problems: list[str] = []
        f = self._check_matrix(features, problems)
        if f.ndim == 2 and f.shape[1] and f.shape[1] != self.n_features_in_:
            problems.append(
                f"features has {f.shape[1]} columns but the attack was fitted on "
                f"{self.n_features_in_}"
            )
        ids = self._check_ids(record_ids, len(f) if f.ndim == 2 else -1, problems)
        if ids is not None and self.train_record_ids_ is not None:
            seen = np.isin(ids, self.train_record_ids_)
            if seen.any():
                problems.append(
                    f"{int(seen.sum())} of the records (e.g. id {int(ids[seen][0])}) trained "
                    "this attack; a learned attack never scores its own training records "
                    "(use cross_fit_scores to score every record)"
                )
        raise_if_problems(f"ClassifierAttack.{owner}", problems)
        return f

    def _cross_fit_evidence(self, evidence: Evidence) -> Self:
        """The audit protocol: the attacker knows part of the membership (MindArmour's
        setting), so cross-fitting trains on some audited records and scores only the
        others, in turn; :meth:`score` of the same evidence returns those scores."""
        features = features_from_signals(
            evidence.signals, self.features, n_classes=evidence.dataset.n_classes
        )
        is_member = evidence.require_membership("ClassifierAttack")
        self.evidence_scores_ = self.cross_fit_scores(features, is_member, seed=evidence.seed)
        self.evidence_records_ = evidence.records.copy()
        return self

    def score(
        self, features: np.ndarray | Evidence, *, record_ids: np.ndarray | None = None
    ) -> np.ndarray:
        """Membership scores: the attack model's probability that each record is a member.

        Parameters
        ----------
        features : (n, d) array of float
            Same columns as in :meth:`fit`.
        record_ids : (n,) array of int, optional
            Checked against the training ids when both are known.

        Returns
        -------
        (n,) float64
            In [0, 1]; higher = more likely a member.
        """
        if isinstance(features, Evidence):
            check_is_fitted(self, "evidence_scores_")
            if not np.array_equal(features.records, self.evidence_records_):
                raise InvalidAuditInput(
                    "ClassifierAttack: score(evidence) must get the evidence fit(evidence) "
                    "cross-fitted on (its scores exist for those records only)"
                )
            return self.evidence_scores_.copy()
        f = self._checked_rows(features, record_ids, "score")
        proba = self.model_.predict_proba(f)
        member_col = list(self.model_.classes_).index(True)
        return proba[:, member_col].astype(np.float64)

    def predict(self, features: np.ndarray, *, record_ids: np.ndarray | None = None) -> np.ndarray:
        """The attack model's own hard decisions, ``(n,)`` bool (MindArmour's predictions).

        For most classifiers this is ``score > 0.5``; ties (k-NN with an even k) go to
        non-member, as scikit-learn's ``predict`` breaks them.
        """
        f = self._checked_rows(features, record_ids, "predict")
        return np.asarray(self.model_.predict(f), dtype=bool)

    def cross_fit_scores(
        self,
        features: np.ndarray,
        is_member: np.ndarray,
        *,
        n_folds: int = 2,
        seed: int | None = None,
    ) -> np.ndarray:
        """Score every record with an attack that never trained on it.

        The records are split into ``n_folds`` folds, stratified by membership. For each
        fold a fresh clone of this (unfitted) attack is fitted on the other folds and
        scores this one. This is how an audit gets scores for all audited records for the
        common evaluation while keeping the rule that a learned attack never scores its own
        training records; ``self`` is left untouched.

        Parameters
        ----------
        features : (n, d) array of float
        is_member : (n,) array of bool
            Each side needs at least ``n_folds`` records (and each training part ``cv``).
        n_folds : int
            At least 2. With 2, each attack model learns from half the records.
        seed : int, optional
            Seeds the fold assignment; default ``self.seed``.

        Returns
        -------
        (n,) float64
            Aligned with the records; higher = more likely a member. Scores of different
            folds come from different models (close, but not identical, calibrations).
        """
        problems: list[str] = []
        f = self._check_matrix(features, problems)
        m = np.asarray(is_member)
        if not is_int(n_folds) or n_folds < 2:
            problems.append(f"n_folds must be an int >= 2, got {n_folds!r}")
        fold_seed = self.seed if seed is None else seed
        if not is_int(fold_seed) or fold_seed < 0:
            problems.append(f"seed must be a non-negative int, got {fold_seed!r}")
        if m.ndim != 1 or (m.dtype != np.bool_ and not np.isin(m, (0, 1)).all()):
            problems.append(f"is_member must be a 1-d boolean array, got {m.dtype} {m.shape}")
        elif f.ndim == 2 and len(f) != m.size:
            problems.append(f"features has {len(f)} rows but is_member has {m.size}")
        elif is_int(n_folds):
            n_pos = int(np.count_nonzero(m))
            if min(n_pos, m.size - n_pos) < n_folds:
                problems.append(
                    f"is_member has {n_pos} members and {m.size - n_pos} non-members; "
                    f"{n_folds} folds need at least {n_folds} of each"
                )
        raise_if_problems("ClassifierAttack.cross_fit_scores", problems)
        m = m.astype(bool)
        n = m.size
        scores = np.full(n, np.nan)
        times_scored = np.zeros(n, dtype=np.int64)
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=fold_seed)
        for train, held_out in splitter.split(f, m):
            assert np.intersect1d(train, held_out).size == 0, "a fold trains on what it scores"
            fold_attack = clone(self).fit(f[train], m[train], record_ids=train)
            scores[held_out] = fold_attack.score(f[held_out], record_ids=held_out)
            times_scored[held_out] += 1
        assert (times_scored == 1).all(), "every record must be scored exactly once"
        assert np.isfinite(scores).all(), "a record was left without a score"
        return scores
