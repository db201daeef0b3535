"""Data: load records from benchmark or user files, and split them into members and not.

Everything returns a :class:`Dataset` in one canonical layout (float32 records, int64
labels). Nothing here downloads, and importing the package reads no file.
"""

from miaudit.data.canonical import dataset_from_arrays
from miaudit.data.cifar import load_cifar10_dir, load_cifar100_dir
from miaudit.data.dataset import Dataset
from miaudit.data.files import load_csv, load_npy, load_npz
from miaudit.data.idx import load_idx_dir, read_idx
from miaudit.data.loaders import (
    load_breast_cancer,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_location,
    load_mnist,
)
from miaudit.data.paths import DATA_DIR_ENV, default_data_dirs, resolve_data_dir
from miaudit.data.registry import (
    DatasetInfo,
    known_datasets,
    list_datasets,
    load_dataset,
    official_train_size,
)
from miaudit.data.safe_pickle import RestrictedUnpickler, load_restricted_pickle
from miaudit.data.split import AuditSplit, make_split

__all__ = [
    "DATA_DIR_ENV",
    "AuditSplit",
    "Dataset",
    "DatasetInfo",
    "RestrictedUnpickler",
    "dataset_from_arrays",
    "default_data_dirs",
    "known_datasets",
    "list_datasets",
    "load_breast_cancer",
    "load_cifar10",
    "load_cifar10_dir",
    "load_cifar100_dir",
    "load_csv",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_idx_dir",
    "load_location",
    "load_mnist",
    "load_npy",
    "load_npz",
    "load_restricted_pickle",
    "make_split",
    "official_train_size",
    "read_idx",
    "resolve_data_dir",
]
