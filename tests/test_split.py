"""Tests of the member / non-member / population split."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.data import AuditSplit, make_split
from miaudit.errors import InvalidAuditInput


def _sets(split: AuditSplit) -> list[set[int]]:
    return [
        set(split.members.tolist()),
        set(split.nonmembers.tolist()),
        set(split.population.tolist()),
    ]


def test_split_is_disjoint_and_sized():
    split = make_split(100, n_members=30, n_nonmembers=20, n_population=40, seed=3)
    members, nonmembers, population = _sets(split)
    assert (len(members), len(nonmembers), len(population)) == (30, 20, 40)
    assert not members & nonmembers and not members & population
    assert not nonmembers & population
    assert max(members | nonmembers | population) < 100
    assert split.members.dtype == np.int64 and split.seed == 3
    split.check_within(100)


def test_population_defaults_to_the_rest():
    split = make_split(50, n_members=10, n_nonmembers=15)
    assert split.population.size == 25
    assert set().union(*_sets(split)) == set(range(50))


def test_audited_order_matches_is_member():
    split = make_split(20, n_members=4, n_nonmembers=6, seed=1)
    np.testing.assert_array_equal(split.audited[:4], split.members)
    np.testing.assert_array_equal(split.audited[4:], split.nonmembers)
    assert split.is_member.tolist() == [True] * 4 + [False] * 6
    assert split.describe() == {"seed": 1, "n_members": 4, "n_nonmembers": 6, "n_population": 10}


@pytest.mark.parametrize("stratified", [False, True])
def test_same_seed_same_split_other_seed_differs(stratified):
    labels = np.arange(1000) % 7 if stratified else None
    first = make_split(1000, n_members=300, n_nonmembers=300, seed=11, labels=labels)
    again = make_split(1000, n_members=300, n_nonmembers=300, seed=11, labels=labels)
    other = make_split(1000, n_members=300, n_nonmembers=300, seed=12, labels=labels)
    for name in ("members", "nonmembers", "population"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.members, other.members)


def test_stratification_keeps_class_shares():
    rng = np.random.default_rng(0)
    # Unbalanced classes: shares 0.5, 0.3, 0.15, 0.05.
    labels = rng.choice(4, size=4000, p=[0.5, 0.3, 0.15, 0.05])
    whole = np.bincount(labels, minlength=4) / labels.size
    split = make_split(4000, n_members=1000, n_nonmembers=500, seed=5, labels=labels)
    for part in (split.members, split.nonmembers, split.population):
        share = np.bincount(labels[part], minlength=4) / part.size
        np.testing.assert_allclose(share, whole, atol=0.01)


def test_stratified_split_keeps_rare_classes_in_both_sides():
    labels = np.array([0] * 95 + [1] * 5)
    for seed in range(10):
        split = make_split(100, n_members=40, n_nonmembers=40, seed=seed, labels=labels)
        assert 1 in labels[split.members] and 1 in labels[split.nonmembers]


def test_asking_for_more_records_than_exist():
    with pytest.raises(InvalidAuditInput, match="asked for 110 records"):
        make_split(100, n_members=60, n_nonmembers=50)
    with pytest.raises(InvalidAuditInput, match="population 30"):
        make_split(100, n_members=40, n_nonmembers=40, n_population=30)


def test_bad_arguments_are_reported_together():
    with pytest.raises(InvalidAuditInput) as info:
        make_split(10, n_members=0, n_nonmembers=True, seed=-1, labels=np.zeros(3, int))
    message = str(info.value)
    for expected in ("n_members", "n_nonmembers", "seed", "labels has 3 entries"):
        assert expected in message
    with pytest.raises(InvalidAuditInput, match="labels must be a 1-d integer"):
        make_split(4, n_members=1, n_nonmembers=1, labels=np.array([0.5, 1, 1, 0]))


def test_overlapping_sets_are_refused():
    with pytest.raises(InvalidAuditInput, match="members and nonmembers overlap in 1"):
        AuditSplit(np.array([0, 1]), np.array([1, 2]), np.array([], dtype=np.int64))
    with pytest.raises(InvalidAuditInput, match="nonmembers and population overlap"):
        AuditSplit(np.array([0]), np.array([1, 2]), np.array([2, 3]))


def test_empty_or_malformed_sets_are_refused():
    with pytest.raises(InvalidAuditInput, match="members is empty"):
        AuditSplit(np.array([], dtype=np.int64), np.array([1]), np.array([2]))
    with pytest.raises(InvalidAuditInput, match="nonmembers is empty"):
        AuditSplit(np.array([0]), np.array([], dtype=np.int64), np.array([2]))
    with pytest.raises(InvalidAuditInput, match="appear twice"):
        AuditSplit(np.array([0, 0]), np.array([1]), np.array([2]))
    with pytest.raises(InvalidAuditInput, match="negative index"):
        AuditSplit(np.array([-1]), np.array([1]), np.array([2]))
    with pytest.raises(InvalidAuditInput, match="1-d integer"):
        AuditSplit(np.array([0.0]), np.array([1]), np.array([2]))


def test_indices_out_of_range_for_the_data():
    split = AuditSplit(np.array([0, 9]), np.array([1]), np.array([2]))
    with pytest.raises(InvalidAuditInput, match="index 9 is out of range"):
        split.check_within(5)
    split.check_within(10)


def test_user_lists_become_int64_arrays():
    split = AuditSplit([0, 1], [2], [])
    assert split.members.dtype == np.int64 and split.population.dtype == np.int64
    assert split.population.size == 0 and split.seed is None
