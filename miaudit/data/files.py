"""Load a user's own records from ``.npz``, ``.npy`` and ``.csv`` files.

NumPy files are always opened with ``allow_pickle=False``: an ``.npy`` holding Python
objects is a pickle in disguise, and a data file has no business running code.
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from miaudit.data.canonical import (
    Layout,
    Part,
    check_part,
    concatenate_parts,
    dataset_from_arrays,
    existing_file,
)
from miaudit.data.dataset import Dataset
from miaudit.errors import DataNotFoundError, InvalidAuditInput, raise_if_problems

__all__ = ["load_csv", "load_npy", "load_npz"]

_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
# At most this many bad cells are listed for a CSV file; the first few are enough to act on.
_MAX_CSV_PROBLEMS = 10


def read_npz_member(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise InvalidAuditInput(
            f"{path}: array {key!r} cannot be read without pickle ({exc}); save it as a "
            "numeric array"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise InvalidAuditInput(f"{path}: array {key!r} is corrupt ({exc})") from None


def open_npz(path: Path) -> np.lib.npyio.NpzFile:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidAuditInput(f"{path}: not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InvalidAuditInput(
            f"{path}: holds a single array, not an .npz archive of named arrays; name it "
            ".npy and give the labels with y_path"
        )
    return archive


def load_npz(
    path: str | os.PathLike[str],
    *,
    x_key: str = "x",
    y_key: str = "y",
    part: Part = "all",
    name: str | None = None,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    layout: Layout = "auto",
) -> Dataset:
    """Load records and labels from an ``.npz`` archive.

    Parameters
    ----------
    path : str or path-like
        The archive.
    x_key, y_key : str
        Names of the record and label arrays. When left at ``"x"``/``"y"`` and the archive
        has no such arrays but has ``x_train, y_train, x_test, y_test`` (the layout of the
        benchmark files), those are read instead: training records first, then test.
    part : {"all", "train", "test"}
        Which official part to return; only for archives in the train/test layout.
    name : str, optional
        Data set name (default: the file name without extension).
    n_classes, class_names, layout
        As in :func:`~miaudit.data.canonical.dataset_from_arrays`.

    Returns
    -------
    Dataset

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    InvalidAuditInput
        If it is not an archive, lacks the arrays (the message lists those present), or
        its arrays are not valid records and labels.
    """
    path = existing_file(path, ".npz file")
    owner = f"{path}"
    with open_npz(path) as archive:
        present = list(archive.files)
        defaults = (x_key, y_key) == ("x", "y")
        if x_key in present and y_key in present:
            check_part(part, owner, has_split=False)
            x, y = read_npz_member(archive, x_key, path), read_npz_member(archive, y_key, path)
        elif defaults and all(k in present for k in _SPLIT_KEYS):
            check_part(part, owner)
            train = (
                read_npz_member(archive, "x_train", path),
                read_npz_member(archive, "y_train", path),
            )
            test = (
                read_npz_member(archive, "x_test", path),
                read_npz_member(archive, "y_test", path),
            )
            bad = [k for k, a in zip(_SPLIT_KEYS, (*train, *test), strict=True) if a.ndim < 1]
            if bad or train[0].shape[1:] != test[0].shape[1:]:
                raise InvalidAuditInput(
                    f"{owner}: x_train and x_test must hold records of one shape, got "
                    f"{train[0].shape} and {test[0].shape}"
                )
            x, y = concatenate_parts(train, test, part)
        else:
            missing = [k for k in (x_key, y_key) if k not in present]
            hint = " (or x_train, y_train, x_test, y_test)" if defaults else ""
            raise InvalidAuditInput(
                f"{owner}: missing array(s) {missing}{hint}; the archive holds {present}; "
                "choose others with x_key= and y_key="
            )
    return dataset_from_arrays(
        x,
        y,
        name=name or path.stem,
        n_classes=n_classes,
        class_names=class_names,
        layout=layout,
        source=str(path) + ("" if part == "all" else f" (official {part} part)"),
        owner=owner,
    )


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise InvalidAuditInput(
            f"{path}: cannot be read without pickle or is not a .npy array ({exc})"
        ) from None
    except (OSError, EOFError) as exc:
        raise InvalidAuditInput(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(array, np.ndarray):
        array.close()
        raise InvalidAuditInput(f"{path}: is an .npz archive, not a single .npy array")
    return array


def guess_label_file(x_path: Path) -> Path | None:
    """The labels file that goes with a records file, by swapping an ``x`` name part for ``y``.

    ``x.npy`` pairs with ``y.npy``, ``x_train.npy`` with ``y_train.npy`` and
    ``cifar-X.npy`` with ``cifar-Y.npy``. Returns None when the name has no ``x`` part or
    the partner file does not exist.
    """
    parts = re.split(r"([_\-.])", x_path.stem)
    swapped = [{"x": "y", "X": "Y"}.get(p, p) for p in parts]
    if swapped == parts:
        return None
    candidate = x_path.with_name("".join(swapped) + x_path.suffix)
    return candidate if candidate.is_file() else None


def load_npy(
    x_path: str | os.PathLike[str],
    *,
    y_path: str | os.PathLike[str] | None = None,
    name: str | None = None,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    layout: Layout = "auto",
) -> Dataset:
    """Load records and labels from a pair of ``.npy`` files.

    Parameters
    ----------
    x_path : str or path-like
        The records array.
    y_path : str or path-like, optional
        The labels array. Default: the file named like ``x_path`` with an ``x`` name part
        swapped for ``y`` (see :func:`guess_label_file`).
    name : str, optional
        Data set name (default: the records file name without extension).
    n_classes, class_names, layout
        As in :func:`~miaudit.data.canonical.dataset_from_arrays`.

    Returns
    -------
    Dataset
    """
    x_file = existing_file(x_path, ".npy records file")
    if y_path is None:
        guessed = guess_label_file(x_file)
        if guessed is None:
            raise DataNotFoundError(
                f"{x_file}: no labels file found beside it (looked for the name with 'x' "
                "swapped for 'y'); pass y_path= (y_path: in a config file)"
            )
        y_file = guessed
    else:
        y_file = existing_file(y_path, ".npy labels file")
    x, y = _read_npy(x_file), _read_npy(y_file)
    return dataset_from_arrays(
        x,
        y,
        name=name or x_file.stem,
        n_classes=n_classes,
        class_names=class_names,
        layout=layout,
        source=f"{x_file} + {y_file}",
        owner=f"{x_file} + {y_file}",
    )


def _parse_column(values: list[str], column: str, lines: list[int], problems: list[str]) -> None:
    """Record the first non-numeric or non-finite cell of a feature column, if any."""
    for row, (value, line) in enumerate(zip(values, lines, strict=True), start=1):
        try:
            number = float(value)
        except ValueError:
            problems.append(
                f"column {column!r}, row {row} (line {line}): {value!r} is not a number"
            )
            return
        if not np.isfinite(number):
            problems.append(
                f"column {column!r}, row {row} (line {line}): {value!r} is not a finite number"
            )
            return


def load_csv(
    path: str | os.PathLike[str],
    *,
    label_column: str = "label",
    delimiter: str = ",",
    name: str | None = None,
    n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    """Load tabular records from a CSV file with a header row and a label column.

    Parameters
    ----------
    path : str or path-like
        UTF-8 text (a byte-order mark is tolerated), first row = column names.
    label_column : str
        Name of the column holding the class. Whole numbers are class indices; anything
        else is a class name, and names are numbered in sorted order.
    delimiter : str
        Field separator.
    name : str, optional
        Data set name (default: the file name without extension).
    n_classes, class_names
        As in :func:`~miaudit.data.canonical.dataset_from_arrays`.

    Returns
    -------
    Dataset
        Tabular: float32 ``(n, n_columns - 1)``, columns in file order.

    Raises
    ------
    InvalidAuditInput
        Naming the column and row of each non-numeric or non-finite feature cell (the first
        per column), rows of the wrong length, a missing label column (listing the columns
        found), and empty labels.
    """
    path = existing_file(path, "CSV file")
    owner = f"{path}"
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream, delimiter=delimiter)
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if row and any(cell.strip() for cell in row):  # skip blank lines
                    rows.append(row)
                    lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise InvalidAuditInput(f"{owner}: not UTF-8 text ({exc})") from None
    except (csv.Error, TypeError) as exc:
        raise InvalidAuditInput(f"{owner}: not a readable CSV file ({exc})") from None
    if not rows:
        raise InvalidAuditInput(f"{owner}: the file is empty; expected a header row")
    header = [cell.strip() for cell in rows[0]]
    rows, lines = rows[1:], lines[1:]
    problems: list[str] = []
    if label_column not in header:
        problems.append(f"no label column {label_column!r}; the columns are {header}")
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        problems.append(f"duplicate column names {duplicates}")
    if len(header) < 2:
        problems.append("needs a label column and at least one feature column")
    if not rows:
        problems.append("has a header but no records")
    ragged = [
        (i, line, len(r))
        for i, (r, line) in enumerate(zip(rows, lines, strict=True), 1)
        if len(r) != len(header)
    ]
    for i, line, count in ragged[:_MAX_CSV_PROBLEMS]:
        problems.append(f"row {i} (line {line}) has {count} fields, the header has {len(header)}")
    raise_if_problems(owner, problems)

    columns = list(zip(*rows, strict=True))
    label_at = header.index(label_column)
    feature_at = [j for j in range(len(header)) if j != label_at]
    features: list[np.ndarray] = []
    for j in feature_at:
        values = list(columns[j])
        try:
            column = np.asarray(values, dtype=np.float64)
        except ValueError:
            _parse_column(values, header[j], lines, problems)
            continue
        if not np.isfinite(column).all():
            _parse_column(values, header[j], lines, problems)
            continue
        features.append(column)
        if len(problems) >= _MAX_CSV_PROBLEMS:
            break
    labels_text = [cell.strip() for cell in columns[label_at]]
    empty = [i for i, cell in enumerate(labels_text, 1) if not cell]
    if empty:
        shown = ", ".join(f"row {i} (line {lines[i - 1]})" for i in empty[:3])
        problems.append(f"column {label_column!r}: empty label in {len(empty)} row(s): {shown}")
    raise_if_problems(owner, problems)

    try:
        labels: np.ndarray = np.asarray(labels_text, dtype=np.float64)
    except ValueError:
        labels = np.asarray(labels_text)  # not all numbers: class names
    else:
        # All numbers: they must be whole class indices. A fractional or missing ("nan")
        # label more likely means a regression target or a hole than a class name.
        odd = ~np.isfinite(labels) | (labels != np.round(labels))
        if odd.any():
            i = int(np.flatnonzero(odd)[0])
            raise InvalidAuditInput(
                f"{owner}: column {label_column!r}, row {i + 1} (line {lines[i]}): "
                f"{labels_text[i]!r} is not a class; numeric labels must be whole class indices"
            )
    return dataset_from_arrays(
        np.stack(features, axis=1),
        labels,
        name=name or path.stem,
        n_classes=n_classes,
        class_names=class_names,
        source=str(path),
        owner=owner,
    )
