"""A large pool's answers are mapped from disk and filled one model at a time: what the
process holds grows with records × queries, not with the number of models as well."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.datasets import make_classification
from synthetic import memorising_recipe

from miaudit.attacks import LiRA
from miaudit.attacks import _reference as reference_module
from miaudit.compute import ModelCache, QuerySet, ReferencePool
from miaudit.data.dataset import Dataset

N_RECORDS = 1200


@pytest.fixture(scope="module")
def images():
    x, y = make_classification(
        n_samples=N_RECORDS, n_features=64, n_informative=8, n_classes=3, random_state=5
    )
    return Dataset("tiny-images", x.reshape(-1, 1, 8, 8).astype(np.float32), y.astype(np.int64), 3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return ModelCache(tmp_path_factory.mktemp("cache"))


def _pool(images, cache, n_models, **kwargs):
    pool = ReferencePool(
        memorising_recipe(epochs=3, hidden=(16,)),
        images,
        np.arange(N_RECORDS),
        n_models=n_models,
        seed=2,
        cache=cache,
        **kwargs,
    )
    pool.train()
    return pool


def test_mapped_answers_equal_answers_in_memory_and_leave_no_file(images, cache):
    records, views = np.arange(0, N_RECORDS, 3), QuerySet.flips_and_shifts()
    held = _pool(images, None, 4).observe(records, queries=views)
    mapped = _pool(images, cache, 4, memory_map_above=0).observe(records, queries=views)
    assert isinstance(mapped.scaled_logit.base, np.memmap)
    assert not isinstance(held.scaled_logit.base, np.memmap)
    for name in ("scaled_logit", "log_confidence", "inclusion", "correct"):
        np.testing.assert_array_equal(getattr(mapped, name), getattr(held, name))
    # Read back from the answer cache, mapped again: the same answers.
    again = _pool(images, cache, 4, memory_map_above=0)
    np.testing.assert_array_equal(
        again.observe(records, queries=views).log_confidence, held.log_confidence
    )
    assert again.answers_from_cache == 4
    spill = cache.root / "answers" / "mapped"
    assert spill.is_dir() and not any(spill.iterdir())  # unlinked as soon as mapped
    # The threshold: answers below it stay in memory.
    small = _pool(images, cache, 4, memory_map_above=1 << 30).observe(records, queries=views)
    assert not isinstance(small.scaled_logit.base, np.memmap)


def _traced_peak(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_held_by_observe_and_lira_does_not_grow_with_the_models(images, cache, monkeypatch):
    """numpy reports its allocations to tracemalloc; a mapped file's pages are not
    allocations. 16 models' answers take 4x the bytes of 4 models', but observing them
    from the answer cache and fitting LiRA on them (in blocks of records) allocates
    about as much for either."""
    records, views = np.arange(N_RECORDS), QuerySet.flips_and_shifts()
    monkeypatch.setattr(reference_module, "_MOMENT_BLOCK", 1 << 15)
    peaks, answer_bytes = {}, {}
    for n_models in (4, 16):
        pool = _pool(images, cache, n_models, memory_map_above=0)
        pool.observe(records, queries=views)  # fills the answer cache

        def audit(pool=pool, n_models=n_models):
            refs = pool.observe(records, queries=views)
            LiRA(online=True).fit(refs)
            answer_bytes[n_models] = refs.scaled_logit.nbytes * 2

        peaks[n_models] = _traced_peak(audit)
    assert answer_bytes[16] == 4 * answer_bytes[4]
    # 12 more models add 2.1 MB of answers and (inclusion, correctness) 29 KB of flags.
    growth = peaks[16] - peaks[4]
    assert growth < 0.05 * (answer_bytes[16] - answer_bytes[4]), (peaks, answer_bytes)
    # Held in memory instead, the same audit allocates every answer besides.
    held = _pool(images, cache, 16, memory_map_above=None)
    in_memory = _traced_peak(lambda: LiRA().fit(held.observe(records, queries=views)))
    assert in_memory - peaks[16] > 0.9 * answer_bytes[16], (in_memory, peaks)


def test_the_audit_maps_answers_above_the_configured_size(tmp_path, monkeypatch):
    """``references.memory_map_above_mb`` reaches the audit's pools: 0 maps every pool's
    answers (and LiRA still runs on them), the default of 512 MiB maps none of these."""
    from miaudit.audit import run_audit
    from miaudit.compute import pool as pool_module
    from miaudit.config import parse_config
    from miaudit.data import load_dataset
    from miaudit.data.split import make_split
    from miaudit.errors import InvalidAuditInput
    from miaudit.references import ReferenceSetup
    from miaudit.targets import TorchTarget

    seen = []
    original = pool_module._answer_arrays

    def recording(shape, spill_dir):
        seen.append(spill_dir is not None)
        return original(shape, spill_dir)

    monkeypatch.setattr(pool_module, "_answer_arrays", recording)
    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=200, n_nonmembers=200, seed=0, labels=data.y)
    recipe = memorising_recipe(epochs=40, hidden=(64,))
    target = TorchTarget(recipe.train(data, split.members, seed=0).model, n_classes=10)
    aucs = []
    for mapped, expected in ((0, True), (None, False)):
        seen.clear()
        setup = ReferenceSetup(
            recipe=recipe, cache_dir=tmp_path / "cache", memory_map_above_mb=mapped
        )
        result = run_audit(
            target, data, split, attacks=[{"name": "lira", "num_references": 2}], references=setup
        )
        assert seen and all(m == expected for m in seen), (mapped, seen)
        aucs.append(result.attacks[0].auc)
    assert aucs[0] == aucs[1] > 0.55  # the same audit, mapped or held
    assert ReferenceSetup(recipe=recipe, memory_map_above_mb=0.25).memory_map_above == 1 << 18
    assert ReferenceSetup(recipe=recipe).memory_map_above == 512 << 20
    with pytest.raises(InvalidAuditInput, match="memory_map_above_mb"):
        ReferenceSetup(recipe=recipe, memory_map_above_mb=-1)
    with pytest.raises(InvalidAuditInput, match="memory_map_above_mb"):
        parse_config(
            {
                "dataset": "digits",
                "split": {"members": 10, "nonmembers": 10},
                "target": {"recipe": {"architecture": "mlp"}},
                "references": {"memory_map_above_mb": -2},
            }
        )
