"""Attack-R, the reference-model attack of Ye et al. (CCS 2022, "Enhanced Membership
Inference Attacks against Machine Learning Models").

Attack R calibrates the loss threshold per record: reference models trained without x
(OUT) give a sample of the losses a non-member x would have, and the target's loss on x is
compared with its α-percentile (their "Attack R", reference-model thresholds).
Sweeping α is the same as scoring x by the share of OUT reference losses at or above the
target's loss, which is what this estimator returns.
"""

from __future__ import annotations

import warnings
from typing import ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from miaudit.attacks._reference import (
    ReferenceCoverageWarning,
    check_bool,
    check_references,
    check_target,
    fit_inputs,
    masked_moments,
    pooled_variance,
    raise_param_problems,
    score_input,
    squash,
)
from miaudit.attacks.protocol import Requirements
from miaudit.errors import raise_if_problems
from miaudit.signals.evidence import Evidence
from miaudit.signals.observations import Observations
from miaudit.targets.adapters import AccessLevel

_REL_SIGMA_FLOOR = 1e-3
_ABS_SIGMA_FLOOR = 1e-12


class AttackR(BaseEstimator):
    """Per-record percentile of the target's loss among OUT reference losses (Ye et al.,
    CCS 2022, Attack R).

    The loss of a model on x is ℓ = −log p_y averaged over the ``a`` queries.

    Parameters
    ----------
    tie_break : bool, default True
        Add a bounded secondary key that orders records tied on the fraction (see Notes).
        False returns the fraction exactly.

    Attributes
    ----------
    record_ids_ : (n,) int64
    n_queries_ : int
    out_losses_ : (K, n) float64
        OUT reference losses, ``-inf`` where the model trained on the record (so it never
        counts as "at or above" a finite loss).
    n_out_ : (n,) int64
        OUT reference models per record.
    out_mean_, out_std_ : (n,) float64
        Mean and (floored; pooled when fewer than two models) standard deviation of each
        record's OUT losses, for the secondary key.
    n_records_without_out_ : int
        Records every reference model trained on. Their fraction is taken among the OUT
        losses of all records pooled, rounded down to a multiple of 1/K; warned about.
    pooled_out_losses_ : (P,) float64 or None
        Sorted OUT losses of all records, kept only when some record has no OUT model.
    n_models_ : int
        K, the number of reference models.
    tie_epsilon_ : float
        Weight of the secondary key, ``0.5 / K²``.

    Notes
    -----
    *Tie-breaking.* With K_out OUT models a record's fraction is one of K_out + 1 values,
    so many records tie, above all at the top (target loss below every reference loss),
    and the ROC cannot resolve low FPRs. Ties are ordered by how far the target's loss lies
    below the OUT losses in their own spread, t = (mean_out − ℓ) / std_out, a continuous
    version of the same percentile (exact if OUT losses were Gaussian). The score is

        fraction + ε · s(t),  s(t) = ½ + arctan(t)/π ∈ (0, 1),  ε = 0.5 / K².

    Every fraction is c/d with d ≤ K, so two distinct fractions differ by at least 1/K²
    (|c₁d₂ − c₂d₁| ≥ 1), more than the added term can: distinct fractions keep their order.

    The attack is offline by construction: an IN model's answer on x is never read when
    scoring x. ``required_access`` is :attr:`AccessLevel.PROBABILITIES` (log p_y).
    """

    family: ClassVar[str] = "reference"
    online: ClassVar[bool] = False

    def __init__(self, *, tie_break: bool = True) -> None:
        self.tie_break = tie_break

    @property
    def required_access(self) -> AccessLevel:
        return AccessLevel.PROBABILITIES

    @property
    def requirements(self) -> Requirements:
        return Requirements(AccessLevel.PROBABILITIES, references=True)

    def check_params(self) -> None:
        """Raise, naming each bad parameter, before any reference model is trained."""
        raise_param_problems(self)

    def _check_params(self, problems: list[str]) -> None:
        check_bool(self, "tie_break", problems)

    def default_label(self) -> str:
        return "attack_r"

    def fit(
        self,
        references: Observations | Evidence,
        *,
        population_references: Observations | None = None,
        population_target: Observations | None = None,
    ) -> Self:
        """Collect the OUT reference losses of each audited record.

        Parameters
        ----------
        references : Observations or Evidence
            The audit's evidence (its reference answers are used), or ``(K, n, a)`` answers of the
            reference models on the audited records, with ``inclusion`` ``(K, n)``.
        population_references, population_target : Observations, optional
            Accepted for a uniform interface with :class:`RMIA`; not used.

        Returns
        -------
        self
        """
        references, population_references, population_target = fit_inputs(
            self, references, population_references, population_target
        )
        problems: list[str] = []
        self._check_params(problems)
        if (
            check_references("references", references, problems)
            and not (~references.inclusion).any()
        ):
            problems.append(
                "references: every reference model trained on every audited record; "
                "Attack-R needs OUT models"
            )
        raise_if_problems(type(self).__name__, problems)

        out = ~references.inclusion
        losses = -references.log_confidence.mean(axis=2, dtype=np.float64)  # (K, n)
        n_models = losses.shape[0]
        moments = masked_moments(losses[:, :, None], out)
        std = np.sqrt(pooled_variance(moments, losses[:, :, None], out))[0]
        own = moments.count >= 2
        per_record = np.full(losses.shape[1], std)
        per_record[own] = np.sqrt(moments.sum_sq[own, 0] / (moments.count[own] - 1))
        floor = max(_REL_SIGMA_FLOOR * std, _ABS_SIGMA_FLOOR)
        self.out_std_ = np.maximum(per_record, floor)
        self.out_mean_ = moments.mean[:, 0].copy()
        missing = moments.count == 0
        self.n_records_without_out_ = int(np.count_nonzero(missing))
        self.pooled_out_losses_ = None
        if self.n_records_without_out_:
            self.out_mean_[missing] = moments.mean[~missing, 0].mean()
            self.pooled_out_losses_ = np.sort(losses[out])
            warnings.warn(
                f"AttackR: {self.n_records_without_out_} of {losses.shape[1]} audited records "
                "have no OUT reference model; they are compared with the OUT losses of all "
                "records pooled",
                ReferenceCoverageWarning,
                stacklevel=2,
            )
        self.out_losses_ = np.where(out, losses, -np.inf)
        self.n_out_ = moments.count
        self.n_models_ = n_models
        self.tie_epsilon_ = 0.5 / n_models**2
        self.record_ids_ = references.record_ids.copy()
        self.n_queries_ = references.n_queries
        return self

    def score(self, target: Observations | Evidence) -> np.ndarray:
        """Membership scores of the audited records, higher = more likely a member.

        Parameters
        ----------
        target : Observations or Evidence
            The audit's evidence (the target's answers in it), or ``(1, n, a)`` answers of the
            target on the records given to ``fit``, in order.

        Returns
        -------
        (n,) float64
            Share of OUT reference losses ≥ the target's loss, in [0, 1], plus (with
            ``tie_break``) a secondary key below ``tie_epsilon_``.
        """
        target = score_input(self, target)
        check_is_fitted(self, "out_losses_")
        loss = -check_target(self, target).log_confidence[0].mean(axis=1, dtype=np.float64)
        at_or_above = np.count_nonzero(self.out_losses_ >= loss[None, :], axis=0)
        scores = at_or_above / np.maximum(self.n_out_, 1)
        missing = self.n_out_ == 0
        if missing.any():
            pooled = self.pooled_out_losses_
            below = np.searchsorted(pooled, loss[missing], side="left")
            share = 1.0 - below / pooled.size
            scores[missing] = np.floor(share * self.n_models_) / self.n_models_
        if self.tie_break:
            scores = scores + self.tie_epsilon_ * squash((self.out_mean_ - loss) / self.out_std_)
        return scores.astype(np.float64, copy=False)
