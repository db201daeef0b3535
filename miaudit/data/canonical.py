"""Turn arrays from any source into the one layout :class:`Dataset` promises.

Every loader ends here, so the rules live in one place: images become float32
``(n, channels, height, width)`` in [0, 1], tabular records float32 ``(n, features)``, labels
int64 class indices. Problems are gathered and reported together, naming the file or field
they came from, so a user fixes them in one pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from miaudit.data.dataset import Dataset
from miaudit.errors import DataNotFoundError, InvalidAuditInput, raise_if_problems

__all__ = [
    "PARTS",
    "Layout",
    "Part",
    "canonical_features",
    "canonical_labels",
    "dataset_from_arrays",
]

Layout = Literal["auto", "nhwc", "nchw"]
Part = Literal["all", "train", "test"]

#: Accepted values of ``part``: the official training records, the official test records, or
#: both (training records first).
PARTS: tuple[str, ...] = ("all", "train", "test")

_LAYOUTS = ("auto", "nhwc", "nchw")
# Channel counts an image layout can have: grey, RGB, RGBA. Used to tell NHWC from NCHW.
_CHANNELS = (1, 3, 4)
# Report at most this many offending records/rows per problem, so messages stay readable.
_SHOW = 3


def _first(mask: np.ndarray) -> str:
    """Say how many records a boolean mask flags and which come first."""
    where = np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))
    shown = ", ".join(str(i) for i in where[:_SHOW])
    more = ", ..." if where.size > _SHOW else ""
    return f"{where.size} record(s) (index {shown}{more})"


def existing_file(path: str | os.PathLike[str], what: str) -> Path:
    """Return ``path`` as a Path, or raise ``DataNotFoundError`` saying what was expected."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataNotFoundError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise DataNotFoundError(f"{what} {str(path)!r} is not a file")
    return path


def check_part(part: object, owner: str, *, has_split: bool = True) -> None:
    """Refuse a ``part`` that is not one of :data:`PARTS`, or any but "all" without a split."""
    if part not in PARTS:
        raise InvalidAuditInput(f"{owner}: part must be one of {list(PARTS)}, got {part!r}")
    if not has_split and part != "all":
        raise InvalidAuditInput(
            f"{owner}: part={part!r} needs an official train/test split, which this data set "
            "does not have; use part='all' and draw members with make_split"
        )


def _image_layout(shape: tuple[int, ...], layout: str, problems: list[str]) -> str | None:
    if layout != "auto":
        return layout
    first, last = shape[1] in _CHANNELS, shape[3] in _CHANNELS
    if first and not last:
        return "nchw"
    if last and not first:
        return "nhwc"
    problems.append(
        f"x: cannot tell whether images of shape {shape} are channels-first or channels-last "
        f"(a channel axis has {'/'.join(map(str, _CHANNELS))} entries); pass layout='nhwc' or "
        "layout='nchw'"
    )
    return None


def _images(x: np.ndarray, layout: str, problems: list[str]) -> np.ndarray | None:
    """float32 NCHW in [0, 1] from 3-d (n, h, w) or 4-d images, or None after a problem."""
    if x.ndim == 3:
        x = x[:, None]  # grey images: one channel
    else:
        chosen = _image_layout(x.shape, layout, problems)
        if chosen is None:
            return None
        if chosen == "nhwc":
            x = x.transpose(0, 3, 1, 2)
    kind = x.dtype.kind
    if kind == "f" and x.size:
        bad = ~np.isfinite(x)
        if bad.any():
            problems.append(f"x: NaN or infinite pixels in {_first(bad)}")
            return None
        low, high = float(x.min()), float(x.max())
        if low < 0.0 or high > 1.0:
            problems.append(
                f"x: float images must lie in [0, 1], found [{low:g}, {high:g}]; pass uint8 "
                "pixels 0..255 or scale them first"
            )
            return None
        return np.ascontiguousarray(x, dtype=np.float32)
    if kind in "iu" and x.size:
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            problems.append(
                f"x: integer images must hold 8-bit pixels 0..255, found [{low}, {high}]"
            )
            return None
    # Integers are 8-bit pixels; booleans (masks, binarised images) are already 0/1.
    scale = 1.0 if kind == "b" else 255.0
    out = np.empty(x.shape, dtype=np.float32)
    np.divide(x, np.float32(scale), out=out, dtype=np.float32, casting="unsafe")
    return out


def _tabular(x: np.ndarray, problems: list[str]) -> np.ndarray | None:
    """float32 ``(n, features)``, or None after a problem."""
    if x.shape[1] == 0:
        problems.append(f"x: records have no features (shape {x.shape})")
        return None
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            problems.append(f"x: NaN or infinite features in {_first(bad)}")
            return None
    out = x.astype(np.float32)
    if not np.isfinite(out).all():  # finite float64 values beyond float32's range
        problems.append("x: some features exceed the float32 range (about 3.4e38)")
        return None
    return out


def canonical_features(
    x: np.ndarray, *, layout: Layout = "auto", problems: list[str]
) -> np.ndarray | None:
    """Convert records to the canonical float32 layout, appending to ``problems`` on failure.

    Parameters
    ----------
    x : np.ndarray
        ``(n, features)`` tabular records of any real dtype; ``(n, h, w)`` grey images; or
        ``(n, h, w, c)`` / ``(n, c, h, w)`` images. Integer images must be 8-bit pixels
        (0..255) and are divided by 255; float images must already lie in [0, 1]. Both rules
        exist so that a model sees the same scale whichever file the pixels came from.
    layout : {"auto", "nhwc", "nchw"}
        Channel position of 4-d images. "auto" looks for an axis of 1, 3 or 4 channels and
        asks for an explicit value when both ends qualify.
    problems : list of str
        Receives a description of each problem found (gather-then-raise).

    Returns
    -------
    np.ndarray or None
        float32 ``(n, features)`` or ``(n, c, h, w)``; None when a problem was recorded.
    """
    if layout not in _LAYOUTS:
        problems.append(f"layout must be one of {list(_LAYOUTS)}, got {layout!r}")
        return None
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        problems.append(f"x: expected numbers, got dtype {x.dtype}")
        return None
    if x.ndim == 2:
        return _tabular(x, problems)
    if x.ndim in (3, 4):
        return _images(x, layout, problems)
    problems.append(f"x: expected (n, features), (n, h, w) or 4-d images, got shape {x.shape}")
    return None


