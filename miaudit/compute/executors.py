"""Where a pool's models train and answer: in this process, in a local process pool, or on Ray.

A :class:`~miaudit.compute.pool.ReferencePool` hands its executor :class:`TrainTask`\\ s
(one model, or one batched-ensemble group) and receives the trained models as they finish;
a remote executor also answers queries (:class:`~miaudit.compute.answers.AnswerTask`: the
workers load the models from the shared cache and store their answers in the answer cache).
Every executor runs the same code, :func:`run_task`, which trains exactly as the pool
itself would (``recipe.train`` or the batched ensemble, same seeds, same records), so a
model is the same whichever executor trained it.

Models come back through the content-addressed :class:`~miaudit.compute.cache.ModelCache`:
a worker stores what it trains and returns the keys; the pool loads them, trusting only the
types its recipe names. Hence a model finished before an interruption (or before a worker
died) is never trained again, and with Ray the cache (on a path every node sees) is the
durable copy while the object store carries the data set.

Threads: two torch processes on two cores each running two threads run 10-100x slower
than one (oversubscription). Each worker therefore caps torch and the OpenMP/MKL pools at
``threads_per_worker`` (default: the cores divided among the workers, at least one).

* :class:`InProcessExecutor`: one task after another, here (the default).
* :class:`ProcessPoolExecutor`: ``workers`` local processes (spawned, so no state leaks
  from the parent); the data set travels once, as memory-mapped ``.npy`` files. A worker
  that dies (killed, out of memory) breaks the pool; the unfinished tasks are resubmitted
  to a fresh one, up to ``retries`` times.
* :class:`RayExecutor`: Ray tasks (``pip install 'miaudit[ray]'``) on a local instance or
  the cluster at ``address``; Ray retries a task whose worker died (``max_retries``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput
from miaudit.references import EXECUTORS
from miaudit.validation import is_int

__all__ = [
    "EXECUTORS",
    "InProcessExecutor",
    "ProcessPoolExecutor",
    "RayExecutor",
    "TrainTask",
    "make_executor",
    "run_task",
]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class TrainTask:
    """Models to train together: one, or an ensemble group with equal training sizes."""

    models: tuple[int, ...]
    keys: tuple[str, ...]
    training_indices: tuple[np.ndarray, ...]
    seeds: tuple[int, ...]
    eval_indices: tuple[np.ndarray, ...]


def run_task(recipe: Any, dataset: Dataset, task: TrainTask) -> list:
    """Train the models of ``task`` exactly as :class:`ReferencePool` does in process."""
    if len(task.models) == 1:
        return [
            recipe.train(
                dataset,
                task.training_indices[0],
                seed=task.seeds[0],
                eval_indices=task.eval_indices[0],
            )
        ]
    from miaudit.compute.ensemble import train_ensemble

    return train_ensemble(
        recipe,
        dataset,
        list(task.training_indices),
        list(task.seeds),
        eval_index_sets=list(task.eval_indices),
    )


def _cap_threads(threads: int) -> None:
    for name in _THREAD_VARIABLES:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _threads_per_worker(workers: int, threads: int | None) -> int:
    if threads is not None:
        return threads
    return max(1, (os.cpu_count() or 1) // workers)


class InProcessExecutor:
    """Train here, one task after another; the pool caches what comes back."""

    name = "inprocess"
    remote = False

    def run(
        self, recipe: Any, dataset: Dataset, tasks: Sequence[TrainTask], cache: Any
    ) -> Iterator[tuple[int, list]]:
        for i, task in enumerate(tasks):
            yield i, run_task(recipe, dataset, task)


def _check_workers(owner: str, workers: Any, threads: Any, retries: Any) -> None:
    problems = []
    if not is_int(workers) or workers < 1:
        problems.append(f"workers must be a positive int, got {workers!r}")
    if threads is not None and (not is_int(threads) or threads < 1):
        problems.append(f"threads_per_worker must be a positive int, got {threads!r}")
    if not is_int(retries) or retries < 0:
        problems.append(f"retries must be an int >= 0, got {retries!r}")
    if problems:
        raise InvalidAuditInput(f"{owner}: " + "; ".join(problems))


# --------------------------------------------------------------------------- processes

_WORKER: dict[str, Any] = {}


def _dataset_meta(dataset: Dataset) -> dict:
    """What a worker needs besides the arrays to rebuild the data set (:func:`_rebuilt`)."""
    return {
        "name": dataset.name,
        "n_classes": dataset.n_classes,
        "class_names": list(dataset.class_names),
        "source": dataset.source,
    }


def _rebuilt(meta: dict, x: np.ndarray, y: np.ndarray) -> Dataset:
    names = tuple(meta["class_names"])
    return Dataset(meta["name"], x, y, meta["n_classes"], names, meta["source"])


def _init_process_worker(folder: str, meta: dict, threads: int) -> None:
    _cap_threads(threads)
    x = np.load(Path(folder) / "x.npy", mmap_mode="r")
    _WORKER["dataset"] = _rebuilt(meta, x, np.load(Path(folder) / "y.npy"))


def _train_and_store(recipe: Any, dataset: Dataset, task: Any, cache_root: str) -> tuple[str, ...]:
    """A worker's job: train ``task``, store each model in the shared cache, return keys;
    or, for an :class:`~miaudit.compute.answers.AnswerTask`, answer with cached models and
    store the answers."""
    from miaudit.compute.answers import AnswerTask, run_answer_task
    from miaudit.compute.cache import ModelCache

    if isinstance(task, AnswerTask):
        return run_answer_task(recipe, dataset, task, cache_root)
    cache = ModelCache(cache_root)
    for key, trained in zip(task.keys, run_task(recipe, dataset, task), strict=True):
        cache.put(key, trained, recipe, dataset)
    return task.keys


def _process_task(recipe: Any, task: TrainTask, cache_root: str) -> tuple[str, ...]:
    return _train_and_store(recipe, _WORKER["dataset"], task, cache_root)


class ProcessPoolExecutor:
    """``workers`` local processes, each capped at ``threads_per_worker`` threads."""

    name = "process"
    remote = True

    def __init__(
        self, workers: int = 2, *, threads_per_worker: int | None = None, retries: int = 2
    ) -> None:
        _check_workers("ProcessPoolExecutor", workers, threads_per_worker, retries)
        self.workers = int(workers)
        self.threads = _threads_per_worker(self.workers, threads_per_worker)
        self.retries = int(retries)
        self.restarts = 0

    def run(
        self, recipe: Any, dataset: Dataset, tasks: Sequence[TrainTask], cache: Any
    ) -> Iterator[tuple[int, list[str]]]:
        import concurrent.futures as cf
        import multiprocessing

        folder = tempfile.mkdtemp(prefix="miaudit-fleet-")
        try:
            np.save(Path(folder) / "x.npy", np.ascontiguousarray(dataset.x))
            np.save(Path(folder) / "y.npy", dataset.y)
            meta = _dataset_meta(dataset)
            pending = dict(enumerate(tasks))
            attempts = 0
            while pending:
                pool = cf.ProcessPoolExecutor(
                    max_workers=min(self.workers, len(pending)),
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_init_process_worker,
                    initargs=(folder, meta, self.threads),
                )
                try:
                    futures = {
                        pool.submit(_process_task, recipe, task, str(cache.root)): i
                        for i, task in pending.items()
                    }
                    for future in cf.as_completed(futures):
                        i = futures[future]
                        keys = future.result()
                        del pending[i]
                        yield i, list(keys)
                except cf.process.BrokenProcessPool:
                    attempts += 1
                    self.restarts += 1
                    if attempts > self.retries:
                        raise InvalidAuditInput(
                            f"process executor: a worker died {attempts} times; "
                            f"{len(pending)} models left untrained (those finished are in "
                            "the model cache, so a rerun resumes)"
                        ) from None
                finally:
                    pool.shutdown(wait=True, cancel_futures=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- ray


def _ray_task(
    recipe: Any, arrays: tuple, meta: dict, task: TrainTask, cache_root: str, threads: int
) -> tuple[str, ...]:
    _cap_threads(threads)
    return _train_and_store(recipe, _rebuilt(meta, *arrays), task, cache_root)


class RayExecutor:
    """Ray tasks, one per training task, each asking for ``threads_per_worker`` CPUs.

    ``address``: ``None`` or ``"local"`` starts a local Ray instance with ``workers`` CPUs
    (stopped again afterwards); ``"auto"`` or ``"ray://host:port"`` joins a running
    cluster, whose nodes must all see the model cache's path.
    """

    name = "ray"
    remote = True

    def __init__(
        self,
        workers: int = 2,
        *,
        address: str | None = None,
        threads_per_worker: int | None = None,
        retries: int = 2,
    ) -> None:
        _check_workers("RayExecutor", workers, threads_per_worker, retries)
        if address is not None and not isinstance(address, str):
            raise InvalidAuditInput(f"RayExecutor: address must be a string, got {address!r}")
        try:
            import ray  # noqa: F401
        except ImportError:
            raise InvalidAuditInput(
                "the ray executor needs Ray: pip install 'miaudit[ray]'"
            ) from None
        self.workers = int(workers)
        self.address = address
        self.threads = _threads_per_worker(self.workers, threads_per_worker)
        self.retries = int(retries)

    def run(
        self, recipe: Any, dataset: Dataset, tasks: Sequence[TrainTask], cache: Any
    ) -> Iterator[tuple[int, list[str]]]:
        import ray

        started_here = False
        if not ray.is_initialized():
            env = {"env_vars": {name: str(self.threads) for name in _THREAD_VARIABLES}}
            if self.address in (None, "local"):
                ray.init(
                    num_cpus=self.workers * self.threads,
                    include_dashboard=False,
                    runtime_env=env,
                    logging_level="ERROR",
                    log_to_driver=False,
                )
            else:
                ray.init(address=self.address, runtime_env=env, logging_level="ERROR")
            started_here = True
        try:
            remote = ray.remote(num_cpus=self.threads, max_retries=self.retries)(_ray_task)
            arrays = ray.put((np.ascontiguousarray(dataset.x), dataset.y))
            meta = _dataset_meta(dataset)
            refs = {
                remote.remote(recipe, arrays, meta, task, str(cache.root), self.threads): i
                for i, task in enumerate(tasks)
            }
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                try:
                    keys = ray.get(done[0])
                except ray.exceptions.RayError as error:
                    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                    raise InvalidAuditInput(
                        f"ray executor: a task failed after {self.retries} retries "
                        f"({type(error).__name__}: {first}); finished models are in the "
                        "model cache, so a rerun resumes"
                    ) from None
                yield refs[done[0]], list(keys)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(
    name: str = "inprocess",
    *,
    workers: int = 2,
    address: str | None = None,
    threads_per_worker: int | None = None,
):
    """The executor ``name`` (one of :data:`EXECUTORS`) with its settings."""
    if name == "inprocess":
        return InProcessExecutor()
    if name == "process":
        return ProcessPoolExecutor(workers, threads_per_worker=threads_per_worker)
    if name == "ray":
        return RayExecutor(workers, address=address, threads_per_worker=threads_per_worker)
    raise InvalidAuditInput(f"executor must be one of {EXECUTORS}, got {name!r}")
