"""One entry point for every data source: a known name or a path.

``load_dataset("mnist")`` reads a benchmark file of the data directory;
``load_dataset("digits")`` needs no file at all; ``load_dataset("my/records.csv")`` or
``load_dataset("downloads/cifar-10-batches-py")`` reads the user's own files, picking the
format from the extension or from the files a directory holds. Options are checked against
what the chosen loader accepts, so a typo is an error and never silently ignored.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from miaudit.data.cifar import (
    is_cifar10_dir,
    is_cifar100_dir,
    load_cifar10_dir,
    load_cifar100_dir,
)
from miaudit.data.dataset import Dataset
from miaudit.data.digit_sets import is_kmnist_dir, is_svhn_dir, load_kmnist_dir, load_svhn_dir
from miaudit.data.files import load_csv, load_npy, load_npz, open_npz
from miaudit.data.idx import find_idx_files, load_idx_dir
from miaudit.data.loaders import (
    BENCHMARK_FILES,
    SPLIT_BENCHMARKS,
    benchmark_train_size,
    load_breast_cancer,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_location,
    load_mnist,
)
from miaudit.data.paths import resolve_data_dir
from miaudit.errors import DataNotFoundError, InvalidAuditInput

__all__ = [
    "DatasetInfo",
    "known_datasets",
    "list_datasets",
    "load_dataset",
    "official_train_size",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetInfo:
    """What ``miaudit datasets`` shows about one named data set.

    Attributes
    ----------
    name : str
        The name ``load_dataset`` accepts.
    description : str
        One line: content, size, citation.
    found : bool
        Whether it can be loaded now.
    location : str
        The file it is read from (or would be, when missing), or ``"embedded in
        scikit-learn"``; empty when the data directory itself is unknown.
    reason : str
        Why it is missing (empty when ``found``), with how to fix it.
    """

    name: str
    description: str
    found: bool
    location: str
    reason: str = ""


@dataclass(frozen=True)
class _Known:
    description: str
    load: Callable[..., Dataset]
    needs_data_dir: bool


_KNOWN: dict[str, _Known] = {
    "digits": _Known(
        "8x8 handwritten digits: 1,797 records, 64 features, 10 classes (UCI; in scikit-learn)",
        load_digits,
        needs_data_dir=False,
    ),
    "breast_cancer": _Known(
        "Wisconsin diagnostic breast cancer: 569 records, 30 z-scored features, 2 classes "
        "(in scikit-learn)",
        load_breast_cancer,
        needs_data_dir=False,
    ),
    "mnist": _Known(
        "MNIST digits: 60,000 train + 10,000 test 28x28 grey images, 10 classes "
        "(LeCun et al. 1998)",
        load_mnist,
        needs_data_dir=True,
    ),
    "fashion_mnist": _Known(
        "Fashion-MNIST: 60,000 train + 10,000 test 28x28 grey images, 10 classes "
        "(Xiao et al. 2017)",
        load_fashion_mnist,
        needs_data_dir=True,
    ),
    "cifar10": _Known(
        "CIFAR-10, JPEG-recompressed pixels: 50,000 train + 10,000 test 32x32 colour "
        "images, 10 classes (Krizhevsky 2009)",
        load_cifar10,
        needs_data_dir=True,
    ),
    "location": _Known(
        "Location (Foursquare, Bangkok): 5,010 records, 446 binary features, 30 classes "
        "(Shokri et al. 2017)",
        load_location,
        needs_data_dir=True,
    ),
}

_FILE_LOADERS: dict[str, Callable[..., Dataset]] = {
    ".npz": load_npz,
    ".npy": load_npy,
    ".csv": load_csv,
}
# Names the official archives unpack to; a directory holding one of them is accepted too.
_STANDARD_SUBDIRS = ("cifar-10-batches-py", "cifar-100-python")
_FORMATS_HELP = (
    "a .npz, .npy or .csv file, or a directory holding cifar-10-batches-py / cifar-100-python "
    "files, SVHN's train_32x32.mat and test_32x32.mat, KMNIST's kmnist-*-imgs/labels.npz, "
    "or the four MNIST-style IDX files (train-images-idx3-ubyte[.gz], ...)"
)


def known_datasets() -> tuple[str, ...]:
    """Names :func:`load_dataset` accepts besides paths, in the order they are listed."""
    return tuple(_KNOWN)


def _options_of(loader: Callable[..., Dataset]) -> list[str]:
    """Keyword-only parameters of a loader: the options a user may set."""
    return [
        p.name
        for p in inspect.signature(loader).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def _call(
    loader: Callable[..., Dataset], what: str, options: dict[str, object], *args: object
) -> Dataset:
    allowed = _options_of(loader)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "no options"
        raise InvalidAuditInput(
            f"load_dataset({what}): unknown option(s) {unknown}; it accepts {accepted}"
        )
    return loader(*args, **options)


def _directory_loader(directory: Path) -> tuple[Callable[..., Dataset], Path] | None:
    for candidate in (directory, *(directory / sub for sub in _STANDARD_SUBDIRS)):
        if is_cifar10_dir(candidate):
            return load_cifar10_dir, candidate
        if is_cifar100_dir(candidate):
            return load_cifar100_dir, candidate
        if is_svhn_dir(candidate):
            return load_svhn_dir, candidate
        if is_kmnist_dir(candidate):
            return load_kmnist_dir, candidate
        if find_idx_files(candidate):
            return load_idx_dir, candidate
    return None


def _path_loader(path: Path) -> tuple[Callable[..., Dataset], Path]:
    """The loader for an existing path, and the path to hand it."""
    if path.is_dir():
        found = _directory_loader(path)
        if found is None:
            entries = sorted(p.name for p in path.iterdir())
            shown = entries[:10] + (["..."] if len(entries) > 10 else [])
            raise InvalidAuditInput(
                f"{path}: directory in no known format; expected {_FORMATS_HELP}; it holds {shown}"
            )
        return found
    loader = _FILE_LOADERS.get(path.suffix.lower())
    if loader is None:
        raise InvalidAuditInput(
            f"{path}: cannot read {path.suffix or 'extension-less'} files; expected {_FORMATS_HELP}"
        )
    return loader, path


def _unknown(name_or_path: str) -> InvalidAuditInput:
    path = Path(name_or_path).expanduser()
    looks_like_path = (
        os.sep in name_or_path
        or "/" in name_or_path
        or name_or_path.startswith((".", "~"))
        or path.suffix.lower() in _FILE_LOADERS
    )
    if looks_like_path:
        where = "" if path.is_absolute() else f" (relative to the working directory {Path.cwd()})"
        return DataNotFoundError(f"{str(path)!r} does not exist{where}")
    return InvalidAuditInput(
        f"unknown data set {name_or_path!r}: known names are {list(_KNOWN)}; otherwise give "
        f"the path of {_FORMATS_HELP}"
    )


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    **options: object,
) -> Dataset:
    """Load a data set by name or from a path, in the canonical :class:`Dataset` layout.

    Parameters
    ----------
    name_or_path : str or path-like
        A known name (see :func:`known_datasets`), which wins over a file of the same name
        in the working directory (write ``./mnist`` for the file), or a path to:
        an ``.npz`` file (:func:`~miaudit.data.files.load_npz`), an ``.npy`` records file
        (:func:`~miaudit.data.files.load_npy`), a ``.csv`` file
        (:func:`~miaudit.data.files.load_csv`), or a directory in a standard format:
        ``cifar-10-batches-py``, ``cifar-100-python`` (or a folder holding one of them) or
        the four MNIST IDX files.
    data_dir : str or path-like, optional
        Where the benchmark files are (see :func:`~miaudit.data.paths.resolve_data_dir`);
        used only by the named benchmark sets.
    **options
        Keyword options of the chosen loader, e.g. ``part="train"`` for MNIST,
        ``label_column="class"`` for a CSV, ``x_key="features"`` for an ``.npz``. They are
        checked: an option the loader does not take is an error listing those it does.

    Returns
    -------
    Dataset
        For sets with an official train/test split and ``part="all"`` (the default), the
        official training records come first, then the test records; see
        :func:`official_train_size`.

    Raises
    ------
    DataNotFoundError
        If the file, directory or data directory does not exist.
    InvalidAuditInput
        For an unknown name (listing the known ones), an unknown option, or a file whose
        content is not a valid data set (naming the file and what is wrong).
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InvalidAuditInput(
            f"load_dataset: expected a data set name or a path, got {type(name_or_path).__name__}"
        )
    key = os.fspath(name_or_path)
    if key in _KNOWN:
        known = _KNOWN[key]
        args = (data_dir,) if known.needs_data_dir else ()
        dataset = _call(known.load, repr(key), options, *args)
    else:
        path = Path(key).expanduser()
        if not path.exists():
            raise _unknown(key)
        loader, target = _path_loader(path)
        dataset = _call(loader, repr(key), options, target)
    logger.info(
        "loaded %s: %d records of shape %s, %d classes, from %s",
        dataset.name,
        dataset.n_records,
        dataset.input_shape,
        dataset.n_classes,
        dataset.source,
    )
    return dataset