def canonical_labels(
    y: np.ndarray | Sequence[object], *, problems: list[str]
) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """Convert labels to int64 class indices, appending to ``problems`` on failure.

    Parameters
    ----------
    y : array-like
        ``(n,)`` (or ``(n, 1)``) labels. Integers (and floats that are whole numbers, as
        spreadsheets write them) are class indices and must be >= 0. Strings are class
        names: they are sorted and numbered, so the mapping does not depend on row order.
    problems : list of str
        Receives a description of each problem found.

    Returns
    -------
    labels : np.ndarray or None
        ``(n,)`` int64, or None when a problem was recorded.
    class_names : tuple of str or None
        The sorted names when the labels were strings, else None.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        problems.append(f"y: expected one label per record, shape (n,), got shape {y.shape}")
        return None, None
    kind = y.dtype.kind
    if kind in "SU":
        text = y.astype(str) if kind == "U" else np.char.decode(y, "utf-8", errors="replace")
        names, indices = np.unique(text, return_inverse=True)
        return indices.astype(np.int64), tuple(str(n) for n in names)
    if kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            problems.append(f"y: NaN or infinite labels in {_first(bad)}")
            return None, None
        fractional = y != np.round(y)
        if fractional.any():
            problems.append(
                f"y: labels must be whole class indices; fractions in {_first(fractional)}"
            )
            return None, None
    elif kind not in "biu":
        problems.append(f"y: expected integer class indices or strings, got dtype {y.dtype}")
        return None, None
    negative = y < 0
    if negative.any():
        problems.append(
            f"y: class indices must be >= 0, negative labels in {_first(negative)} "
            f"(smallest {y.min()})"
        )
        return None, None
    if y.size and kind in "uif" and float(y.max()) >= 2**31:
        problems.append(f"y: label {y.max()} is too large to be a class index")
        return None, None
    return y.astype(np.int64), None


def dataset_from_arrays(
    x: np.ndarray,
    y: np.ndarray | Sequence[object],
    *,
    name: str,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    layout: Layout = "auto",
    source: str = "",
    owner: str | None = None,
) -> Dataset:
    """Build a canonical :class:`Dataset` from user arrays, checking everything at once.

    Parameters
    ----------
    x : np.ndarray
        Records; see :func:`canonical_features` for the accepted shapes and dtypes.
    y : array-like
        ``(n,)`` labels; see :func:`canonical_labels`.
    name : str
        Data set name for the report.
    n_classes : int, optional
        Number of classes, when some class has no record here (default: the largest label
        plus one, or the number of distinct string labels).
    class_names : sequence of str, optional
        One name per class (default: the sorted string labels, or "0", "1", ...).
    layout : {"auto", "nhwc", "nchw"}
        Channel position of 4-d images.
    source : str
        Where the arrays came from, for the report.
    owner : str, optional
        Who is asking, used to start the error message (default: ``name``).

    Returns
    -------
    Dataset

    Raises
    ------
    InvalidAuditInput
        Listing every problem found: bad dtypes or shapes, NaN/inf, negative labels, a
        length mismatch, inconsistent ``n_classes``/``class_names``.
    """
    problems: list[str] = []
    features = canonical_features(x, layout=layout, problems=problems)
    labels, label_names = canonical_labels(y, problems=problems)
    if features is not None and labels is not None and len(features) != len(labels):
        problems.append(f"x has {len(features)} records but y has {len(labels)} labels")
    if labels is not None and labels.size == 0:
        problems.append("no records (y is empty)")
    names = tuple(str(c) for c in class_names) if class_names is not None else label_names
    if label_names is not None and class_names is not None and names != label_names:
        problems.append(
            f"class_names {list(names)} differ from the string labels found {list(label_names)}"
        )
    if n_classes is not None and (
        isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer))
    ):
        problems.append(f"n_classes must be an integer, got {n_classes!r}")
        n_classes = None
    found = int(labels.max()) + 1 if labels is not None and labels.size else 0
    if names is not None and n_classes is not None and n_classes != len(names):
        problems.append(f"n_classes={n_classes} but {len(names)} class names")
    count = n_classes if n_classes is not None else (len(names) if names is not None else found)
    if labels is not None and labels.size and found > count:
        problems.append(f"y: label {found - 1} found but there are only {count} classes")
    elif labels is not None and labels.size and count < 2:
        problems.append(
            f"y: only {count} class found; a membership audit needs a classifier over at "
            "least 2 classes"
        )
    raise_if_problems(owner or f"data set {name!r}", problems)
    assert features is not None and labels is not None  # guaranteed by raise_if_problems
    return Dataset(
        name=name,
        x=features,
        y=labels,
        n_classes=int(count),
        class_names=names or (),
        source=source,
    )


def concatenate_parts(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], part: str
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the official training records, test records, or both (training first)."""
    if part == "train":
        return train
    if part == "test":
        return test
    return np.concatenate([train[0], test[0]]), np.concatenate([train[1], test[1]])
