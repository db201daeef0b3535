"""Loaders for the named benchmark data sets.

Two kinds:

- the benchmark ``.npz`` files of the data directory (see :func:`resolve_data_dir`):
  MNIST, Fashion-MNIST, CIFAR-10 (JPEG-recompressed copy) and Location;
- two small data sets embedded in scikit-learn (no file at all), which is what the
  ``miaudit demo`` command relies on.

For the sets with an official train/test split, the returned records are the official
training records followed by the official test records, in the publisher's order, so record
``i`` with ``i < official_train_size(name)`` is record ``i`` of the training file. ``part``
selects one side instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miaudit.data.canonical import Part, check_part, concatenate_parts, dataset_from_arrays
from miaudit.data.classes import (
    CIFAR10_CLASSES,
    DIGIT_CLASSES,
    FASHION_MNIST_CLASSES,
    LOCATION_CLASSES,
)
from miaudit.data.dataset import Dataset
from miaudit.data.files import open_npz, read_npz_member
from miaudit.data.paths import resolve_data_dir
from miaudit.errors import DataNotFoundError, InvalidAuditInput, raise_if_problems

__all__ = [
    "BENCHMARK_FILES",
    "SPLIT_BENCHMARKS",
    "benchmark_file",
    "load_breast_cancer",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_location",
    "load_mnist",
]


@dataclass(frozen=True)
class _Benchmark:
    """One benchmark file: where it is and what it must hold."""

    filename: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]  # shape of one stored image (HWC or HW)
    note: str  # appended to ``source``


_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")

_IMAGE_SETS: dict[str, _Benchmark] = {
    "mnist": _Benchmark("mnist.npz", DIGIT_CLASSES, (28, 28), "exact MNIST pixels"),
    "fashion_mnist": _Benchmark(
        "fashion_mnist.npz", FASHION_MNIST_CLASSES, (28, 28), "exact Fashion-MNIST pixels"
    ),
    "cifar10": _Benchmark(
        "cifar10_jpeg.npz",
        CIFAR10_CLASSES,
        (32, 32, 3),
        "pixels are a JPEG-recompressed copy (quality 75) of CIFAR-10, not the original "
        "bytes; labels, order and split are the official ones",
    ),
}

#: Named benchmarks with an official train/test split (``part`` applies to them).
SPLIT_BENCHMARKS: tuple[str, ...] = tuple(_IMAGE_SETS)

#: File name of each benchmark set inside the data directory.
BENCHMARK_FILES: dict[str, str] = {
    **{name: spec.filename for name, spec in _IMAGE_SETS.items()},
    "location": "location.npz",
}


def benchmark_file(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of a benchmark file, checked to exist.

    Raises
    ------
    DataNotFoundError
        If the data directory cannot be resolved or lacks the file.
    """
    if name not in BENCHMARK_FILES:
        raise InvalidAuditInput(
            f"{name!r} is not a benchmark file; known: {sorted(BENCHMARK_FILES)}"
        )
    path = resolve_data_dir(data_dir) / BENCHMARK_FILES[name]
    if not path.is_file():
        raise DataNotFoundError(
            f"{name}: {str(path)!r} does not exist; the data directory {str(path.parent)!r} "
            f"should hold {BENCHMARK_FILES[name]} (choose another with --data-dir or "
            "MIAUDIT_DATA)"
        )
    return path


def _load_image_set(name: str, data_dir: str | os.PathLike[str] | None, part: Part) -> Dataset:
    spec = _IMAGE_SETS[name]
    check_part(part, name)
    path = benchmark_file(name, data_dir)
    owner = str(path)
    with open_npz(path) as archive:
        missing = [k for k in _SPLIT_KEYS if k not in archive.files]
        if missing:
            raise InvalidAuditInput(
                f"{owner}: missing arrays {missing}; the archive holds {archive.files}"
            )
        # Read only the side asked for: decompressing CIFAR's training pixels takes seconds.
        empty = (np.empty((0, *spec.image_shape), np.uint8), np.empty(0, np.uint8))
        train = test = empty
        if part in ("all", "train"):
            train = (
                read_npz_member(archive, "x_train", path),
                read_npz_member(archive, "y_train", path),
            )
        if part in ("all", "test"):
            test = (
                read_npz_member(archive, "x_test", path),
                read_npz_member(archive, "y_test", path),
            )
    problems: list[str] = []
    for side, (x, y) in (("train", train), ("test", test)):
        if x.dtype != np.uint8 or x.shape[1:] != spec.image_shape:
            wanted = ", ".join(map(str, spec.image_shape))
            problems.append(
                f"x_{side}: expected uint8 images of shape (n, {wanted}), got {x.dtype} {x.shape}"
            )
        if len(x) != len(y):
            problems.append(f"x_{side} has {len(x)} images but y_{side} has {len(y)} labels")
    raise_if_problems(owner, problems)
    x, y = concatenate_parts(train, test, part)
    counts = {"all": f"{len(train[1])} train then {len(test[1])} test"}.get(
        part, f"official {part} part, {len(y)} records"
    )
    return dataset_from_arrays(
        x,
        y,
        name=name,
        class_names=spec.class_names,
        layout="nhwc",
        source=f"{path} ({counts}; {spec.note})",
        owner=owner,
    )


