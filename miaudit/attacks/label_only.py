"""Label-only attacks (Choquette-Choo, Tramèr, Carlini and Papernot, ICML 2021): the attacker
sees only the predicted class, as behind many deployed APIs and confidence-masking defenses.

- :class:`AugmentationAttack`: a member stays correctly classified under small changes more
  often than a non-member. Images get flips and shifts (the views of
  :class:`~miaudit.compute.queries.QuerySet`); tabular records get random changes: each of
  ``n_augmentations`` copies flips ``flip_fraction`` of the features (binary features are
  flipped 0 <-> 1, others get Gaussian noise of ``noise`` standard deviations). The score
  is the number of correct answers (``combine="count"``, thresholded by the evaluation), or
  a logistic regression on the correctness vector learned on the reference models
  (``combine="references"``), who answer the same queries with known membership.
- :class:`BoundaryDistanceAttack`: a member lies further from the decision boundary. With
  labels only, the distance is found by queries in the manner of HopSkipJump (Chen, Jordan
  and Wainwright, IEEE S&P 2020): start from a record the model labels differently, binary
  search along the line to the boundary, then repeatedly estimate the boundary's normal
  from the labels of random probes around the boundary point, step along it and search
  back, until the per-record ``query_budget`` is spent. All records advance together, so
  every query round is one batched call. With white-box access, ``method="gradient"``
  replaces the search by a first-order estimate, ``margin / ||grad margin||`` (DeepFool's
  step), one backward pass per batch.

Both count the queries they send per record; ``describe()`` reports them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator

from miaudit.attacks.protocol import Requirements, scores_of_fit
from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.signals.evidence import Evidence
from miaudit.targets.adapters import AccessLevel
from miaudit.validation import is_int, is_real

__all__ = ["AugmentationAttack", "BoundaryDistanceAttack"]

_COMBINE = ("count", "references")


def _labels(target: Any, x: np.ndarray, counter: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``target.predict_labels`` on ``x`` (one query for each of ``rows``), counted."""
    np.add.at(counter, rows, 1)
    return np.asarray(target.predict_labels(x), dtype=np.int64)


