"""Reference fleets on other executors: a local process pool and Ray give the same models,
bit for bit, as training in process; a worker killed mid-task is retried; an interrupted
fleet resumes without retraining what finished."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import memorising_recipe, synthetic_dataset

from miaudit.compute import ModelCache, ReferencePool
from miaudit.compute.executors import ProcessPoolExecutor, RayExecutor
from miaudit.errors import InvalidAuditInput
from miaudit.models import TorchRecipe

pytestmark = pytest.mark.slow


@dataclass(frozen=True, kw_only=True)
class DiesOnce(TorchRecipe):
    """Trains as its parent, but the first training of model ``victim`` kills its process
    (a worker lost mid-task); every training leaves a file behind (who trained what)."""

    folder: str = ""
    victim: int = -1
    marker = "died"

    def train(self, dataset, indices, *, seed, **kwargs):
        log = Path(self.folder)
        (log / f"train-{seed}-{os.getpid()}-{len(list(log.iterdir()))}").touch()
        if seed == self.victim and not (log / self.marker).exists():
            (log / self.marker).touch()
            self.fail()
        return super().train(dataset, indices, seed=seed, **kwargs)

    def fail(self):
        os._exit(1)


@dataclass(frozen=True, kw_only=True)
class FailsOnce(DiesOnce):
    """Raises (an interrupted run) instead of dying, once."""

    marker = "failed"

    def fail(self):
        raise RuntimeError("interrupted")


def _recipe(cls=TorchRecipe, **extra):
    base = memorising_recipe(epochs=8, hidden=(16,))
    return cls(
        architecture=base.architecture,
        arch_params=base.arch_params,
        training=base.training,
        **extra,
    )


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(seed=2, n_samples=400)


def _pool(data, recipe, cache, executor=None, ensemble="off", n_models=4):
    return ReferencePool(
        recipe,
        data,
        np.arange(data.n_records),
        n_models=n_models,
        seed=3,
        cache=cache,
        ensemble=ensemble,
        executor=executor,
    )


def _states(models):
    return [{k: v.clone() for k, v in m.model.state_dict().items()} for m in models]


def _same(a, b):
    return all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


@pytest.fixture(scope="module")
def in_process(data):
    """The models trained here with one thread: what every executor must reproduce."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _states(_pool(data, _recipe(), None).train())
        grouped = _states(_pool(data, _recipe(), None, ensemble="on").train())
    finally:
        torch.set_num_threads(threads)
    return single, grouped


def test_process_pool_gives_the_same_models_bit_for_bit(data, in_process, tmp_path):
    single, grouped = in_process
    executor = ProcessPoolExecutor(2, threads_per_worker=1)
    pool = _pool(data, _recipe(), ModelCache(tmp_path / "a"), executor)
    assert _same(_states(pool.train()), single)
    assert pool.describe()["models_from_cache"] == 0
    # Batched-ensemble groups travel as one task each.
    pool = _pool(data, _recipe(), ModelCache(tmp_path / "b"), executor, ensemble="on")
    assert _same(_states(pool.train()), grouped)
    # No cache of the pool's own: a temporary one carries the models back.
    assert _same(_states(_pool(data, _recipe(), None, executor).train()), single)


def test_ray_gives_the_same_models_and_retries_a_killed_task(data, in_process, tmp_path):
    pytest.importorskip("ray")
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    single, _ = in_process
    log = tmp_path / "log"
    log.mkdir()
    victim = _pool(data, _recipe(), None).model_seed(2)
    recipe = _recipe(DiesOnce, folder=str(log), victim=victim)
    executor = RayExecutor(2, threads_per_worker=1, retries=2)
    pool = _pool(data, recipe, ModelCache(tmp_path / "cache"), executor)
    assert _same(_states(pool.train()), single)
    assert (log / "died").exists()
    runs = [p.name for p in log.iterdir() if p.name.startswith(f"train-{victim}-")]
    assert len(runs) == 2  # killed once, retried once
    # Ray tasks answer the queries too: the same answers as querying here at one thread.
    from miaudit.compute import QuerySet

    records = np.arange(0, 400, 2)
    remote = pool.observe(records, queries=QuerySet.none())
    assert pool.answers_from_cache == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = _pool(data, recipe, ModelCache(tmp_path / "here"))
        here.train()
        local = here.observe(records, queries=QuerySet.none())
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(remote.scaled_logit, local.scaled_logit)
    np.testing.assert_array_equal(remote.correct, local.correct)


def test_process_pool_survives_a_killed_worker(data, in_process, tmp_path):
    single, _ = in_process
    log = tmp_path / "log"
    log.mkdir()
    victim = _pool(data, _recipe(), None).model_seed(1)
    recipe = _recipe(DiesOnce, folder=str(log), victim=victim)
    executor = ProcessPoolExecutor(2, threads_per_worker=1)
    pool = _pool(data, recipe, ModelCache(tmp_path / "cache"), executor)
    assert _same(_states(pool.train()), single)
    assert executor.restarts == 1


