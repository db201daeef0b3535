"""Seeded, disjoint splits of a data set into target members, non-members and population."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit.errors import InvalidAuditInput, raise_if_problems
from miaudit.validation import check_readable_file, is_int


@dataclass(frozen=True, eq=False)
class AuditSplit:
    """Who is a member of the target's training set, who is not, and what the attacker holds.

    Attributes
    ----------
    members : (n_members,) int64
        Indices of records the target was trained on.
    nonmembers : (n_nonmembers,) int64
        Indices of records the target never saw; audited alongside the members.
    population : (n_population,) int64
        Indices of records the attacker may use freely (reference data); never audited.
    seed : int or None
        Seed that drew the split; ``None`` when the user supplied the indices.
    """

    members: np.ndarray
    nonmembers: np.ndarray
    population: np.ndarray
    seed: int | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        for name in ("members", "nonmembers", "population"):
            arr = np.asarray(getattr(self, name))
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                problems.append(f"{name} must be a 1-d integer array, got {arr.dtype} {arr.shape}")
                continue
            arr = arr.astype(np.int64, copy=False)
            object.__setattr__(self, name, arr)
            if (dup := arr.size - np.unique(arr).size) > 0:
                problems.append(f"{name}: {dup} indices appear twice")
            if arr.size and arr.min() < 0:
                problems.append(f"{name}: negative index {arr.min()}")
        if problems:
            raise_if_problems("AuditSplit", problems)
        if self.members.size == 0:
            problems.append("members is empty; an audit needs at least one member")
        if self.nonmembers.size == 0:
            problems.append("nonmembers is empty; an audit needs at least one non-member")
        pairs = (("members", "nonmembers"), ("members", "population"), ("nonmembers", "population"))
        for a, b in pairs:
            common = np.intersect1d(getattr(self, a), getattr(self, b)).size
            if common:
                problems.append(f"{a} and {b} overlap in {common} records")
        raise_if_problems("AuditSplit", problems)

    @property
    def audited(self) -> np.ndarray:
        """Members then non-members: the order of every score vector and of ``is_member``."""
        return np.concatenate([self.members, self.nonmembers])

    @property
    def is_member(self) -> np.ndarray:
        """``(n_audited,)`` bool aligned with :attr:`audited`."""
        return np.concatenate(
            [np.ones(self.members.size, bool), np.zeros(self.nonmembers.size, bool)]
        )

    def check_within(self, n_records: int) -> None:
        """Raise if any index points past a data set of ``n_records`` records."""
        top = max(int(a.max()) for a in (self.members, self.nonmembers, self.population) if a.size)
        if top >= n_records:
            raise InvalidAuditInput(
                f"AuditSplit: index {top} is out of range for a data set of {n_records} records"
            )

    def describe(self) -> dict:
        return {
            "seed": self.seed,
            "n_members": int(self.members.size),
            "n_nonmembers": int(self.nonmembers.size),
            "n_population": int(self.population.size),
        }


def make_split(
    n_records: int,
    *,
    n_members: int,
    n_nonmembers: int,
    n_population: int | None = None,
    seed: int = 0,
    labels: np.ndarray | None = None,
) -> AuditSplit:
    """Draw a disjoint member / non-member / population split with a seed.

    Parameters
    ----------
    n_records : int
        Size of the data set being split.
    n_members, n_nonmembers : int
        How many records the target trains on, and how many unseen records are audited.
    n_population : int, optional
        Records left to the attacker; default: all the rest.
    seed : int
        Seed of the permutation; it goes into the report so the split can be redrawn.
    labels : (n_records,) int array, optional
        When given, the split is stratified by class so every class appears in members and
        non-members in proportion (per-class results then exist for every class).
    """
    problems = []
    if not is_int(n_records) or n_records < 0:
        problems.append(f"n_records must be a non-negative integer, got {n_records!r}")
    for name, value in (("n_members", n_members), ("n_nonmembers", n_nonmembers)):
        if not is_int(value) or value < 1:
            problems.append(f"{name} must be a positive integer, got {value!r}")
    if n_population is not None and (not is_int(n_population) or n_population < 0):
        problems.append(f"n_population must be a non-negative integer, got {n_population!r}")
    if not is_int(seed) or seed < 0:
        problems.append(f"seed must be a non-negative integer, got {seed!r}")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            problems.append(
                f"labels must be a 1-d integer array, got {labels.dtype} {labels.shape}"
            )
        elif is_int(n_records) and labels.size != n_records:
            problems.append(f"labels has {labels.size} entries for {n_records} records")
        elif labels.size and labels.min() < 0:
            problems.append(f"labels must be class indices >= 0, found {labels.min()}")
    raise_if_problems("make_split", problems)
    rest = n_records - n_members - n_nonmembers
    if rest < 0 or (n_population is not None and n_population > rest):
        want = n_members + n_nonmembers + (n_population or 0)
        raise InvalidAuditInput(
            f"make_split: asked for {want} records (members {n_members}, non-members "
            f"{n_nonmembers}, population {n_population or 0}) but the data set has {n_records}"
        )
    n_pop = rest if n_population is None else n_population
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n_records)
    else:
        order = _stratified_order(labels, rng)
    # Members, non-members and population are consecutive blocks of one random order; with
    # labels, the order spreads every class evenly, so each block keeps the class shares.
    members = np.sort(order[:n_members])
    nonmembers = np.sort(order[n_members : n_members + n_nonmembers])
    population = np.sort(order[n_members + n_nonmembers : n_members + n_nonmembers + n_pop])
    return AuditSplit(members, nonmembers, population, seed=int(seed))


def _stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation in which every prefix holds the classes in about their proportions."""
    n = labels.size
    perm = rng.permutation(n)
    # Rank of each record within its class (in shuffled order), divided by the class size,
    # is a "position" in [0, 1); sorting by it spreads every class evenly along the order.
    lab = labels[perm]
    sort_by_class = np.argsort(lab, kind="stable")
    counts = np.bincount(lab)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.float64)
    rank[sort_by_class] = np.arange(n) - np.repeat(starts, counts)
    position = (rank + rng.random(n)) / counts[lab]
    return perm[np.argsort(position, kind="stable")]


#: The first bytes of every .npz (a zip archive).
_ZIP_MAGIC = b"PK\x03\x04"


def check_split_file(path: Path | str) -> None:
    """Refuse, before the data set is loaded, an ``indices_file`` that is missing, a folder,
    not an ``.npz`` archive, or lacks ``members`` / ``nonmembers``. Reads only the archive's
    directory, never its arrays."""
    field = "split.indices_file"
    check_readable_file(path, field)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != _ZIP_MAGIC:
        raise InvalidAuditInput(
            f"{field} {str(path)!r}: not an .npz archive; write it with numpy.savez(path, "
            "members=..., nonmembers=..., population=...) (population optional)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
    except (OSError, ValueError) as error:
        raise InvalidAuditInput(f"{field} {str(path)!r}: not a readable .npz ({error})") from None
    missing = {"members", "nonmembers"} - keys
    if missing:
        raise InvalidAuditInput(
            f"{field} {str(path)!r}: missing keys {sorted(missing)} (found {sorted(keys)})"
        )