def list_datasets(data_dir: str | os.PathLike[str] | None = None) -> list[DatasetInfo]:
    """Every named data set and whether it can be loaded now.

    Never raises for missing data (a missing data directory is reported on each entry that
    needs it), and only checks that files exist: nothing is decompressed.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Where the benchmark files are (see :func:`~miaudit.data.paths.resolve_data_dir`).

    Returns
    -------
    list of DatasetInfo
        In the order of :func:`known_datasets`.
    """
    try:
        directory: Path | None = resolve_data_dir(data_dir)
        problem = ""
    except DataNotFoundError as exc:
        directory, problem = None, str(exc)
    infos = []
    for name, known in _KNOWN.items():
        if not known.needs_data_dir:
            infos.append(DatasetInfo(name, known.description, True, "embedded in scikit-learn"))
        elif directory is None:
            infos.append(DatasetInfo(name, known.description, False, "", problem))
        else:
            path = directory / BENCHMARK_FILES[name]
            found = path.is_file()
            reason = (
                ""
                if found
                else (
                    f"{BENCHMARK_FILES[name]} is not in {str(directory)!r}; copy it there or "
                    "point --data-dir / MIAUDIT_DATA at a folder that has it"
                )
            )
            infos.append(DatasetInfo(name, known.description, found, str(path), reason))
    return infos