def load_mnist(data_dir: str | os.PathLike[str] | None = None, *, part: Part = "all") -> Dataset:
    """MNIST digits (LeCun et al., 1998) from ``mnist.npz`` in the data directory.

    Parameters
    ----------
    data_dir : str or path-like, optional
        See :func:`resolve_data_dir`.
    part : {"all", "train", "test"}
        The 60,000 official training records, the 10,000 test records, or both (70,000,
        training first).

    Returns
    -------
    Dataset
        float32 ``(n, 1, 28, 28)`` in [0, 1]; classes "0" .. "9".
    """
    return _load_image_set("mnist", data_dir, part)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None, *, part: Part = "all"
) -> Dataset:
    """Fashion-MNIST (Xiao et al., 2017) from ``fashion_mnist.npz``; layout as :func:`load_mnist`.

    Returns
    -------
    Dataset
        float32 ``(n, 1, 28, 28)`` in [0, 1]; 10 clothing classes ("T-shirt/top" ...).
    """
    return _load_image_set("fashion_mnist", data_dir, part)


def load_cifar10(data_dir: str | os.PathLike[str] | None = None, *, part: Part = "all") -> Dataset:
    """CIFAR-10 (Krizhevsky, 2009) from ``cifar10_jpeg.npz`` in the data directory.

    The pixels of that file went through JPEG (quality 75) and back, so they differ from
    the original bytes by about 6 grey levels on average; ``source`` says so, and results
    that hinge on exact pixels should too. For the original pixels, point
    :func:`~miaudit.data.registry.load_dataset` at a ``cifar-10-batches-py`` directory.
    Decompressing the file takes about 10 s.

    Parameters
    ----------
    data_dir : str or path-like, optional
        See :func:`resolve_data_dir`.
    part : {"all", "train", "test"}
        50,000 official training records, 10,000 test records, or both (training first).

    Returns
    -------
    Dataset
        float32 ``(n, 3, 32, 32)`` in [0, 1].
    """
    return _load_image_set("cifar10", data_dir, part)


def load_location(data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """The Location data set of Shokri et al. (S&P 2017) from ``location.npz``.

    5,010 Foursquare check-in profiles in Bangkok, 446 binary features, 30 classes. It has
    no official train/test split: audits draw members at random.

    Returns
    -------
    Dataset
        float32 ``(5010, 446)`` of 0/1 values; classes "0" .. "29".
    """
    path = benchmark_file("location", data_dir)
    owner = str(path)
    with open_npz(path) as archive:
        missing = [k for k in ("x_packed", "n_features", "y") if k not in archive.files]
        if missing:
            raise InvalidAuditInput(
                f"{owner}: missing arrays {missing}; the archive holds {archive.files}"
            )
        packed = read_npz_member(archive, "x_packed", path)
        n_features = read_npz_member(archive, "n_features", path)
        y = read_npz_member(archive, "y", path)
    problems: list[str] = []
    if packed.dtype != np.uint8 or packed.ndim != 2:
        problems.append(
            f"x_packed: expected 2-d uint8 packed bits, got {packed.dtype} {packed.shape}"
        )
    if n_features.shape != () or n_features.dtype.kind not in "iu":
        problems.append(
            f"n_features: expected an integer scalar, got {n_features.dtype} {n_features.shape}"
        )
    elif packed.ndim == 2 and not 0 < int(n_features) <= 8 * packed.shape[1]:
        problems.append(
            f"n_features: {int(n_features)} does not fit {packed.shape[1]} packed bytes per record"
        )
    raise_if_problems(owner, problems)
    x = np.unpackbits(packed, axis=1, count=int(n_features))
    return dataset_from_arrays(
        x,
        y,
        name="location",
        class_names=LOCATION_CLASSES,
        source=f"{path} (binary features unpacked; no official split)",
        owner=owner,
    )


def load_digits() -> Dataset:
    """The 8x8 handwritten digits embedded in scikit-learn (UCI optical digits test set).

    No file and no network: this is what the ``demo`` command audits. Pixel counts 0..16
    are divided by 16 so that, like every other data set here, values lie in [0, 1].

    Returns
    -------
    Dataset
        Tabular float32 ``(1797, 64)``; classes "0" .. "9".
    """
    from sklearn import datasets  # imported here: importing sklearn.datasets takes ~0.5 s

    bunch = datasets.load_digits()
    return dataset_from_arrays(
        bunch.data / 16.0,
        bunch.target,
        name="digits",
        class_names=DIGIT_CLASSES,
        source="scikit-learn load_digits (8x8 pixel counts 0..16, divided by 16)",
    )


def load_breast_cancer() -> Dataset:
    """The Wisconsin diagnostic breast cancer data embedded in scikit-learn.

    Features are z-scored (each column minus its mean, over its standard deviation, over
    all 569 records). The raw columns range from about 0.001 to over 4000; a neural network
    trained on them with ordinary learning rates does not learn, and an audit of a model
    that never fit would report no leakage for the wrong reason. The mean and standard
    deviation use every record, members and non-members alike; those two numbers per
    column say almost nothing about any one record.

    Returns
    -------
    Dataset
        Tabular float32 ``(569, 30)``; classes "malignant", "benign".
    """
    from sklearn import datasets

    bunch = datasets.load_breast_cancer()
    x = bunch.data
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return dataset_from_arrays(
        x,
        bunch.target,
        name="breast_cancer",
        class_names=tuple(str(n) for n in bunch.target_names),
        source="scikit-learn load_breast_cancer (features z-scored over all records)",
    )


def benchmark_train_size(name: str, data_dir: str | os.PathLike[str] | None = None) -> int:
    """Number of official training records in an image benchmark file (reads labels only)."""
    path = benchmark_file(name, data_dir)
    with open_npz(path) as archive:
        if "y_train" not in archive.files:
            raise InvalidAuditInput(f"{path}: no 'y_train' array; holds {archive.files}")
        return len(read_npz_member(archive, "y_train", path))