class AugmentationAttack(BaseEstimator):
    """Correctness under augmentations (Choquette-Choo et al. 2021, "data augmentation").

    Parameters
    ----------
    max_shift : int
        Images: shifts of up to this many pixels, with and without a mirror; ``1`` gives
        18 views (the identity included).
    n_augmentations : int
        Tabular records: random copies per record (the original is always queried too).
    flip_fraction : float in (0, 1]
        Tabular: share of the features changed in each copy.
    noise : float > 0
        Tabular, non-binary features: Gaussian noise in units of the feature's standard
        deviation over the audited records.
    combine : str
        ``"count"`` (number of correct views) or ``"references"`` (a logistic regression on
        the correctness vector, learned on the reference models' answers).
    seed : int
    """

    family: ClassVar[str] = "label_only"

    def __init__(
        self,
        *,
        max_shift: int = 1,
        n_augmentations: int = 16,
        flip_fraction: float = 0.1,
        noise: float = 0.5,
        combine: str = "count",
        seed: int = 0,
    ) -> None:
        self.max_shift = max_shift
        self.n_augmentations = n_augmentations
        self.flip_fraction = flip_fraction
        self.noise = noise
        self.combine = combine
        self.seed = seed

    @property
    def requirements(self) -> Requirements:
        return Requirements(access=AccessLevel.LABEL_ONLY, references=self.combine == "references")

    def default_label(self) -> str:
        return "augmentation" if self.combine == "count" else "augmentation_references"

    def check_params(self) -> None:
        problems: list[str] = []
        if not is_int(self.max_shift) or not 0 <= self.max_shift <= 4:
            problems.append(f"max_shift must be an int in [0, 4], got {self.max_shift!r}")
        if not is_int(self.n_augmentations) or self.n_augmentations < 1:
            problems.append(f"n_augmentations must be a positive int, got {self.n_augmentations!r}")
        if not is_real(self.flip_fraction) or not 0 < self.flip_fraction <= 1:
            problems.append(f"flip_fraction must be in (0, 1], got {self.flip_fraction!r}")
        if not is_real(self.noise) or self.noise <= 0:
            problems.append(f"noise must be a number > 0, got {self.noise!r}")
        if self.combine not in _COMBINE:
            problems.append(f"combine must be one of {_COMBINE}, got {self.combine!r}")
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        raise_if_problems("AugmentationAttack", problems)

    def views(self, x: np.ndarray) -> np.ndarray:
        """``(n_views, n, ...)``: every view of every record; view 0 is the record itself.
        Deterministic (seeded), so the target and the references see the same views."""
        if x.ndim == 4:
            import torch

            from miaudit.compute.queries import QuerySet

            queries = QuerySet.flips_and_shifts(pad=int(self.max_shift))
            if self.max_shift == 0:
                queries = QuerySet.flips()
            return queries.apply(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        rng = np.random.default_rng(self.seed)
        n, d = x.shape[0], int(np.prod(x.shape[1:]))
        flat = x.reshape(n, d)
        binary = np.isin(flat, (0.0, 1.0)).all(axis=0)
        scale = flat.std(axis=0)
        out = np.empty((int(self.n_augmentations) + 1, n, d), dtype=x.dtype)
        out[0] = flat
        k = max(1, round(float(self.flip_fraction) * d))
        for v in range(1, out.shape[0]):  # a loop over the few views, never over records
            chosen = np.argsort(rng.random((n, d)), axis=1)[:, :k]
            mask = np.zeros((n, d), bool)
            np.put_along_axis(mask, chosen, True, axis=1)
            noisy = flat + rng.normal(size=(n, d)) * float(self.noise) * scale
            changed = np.where(binary, 1.0 - flat, noisy).astype(x.dtype)
            out[v] = np.where(mask, changed, flat)
        return out.reshape(out.shape[0], *x.shape)

    def _correct(self, target: Any, views: np.ndarray, y: np.ndarray, counter) -> np.ndarray:
        n = views.shape[1]
        stacked = views.reshape(-1, *views.shape[2:])
        rows = np.tile(np.arange(n), views.shape[0])
        pred = _labels(target, stacked, counter, rows).reshape(views.shape[0], n)
        return (pred == y[None, :]).T.astype(np.float64)  # (n, n_views)

    def fit(self, evidence: Evidence) -> Self:
        self.check_params()
        x = evidence.dataset.x[evidence.records]
        y = np.asarray(evidence.labels, np.int64)
        views = self.views(x)
        queries = np.zeros(len(y), np.int64)
        correct = self._correct(evidence.target, views, y, queries)
        if self.combine == "count":
            self.scores_ = correct.sum(axis=1)
        else:
            from sklearn.linear_model import LogisticRegression

            from miaudit.targets.adapters import as_target

            refs = evidence.references
            if refs is None or not refs.models:
                raise InvalidAuditInput("AugmentationAttack(combine='references') needs references")
            unused = np.zeros(len(y), np.int64)
            rows, member = [], []
            for k, trained in enumerate(refs.models):
                model = as_target(trained.model, n_classes=evidence.dataset.n_classes)
                rows.append(self._correct(model, views, y, unused))
                member.append(refs.audited_references.inclusion[k])
            model = LogisticRegression(max_iter=1000).fit(np.vstack(rows), np.concatenate(member))
            self.scores_ = model.decision_function(correct)
        self.records_ = np.asarray(evidence.records).copy()
        self.queries_ = queries
        return self

    def score(self, evidence: Evidence) -> np.ndarray:
        return scores_of_fit(self, evidence)

    def describe(self) -> dict:
        q = getattr(self, "queries_", np.zeros(1))
        return {"queries_per_record": {"mean": float(q.mean()), "max": int(q.max())}}


class BoundaryDistanceAttack(BaseEstimator):
    """Distance to the decision boundary (Choquette-Choo et al. 2021, "boundary distance").

    Parameters
    ----------
    method : str
        ``"queries"`` (label-only, HopSkipJump-style search) or ``"gradient"`` (white-box
        first-order estimate, no label queries beyond one forward and backward pass).
    query_budget : int
        Label queries per record at most (``queries`` only), the first one included.
    n_probes : int
        Random probes per boundary-normal estimate.
    seed : int
    """

    family: ClassVar[str] = "label_only"

    def __init__(
        self,
        *,
        method: str = "queries",
        query_budget: int = 200,
        n_probes: int = 20,
        seed: int = 0,
    ) -> None:
        self.method = method
        self.query_budget = query_budget
        self.n_probes = n_probes
        self.seed = seed

    @property
    def requirements(self) -> Requirements:
        access = AccessLevel.WHITE_BOX if self.method == "gradient" else AccessLevel.LABEL_ONLY
        return Requirements(access=access)

    def default_label(self) -> str:
        return "boundary" if self.method == "queries" else "boundary_gradient"

    def check_params(self) -> None:
        problems: list[str] = []
        if self.method not in ("queries", "gradient"):
            problems.append(f"method must be 'queries' or 'gradient', got {self.method!r}")
        if not is_int(self.query_budget) or self.query_budget < 20:
            problems.append(f"query_budget must be an int >= 20, got {self.query_budget!r}")
        if not is_int(self.n_probes) or self.n_probes < 2:
            problems.append(f"n_probes must be an int >= 2, got {self.n_probes!r}")
        if not is_int(self.seed) or self.seed < 0:
            problems.append(f"seed must be a non-negative int, got {self.seed!r}")
        raise_if_problems("BoundaryDistanceAttack", problems)

    def fit(self, evidence: Evidence) -> Self:
        self.check_params()
        x = np.asarray(evidence.dataset.x[evidence.records], dtype=np.float32)
        y = np.asarray(evidence.labels, np.int64)
        if self.method == "gradient":
            self.scores_, self.queries_ = self._gradient_distance(evidence.target, x, y)
        else:
            self.scores_, self.queries_ = self._search(evidence.target, x, y)
        self.records_ = np.asarray(evidence.records).copy()
        return self

    def score(self, evidence: Evidence) -> np.ndarray:
        return scores_of_fit(self, evidence)

    def describe(self) -> dict:
        q = getattr(self, "queries_", np.zeros(1))
        return {
            "queries_per_record": {"mean": float(q.mean()), "max": int(q.max())},
            "query_budget": int(self.query_budget) if self.method == "queries" else 0,
        }

    # -- white-box ------------------------------------------------------------------------

    @staticmethod
    def _gradient_distance(target: Any, x: np.ndarray, y: np.ndarray):
        import torch

        module = getattr(target, "module", None)
        if module is None:
            raise InvalidAuditInput("BoundaryDistanceAttack(method='gradient') needs weights")
        was_training = module.training
        module.eval()
        device = next(module.parameters()).device
        out = np.empty(len(y))
        try:
            for start in range(0, len(y), 512):
                xb = torch.tensor(x[start : start + 512], device=device, requires_grad=True)
                yb = torch.as_tensor(y[start : start + 512], device=device)
                logits = module(xb)
                true = logits.gather(1, yb[:, None]).squeeze(1)
                other = logits.masked_fill(
                    torch.nn.functional.one_hot(yb, logits.shape[1]).bool(), -torch.inf
                ).amax(1)
                margin = true - other  # > 0: correctly classified
                (grad,) = torch.autograd.grad(margin.sum(), xb)
                norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
                out[start : start + 512] = (margin / norm).detach().double().cpu().numpy()
        finally:
            module.train(was_training)
        return out, np.zeros(len(y), np.int64)

    # -- label-only search ----------------------------------------------------------------

    def _search(self, target: Any, x: np.ndarray, y: np.ndarray):
        """HopSkipJump-style search for every record at once; returns the L2 distance of the
        closest differently labelled point found (0 for misclassified records) and the
        queries spent per record."""
        n = len(y)
        budget = int(self.query_budget)
        rng = np.random.default_rng(self.seed)
        queries = np.zeros(n, np.int64)
        shape = x.shape[1:]
        flat = x.reshape(n, -1).astype(np.float64)
        low, high = float(flat.min()), float(flat.max())

        def ask(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
            arr = points.reshape(len(rows), *shape).astype(np.float32)
            return _labels(target, arr, queries, rows)

        everyone = np.arange(n)
        correct = ask(flat, everyone) == y
        # Start points: another audited record the model labels differently (one query for
        # each candidate tried), else uniform noise.
        start = np.empty_like(flat)
        found = ~correct
        start[~correct] = flat[~correct]
        predicted = np.full(n, -1)
        for _ in range(5):
            todo = np.flatnonzero(~found)
            if todo.size == 0:
                break
            candidates = rng.integers(0, n, todo.size)
            labels = ask(flat[candidates], todo)
            ok = labels != y[todo]
            start[todo[ok]] = flat[candidates[ok]]
            predicted[todo[ok]] = labels[ok]
            found[todo[ok]] = True
        todo = np.flatnonzero(~found)
        if todo.size:  # noise as the last resort
            noise = rng.uniform(low, high, (todo.size, flat.shape[1]))
            ok = ask(noise, todo) != y[todo]
            start[todo[ok]] = noise[ok]
            found[todo[ok]] = True
        active = correct & found
        boundary = start.copy()
        steps = max(4, min(12, (budget - int(queries.max())) // 8))
        boundary[active] = self._bisect(ask, flat, start, y, np.flatnonzero(active), steps)
        distance = np.linalg.norm(boundary - flat, axis=1)
        # Refine: boundary-normal estimates while the budget lasts.
        per_round = int(self.n_probes) + steps + 1
        delta = 0.01 * (high - low) * np.sqrt(flat.shape[1])
        rounds = 0
        while True:
            rows = np.flatnonzero(active & (queries + per_round <= budget))
            if rows.size == 0:
                break
            rounds += 1
            probes = rng.normal(size=(rows.size, int(self.n_probes), flat.shape[1]))
            probes /= np.linalg.norm(probes, axis=2, keepdims=True)
            points = boundary[rows, None, :] + delta * probes
            labels = ask(
                np.clip(points, low, high).reshape(-1, flat.shape[1]),
                np.repeat(rows, int(self.n_probes)),
            ).reshape(rows.size, int(self.n_probes))
            sign = np.where(labels != y[rows, None], 1.0, -1.0)
            sign -= sign.mean(axis=1, keepdims=True)  # baseline (HopSkipJump's variance cut)
            normal = (sign[:, :, None] * probes).mean(axis=1)
            norm = np.linalg.norm(normal, axis=1, keepdims=True)
            normal = np.where(norm > 0, normal / np.maximum(norm, 1e-12), 0.0)
            # Step along the estimated normal (towards "wrong"), then search back.
            step = distance[rows, None] / np.sqrt(rounds + 1)
            candidate = np.clip(boundary[rows] + step * normal, low, high)
            better = ask(candidate, rows) != y[rows]
            new = boundary[rows].copy()
            good = rows[better]
            if good.size:
                new[better] = self._bisect(ask, flat, candidate, y, good, steps, sub=better)
            moved = np.linalg.norm(new - flat[rows], axis=1)
            keep = moved < distance[rows]
            boundary[rows[keep]] = new[keep]
            distance[rows[keep]] = moved[keep]
            delta = max(delta * 0.7, 1e-6)
        distance[~correct] = 0.0
        distance[correct & ~found] = np.linalg.norm(high - low) * np.sqrt(flat.shape[1])
        assert (queries <= budget).all(), "the query budget holds for every record"
        return distance, queries

    @staticmethod
    def _bisect(ask, flat, outside, y, rows, steps, sub=None) -> np.ndarray:
        """Binary search on the segment from each record (correct) to its ``outside``
        point (labelled otherwise); returns the outside end of the final bracket."""
        if sub is not None:
            far = outside[sub]
        else:
            far = outside[rows]
        near = flat[rows]
        lo = np.zeros(rows.size)  # fraction towards far that is still correct
        hi = np.ones(rows.size)  # fraction that is wrong
        for _ in range(steps):
            mid = (lo + hi) / 2
            point = near + mid[:, None] * (far - near)
            wrong = ask(point, rows) != y[rows]
            hi = np.where(wrong, mid, hi)
            lo = np.where(wrong, lo, mid)
        return near + hi[:, None] * (far - near)
