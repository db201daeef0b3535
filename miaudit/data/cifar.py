"""Load CIFAR-10 and CIFAR-100 from their official "python version" directories.

``cifar-10-batches-py`` holds ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
``batches.meta``; ``cifar-100-python`` holds ``train``, ``test`` and ``meta``. Each file is a
pickled dict whose ``data`` is a uint8 ``(n, 3072)`` array: 1024 red, then 1024 green, then
1024 blue values of a 32x32 image, row by row, so a plain reshape gives NCHW. The files are
read with :func:`~miaudit.data.safe_pickle.load_restricted_pickle`, never ``pickle.load``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from miaudit.data.canonical import Part, check_part, concatenate_parts, dataset_from_arrays
from miaudit.data.classes import CIFAR10_CLASSES
from miaudit.data.dataset import Dataset
from miaudit.data.safe_pickle import load_restricted_pickle
from miaudit.errors import DataNotFoundError, InvalidAuditInput

__all__ = [
    "CIFAR10_FILES",
    "CIFAR100_FILES",
    "is_cifar10_dir",
    "is_cifar100_dir",
    "load_cifar10_dir",
    "load_cifar100_dir",
]

CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES: tuple[str, ...] = (*CIFAR10_TRAIN, "test_batch")
CIFAR100_FILES: tuple[str, ...] = ("train", "test")
_PIXELS = 3 * 32 * 32


def is_cifar10_dir(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` looks like ``cifar-10-batches-py`` (first and test batch present)."""
    directory = Path(directory)
    return (directory / "data_batch_1").is_file() and (directory / "test_batch").is_file()


def is_cifar100_dir(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` looks like ``cifar-100-python`` (``train`` and ``test`` present)."""
    directory = Path(directory)
    return all((directory / name).is_file() for name in CIFAR100_FILES)


def _text(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _as_dict(obj: Any, path: Path) -> dict[str, Any]:
    """The pickled dict with its keys as ``str`` (Python 2 files give ``bytes`` keys)."""
    if not isinstance(obj, dict):
        raise InvalidAuditInput(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {_text(k): v for k, v in obj.items()}


def _read_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 3, 32, 32)`` uint8 images and ``(n,)`` labels of one batch file."""
    batch = _as_dict(load_restricted_pickle(path), path)
    problems: list[str] = []
    for key in ("data", label_key):
        if key not in batch:
            problems.append(f"missing key {key!r} (keys present: {sorted(batch)})")
    if problems:
        raise InvalidAuditInput(f"{path}: " + "; ".join(problems))
    data, labels = batch["data"], batch[label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        problems.append(
            f"'data' must be a 2-d uint8 array, got {type(data).__name__} "
            f"{getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}".rstrip()
        )
    elif data.shape[1] != _PIXELS:
        problems.append(f"'data' rows must hold {_PIXELS} values (3x32x32), got {data.shape[1]}")
    try:
        labels = np.asarray(labels)
    except (TypeError, ValueError):
        labels = np.asarray([], dtype=object)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        problems.append(
            f"{label_key!r} must be a list of integers, got {labels.dtype} {labels.shape}"
        )
    elif isinstance(data, np.ndarray) and len(labels) != len(data):
        problems.append(f"{len(data)} images but {len(labels)} labels")
    if problems:
        raise InvalidAuditInput(f"{path}: " + "; ".join(problems))
    return data.reshape(-1, 3, 32, 32), labels


def _read_names(path: Path, key: str) -> tuple[str, ...] | None:
    if not path.is_file():
        return None
    meta = _as_dict(load_restricted_pickle(path), path)
    names = meta.get(key)
    if not isinstance(names, list) or not names:
        raise InvalidAuditInput(
            f"{path}: expected a non-empty list {key!r}, keys present: {sorted(meta)}"
        )
    return tuple(_text(n) for n in names)


def _require(directory: Path, names: tuple[str, ...], what: str) -> None:
    if not directory.is_dir():
        raise DataNotFoundError(f"{what} directory {str(directory)!r} does not exist")
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise DataNotFoundError(f"{directory}: not a complete {what} directory; missing {missing}")


def load_cifar10_dir(
    directory: str | os.PathLike[str], *, part: Part = "all", name: str | None = None
) -> Dataset:
    """Load CIFAR-10 from the official ``cifar-10-batches-py`` directory.

    Parameters
    ----------
    directory : str or path-like
        Holds ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and (optionally, for the
        class names) ``batches.meta``.
    part : {"all", "train", "test"}
        Official training records (the five batches in order), test records, or both
        (training first).
    name : str, optional
        Data set name (default ``"cifar10"``).

    Returns
    -------
    Dataset
        float32 ``(n, 3, 32, 32)`` in [0, 1], exact original pixels, 10 classes.
    """
    directory = Path(directory).expanduser()
    owner = str(directory)
    check_part(part, owner)
    _require(directory, CIFAR10_FILES, "CIFAR-10")
    train = test = (np.empty((0, 3, 32, 32), np.uint8), np.empty(0, np.int64))
    if part in ("all", "train"):
        batches = [_read_batch(directory / f, "labels") for f in CIFAR10_TRAIN]
        train = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    if part in ("all", "test"):
        test = _read_batch(directory / "test_batch", "labels")
    x, y = concatenate_parts(train, test, part)
    names = _read_names(directory / "batches.meta", "label_names") or CIFAR10_CLASSES
    return dataset_from_arrays(
        x,
        y,
        name=name or "cifar10",
        class_names=names,
        layout="nchw",
        source=f"{directory} (CIFAR-10 python batches; {len(train[1])} train then "
        f"{len(test[1])} test)",
        owner=owner,
    )


def load_cifar100_dir(
    directory: str | os.PathLike[str],
    *,
    part: Part = "all",
    labels: Literal["fine", "coarse"] = "fine",
    name: str | None = None,
) -> Dataset:
    """Load CIFAR-100 from the official ``cifar-100-python`` directory.

    Parameters
    ----------
    directory : str or path-like
        Holds ``train``, ``test`` and (optionally, for the class names) ``meta``.
    part : {"all", "train", "test"}
        Official training records, test records, or both (training first).
    labels : {"fine", "coarse"}
        The 100 fine classes (the usual benchmark) or the 20 superclasses.
    name : str, optional
        Data set name (default ``"cifar100"``).

    Returns
    -------
    Dataset
        float32 ``(n, 3, 32, 32)`` in [0, 1].
    """
    directory = Path(directory).expanduser()
    owner = str(directory)
    check_part(part, owner)
    if labels not in ("fine", "coarse"):
        raise InvalidAuditInput(f"{owner}: labels must be 'fine' or 'coarse', got {labels!r}")
    _require(directory, CIFAR100_FILES, "CIFAR-100")
    key = f"{labels}_labels"
    which = [w for w in ("train", "test") if part in ("all", w)]
    parts = [_read_batch(directory / w, key) for w in which]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    names = _read_names(directory / "meta", f"{labels}_label_names")
    counts = " then ".join(f"{len(p[1])} {w}" for p, w in zip(parts, which, strict=True))
    return dataset_from_arrays(
        x,
        y,
        name=name or "cifar100",
        n_classes=None if names else (100 if labels == "fine" else 20),
        class_names=names,
        layout="nchw",
        source=f"{directory} (CIFAR-100 python files, {labels} labels; {counts})",
        owner=owner,
    )
