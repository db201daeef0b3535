"""LiRA, the likelihood-ratio attack of Carlini et al. (S&P 2022, "Membership Inference
Attacks From First Principles").

For each audited record the reference models that trained on it (IN) and those that did
not (OUT) give two samples of its scaled logit φ = log(p_y / (1 − p_y)). LiRA fits a
Gaussian to each (their Sec. IV and Algorithm 1) and scores the target's φ by the
likelihood ratio of the two (online) or by how far in the upper tail of the OUT Gaussian
it lies (their offline variant).
"""

from __future__ import annotations

import warnings
from typing import ClassVar, Self

import numpy as np
from scipy.special import log_ndtr
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from miaudit.attacks._reference import (
    MaskedMoments,
    ReferenceCoverageWarning,
    check_bool,
    check_references,
    check_target,
    fit_inputs,
    masked_moments,
    pooled_variance,
    raise_param_problems,
    score_input,
)
from miaudit.attacks.protocol import Requirements
from miaudit.errors import raise_if_problems
from miaudit.signals.evidence import Evidence
from miaudit.signals.observations import Observations
from miaudit.targets.adapters import AccessLevel

# σ never drops below this fraction of the pooled σ (nor below _ABS_SIGMA_FLOOR): a record
# whose reference models all answer alike would otherwise give a division by ~0 and an
# unbounded score from a handful of models.
_REL_SIGMA_FLOOR = 1e-3
_ABS_SIGMA_FLOOR = 1e-6


#: With "auto", LiRA pools one variance over all records below this many reference models
#: (Carlini et al. 2022 find the fixed variance better there).
FIXED_VARIANCE_BELOW = 64


