"""Tests of the data part: resolver, loaders of every format, registry, safety of pickles."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from miaudit.data import (
    DATA_DIR_ENV,
    Dataset,
    dataset_from_arrays,
    known_datasets,
    list_datasets,
    load_breast_cancer,
    load_cifar10_dir,
    load_cifar100_dir,
    load_csv,
    load_dataset,
    load_digits,
    load_idx_dir,
    load_npy,
    load_npz,
    load_restricted_pickle,
    official_train_size,
    read_idx,
    resolve_data_dir,
)
from miaudit.data import paths as paths_module
from miaudit.errors import DataNotFoundError, InvalidAuditInput


def _shared_dir() -> Path | None:
    try:
        return resolve_data_dir()
    except DataNotFoundError:
        return None


SHARED = _shared_dir()


def _need(filename: str) -> Path:
    if SHARED is None or not (SHARED / filename).is_file():
        pytest.skip(f"{filename} is not in the shared data directory")
    return SHARED / filename


# --------------------------------------------------------------------------- resolver


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


@pytest.fixture
def nowhere(tmp_path, monkeypatch, no_env):
    """No data directory anywhere: the checkout and the working directory lack shared/data."""
    monkeypatch.setattr(paths_module, "_checkout_root", lambda: tmp_path / "checkout")
    work = tmp_path / "elsewhere" / "cwd"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    return tmp_path


def test_explicit_dir_beats_environment(tmp_path, monkeypatch):
    explicit, from_env = tmp_path / "a", tmp_path / "b"
    explicit.mkdir()
    from_env.mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(from_env))
    assert resolve_data_dir(explicit) == explicit
    assert resolve_data_dir(str(explicit)) == explicit
    assert resolve_data_dir() == from_env


def test_environment_beats_defaults(tmp_path, monkeypatch, nowhere):
    (tmp_path / "shared" / "data").mkdir(parents=True)  # would be the checkout default
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(chosen))
    assert resolve_data_dir() == chosen


def test_named_but_missing_directory_does_not_fall_through(tmp_path, monkeypatch):
    missing = tmp_path / "missing"
    with pytest.raises(DataNotFoundError, match="--data-dir"):
        resolve_data_dir(missing)
    monkeypatch.setenv(DATA_DIR_ENV, str(missing))
    with pytest.raises(DataNotFoundError, match=DATA_DIR_ENV) as info:
        resolve_data_dir()
    assert str(missing) in str(info.value)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataNotFoundError, match="not a directory"):
        resolve_data_dir(a_file)


def test_defaults_beside_checkout_then_cwd(tmp_path, nowhere, monkeypatch):
    beside_cwd = tmp_path / "elsewhere" / "shared" / "data"
    beside_cwd.mkdir(parents=True)
    assert resolve_data_dir() == beside_cwd
    beside_checkout = tmp_path / "shared" / "data"
    beside_checkout.mkdir(parents=True)
    assert resolve_data_dir() == beside_checkout


def test_missing_everywhere_lists_places_and_fixes(tmp_path, nowhere):
    with pytest.raises(DataNotFoundError) as info:
        resolve_data_dir()
    message = str(info.value)
    assert str(tmp_path / "shared" / "data") in message
    assert str(tmp_path / "elsewhere" / "shared" / "data") in message
    assert "--data-dir" in message and DATA_DIR_ENV in message
    assert isinstance(info.value, ValueError)


def test_list_datasets_with_missing_dir_reports_instead_of_raising(tmp_path, nowhere):
    infos = {info.name: info for info in list_datasets()}
    assert set(infos) == set(known_datasets())
    assert infos["digits"].found and infos["breast_cancer"].found
    for name in ("mnist", "fashion_mnist", "cifar10", "location"):
        assert not infos[name].found
        assert DATA_DIR_ENV in infos[name].reason
    explicit = {i.name: i for i in list_datasets(tmp_path / "no-such-dir")}
    assert not explicit["mnist"].found and "does not exist" in explicit["mnist"].reason


def test_list_datasets_checks_presence_per_file(tmp_path):
    (tmp_path / "location.npz").write_bytes(b"")  # presence only: never opened
    infos = {info.name: info for info in list_datasets(tmp_path)}
    assert infos["location"].found and infos["location"].location.endswith("location.npz")
    assert not infos["mnist"].found and "mnist.npz" in infos["mnist"].reason


# ------------------------------------------------------------------ shared benchmarks


def _check_canonical(data: Dataset, shape: tuple[int, ...], n_classes: int) -> None:
    assert data.x.shape == shape and data.x.dtype == np.float32
    assert data.y.dtype == np.int64 and data.y.shape == (shape[0],)
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0
    assert data.n_classes == n_classes and len(data.class_names) == n_classes
    assert data.x.flags.c_contiguous


def test_mnist_loads_train_then_test():
    _need("mnist.npz")
    data = load_dataset("mnist")
    _check_canonical(data, (70000, 1, 28, 28), 10)
    assert data.class_names == tuple("0123456789")
    n_train = official_train_size("mnist")
    assert n_train == 60000
    # Known answers from the data README: class counts of each official part.
    assert np.bincount(data.y[:n_train]).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]  # fmt: skip
    assert np.bincount(data.y[n_train:]).tolist() == [
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009
    ]  # fmt: skip
    assert abs(data.x[:n_train].mean() * 255 - 33.32) < 0.01
    test = load_dataset("mnist", part="test")
    np.testing.assert_array_equal(test.x, data.x[n_train:])
    assert "test" in test.source


def test_fashion_mnist_test_part():
    _need("fashion_mnist.npz")
    data = load_dataset("fashion_mnist", part="test")  # the small side keeps the test fast
    _check_canonical(data, (10000, 1, 28, 28), 10)
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert np.bincount(data.y).tolist() == [1000] * 10
    assert official_train_size("fashion_mnist") == 60000


def test_location_unpacks_bits():
    _need("location.npz")
    data = load_dataset("location")
    _check_canonical(data, (5010, 446), 30)
    assert set(np.unique(data.x)) == {0.0, 1.0}
    assert abs(data.x.mean() - 0.120) < 0.001
    counts = np.bincount(data.y, minlength=30)
    assert counts.min() == 97 and counts.max() == 308
    assert official_train_size("location") is None
    with pytest.raises(InvalidAuditInput, match="no"):
        load_dataset("location", part="train")  # no official split: option refused


def test_cifar10_file_keys_without_decompressing():
    path = _need("cifar10_jpeg.npz")
    with np.load(path, allow_pickle=False) as archive:  # .files is lazy
        assert sorted(archive.files) == ["x_test", "x_train", "y_test", "y_train"]
    assert official_train_size("cifar10") == 50000  # reads the labels only


def test_named_benchmark_missing_file_names_it(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"mnist\.npz"):
        load_dataset("mnist", data_dir=tmp_path)


# --------------------------------------------------------------- scikit-learn sets


def test_digits_scaled_to_unit_range():
    data = load_digits()
    _check_canonical(data, (1797, 64), 10)
    assert data.x.max() == 1.0
    assert load_dataset("digits").n_records == 1797


def test_breast_cancer_is_z_scored():
    data = load_breast_cancer()
    assert data.x.shape == (569, 30) and data.x.dtype == np.float32
    np.testing.assert_allclose(data.x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.x.std(axis=0), 1.0, atol=1e-5)
    assert data.class_names == ("malignant", "benign")


# ---------------------------------------------------------------------- registry


def test_unknown_name_lists_known_names():
    with pytest.raises(InvalidAuditInput) as info:
        load_dataset("imagenet")
    for name in known_datasets():
        assert name in str(info.value)


def test_unknown_option_is_refused():
    with pytest.raises(InvalidAuditInput, match="unknown option"):
        load_dataset("digits", part="train")
    with pytest.raises(InvalidAuditInput, match="part"):
        load_dataset("mnist", prat="train")


def test_missing_path_and_unsupported_extension(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset(str(tmp_path / "records.csv"))
    odd = tmp_path / "records.parquet"
    odd.write_bytes(b"")
    with pytest.raises(InvalidAuditInput, match=r"\.parquet"):
        load_dataset(odd)
    with pytest.raises(InvalidAuditInput, match="no known format"):
        load_dataset(tmp_path)


# --------------------------------------------------------------------------- IDX


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = {1: 2049, 3: 2051}[array.ndim]
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_dir(directory: Path, *, gz: bool, n_train: int = 5, n_test: int = 3):
    rng = np.random.default_rng(0)
    arrays = {}
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 4, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        arrays[prefix] = (images, labels)
        for kind, array, dims in (("images", images, "idx3"), ("labels", labels, "idx1")):
            name = f"{prefix}-{kind}-{dims}-ubyte"
            raw = _idx_bytes(array)
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (directory / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_directory_round_trip(tmp_path, gz):
    arrays = _write_idx_dir(tmp_path / "mnist", gz=gz)
    data = load_dataset(tmp_path / "mnist")
    _check_canonical(data, (8, 1, 4, 3), 10)
    expected = np.concatenate([arrays["train"][0], arrays["t10k"][0]])[:, None] / 255.0
    np.testing.assert_allclose(data.x, expected, rtol=1e-6)
    np.testing.assert_array_equal(data.y, np.concatenate([arrays["train"][1], arrays["t10k"][1]]))
    assert data.class_names == tuple("0123456789")
    test = load_idx_dir(tmp_path / "mnist", part="test")
    np.testing.assert_array_equal(test.y, arrays["t10k"][1])
    assert official_train_size(tmp_path / "mnist") == 5


def test_idx_fashion_names_follow_the_directory(tmp_path):
    _write_idx_dir(tmp_path / "fashion-mnist", gz=True)
    assert load_idx_dir(tmp_path / "fashion-mnist").class_names[0] == "T-shirt/top"


def test_idx_corrupt_magic_truncation_and_mismatch(tmp_path):
    _write_idx_dir(tmp_path / "d", gz=False)
    images = tmp_path / "d" / "train-images-idx3-ubyte"
    good = images.read_bytes()
    images.write_bytes(b"\x00\x00\x08\x07" + good[4:])  # 7 dimensions: wrong magic
    with pytest.raises(InvalidAuditInput, match="magic number"):
        load_idx_dir(tmp_path / "d")
    images.write_bytes(good[:-1])
    with pytest.raises(InvalidAuditInput, match="truncated"):
        load_idx_dir(tmp_path / "d")
    # Labels where images were expected: a magic number 2049 instead of 2051.
    labels = tmp_path / "d" / "train-labels-idx1-ubyte"
    images.write_bytes(labels.read_bytes())
    with pytest.raises(InvalidAuditInput, match="2051"):
        load_idx_dir(tmp_path / "d")
    images.write_bytes(good)
    labels.write_bytes(_idx_bytes(np.zeros(4, np.uint8)))  # 5 images, 4 labels
    with pytest.raises(InvalidAuditInput, match="5 images but"):
        load_idx_dir(tmp_path / "d")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataNotFoundError, match="test_labels"):
        load_idx_dir(tmp_path / "d", part="test")
    gz = tmp_path / "bad.gz"
    gz.write_bytes(gzip.compress(good)[:-9])
    with pytest.raises(InvalidAuditInput, match="gzip"):
        read_idx(gz)


# ------------------------------------------------------------------ CIFAR pickles


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes ``str`` and ``bytes`` as Python 2 strings, as the official CIFAR files have them."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_py2_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_string
    dispatch[bytes] = save_py2_string


def _py2_pickle(obj: object, path: Path) -> None:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    # The official files predate NumPy 2 and name numpy.core, not numpy._core.
    path.write_bytes(buffer.getvalue().replace(b"numpy._core.", b"numpy.core."))


def _cifar_batch(rng, n: int, label_key: bytes, n_classes: int) -> dict:
    return {
        b"batch_label": b"synthetic",
        label_key: [int(v) for v in rng.integers(0, n_classes, size=n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [b"img%d.png" % i for i in range(n)],
    }


def test_cifar10_directory_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "download" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    batches = [_cifar_batch(rng, 2, b"labels", 10) for _ in range(6)]
    for i, batch in enumerate(batches[:5], start=1):
        _py2_pickle(batch, root / f"data_batch_{i}")
    _py2_pickle(batches[5], root / "test_batch")
    names = [
        b"plane",
        b"car",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"lorry",
    ]
    _py2_pickle({b"label_names": names, b"num_cases_per_batch": 2}, root / "batches.meta")

    data = load_dataset(tmp_path / "download")  # the parent folder is accepted too
    _check_canonical(data, (12, 3, 32, 32), 10)
    assert data.class_names[9] == "lorry"
    first = batches[0][b"data"][0]
    # Row layout: 1024 red, 1024 green, 1024 blue values, each image row by row.
    np.testing.assert_allclose(data.x[0, 0].ravel() * 255, first[:1024], atol=1e-3)
    np.testing.assert_allclose(data.x[0, 2, 1, :] * 255, first[2048 + 32 : 2048 + 64], atol=1e-3)
    labels = [label for b in batches for label in b[b"labels"]]
    np.testing.assert_array_equal(data.y, labels)
    train = load_cifar10_dir(root, part="train")
    assert train.n_records == 10 and official_train_size(root) == 10


def test_cifar10_python3_pickles_without_meta(tmp_path):
    rng = np.random.default_rng(2)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {k.decode(): v for k, v in _cifar_batch(rng, 1, b"labels", 10).items()}
        (tmp_path / name).write_bytes(pickle.dumps(batch, protocol=4))
    data = load_cifar10_dir(tmp_path)
    assert data.n_records == 6 and data.class_names[0] == "airplane"


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(3)
    for name, n in (("train", 4), ("test", 2)):
        batch = _cifar_batch(rng, n, b"fine_labels", 100)
        batch[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, size=n)]
        _py2_pickle(batch, tmp_path / name)
    fine = [b"f%d" % i for i in range(100)]
    coarse = [b"c%d" % i for i in range(20)]
    _py2_pickle({b"fine_label_names": fine, b"coarse_label_names": coarse}, tmp_path / "meta")
    data = load_dataset(tmp_path)
    _check_canonical(data, (6, 3, 32, 32), 100)
    assert data.class_names[99] == "f99"
    coarse_data = load_cifar100_dir(tmp_path, labels="coarse", part="test")
    assert coarse_data.n_classes == 20 and coarse_data.n_records == 2


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batch = {"data": np.zeros((1, 3072), np.uint8), "labels": [0], "payload": _Evil(marker)}
    (root / "data_batch_1").write_bytes(pickle.dumps(batch))
    for name in [f"data_batch_{i}" for i in range(2, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(InvalidAuditInput, match=r"refusing to load (posix|os|nt)\.system"):
        load_dataset(root)
    with pytest.raises(InvalidAuditInput, match="refusing"):
        load_restricted_pickle(root / "data_batch_1")
    assert not marker.exists()
    sneaky = tmp_path / "sneaky"
    sneaky.write_bytes(b"cbuiltins\neval\n(V1+1\ntR.")  # protocol 0: eval("1+1")
    with pytest.raises(InvalidAuditInput, match=r"builtins\.eval"):
        load_restricted_pickle(sneaky)
    (tmp_path / "garbage").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(InvalidAuditInput, match="not a readable pickle"):
        load_restricted_pickle(tmp_path / "garbage")


def test_cifar_batch_with_wrong_content(tmp_path):
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / name).write_bytes(pickle.dumps({"data": np.zeros((2, 100), np.uint8)}))
    with pytest.raises(InvalidAuditInput, match="missing key 'labels'"):
        load_cifar10_dir(tmp_path)
    batch = {"data": np.zeros((2, 100), np.uint8), "labels": [0]}
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps(batch))
    with pytest.raises(InvalidAuditInput, match="3072") as info:
        load_cifar10_dir(tmp_path)
    assert "2 images but 1 labels" in str(info.value)  # both problems in one message


# ----------------------------------------------------------------------- CSV


def test_csv_string_labels_map_to_sorted_names(tmp_path):
    path = tmp_path / "animals.csv"
    path.write_text("size,kind,weight\n1.5,dog,10\n0.2,cat,4\n3,dog,30\n0.1,ant,0.01\n\n")
    data = load_dataset(path, label_column="kind")
    assert data.class_names == ("ant", "cat", "dog")
    np.testing.assert_array_equal(data.y, [2, 1, 2, 0])
    assert data.x.shape == (4, 2) and data.x.dtype == np.float32
    np.testing.assert_allclose(data.x[0], [1.5, 10])
    assert data.name == "animals"


def test_csv_numeric_labels(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("a,b,label\n0,1,2\n1,0,0\n")
    data = load_csv(path)
    np.testing.assert_array_equal(data.y, [2, 0])
    assert data.n_classes == 3


def test_csv_bad_column_names_column_and_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,c,label\n1,2,3,0\n4,oops,6,1\n7,8,nan,1\n")
    with pytest.raises(InvalidAuditInput) as info:
        load_csv(path)
    message = str(info.value)
    assert "column 'b', row 2 (line 3): 'oops'" in message
    assert "column 'c', row 3 (line 4): 'nan'" in message  # every bad column reported
    assert str(path) in message


def test_csv_structure_errors(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,0\n1,2\n")
    with pytest.raises(InvalidAuditInput) as info:
        load_csv(path)
    assert "no label column 'label'; the columns are ['a', 'b', 'y']" in str(info.value)
    assert "row 2 (line 3) has 2 fields" in str(info.value)
    path.write_text("a,label\n1,0.5\n2,1\n")
    with pytest.raises(InvalidAuditInput, match=r"'0\.5' is not a class"):
        load_csv(path)
    path.write_text("a,label\n1,-1\n2,1\n")
    with pytest.raises(InvalidAuditInput, match="negative"):
        load_csv(path)
    path.write_text("")
    with pytest.raises(InvalidAuditInput, match="empty"):
        load_csv(path)


# ------------------------------------------------------------------ npz / npy


def test_npz_tabular_and_custom_keys(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "plain.npz", x=x, y=y)
    data = load_dataset(tmp_path / "plain.npz")
    np.testing.assert_array_equal(data.x, x.astype(np.float32))
    np.testing.assert_array_equal(data.y, y)
    np.savez(tmp_path / "named.npz", features=x, target=y)
    with pytest.raises(InvalidAuditInput, match=r"holds \['features', 'target'\]"):
        load_npz(tmp_path / "named.npz")
    named = load_npz(tmp_path / "named.npz", x_key="features", y_key="target", n_classes=5)
    assert named.n_classes == 5 and named.class_names[4] == "4"


def test_npz_images_become_nchw(tmp_path):
    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, size=(4, 5, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", x=nhwc, y=np.array([0, 1, 0, 1]))
    data = load_dataset(tmp_path / "nhwc.npz")
    assert data.x.shape == (4, 3, 5, 6)
    np.testing.assert_allclose(data.x[1, 2, 3, 4], nhwc[1, 3, 4, 2] / 255, rtol=1e-6)
    nchw = nhwc.transpose(0, 3, 1, 2)
    np.savez(tmp_path / "nchw.npz", x=nchw, y=np.array([0, 1, 0, 1]))
    np.testing.assert_array_equal(load_dataset(tmp_path / "nchw.npz").x, data.x)
    grey = nhwc[..., 0]
    np.savez(tmp_path / "grey.npz", x=grey, y=np.array([0, 1, 0, 1]))
    assert load_dataset(tmp_path / "grey.npz").x.shape == (4, 1, 5, 6)
    cube = rng.integers(0, 256, size=(2, 3, 3, 3), dtype=np.uint8)
    np.savez(tmp_path / "cube.npz", x=cube, y=np.array([0, 1]))
    with pytest.raises(InvalidAuditInput, match="layout="):
        load_dataset(tmp_path / "cube.npz")
    explicit = load_dataset(tmp_path / "cube.npz", layout="nhwc")
    np.testing.assert_allclose(explicit.x, cube.transpose(0, 3, 1, 2) / 255, rtol=1e-6)


def test_npz_problems_are_gathered(tmp_path):
    x = np.ones((3, 2))
    x[1, 0] = np.nan
    np.savez(tmp_path / "bad.npz", x=x, y=np.array([0, -1, 1, 1]))
    with pytest.raises(InvalidAuditInput) as info:
        load_dataset(tmp_path / "bad.npz")
    message = str(info.value)
    assert "NaN or infinite features in 1 record(s) (index 1)" in message
    assert "negative labels" in message
    assert str(tmp_path / "bad.npz") in message
    np.savez(tmp_path / "short.npz", x=np.ones((3, 2)), y=np.array([0, 1]))
    with pytest.raises(InvalidAuditInput, match="x has 3 records but y has 2"):
        load_dataset(tmp_path / "short.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object), y=np.array([0]))
    with pytest.raises(InvalidAuditInput, match="pickle"):
        load_dataset(tmp_path / "objects.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(InvalidAuditInput, match="not a readable"):
        load_dataset(tmp_path / "broken.npz")


def test_npz_in_train_test_layout(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (5, 8, 8), dtype=np.uint8),
        "y_train": rng.integers(0, 3, 5).astype(np.uint8),
        "x_test": rng.integers(0, 256, (2, 8, 8), dtype=np.uint8),
        "y_test": np.array([1, 2], np.uint8),
    }
    np.savez(tmp_path / "bench.npz", **arrays)
    data = load_dataset(tmp_path / "bench.npz")
    assert data.x.shape == (7, 1, 8, 8)
    assert load_dataset(tmp_path / "bench.npz", part="test").y.tolist() == [1, 2]
    assert official_train_size(tmp_path / "bench.npz") == 5


def test_npy_pair(tmp_path):
    x = np.random.default_rng(0).random((5, 3))
    np.save(tmp_path / "x_train.npy", x)
    np.save(tmp_path / "y_train.npy", np.array([0, 1, 1, 0, 1]))
    data = load_dataset(tmp_path / "x_train.npy")  # labels found by swapping x for y
    assert data.x.shape == (5, 3) and data.y.tolist() == [0, 1, 1, 0, 1]
    np.save(tmp_path / "features.npy", x)
    with pytest.raises(DataNotFoundError, match="y_path"):
        load_npy(tmp_path / "features.npy")
    np.save(tmp_path / "labels.npy", np.array(["b", "a", "b", "a", "c"]))
    named = load_npy(tmp_path / "features.npy", y_path=tmp_path / "labels.npy")
    assert named.class_names == ("a", "b", "c") and named.y.tolist() == [1, 0, 1, 0, 2]
    assert official_train_size(tmp_path / "features.npy") is None


def test_dataset_from_arrays_validates_everything_at_once():
    with pytest.raises(InvalidAuditInput) as info:
        dataset_from_arrays(
            np.full((2, 3, 5, 5), 2.0), np.array([0.5, 1.0]), name="toy", class_names=["a"]
        )
    message = str(info.value)
    assert "float images must lie in [0, 1]" in message
    assert "whole class indices" in message
    with pytest.raises(InvalidAuditInput, match="only 1 class"):
        dataset_from_arrays(np.ones((2, 1)), np.zeros(2, int), name="toy")
    with pytest.raises(InvalidAuditInput, match="expected numbers"):
        dataset_from_arrays(np.array([["a"], ["b"]]), np.array([0, 1]), name="toy")


def test_svhn_mat_files_map_label_10_to_digit_0(tmp_path):
    from scipy.io import savemat

    from miaudit.data.digit_sets import load_svhn_dir

    rng = np.random.default_rng(4)
    for name, n in (("train_32x32.mat", 5), ("test_32x32.mat", 3)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [5], [9], [2]][:n], dtype=np.uint8)
        savemat(tmp_path / name, {"X": x, "y": y})
    data = load_dataset(tmp_path)  # recognised by its files
    _check_canonical(data, (8, 3, 32, 32), 10)
    assert data.y[:5].tolist() == [0, 1, 5, 9, 2] and data.class_names[0] == "0"
    # Pixel (row 3, column 7, green) of the first image keeps its place in NCHW.
    from scipy.io import loadmat

    raw = loadmat(tmp_path / "train_32x32.mat")["X"]
    assert data.x[0, 1, 3, 7] == pytest.approx(raw[3, 7, 1, 0] / 255)
    assert load_svhn_dir(tmp_path, part="test").n_records == 3
    with pytest.raises(DataNotFoundError, match=r"extra_32x32\.mat"):
        load_svhn_dir(tmp_path, part="extra")
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": y[:2]})
    with pytest.raises(InvalidAuditInput, match=r"\(32, 32, 3, n\)"):
        load_svhn_dir(tmp_path)


def test_kmnist_npz_files(tmp_path):
    from miaudit.data.digit_sets import load_kmnist_dir

    rng = np.random.default_rng(5)
    for part, n in (("train", 6), ("test", 2)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        np.savez(tmp_path / f"kmnist-{part}-imgs.npz", images)
        np.savez(tmp_path / f"kmnist-{part}-labels.npz", rng.integers(0, 10, n).astype(np.uint8))
    data = load_dataset(tmp_path)
    _check_canonical(data, (8, 1, 28, 28), 10)
    assert data.class_names[:3] == ("o", "ki", "su")
    test = load_kmnist_dir(tmp_path, part="test")
    with np.load(tmp_path / "kmnist-test-imgs.npz") as archive:
        np.testing.assert_allclose(test.x[:, 0], archive["arr_0"] / 255, atol=1e-6)
    np.savez(tmp_path / "kmnist-test-labels.npz", np.zeros(3, np.uint8))
    with pytest.raises(InvalidAuditInput, match="n labels"):
        load_kmnist_dir(tmp_path)
