"""Augmentation queries: the fixed set of views of a record that every model is asked about.

LiRA (Carlini et al., S&P 2022, §VI-A "Augmentations") queries each model on several
augmented copies of a record and fits one Gaussian per copy: a model trained with flips
and shifts has memorised the record under those views too, so each view is extra evidence.
The authors' released code (``research/mi_lira_2021/inference.py`` in tensorflow/privacy)
builds the views as {identity, mirror} × every (dy, dx) offset in {−s, …, s}² of a crop of
the reflect-padded image; ``s = 0`` gives their 2 queries (identity + mirror) and ``s = 1``
their 18 (2 × 3 × 3). :meth:`QuerySet.flips_and_shifts` with its default ``pad=1`` is that
18-query set.

Queries are deterministic (no random draws) and applied to a whole batch at once: one
flip and one padding per batch, then a slice per query, never a loop over records.

Tabular records have no mirror or shift. A set with anything but the identity is reduced
to the identity on them, with a warning (see :meth:`QuerySet.for_records`): refusing would
make one configuration unusable on both kinds of data, and repeating the identity would
feed the same number to a per-query Gaussian several times, as if it were new evidence.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from miaudit.errors import InvalidAuditInput, raise_if_problems

__all__ = ["Query", "QuerySet"]

_PADDING_MODES = ("reflect", "zeros")


@dataclass(frozen=True)
class Query:
    """One view of an image: optional left-right mirror, then a shift.

    Attributes
    ----------
    flip : bool
        Mirror left-right first.
    dy, dx : int
        The view shows pixel ``(i + dy, j + dx)`` of the (mirrored) image at ``(i, j)``;
        pixels beyond the border come from the padding (reflection by default).
    """

    flip: bool = False
    dy: int = 0
    dx: int = 0

    @property
    def is_identity(self) -> bool:
        return not self.flip and self.dy == 0 and self.dx == 0

    def label(self) -> str:
        """Short name for logs and reports, e.g. ``"flip+(0,-1)"``."""
        base = "flip" if self.flip else "id"
        return base if self.dy == 0 and self.dx == 0 else f"{base}+({self.dy},{self.dx})"


@dataclass(frozen=True)
class QuerySet:
    """An ordered, deterministic set of :class:`Query` views.

    Attributes
    ----------
    queries : tuple of Query
        The views, in the order of the query axis of
        :class:`~miaudit.signals.observations.Observations`. The identity comes first in
        every predefined set, so ``[..., 0]`` is always the plain record.
    padding_mode : {"reflect", "zeros"}
        Fill of the border a shift reveals; reflection matches how the models are trained
        (:func:`~miaudit.models.flip_and_shift`).
    """

    queries: tuple[Query, ...]
    padding_mode: str = "reflect"

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.queries, tuple) or not self.queries:
            problems.append("queries must be a non-empty tuple of Query")
        elif not all(isinstance(q, Query) for q in self.queries):
            problems.append("every query must be a Query")
        elif len(set(self.queries)) != len(self.queries):
            problems.append("a query appears twice")
        if self.padding_mode not in _PADDING_MODES:
            problems.append(
                f"padding_mode must be one of {_PADDING_MODES}, got {self.padding_mode!r}"
            )
        raise_if_problems("QuerySet", problems)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def none(cls) -> QuerySet:
        """The record itself only (1 query)."""
        return cls((Query(),))

    @classmethod
    def flips(cls) -> QuerySet:
        """Identity and left-right mirror (2 queries; LiRA's released default)."""
        return cls((Query(), Query(flip=True)))

    @classmethod
    def flips_and_shifts(cls, pad: int = 1) -> QuerySet:
        """{identity, mirror} × all shifts (dy, dx) in {−pad, …, pad}².

        ``2 * (2 * pad + 1) ** 2`` queries: 18 for ``pad=1`` (LiRA's larger set), 50 for
        ``pad=2``. The unshifted identity comes first, the unshifted mirror second.
        """
        if not isinstance(pad, int) or isinstance(pad, bool) or pad < 0:
            raise InvalidAuditInput(
                f"QuerySet.flips_and_shifts: pad must be a non-negative int, got {pad!r}"
            )
        offsets = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)]
        offsets.remove((0, 0))
        views = [Query(), Query(flip=True)]
        views += [Query(flip, dy, dx) for flip in (False, True) for dy, dx in offsets]
        return cls(tuple(views))

    # ------------------------------------------------------------------ use

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def is_identity(self) -> bool:
        return len(self.queries) == 1 and self.queries[0].is_identity

    @property
    def max_shift(self) -> int:
        return max(max(abs(q.dy), abs(q.dx)) for q in self.queries)

    def labels(self) -> list[str]:
        return [q.label() for q in self.queries]

    def for_records(self, record_shape: tuple[int, ...]) -> QuerySet:
        """This set if records of ``record_shape`` are images, else the identity.

        Tabular records (anything but ``(c, h, w)``) cannot be mirrored or shifted; a set
        with other views is reduced to the identity with a ``UserWarning``.

        Raises
        ------
        InvalidAuditInput
            Reflection padding by a shift that is not smaller than the image side.
        """
        if len(record_shape) != 3:
            if self.is_identity:
                return self
            warnings.warn(
                f"augmentation queries ({len(self)} views) apply to images only; records of "
                f"shape {tuple(record_shape)} are queried once, as they are",
                UserWarning,
                stacklevel=3,
            )
            return QuerySet.none()
        side = min(record_shape[1:])
        if self.padding_mode == "reflect" and self.max_shift >= side:
            raise InvalidAuditInput(
                f"QuerySet: a shift of {self.max_shift} pixels is too large to reflect a "
                f"{record_shape[1]}x{record_shape[2]} image"
            )
        return self

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Every view of every record in one tensor.

        Parameters
        ----------
        x : torch.Tensor
            ``(n, c, h, w)`` images, or ``(n, ...)`` other records when this set is the
            identity.

        Returns
        -------
        torch.Tensor
            ``(n_queries, n, *x.shape[1:])``, same dtype and device; ``out[q]`` is view
            ``q`` of every record. The input is never modified.
        """
        if self.is_identity:
            return x.unsqueeze(0)
        if x.ndim != 4:
            raise InvalidAuditInput(
                f"QuerySet.apply: {len(self)} image views need (n, c, h, w) records, got "
                f"shape {tuple(x.shape)}; use QuerySet.for_records first"
            )
        n, c, h, w = x.shape
        s = self.max_shift
        views = {False: x, True: x.flip(-1)} if any(q.flip for q in self.queries) else {False: x}
        if s > 0:
            mode = "reflect" if self.padding_mode == "reflect" else "constant"
            views = {f: F.pad(v, (s, s, s, s), mode=mode) for f, v in views.items()}
        out = x.new_empty(len(self), n, c, h, w)
        for i, q in enumerate(self.queries):  # a loop over the few views, never records
            top, left = s + q.dy, s + q.dx
            out[i] = views[q.flip][:, :, top : top + h, left : left + w]
        return out