def official_train_size(
    name_or_path: str | os.PathLike[str], *, data_dir: str | os.PathLike[str] | None = None
) -> int | None:
    """How many records at the start of ``load_dataset(name_or_path)`` are official training.

    Parameters
    ----------
    name_or_path : str or path-like
        As for :func:`load_dataset`.
    data_dir : str or path-like, optional
        Where the benchmark files are.

    Returns
    -------
    int or None
        None when the data set has no official train/test split (Location, the scikit-learn
        sets, plain user arrays). Named benchmarks read only their label array; for a
        directory, the training files are read.
    """
    key = os.fspath(name_or_path)
    if key in _KNOWN:
        return benchmark_train_size(key, data_dir) if key in SPLIT_BENCHMARKS else None
    path = Path(key).expanduser()
    if not path.exists():
        raise _unknown(key)
    loader, target = _path_loader(path)
    if loader is load_npz:
        with open_npz(target) as archive:
            if {"x", "y"} <= set(archive.files) or "y_train" not in archive.files:
                return None
        return load_npz(target, part="train").n_records
    if loader in (
        load_idx_dir,
        load_cifar10_dir,
        load_cifar100_dir,
        load_svhn_dir,
        load_kmnist_dir,
    ):
        return loader(target, part="train").n_records
    return None
