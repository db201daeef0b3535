"""Content-addressed cache of trained models, so that a rerun never retrains what it has.

A model trained by a recipe is a pure function of ``(recipe, data, training indices,
seed)``; its cache key is the sha256 of exactly those four things (:func:`cache_key`).
Nothing else (the pool a model belongs to, its position in it, the host) enters the key,
so a pool that grows from 4 to 8 models, another audit on the same data, or a second
process finds the models already trained.

Layout under the cache root (default ``$MIAUDIT_CACHE``, else ``~/.cache/miaudit``)::

    <key[:2]>/<key>.pt       PyTorch weights, as miaudit.models.save_torch_model writes them
    <key[:2]>/<key>.skops    scikit-learn models, written with skops
    <key[:2]>/<key>.ubj      XGBoost models, in XGBoost's own UBJSON format
    <key[:2]>/<key>.lgb.txt  LightGBM models, in LightGBM's own text format
    <key[:2]>/<key>.json     metadata: accuracies, seconds, seed, n_train, sha256 of the model

(:mod:`miaudit.compute.model_formats` lists the formats.) A model that no format stores,
such as a network of a class the registry does not know returned by the user's training
function, gets a metadata entry of kind ``answers_only``: the audit reruns from its cached
answers (:mod:`miaudit.compute.answers`) and retrains it only to answer new questions.

Crash safety. Every file is written to a temporary file in the same folder, flushed to
disk and renamed over its final name (``os.replace``, atomic on POSIX and Windows), and
the metadata is written last. An entry exists only once its metadata does, and the
metadata holds the sha256 of the model file, so a process killed at any moment leaves
either a complete entry, or an orphan model file / temporary file that no reader uses
(the next ``put`` of that key overwrites it). An entry whose metadata or model cannot be
read, or whose model does not match its checksum, counts as missing: ``get`` warns with
:class:`CacheWarning` and returns None, and the caller retrains and overwrites it.

Safety. PyTorch models are loaded with ``torch.load(weights_only=True)`` and rebuilt from
the architecture registry (:func:`~miaudit.models.load_torch_model`); scikit-learn models
with ``skops.io`` after the file's checksum matched, trusting only the types the *caller*
names (:meth:`SklearnRecipe.trusted_types <miaudit.models.SklearnRecipe.trusted_types>`:
the recipe's estimator classes and scikit-learn's fitted-state types). Whoever can write to
the cache folder can change its metadata and checksums, so nothing stored there decides
what is loaded; a model holding any other type is refused and retrained. Nothing in the
cache is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Collection
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.atomic import atomic_write
from miaudit.compute.model_formats import format_for, format_named
from miaudit.data.dataset import Dataset
from miaudit.errors import InvalidAuditInput
from miaudit.models.recipes import TrainedModel, trusted_types_of

__all__ = [
    "CACHE_ENV",
    "CacheWarning",
    "CachedModel",
    "ModelCache",
    "cache_key",
    "data_fingerprint",
    "default_cache_dir",
    "train_or_load",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "MIAUDIT_CACHE"
_ENTRY_FORMAT = "miaudit.cache_entry"
# Bump when the entry layout changes; old entries then count as missing, not corrupt.
_ENTRY_VERSION = 1
_KEY_VERSION = 1
#: The kind of an entry that holds a model's facts but not the model (answers only).
ANSWERS_ONLY = "answers_only"


class CacheWarning(UserWarning):
    """A cache entry could not be used (unreadable, or its checksum does not match)."""


def default_cache_dir() -> Path:
    """``$MIAUDIT_CACHE`` when set (and not empty), else ``~/.cache/miaudit``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "miaudit"