class LiRA(BaseEstimator):
    """Likelihood-ratio attack on the scaled logit (Carlini et al., S&P 2022).

    Parameters
    ----------
    online : bool, default True
        Online (their Algorithm 1): score = Σ_q log N(φ_q; μ_in,q, σ²_in,q) −
        log N(φ_q; μ_out,q, σ²_out,q), summed over the ``a`` queries (augmentations), i.e. a
        diagonal-covariance Gaussian per record (their treatment of multiple queries).
        Offline (their offline variant): only OUT models are used, and the score is the
        one-sided test Σ_q log Φ((φ_q − μ_out,q) / σ_out,q) (log of the OUT Gaussian's CDF,
        computed with ``scipy.special.log_ndtr`` so the far upper tail stays finite and
        ordered): a high φ is evidence of membership.
    fixed_variance : bool or "auto", default "auto"
        Share one σ_in and one σ_out (per query) between all records, pooled from every
        record's deviations from its own mean; per-record means are kept. Carlini et al.
        find this better below ~64 reference models, and "auto" follows them: fixed below
        ``FIXED_VARIANCE_BELOW`` models. On Location with 4 references, per-record variances
        (2 IN and 2 OUT values per record) gave TPR@1% FPR 0.017, the fixed variance 0.221
        (``benchmarks/reference_attacks.py``).

    Attributes
    ----------
    record_ids_ : (n,) int64
        The audited records, in the order ``score`` expects them.
    n_queries_ : int
    online_ : bool
        The ``online`` setting this fit used.
    mu_in_, sigma_in_ : (n, a) float64
        IN Gaussians (online only; None offline, which never looks at IN models).
    mu_out_, sigma_out_ : (n, a) float64
        OUT Gaussians.
    n_records_without_in_, n_records_without_out_ : int
        Records no reference model trained on (resp. that every reference model trained
        on). Their missing Gaussian falls back as described in Notes, with a
        :class:`ReferenceCoverageWarning`. ``n_records_without_in_`` is 0 offline.

    Notes
    -----
    Fallbacks, so that no record is scored NaN:

    * A record with one model on a side has that model's φ as mean but the pooled variance
      (one value is no variance estimate).
    * Online, a record with no IN model gets μ_in = μ_out + Δ, where Δ is the mean IN − OUT
      shift over the records that have both (the IN distribution moves with the record's
      own difficulty); symmetrically μ_out = μ_in − Δ when it has no OUT model.
    * Offline, a record with no OUT model gets the average OUT mean of the other records:
      offline LiRA never reads an IN model's answer, not even to fill a gap.
    * σ is floored at ``1e-3`` × the pooled σ (and ``1e-6``).

    ``required_access`` is :attr:`AccessLevel.PROBABILITIES`, because φ is a function of
    p_y. Logits are better: φ computed from logits is exact where a probability rounds to 1
    (Carlini et al. 2022), and that tail is where the attack is strongest.
    """

    family: ClassVar[str] = "reference"

    def __init__(self, *, online: bool = True, fixed_variance: bool | str = "auto") -> None:
        self.online = online
        self.fixed_variance = fixed_variance

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
        check_bool(self, "online", problems)
        if self.fixed_variance != "auto":
            check_bool(self, "fixed_variance", problems)

    def default_label(self) -> str:
        label = f"lira_{'online' if self.online else 'offline'}"
        return label + ("_fixed_variance" if self.fixed_variance is True else "")

    def fit(
        self,
        references: Observations | Evidence,
        *,
        population_references: Observations | None = None,
        population_target: Observations | None = None,
    ) -> Self:
        """Fit the per-record IN and OUT Gaussians of φ.

        Parameters
        ----------
        references : Observations or Evidence
            The audit's evidence (its reference answers are used), or ``(K, n, a)`` answers of the
            ``K`` reference models on the audited records, with ``inclusion`` ``(K, n)``.
        population_references, population_target : Observations, optional
            Accepted for a uniform interface with :class:`RMIA`; LiRA does not use them.

        Returns
        -------
        self
        """
        references, population_references, population_target = fit_inputs(
            self, references, population_references, population_target
        )
        problems: list[str] = []
        self._check_params(problems)
        if check_references("references", references, problems):
            inc = references.inclusion
            if not (~inc).any():
                problems.append(
                    "references: every reference model trained on every audited record; "
                    "LiRA needs OUT models"
                )
            if self.online is True and not inc.any():
                problems.append(
                    "references: no reference model trained on any audited record, so online "
                    "LiRA has no IN models; use online=False"
                )
        raise_if_problems(type(self).__name__, problems)
        self.fixed_variance_ = (
            references.n_models < FIXED_VARIANCE_BELOW
            if self.fixed_variance == "auto"
            else bool(self.fixed_variance)
        )

        phi = references.scaled_logit
        inc = references.inclusion
        out = masked_moments(phi, ~inc)
        global_out_mean = out.mean[out.count > 0].mean(axis=0)
        self.mu_out_, self.sigma_out_ = self._gaussian(out, phi, ~inc)
        self.n_records_without_out_ = int(np.count_nonzero(out.count == 0))
        self.mu_in_ = self.sigma_in_ = None
        self.n_records_without_in_ = 0

        if self.online:
            inn = masked_moments(phi, inc)
            self.mu_in_, self.sigma_in_ = self._gaussian(inn, phi, inc)
            self.n_records_without_in_ = int(np.count_nonzero(inn.count == 0))
            both = (inn.count > 0) & (out.count > 0)
            if both.any():
                shift = (inn.mean[both] - out.mean[both]).mean(axis=0)
            else:
                shift = inn.mean[inn.count > 0].mean(axis=0) - global_out_mean
            no_in, no_out = inn.count == 0, out.count == 0
            self.mu_in_[no_in] = self.mu_out_[no_in] + shift
            self.mu_out_[no_out] = self.mu_in_[no_out] - shift
            no_dof = not (inn.count >= 2).any() or not (out.count >= 2).any()
            if self.fixed_variance_ and no_dof:
                # No record has two models on a side (e.g. K = 2: one IN, one OUT), so no
                # within-record variance exists and each side's falls back to the spread
                # of φ across records. Two such spreads differ (IN φ cluster high), and the
                # quadratic terms of the ratio then no longer cancel: the score turns into
                # a global function of φ and loses its per-record calibration (measured on
                # Location, K = 2: AUC 0.73, no better than the loss attack). One shared σ,
                # the IN side's as in the authors' code (std_out = np.std(dat_in)), keeps
                # the test linear in φ with per-record means.
                self.sigma_out_ = self.sigma_in_.copy()
        else:
            self.mu_out_[out.count == 0] = global_out_mean

        for side, k in (("IN", self.n_records_without_in_), ("OUT", self.n_records_without_out_)):
            if k:
                warnings.warn(
                    f"{type(self).__name__}: {k} of {phi.shape[1]} audited records have no "
                    f"{side} reference model; their {side} Gaussian falls back to pooled "
                    "statistics (more reference models, or a balanced inclusion, avoid this)",
                    ReferenceCoverageWarning,
                    stacklevel=2,
                )
        self.online_ = bool(self.online)
        self.record_ids_ = references.record_ids.copy()
        self.n_queries_ = references.n_queries
        return self

    def _gaussian(
        self, moments: MaskedMoments, phi: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-record (μ, σ), each (n, a), with the pooled variance where the record's own
        cannot be estimated (fewer than two models) or when ``fixed_variance``."""
        pooled = pooled_variance(moments, phi, mask)
        var = np.broadcast_to(pooled, moments.mean.shape).copy()
        if not self.fixed_variance_:
            own = moments.count >= 2
            var[own] = moments.sum_sq[own] / (moments.count[own, None] - 1)
        floor = np.maximum(_REL_SIGMA_FLOOR**2 * pooled, _ABS_SIGMA_FLOOR**2)
        return moments.mean.copy(), np.sqrt(np.maximum(var, floor))

    def score(self, target: Observations | Evidence) -> np.ndarray:
        """Membership scores of the audited records, higher = more likely a member.

        Parameters
        ----------
        target : Observations or Evidence
            The audit's evidence (the target's answers in it), or ``(1, n, a)`` answers of the
            target model on the records given to ``fit``, in the same order and under the same ``a``
            queries.

        Returns
        -------
        (n,) float64
            Online: the log-likelihood ratio IN vs OUT. Offline: the log one-sided
            probability under OUT. Finite for finite inputs.
        """
        target = score_input(self, target)
        check_is_fitted(self, "mu_out_")
        phi = check_target(self, target).scaled_logit[0]
        z_out = (phi - self.mu_out_) / self.sigma_out_
        if not self.online_:
            return log_ndtr(z_out).sum(axis=1).astype(np.float64)
        z_in = (phi - self.mu_in_) / self.sigma_in_
        llr = 0.5 * (z_out**2 - z_in**2) + np.log(self.sigma_out_ / self.sigma_in_)
        return llr.sum(axis=1).astype(np.float64)