def test_interrupted_fleet_resumes_without_retraining(data, tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    victim = _pool(data, _recipe(), None).model_seed(3)
    recipe = _recipe(FailsOnce, folder=str(log), victim=victim)
    cache = ModelCache(tmp_path / "cache")
    executor = ProcessPoolExecutor(2, threads_per_worker=1)
    with pytest.raises(RuntimeError, match="interrupted"):
        _pool(data, recipe, cache, executor).train()
    finished = len(cache.keys())
    assert 1 <= finished <= 3
    before = {p.name for p in log.iterdir()}
    pool = _pool(data, recipe, cache, executor)
    pool.train()
    assert pool.describe()["models_from_cache"] == finished
    retrained = [p for p in log.iterdir() if p.name not in before and p.name.startswith("train")]
    assert len(retrained) == 4 - finished  # only what had not finished


def test_executor_settings_are_checked():
    with pytest.raises(InvalidAuditInput, match="workers"):
        ProcessPoolExecutor(0)
    from miaudit.references import ReferenceSetup

    with pytest.raises(InvalidAuditInput, match="executor"):
        ReferenceSetup(recipe=None, executor="slurm")


def test_answers_are_cached_and_invalidated_by_model_records_and_queries(
    data, tmp_path, monkeypatch
):
    from miaudit.compute import QuerySet
    from miaudit.compute import pool as pool_module

    calls: list[int] = []
    original = pool_module._answer_into

    def counting(answerers, *args, **kwargs):
        calls.append(len(answerers))
        return original(answerers, *args, **kwargs)

    monkeypatch.setattr(pool_module, "_answer_into", counting)
    cache = ModelCache(tmp_path / "cache")
    pool = _pool(data, _recipe(), cache)
    pool.train()
    records = np.arange(50, 150)
    first = pool.observe(records, queries=QuerySet.none())
    assert calls == [4] and pool.answers_from_cache == 0
    again = _pool(data, _recipe(), cache)  # a second audit: same pool, same records
    again.train()
    second = again.observe(records, queries=QuerySet.none())
    assert calls == [4] and again.answers_from_cache == 4  # queried nothing
    np.testing.assert_array_equal(first.scaled_logit, second.scaled_logit)
    np.testing.assert_array_equal(first.correct, second.correct)
    np.testing.assert_array_equal(first.inclusion, second.inclusion)
    # Other records, another model (a new seed), other views: each a miss.
    again.observe(records[:-1], queries=QuerySet.none())
    assert calls[-1] == 4
    other = ReferencePool(
        _recipe(), data, np.arange(data.n_records), n_models=4, seed=4, cache=cache
    )
    other.train()
    other.observe(records, queries=QuerySet.none())
    assert calls[-1] == 4
    from miaudit.targets import TorchTarget
    from miaudit.targets.defenses import output_defense, same_defenses

    defended = output_defense(
        TorchTarget(pool.models_[0].model, n_classes=4, access="probabilities"),
        "rounding",
        decimals=1,
    )
    again.observe(records, queries=QuerySet.none(), answer_as=same_defenses(defended))
    assert calls[-1] == 4 and again.answers_from_cache == 0
    # A tampered entry is ignored and recomputed, never trusted.
    from miaudit.compute.answers import AnswerCache

    entries = sorted(AnswerCache(cache.root).root.glob("??/*.npz"))
    for path in entries:
        np.savez(path, records=np.arange(3), phi=np.zeros((3, 1)))
    n = len(calls)
    redo = again.observe(records, queries=QuerySet.none())
    assert len(calls) == n + 1 and again.answers_from_cache == 0
    np.testing.assert_array_equal(redo.scaled_logit, first.scaled_logit)


def test_workers_answer_the_queries_and_return_them_through_the_cache(data, tmp_path, monkeypatch):
    """A remote executor's workers query the models (the parent queries none) and give
    the same answers, bit for bit at one thread, as querying here; output defenses travel
    with the task."""
    from miaudit.compute import QuerySet
    from miaudit.compute import pool as pool_module
    from miaudit.targets.defenses import DefenseChain

    records = np.arange(100, 300)
    rounding = DefenseChain(({"defense": "rounding", "decimals": 3},), data.n_classes)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = _pool(data, _recipe(), ModelCache(tmp_path / "here"))
        here.train()
        expected = {
            name: here.observe(records, queries=QuerySet.none(), answer_as=answer_as)
            for name, answer_as in (("plain", None), ("rounded", rounding))
        }
    finally:
        torch.set_num_threads(threads)

    def never(*args, **kwargs):
        raise AssertionError("the parent process queried a model")

    executor = ProcessPoolExecutor(2, threads_per_worker=1)
    cache = ModelCache(tmp_path / "fleet")
    pool = _pool(data, _recipe(), cache, executor)
    pool.train()
    monkeypatch.setattr(pool_module, "_answer_into", never)
    for name, answer_as in (("plain", None), ("rounded", rounding)):
        got = pool.observe(records, queries=QuerySet.none(), answer_as=answer_as)
        assert pool.answers_from_cache == 0  # answered by the workers just now
        for field in ("scaled_logit", "log_confidence", "correct", "inclusion"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected[name], field))
    assert not np.array_equal(expected["plain"].log_confidence, expected["rounded"].log_confidence)


def test_shadow_models_train_on_the_executor_like_in_process(data, tmp_path):
    """Shadow models go through the same pool, hence the same executors: trained by a
    process pool they are the in-process models, so the attack scores the same."""
    from miaudit.attacks import ShadowModelAttack
    from miaudit.targets import TorchTarget

    attacker = np.arange(0, 300)
    probe = np.arange(300, 400)
    target = TorchTarget(
        _pool(data, _recipe(), None, n_models=1).train()[0].model, n_classes=data.n_classes
    )

    def scores(executor, cache_dir):
        attack = ShadowModelAttack(n_shadow=2, attack_model="lr", seed=1)
        attack.fit(data, attacker, recipe=_recipe(), cache=ModelCache(cache_dir), executor=executor)
        return attack.score_target(target, data.x[probe], data.y[probe])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = scores(None, tmp_path / "here")
    finally:
        torch.set_num_threads(threads)
    cache = tmp_path / "fleet"
    remote = scores(ProcessPoolExecutor(2, threads_per_worker=1), cache)
    np.testing.assert_array_equal(remote, here)
    assert len(ModelCache(cache).keys()) == 2  # the workers stored both shadow models