def data_fingerprint(dataset: Dataset) -> str:
    """sha256 hex digest of a data set's records, labels, shapes, dtypes and class count.

    Names and sources are left out: the same arrays loaded from another path train the
    same models. Hashing reads every byte once (about a second for CIFAR-10's 600 MB), so
    compute it once per pool, not per model.
    """
    x = np.ascontiguousarray(dataset.x)
    y = np.ascontiguousarray(dataset.y)
    header = {
        "x": [str(x.dtype), list(x.shape)],
        "y": [str(y.dtype), list(y.shape)],
        "n_classes": int(dataset.n_classes),
    }
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode("ascii"))
    h.update(memoryview(x).cast("B"))
    h.update(memoryview(y).cast("B"))
    return h.hexdigest()


def cache_key(recipe_fingerprint: str, data_fp: str, indices: np.ndarray, seed: int) -> str:
    """The key of the model that ``recipe`` trains on ``indices`` of a data set with ``seed``.

    Parameters
    ----------
    recipe_fingerprint : str
        ``recipe.fingerprint()``.
    data_fp : str
        :func:`data_fingerprint` of the data set.
    indices : (n_train,) int array
        Training records; their order does not matter (they are sorted here), because
        recipes draw the batch order from the seed, not from the order of the indices.
    seed : int
        The seed passed to ``recipe.train``.

    Returns
    -------
    str
        64 hex digits.
    """
    idx = np.sort(np.asarray(indices, dtype=np.int64))
    payload = {
        "version": _KEY_VERSION,
        "recipe": str(recipe_fingerprint),
        "data": str(data_fp),
        "indices": hashlib.sha256(idx.astype("<i8").tobytes()).hexdigest(),
        "n_train": int(idx.size),
        "seed": int(seed),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True, eq=False)
class CachedModel:
    """A model found in (or just written to) the cache.

    Attributes
    ----------
    key : str
        Its cache key.
    trained : TrainedModel
        The model (PyTorch models on the CPU, in eval mode) and its recorded accuracies,
        training seconds, seed and training-set size.
    path : Path
        The model file.
    """

    key: str
    trained: TrainedModel
    path: Path


