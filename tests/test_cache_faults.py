"""The caches under faults and sharing: truncated and corrupt entries are reported,
deleted and recomputed; stale temporary files are swept; a full disk is a message, not a
traceback; two audits on one cache train each model once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from miaudit.compute import CacheWarning, ModelCache, QuerySet, ReferencePool
from miaudit.compute.answers import AnswerCache
from miaudit.data import load_dataset, make_split
from miaudit.errors import InvalidAuditInput
from miaudit.models import SklearnRecipe


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=200, n_nonmembers=200, seed=0, labels=data.y)
    return data, split


def _pool(data, split, cache):
    from sklearn.linear_model import LogisticRegression

    recipe = SklearnRecipe(LogisticRegression(max_iter=200))
    return ReferencePool(recipe, data, split.audited, n_models=2, cache=cache)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_answer_entry_is_deleted_and_recomputed(tmp_path, digits, damage):
    data, split = digits
    cache = ModelCache(tmp_path)
    questions = [(split.audited, QuerySet.none(), None)]
    first = _pool(data, split, cache)
    first.train(answer_on=questions)
    expected = first.observe(split.audited, queries=QuerySet.none()).scaled_logit
    entry = next((tmp_path / "answers").glob("??/*.npz"))
    raw = entry.read_bytes()
    entry.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else b"not an npz" * 50)
    again = _pool(data, split, cache)
    with pytest.warns(CacheWarning, match="deleted and will be recomputed"):
        again.train(answer_on=questions)
        got = again.observe(split.audited, queries=QuerySet.none()).scaled_logit
    np.testing.assert_array_equal(got, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # rewritten whole: no second warning
        AnswerCache(tmp_path).get(entry.stem, split.audited, 1)


def test_stale_temporary_files_are_swept(tmp_path, digits):
    data, split = digits
    cache = ModelCache(tmp_path)
    pool = _pool(data, split, cache)
    folder = tmp_path / pool.model_key(0)[:2]
    folder.mkdir(parents=True)
    stale, fresh = folder / ".x.json.abc.tmp", folder / ".y.json.def.tmp"
    stale.write_text("left by a killed run")
    fresh.write_text("being written right now")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    pool.train()
    assert not stale.exists() and fresh.exists()


def test_a_full_disk_is_a_message_naming_the_folder(tmp_path, monkeypatch):
    import errno

    from miaudit import atomic

    def no_space(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(InvalidAuditInput, match=r"no space left on the device of .*report\.json"):
        atomic.atomic_write(tmp_path / "report.json", no_space)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


CHILD = textwrap.dedent(
    """
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    from sklearn.ensemble import RandomForestClassifier
    from miaudit.compute import ModelCache, ReferencePool
    from miaudit.data import load_dataset, make_split
    from miaudit.models import SklearnRecipe

    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=300, n_nonmembers=300, seed=0, labels=data.y)
    recipe = SklearnRecipe(RandomForestClassifier(n_estimators=150, n_jobs=1))
    pool = ReferencePool(recipe, data, split.audited, n_models=4, cache=ModelCache(sys.argv[1]))
    trained = []
    pool.train(progress=lambda d, t, info: trained.append(not info["from_cache"]))
    print(json.dumps({"trained": sum(trained)}))
    """
)


@pytest.mark.slow
def test_two_audits_on_one_cache_train_each_model_once(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err for _, err in outputs]
    trained = [json.loads(out.strip().splitlines()[-1])["trained"] for out, _ in outputs]
    assert sum(trained) == 4, trained  # four models, each trained by one of the two


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc (Linux)")
def test_folders_that_cannot_be_written_are_refused_before_any_work(tmp_path, capsys):
    import yaml

    from miaudit.cli import main

    audit = tmp_path / "audit.yaml"
    audit.write_text(
        yaml.safe_dump(
            {
                "dataset": "digits",
                "split": {"members": 100, "nonmembers": 100},
                "target": {"sklearn": {"estimator": "LogisticRegression"}},
                "attacks": ["loss"],
            }
        )
    )
    # Permission bits say yes for root; writing says no.
    assert main(["audit", str(audit), "--out", "/proc/miaudit_out"]) == 2
    assert "--out: nothing can be written under '/proc'" in capsys.readouterr().err
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(
        yaml.safe_dump(
            {
                "dataset": "digits",
                "recipe": {"architecture": "mlp", "training": {"epochs": 1}},
                "n_references": 2,
                "cache_dir": "/proc/miaudit_cache",
            }
        )
    )
    assert main(["experiment", str(experiment), "--out", str(tmp_path / "o")]) == 2
    assert "cache_dir: nothing can be written" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs, where the test may mount one (root on Linux)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_a_full_disk_under_the_cache_and_out_is_exit_2(tiny_disk, tmp_path, capsys):
    """A real full disk (a 64 KiB tmpfs): the model cache on it, then --out on it."""
    import yaml

    from miaudit.cli import main

    audit = tmp_path / "audit.yaml"
    config = {
        "dataset": "digits",
        "split": {"members": 200, "nonmembers": 200},
        "target": {"recipe": {"architecture": "mlp", "params": {"hidden": [256]}}},
        "attacks": ["loss"],
        "references": {"cache_dir": str(tiny_disk / "cache")},
    }
    audit.write_text(yaml.safe_dump(config))
    assert main(["audit", str(audit), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device of" in err and "Traceback" not in err
    # The cache elsewhere, the report on the full disk: the ~70 KiB report does not fit.
    config["references"]["cache_dir"] = str(tmp_path / "cache")
    audit.write_text(yaml.safe_dump(config))
    out = tiny_disk / "out"
    assert main(["audit", str(audit), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "for the report (--out)" in err
    assert "nothing was written" in err
    assert not out.exists()
    assert [p.name for p in tiny_disk.iterdir()] in ([], ["cache"])
