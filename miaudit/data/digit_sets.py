"""SVHN and KMNIST from their standard distribution files.

* SVHN (Netzer et al. 2011), cropped digits: ``train_32x32.mat``, ``test_32x32.mat`` and
  optionally ``extra_32x32.mat``, MATLAB files whose ``X`` is ``(32, 32, 3, n)`` uint8 and
  ``y`` is ``(n, 1)`` with labels 1..10, where 10 stands for the digit 0 (mapped to 0 here).
  They are read with :func:`scipy.io.loadmat`, which parses data and runs nothing.
* KMNIST (Clanuwat et al. 2018), Kuzushiji-MNIST: ``kmnist-{train,test}-{imgs,labels}.npz``,
  each holding one array ``arr_0``: ``(n, 28, 28)`` uint8 images, ``(n,)`` labels. Read with
  ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from miaudit.data.canonical import Part, check_part, dataset_from_arrays
from miaudit.data.dataset import Dataset
from miaudit.errors import DataNotFoundError, InvalidAuditInput

__all__ = [
    "KMNIST_CLASSES",
    "is_kmnist_dir",
    "is_svhn_dir",
    "load_kmnist_dir",
    "load_svhn_dir",
]

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
KMNIST_FILES = {
    part: (f"kmnist-{part}-imgs.npz", f"kmnist-{part}-labels.npz") for part in ("train", "test")
}
#: The ten hiragana of KMNIST, in label order (kmnist_classmap.csv).
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


def is_svhn_dir(directory: str | os.PathLike[str]) -> bool:
    directory = Path(directory)
    return all((directory / SVHN_FILES[p]).is_file() for p in ("train", "test"))


def is_kmnist_dir(directory: str | os.PathLike[str]) -> bool:
    directory = Path(directory)
    return all((directory / f).is_file() for files in KMNIST_FILES.values() for f in files)


def _missing(directory: Path, names: list[str], what: str) -> None:
    if not directory.is_dir():
        raise DataNotFoundError(f"{what} directory {str(directory)!r} does not exist")
    absent = [n for n in names if not (directory / n).is_file()]
    if absent:
        raise DataNotFoundError(f"{directory}: not a complete {what} directory; missing {absent}")


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        content = loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        raise InvalidAuditInput(f"{path}: not a readable MATLAB file ({error})") from None
    problems = [f"missing {k!r}" for k in ("X", "y") if k not in content]
    if problems:
        raise InvalidAuditInput(f"{path}: " + "; ".join(problems))
    x, y = content["X"], np.asarray(content["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise InvalidAuditInput(
            f"{path}: 'X' must be (32, 32, 3, n) uint8, got {x.shape} {x.dtype}"
        )
    if x.shape[3] != y.size:
        raise InvalidAuditInput(f"{path}: {x.shape[3]} images but {y.size} labels")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise InvalidAuditInput(f"{path}: labels must lie in 1..10 (10 is the digit 0)")
    return x.transpose(3, 2, 0, 1), np.where(y == 10, 0, y).astype(np.int64)


def load_svhn_dir(
    directory: str | os.PathLike[str],
    *,
    part: Literal["all", "train", "test", "extra", "all_with_extra"] = "all",
    name: str | None = None,
) -> Dataset:
    """Load SVHN (cropped digits) from the directory of its ``.mat`` files.

    ``part``: ``train`` (73,257), ``test`` (26,032), ``all`` (train then test), ``extra``
    (531,131 easier digits), or ``all_with_extra``. Returns float32 ``(n, 3, 32, 32)`` in
    [0, 1] with classes ``"0"``..``"9"``.
    """
    directory = Path(directory).expanduser()
    owner = str(directory)
    parts = {
        "all": ["train", "test"],
        "train": ["train"],
        "test": ["test"],
        "extra": ["extra"],
        "all_with_extra": ["train", "test", "extra"],
    }
    if part not in parts:
        raise InvalidAuditInput(f"{owner}: part must be one of {sorted(parts)}, got {part!r}")
    _missing(directory, [SVHN_FILES[p] for p in parts[part]], "SVHN")
    read = [_read_svhn(directory / SVHN_FILES[p]) for p in parts[part]]
    counts = " then ".join(f"{len(r[1])} {p}" for r, p in zip(read, parts[part], strict=True))
    return dataset_from_arrays(
        np.concatenate([r[0] for r in read]),
        np.concatenate([r[1] for r in read]),
        name=name or "svhn",
        class_names=[str(d) for d in range(10)],
        layout="nchw",
        source=f"{directory} (SVHN cropped digits; {counts})",
        owner=owner,
    )


def _read_array(path: Path) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "arr_0" not in archive.files:
                raise InvalidAuditInput(f"{path}: expected an array 'arr_0', has {archive.files}")
            return archive["arr_0"]
    except (OSError, ValueError) as error:
        raise InvalidAuditInput(f"{path}: not a readable .npz archive ({error})") from None


def load_kmnist_dir(
    directory: str | os.PathLike[str], *, part: Part = "all", name: str | None = None
) -> Dataset:
    """Load KMNIST from the directory of its four ``.npz`` files.

    ``part``: ``train`` (60,000), ``test`` (10,000) or ``all`` (train then test). Returns
    float32 ``(n, 1, 28, 28)`` in [0, 1] with the romanised hiragana as class names.
    """
    directory = Path(directory).expanduser()
    owner = str(directory)
    check_part(part, owner)
    which = [p for p in ("train", "test") if part in ("all", p)]
    _missing(directory, [f for p in which for f in KMNIST_FILES[p]], "KMNIST")
    xs, ys = [], []
    for p in which:
        images, labels = (_read_array(directory / f) for f in KMNIST_FILES[p])
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise InvalidAuditInput(
                f"{directory / KMNIST_FILES[p][0]}: expected (n, 28, 28) images and n labels, "
                f"got {images.shape} and {labels.shape}"
            )
        xs.append(images[:, None])
        ys.append(labels.reshape(-1))
    counts = " then ".join(f"{len(y)} {p}" for y, p in zip(ys, which, strict=True))
    return dataset_from_arrays(
        np.concatenate(xs),
        np.concatenate(ys),
        name=name or "kmnist",
        class_names=KMNIST_CLASSES,
        layout="nchw",
        source=f"{directory} (KMNIST npz files; {counts})",
        owner=owner,
    )