def _privacy(value: Any) -> dict | None:
    """The accountant's record of a DP model, as plain numbers (None for other models)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("privacy must be a mapping")
    out = {}
    for key in ("epsilon", "delta", "noise_multiplier", "max_grad_norm", "sample_rate"):
        out[key] = float(value[key])
    out["steps"] = int(value["steps"])
    out["accountant"] = str(value.get("accountant", "rdp"))
    return out


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ModelCache:
    """Trained models on disk, keyed by :func:`cache_key`.

    Parameters
    ----------
    root : path-like, optional
        Cache folder, created when first written to. Default: :func:`default_cache_dir`.

    Notes
    -----
    Several processes may share one cache: writes are atomic, and two processes that
    train the same key race harmlessly (the last complete write wins; in the rare
    interleaving where one's metadata meets the other's model file, the checksum fails
    and the entry is retrained once).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    @classmethod
    def default(cls) -> ModelCache:
        """The cache at :func:`default_cache_dir`."""
        return cls(None)

    def __repr__(self) -> str:
        return f"ModelCache({str(self.root)!r})"

    # ---------------------------------------------------------------- paths

    def _check_key(self, key: str) -> str:
        if not (
            isinstance(key, str) and len(key) == 64 and all(c in "0123456789abcdef" for c in key)
        ):
            raise InvalidAuditInput(f"cache key must be 64 lowercase hex digits, got {key!r}")
        return key

    def _folder(self, key: str) -> Path:
        return self.root / key[:2]

    def metadata_path(self, key: str) -> Path:
        """Where the metadata of ``key`` lives (an entry exists iff this file does)."""
        return self._folder(self._check_key(key)) / f"{key}.json"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.metadata_path(key).is_file()

    @contextmanager
    def lock(self, keys: Collection[str]):
        """Hold the entries ``keys`` against other processes while they are trained: a
        second audit sharing the cache waits here, then finds the first's models instead
        of training them again. Locks are ``flock`` locks on ``<key>.lock`` files (released
        by the OS when a process dies, so a killed audit never leaves a lock held)."""
        import fcntl

        handles = []
        try:
            for key in sorted(set(keys)):
                folder = self._folder(self._check_key(key))
                folder.mkdir(parents=True, exist_ok=True)
                handle = open(folder / f"{key}.lock", "a+b")
                handles.append(handle)
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield
        finally:
            for handle in handles:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()

    def remove_stale_temporaries(self, folder: Path, older_than_s: float = 3600.0) -> int:
        """Delete the temporary files (``.*.tmp``) a killed writer left in ``folder`` more
        than ``older_than_s`` ago (a live writer's are seconds old); return how many."""
        now, removed = time.time(), 0
        for path in folder.glob(".*.tmp"):
            try:
                if now - path.stat().st_mtime > older_than_s:
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def keys(self) -> list[str]:
        """Keys of every entry whose metadata exists (not checked for corruption)."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("??/*.json") if len(p.stem) == 64)

    # ---------------------------------------------------------------- read

    def get(
        self, key: str, *, trusted_types: Collection[str] = (), load_model: bool = True
    ) -> CachedModel | None:
        """The model stored under ``key``, or None when there is none or it is unusable.

        Parameters
        ----------
        key : str
        trusted_types : collection of str
            For a scikit-learn entry, the types beyond skops' defaults that the model may
            hold (the recipe's :meth:`~miaudit.models.SklearnRecipe.trusted_types`). An
            entry holding any other type is unusable.
        load_model : bool
            False reads the metadata only (accuracies, seed, sizes): ``trained.model`` is
            then None, as it is for an entry that holds answers only (a model no format of
            :mod:`~miaudit.compute.model_formats` stores).

        Unusable entries (unreadable metadata, a missing or altered model file, a model
        holding a type the caller does not trust, a model that does not load) are
        reported with a :class:`CacheWarning` and treated as missing, so the caller
        retrains and :meth:`put` overwrites them.
        """
        if isinstance(trusted_types, str) or not all(isinstance(t, str) for t in trusted_types):
            raise InvalidAuditInput(
                f"ModelCache.get: trusted_types must be a collection of type names, got "
                f"{trusted_types!r}"
            )
        meta_path = self.metadata_path(key)
        if not meta_path.is_file():
            return None
        try:
            return self._load(key, meta_path, frozenset(trusted_types), load_model)
        except Exception as exc:  # any failure to read an entry means "retrain it"
            warnings.warn(
                f"model cache entry {key[:12]}… in {str(meta_path.parent)!r} is unusable "
                f"({type(exc).__name__}: {exc}); it will be retrained and overwritten",
                CacheWarning,
                stacklevel=2,
            )
            return None

    def _load(
        self, key: str, meta_path: Path, trusted: frozenset[str], load_model: bool = True
    ) -> CachedModel:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != _ENTRY_FORMAT:
            raise ValueError("not a miaudit cache entry")
        if meta.get("version") != _ENTRY_VERSION or meta.get("key") != key:
            raise ValueError(
                f"entry version {meta.get('version')!r} / key {str(meta.get('key'))[:12]!r} "
                f"do not match version {_ENTRY_VERSION} / key {key[:12]!r}"
            )
        kind = meta.get("kind")
        model = None
        model_path = meta_path
        if kind != ANSWERS_ONLY:
            fmt = format_named(str(kind))  # the kinds are listed in code, not in the cache
            model_file = meta.get("model_file")
            if model_file != f"{key}{fmt.suffix}":
                raise ValueError(f"unexpected model file name {model_file!r}")
            model_path = meta_path.parent / model_file
            if not model_path.is_file():
                raise ValueError(f"model file {model_file} is missing")
            if load_model:
                if _sha256_file(model_path) != meta.get("sha256"):
                    raise ValueError(f"model file {model_file} does not match its checksum")
                model = fmt.load(model_path, trusted)
        test_acc = meta.get("test_accuracy")
        trained = TrainedModel(
            model=model,
            train_accuracy=float(meta["train_accuracy"]),
            test_accuracy=None if test_acc is None else float(test_acc),
            seconds=float(meta["seconds"]),
            seed=int(meta["seed"]),
            n_train=int(meta["n_train"]),
            privacy=_privacy(meta.get("privacy")),
        )
        return CachedModel(key=key, trained=trained, path=model_path)

    # ---------------------------------------------------------------- write

    def put(self, key: str, trained: TrainedModel, recipe: Any, dataset: Dataset) -> CachedModel:
        """Store a trained model under ``key`` (overwriting any entry there).

        Parameters
        ----------
        key : str
            From :func:`cache_key`.
        trained : TrainedModel
            What ``recipe.train`` returned.
        recipe
            The recipe that trained it. For a PyTorch model it must name the network
            (``architecture`` and ``arch_params``, as :class:`~miaudit.models.TorchRecipe`
            does), because the file stores weights, not code.
        dataset : Dataset
            The training data (its record shape and class count size the network).

        Returns
        -------
        CachedModel
            Pointing at the new files; ``trained`` is the object passed in.

        Raises
        ------
        InvalidAuditInput
            A PyTorch model whose recipe does not name its architecture, or a
            scikit-learn model that skops cannot store.
        """
        folder = self._folder(self._check_key(key))
        folder.mkdir(parents=True, exist_ok=True)
        self.remove_stale_temporaries(folder)
        meta: dict[str, Any] = {"format": _ENTRY_FORMAT, "version": _ENTRY_VERSION, "key": key}
        fmt = format_for(trained.model, recipe)
        if fmt is None:
            # No data format holds this model (a network the registry cannot rebuild, a
            # plain callable): keep its facts; its answers go to the answer cache.
            meta["kind"] = ANSWERS_ONLY
            model_path = None
        else:
            model_path = folder / f"{key}{fmt.suffix}"
            try:
                fmt.save(trained.model, model_path, recipe, dataset)
            except InvalidAuditInput as exc:
                raise InvalidAuditInput(f"ModelCache.put: {exc}") from None
            meta["kind"] = fmt.kind
            if fmt.kind == "sklearn":
                import skops.io as sio

                # For a reader's information only: get() trusts what its caller says.
                meta["untrusted_types"] = sorted(sio.get_untrusted_types(file=model_path))
        meta.update(
            model_file=None if model_path is None else model_path.name,
            sha256=None if model_path is None else _sha256_file(model_path),
            train_accuracy=float(trained.train_accuracy),
            test_accuracy=None if trained.test_accuracy is None else float(trained.test_accuracy),
            seconds=float(trained.seconds),
            seed=int(trained.seed),
            n_train=int(trained.n_train),
            privacy=getattr(trained, "privacy", None),
            recipe_fingerprint=recipe.fingerprint(),
            written=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )
        text = json.dumps(meta, indent=1, sort_keys=True)
        atomic_write(folder / f"{key}.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
        logger.debug("cached model %s in %s", key[:12], folder)
        return CachedModel(key=key, trained=trained, path=model_path or folder / f"{key}.json")


def train_or_load(
    cache: ModelCache,
    recipe: Any,
    dataset: Dataset,
    indices: np.ndarray,
    *,
    seed: int,
    **train_options: Any,
) -> tuple[TrainedModel, bool]:
    """The model ``recipe`` trains on ``indices`` with ``seed``: from ``cache`` when there,
    else trained and stored. Returns it and whether it came from the cache.

    ``train_options`` (``eval_indices``, ``progress``) go to ``recipe.train``; they do not
    enter the key, because they do not change the model.
    """
    key = cache_key(recipe.fingerprint(), data_fingerprint(dataset), indices, seed)
    trusted = trusted_types_of(recipe)
    with cache.lock([key]):  # another audit training this model: wait, then reuse it
        found = cache.get(key, trusted_types=trusted)
        if found is not None and found.trained.model is not None:
            return found.trained, True
        trained = recipe.train(dataset, indices, seed=seed, **train_options)
        cache.put(key, trained, recipe, dataset)
    return trained, False
