"""Read MNIST-style IDX files (the format MNIST and Fashion-MNIST are published in).

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order. MNIST images
are magic 2051 (unsigned bytes, 3 dimensions) and labels 2049 (unsigned bytes, 1
dimension). Files may be gzipped; we look at the content, not the extension.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from miaudit.data.canonical import Part, check_part, dataset_from_arrays, existing_file
from miaudit.data.classes import DIGIT_CLASSES, FASHION_MNIST_CLASSES
from miaudit.data.dataset import Dataset
from miaudit.errors import DataNotFoundError, InvalidAuditInput

__all__ = ["IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC", "find_idx_files", "load_idx_dir", "read_idx"]

IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (n, rows, columns)
IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (n,)

# Type code (third magic byte) -> big-endian NumPy dtype, per the IDX specification.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidAuditInput(f"{path}: corrupt gzip data ({exc})") from None


def read_idx(path: str | os.PathLike[str], *, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file, gzipped or not.

    Parameters
    ----------
    path : str or path-like
        The file.
    expect_magic : int, optional
        Required magic number, e.g. :data:`IDX_IMAGES_MAGIC`; catches swapped or renamed
        files before their bytes are misread as something else.

    Returns
    -------
    np.ndarray
        Native-endian array with the dimensions the header gives.

    Raises
    ------
    DataNotFoundError
        If the file does not exist.
    InvalidAuditInput
        If the magic number is wrong or unknown, or the file holds fewer or more bytes than
        its header announces (truncated or corrupt download).
    """
    path = existing_file(path, "IDX file")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise InvalidAuditInput(f"{path}: only {len(raw)} bytes; not an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    valid = raw[:2] == b"\0\0" and type_code in _IDX_TYPES and ndim > 0
    if not valid or (expect_magic is not None and magic != expect_magic):
        wanted = (
            f"{expect_magic}"
            if expect_magic is not None
            else f"{IDX_IMAGES_MAGIC} (images) or {IDX_LABELS_MAGIC} (labels)"
        )
        raise InvalidAuditInput(
            f"{path}: magic number {magic} (0x{magic:08x}) where {wanted} was expected; "
            "the file is corrupt or not the kind of IDX file its name says"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InvalidAuditInput(f"{path}: truncated inside its {header}-byte header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[type_code])
    count = int(np.prod(dims, dtype=np.int64))
    expected, actual = count * dtype.itemsize, len(raw) - header
    if actual != expected:
        raise InvalidAuditInput(
            f"{path}: header announces shape {dims} ({expected} bytes of data) but the file "
            f"holds {actual}; it is truncated or corrupt"
        )
    values = np.frombuffer(raw, dtype=dtype, count=count, offset=header)
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


def _candidates(prefix: str, kind: str) -> list[str]:
    # Official names use "-" before "idx"; some re-distributions use "." instead.
    dims = "idx3" if kind == "images" else "idx1"
    names = [f"{prefix}-{kind}{sep}{dims}-ubyte" for sep in ("-", ".")]
    return [n + ext for n in names for ext in ("", ".gz")]


_ROLES = {
    "train_images": ("train", "images"),
    "train_labels": ("train", "labels"),
    "test_images": ("t10k", "images"),
    "test_labels": ("t10k", "labels"),
}


def find_idx_files(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Locate the MNIST-style files in a directory.

    Returns
    -------
    dict
        Maps each role found (``train_images``, ``train_labels``, ``test_images``,
        ``test_labels``) to its file, e.g. ``train-images-idx3-ubyte`` or
        ``t10k-labels-idx1-ubyte.gz``. An uncompressed file wins over a gzipped one.
    """
    directory = Path(directory)
    found: dict[str, Path] = {}
    for role, (prefix, kind) in _ROLES.items():
        for name in _candidates(prefix, kind):
            if (directory / name).is_file():
                found[role] = directory / name
                break
    return found


def _pair(files: dict[str, Path], which: str) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(files[f"{which}_images"], expect_magic=IDX_IMAGES_MAGIC)
    labels = read_idx(files[f"{which}_labels"], expect_magic=IDX_LABELS_MAGIC)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise InvalidAuditInput(
            f"{files[f'{which}_images']}: IDX images and labels must be unsigned bytes"
        )
    if len(images) != len(labels):
        raise InvalidAuditInput(
            f"{files[f'{which}_images']} holds {len(images)} images but "
            f"{files[f'{which}_labels']} holds {len(labels)} labels"
        )
    return images, labels


def load_idx_dir(
    directory: str | os.PathLike[str],
    *,
    part: Part = "all",
    name: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    """Load MNIST or Fashion-MNIST from a directory of the four IDX files.

    Parameters
    ----------
    directory : str or path-like
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).
        Only the files the requested ``part`` needs must exist.
    part : {"all", "train", "test"}
        Official training records, test records, or both (training records first, so
        record ``i < n_train`` is record ``i`` of the training file).
    name : str, optional
        Data set name (default: the directory name).
    class_names : sequence of str, optional
        Default: the Fashion-MNIST names when the path mentions "fashion", else the digits;
        the files themselves cannot tell the two apart.

    Returns
    -------
    Dataset
        float32 ``(n, 1, rows, columns)`` in [0, 1].
    """
    directory = Path(directory).expanduser()
    owner = str(directory)
    check_part(part, owner)
    files = find_idx_files(directory)
    needed = [r for r in _ROLES if part == "all" or r.startswith(part)]
    missing = [r for r in needed if r not in files]
    if missing:
        looked = {r: _candidates(*_ROLES[r])[0] + "[.gz]" for r in missing}
        raise DataNotFoundError(f"{owner}: missing IDX file(s) {looked}")
    which = [w for w in ("train", "test") if part in ("all", w)]
    parts = [_pair(files, w) for w in which]
    if len({p[0].shape[1:] for p in parts}) > 1:
        raise InvalidAuditInput(
            f"{owner}: training and test images differ in size: "
            f"{parts[0][0].shape[1:]} and {parts[1][0].shape[1:]}"
        )
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if class_names is None and labels.size and labels.max() < 10:
        fashion = "fashion" in str(directory.resolve()).lower()
        class_names = FASHION_MNIST_CLASSES if fashion else DIGIT_CLASSES
    counts = " then ".join(f"{len(p[1])} {w}" for p, w in zip(parts, which, strict=True))
    return dataset_from_arrays(
        images,
        labels,
        name=name or directory.name,
        class_names=class_names,
        layout="nchw",
        source=f"{directory} (IDX files; {counts})",
        owner=owner,
    )
