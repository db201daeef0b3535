"""Tests of miaudit.compute: model cache, reference pool, augmentation queries, ensembles."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _kill_helper import N_MODELS, kill_pool, kill_recipe
from sklearn.linear_model import LogisticRegression

from miaudit.compute import (
    CacheWarning,
    ModelCache,
    QuerySet,
    ReferencePool,
    cache_key,
    data_fingerprint,
    default_cache_dir,
    self_audit_size,
    train_ensemble,
)
from miaudit.data.dataset import Dataset
from miaudit.errors import AccessLevelError, InvalidAuditInput, NotFittedError
from miaudit.models import SklearnRecipe, TorchRecipe, TrainingConfig, predict_logits
from miaudit.signals.table import signals_from_logits, signals_from_proba
from miaudit.targets import LabelOnlyTarget, PrecomputedTarget, SklearnTarget, TorchTarget

HELPER = Path(__file__).with_name("_kill_helper.py")
# Relative precision of answers stored in float32 (Observations' dtype).
F32 = float(np.finfo(np.float32).eps)
FAST = TrainingConfig(epochs=2, batch_size=16, lr=0.05, device="cpu")


def _tabular(n: int = 60, features: int = 6, n_classes: int = 3, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, features), dtype=np.float32)
    y = rng.integers(0, n_classes, n).astype(np.int64)
    return Dataset(name="toy", x=x, y=y, n_classes=n_classes)


def _images(n: int = 24, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 8, 8), dtype=np.float32)
    y = rng.integers(0, 3, n).astype(np.int64)
    return Dataset(name="toy-images", x=x, y=y, n_classes=3)


def _mlp(hidden: tuple[int, ...] = (8,)) -> TorchRecipe:
    return TorchRecipe(architecture="mlp", arch_params={"hidden": hidden}, training=FAST)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _pool(data: Dataset, cache: ModelCache | None, n_models: int = 4, **kw) -> ReferencePool:
    kw.setdefault("ensemble", "off")
    return ReferencePool(
        _mlp(), data, np.arange(data.n_records), n_models=n_models, cache=cache, **kw
    )


# ------------------------------------------------------------------------------- cache


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MIAUDIT_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    assert ModelCache.default().root == tmp_path / "c"
    monkeypatch.delenv("MIAUDIT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "miaudit"


def test_keys_depend_on_every_ingredient_but_index_order():
    data = _tabular()
    fp, rfp = data_fingerprint(data), _mlp().fingerprint()
    idx = np.array([5, 1, 3])
    base = cache_key(rfp, fp, idx, 0)
    assert cache_key(rfp, fp, idx[::-1], 0) == base
    assert cache_key(rfp, fp, np.array([5, 1, 4]), 0) != base
    assert cache_key(rfp, fp, idx, 1) != base
    assert cache_key(_mlp((9,)).fingerprint(), fp, idx, 0) != base
    other = Dataset(name="renamed", x=data.x.copy(), y=data.y.copy(), n_classes=3)
    assert data_fingerprint(other) == fp  # names do not matter, contents do
    x = data.x.copy()
    x[0, 0] += 1
    assert data_fingerprint(Dataset(name="t", x=x, y=data.y, n_classes=3)) != fp


def test_torch_round_trip(tmp_path):
    data, recipe = _tabular(), _mlp()
    trained = recipe.train(data, np.arange(30), seed=1, eval_indices=np.arange(30, 60))
    cache = ModelCache(tmp_path)
    key = cache_key(recipe.fingerprint(), data_fingerprint(data), np.arange(30), 1)
    assert cache.get(key) is None and key not in cache
    cache.put(key, trained, recipe, data)
    assert key in cache and cache.keys() == [key]
    got = cache.get(key)
    assert got is not None
    assert _same_weights(got.trained.model, trained.model)
    for field in ("train_accuracy", "test_accuracy", "seconds", "seed", "n_train"):
        assert getattr(got.trained, field) == getattr(trained, field)
    assert not got.trained.model.training


def test_sklearn_round_trip(tmp_path):
    data = _tabular()
    recipe = SklearnRecipe(LogisticRegression(max_iter=200))
    trained = recipe.train(data, np.arange(40), seed=0)
    cache = ModelCache(tmp_path)
    key = cache_key(recipe.fingerprint(), data_fingerprint(data), np.arange(40), 0)
    cache.put(key, trained, recipe, data)
    got = cache.get(key)
    assert got is not None and got.path.suffix == ".skops"
    np.testing.assert_array_equal(
        got.trained.model.predict_proba(data.x), trained.model.predict_proba(data.x)
    )


class Payload:
    """A type no recipe trusts: stands for code an attacker wants loaded."""

    def __init__(self) -> None:
        self.armed = True


def _sklearn_entry(tmp_path):
    data = _tabular()
    recipe = SklearnRecipe(LogisticRegression(max_iter=200))
    cache = ModelCache(tmp_path)
    pool = ReferencePool(recipe, data, np.arange(60), n_models=1, cache=cache)
    pool.train()
    key = pool.model_key(0)
    return data, recipe, cache, key, cache.metadata_path(key)


def _rewrite(meta_path: Path, **changes) -> None:
    meta = json.loads(meta_path.read_text())
    meta.update(changes)
    meta_path.write_text(json.dumps(meta))


def test_sklearn_recipe_trusts_its_estimators_and_fitted_state_only():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from miaudit.models.recipes import FITTED_STATE_TYPES

    recipe = SklearnRecipe(make_pipeline(StandardScaler(), LogisticRegression()))
    trusted = recipe.trusted_types()
    for name in ("sklearn.pipeline.Pipeline", "sklearn.linear_model._logistic.LogisticRegression"):
        assert name in trusted
    assert "sklearn.preprocessing._data.StandardScaler" in trusted
    assert FITTED_STATE_TYPES <= trusted
    assert not any(t.startswith(("builtins", "os", "subprocess", "tests")) for t in trusted)


@pytest.mark.parametrize("tamper", ["types-in-metadata", "kind", "model-file", "figures"])
def test_tampered_sklearn_cache_entry_is_refused_and_retrained(tmp_path, train_calls, tamper):
    import skops.io as sio

    data, recipe, cache, key, meta_path = _sklearn_entry(tmp_path)
    model_path = meta_path.with_suffix(".skops")
    if tamper == "types-in-metadata":
        # The attack: a model holding a type skops does not trust, its checksum
        # and the metadata's type lists rewritten to match. The recipe decides, not the
        # cache, so it is refused although the metadata vouches for it.
        evil = LogisticRegression(max_iter=200).fit(data.x, data.y)
        evil.payload = Payload()
        sio.dump(evil, model_path)
        listed = sio.get_untrusted_types(file=model_path)
        assert any("Payload" in t for t in listed)
        _rewrite(
            meta_path,
            sha256=hashlib.sha256(model_path.read_bytes()).hexdigest(),
            trusted_types=listed,
            untrusted_types=listed,
        )
        match = "does not trust"
    elif tamper == "kind":
        _rewrite(meta_path, kind="pickle")
        match = "unknown model kind"
    elif tamper == "model-file":
        _rewrite(meta_path, model_file="../../elsewhere.skops")
        match = "unexpected model file"
    else:
        _rewrite(meta_path, train_accuracy="high")
        match = "could not convert"
    with pytest.warns(CacheWarning, match=match):
        assert cache.get(key, trusted_types=recipe.trusted_types()) is None
    with pytest.warns(CacheWarning):
        again = ReferencePool(recipe, data, np.arange(60), n_models=1, cache=cache)
        again.train()
    assert not again.model_info(0)["from_cache"]
    assert len(train_calls) == 2  # retrained once, and the entry overwritten
    assert not hasattr(again.models_[0].model, "payload")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(key, trusted_types=recipe.trusted_types()) is not None


def test_cache_get_refuses_a_string_as_trusted_types(tmp_path):
    with pytest.raises(InvalidAuditInput, match="collection of type names"):
        ModelCache(tmp_path).get("0" * 64, trusted_types="sklearn.tree._tree.Tree")


def test_sklearn_pool_is_cached_and_observed(tmp_path):
    data = _tabular()
    recipe = SklearnRecipe(LogisticRegression(max_iter=200))
    pool = ReferencePool(recipe, data, np.arange(60), n_models=2, cache=ModelCache(tmp_path))
    models = pool.train()
    again = ReferencePool(recipe, data, np.arange(60), n_models=2, cache=ModelCache(tmp_path))
    again.train()
    assert again.model_info(0)["from_cache"] and again.model_info(1)["from_cache"]
    obs = again.observe(np.arange(10), queries=QuerySet.none())
    sig = signals_from_proba(models[0].model.predict_proba(data.x[:10]), data.y[:10])
    np.testing.assert_allclose(obs.scaled_logit[0, :, 0], sig.scaled_logit, rtol=F32)


def test_pool_rerun_loads_instead_of_training(tmp_path, train_calls):
    data = _tabular()
    first = _pool(data, ModelCache(tmp_path)).train()
    assert len(train_calls) == 4
    seen = []
    again = _pool(data, ModelCache(tmp_path)).train(progress=lambda d, t, i: seen.append(i))
    assert len(train_calls) == 4  # nothing retrained
    assert all(i["from_cache"] for i in seen) and [i["model"] for i in seen] == [0, 1, 2, 3]
    for a, b in zip(first, again, strict=True):
        assert _same_weights(a.model, b.model) and a.test_accuracy == b.test_accuracy


def test_growing_the_pool_reuses_the_first_models(tmp_path, train_calls):
    data = _tabular(n=61)
    small = _pool(data, ModelCache(tmp_path), n_models=2)
    small.train()
    big = _pool(data, ModelCache(tmp_path), n_models=4)
    big.train()
    assert len(train_calls) == 4  # 2 + the 2 new ones
    np.testing.assert_array_equal(big.inclusion[:2], small.inclusion)
    for k in range(2):
        assert big.model_key(k) == small.model_key(k)
        assert big.model_seed(k) == small.model_seed(k)
        assert _same_weights(big.models_[k].model, small.models_[k].model)
    # Odd sizes too: 3 models are the first 3 of 4.
    np.testing.assert_array_equal(_pool(data, None, n_models=3).inclusion, big.inclusion[:3])


def test_cached_model_equals_a_fresh_training(tmp_path):
    data = _tabular()
    pool = _pool(data, ModelCache(tmp_path), n_models=1)
    pool.train()
    loaded = _pool(data, ModelCache(tmp_path), n_models=1).train()[0]
    fresh = _mlp().train(data, pool.training_indices(0), seed=pool.model_seed(0))
    assert _same_weights(loaded.model, fresh.model)


@pytest.mark.parametrize("damage", ["metadata", "model", "checksum", "missing-model"])
def test_corrupt_entry_warns_and_is_retrained(tmp_path, train_calls, damage):
    data = _tabular()
    cache = ModelCache(tmp_path)
    pool = _pool(data, cache, n_models=2)
    pool.train()
    key = pool.model_key(1)
    meta_path = cache.metadata_path(key)
    model_path = meta_path.with_suffix(".pt")
    if damage == "metadata":
        meta_path.write_text('{"format": "miaudit.cache_en')  # cut short
    elif damage == "model":
        model_path.write_bytes(model_path.read_bytes()[:100])
    elif damage == "checksum":
        meta = json.loads(meta_path.read_text())
        meta["sha256"] = "0" * 64
        meta_path.write_text(json.dumps(meta))
    else:
        model_path.unlink()
    with pytest.warns(CacheWarning, match="retrained"):
        assert cache.get(key) is None
    with pytest.warns(CacheWarning):
        _pool(data, cache, n_models=2).train()
    assert len(train_calls) == 3  # model 1 once more
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get(key) is not None  # overwritten with a good entry


def test_orphan_and_temporary_files_are_not_entries(tmp_path, train_calls):
    data = _tabular()
    cache = ModelCache(tmp_path)
    pool = _pool(data, cache, n_models=1)
    key = pool.model_key(0)
    folder = cache.metadata_path(key).parent
    folder.mkdir(parents=True)
    # What a kill between the model write and the metadata write leaves behind.
    (folder / f"{key}.pt").write_bytes(b"half a model")
    (folder / f".{key}.json.x1y2.tmp").write_text("{")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not corrupt entries: no entries at all
        assert cache.get(key) is None
        pool.train()
    assert len(train_calls) == 1 and cache.get(key) is not None


def test_killed_run_loses_no_finished_model(tmp_path, train_calls):
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(cache_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Kill after the 2nd model is finished, best of all right after the 3rd model file
        # is written but before its metadata (the window a crash is most likely to hit).
        deadline = time.monotonic() + 120
        while True:
            n_meta = len(list(cache_dir.glob("??/*.json")))
            n_model = len(list(cache_dir.glob("??/*.pt")))
            if n_meta >= 3 or (n_meta == 2 and n_model > n_meta):
                break
            if proc.poll() is not None:
                pytest.fail(f"helper ended early: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("helper wrote no 2 models in 120 s")
            time.sleep(0.0005)
        proc.kill()  # SIGKILL: no cleanup of any kind
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    finished = ModelCache(cache_dir).keys()
    assert 2 <= len(finished) < N_MODELS

    pool = kill_pool(cache_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # a partial write is never "corrupt"
        models = pool.train()
    assert len(train_calls) == N_MODELS - len(finished)  # finished ones loaded, not retrained
    keys = [pool.model_key(k) for k in range(N_MODELS)]
    assert set(finished) <= set(keys)
    assert {
        pool.model_info(k)["key"] for k in range(N_MODELS) if pool.model_info(k)["from_cache"]
    } == set(finished)
    # Every model, loaded or retrained, is the model its (recipe, indices, seed) gives.
    # The helper trained with one thread; float sums depend on the thread count, so the
    # comparison model is trained with one thread too (bit equality is then expected).
    k = keys.index(finished[0])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fresh = kill_recipe().train(pool.dataset, pool.training_indices(k), seed=pool.model_seed(k))
    finally:
        torch.set_num_threads(threads)
    assert _same_weights(models[k].model, fresh.model)
    assert len(ModelCache(cache_dir).keys()) == N_MODELS


# ------------------------------------------------------------------------- inclusion


@pytest.mark.parametrize("n_models", [1, 2, 5, 6])
def test_inclusion_is_balanced_and_matches_training_sets(n_models):
    data = _tabular(n=41)
    candidates = np.random.default_rng(1).permutation(41)[:33]
    pool = ReferencePool(_mlp(), data, candidates, n_models=n_models, seed=4)
    inc = pool.inclusion
    assert inc.shape == (n_models, 33) and inc.dtype == bool
    per_record = inc.sum(axis=0)
    if n_models % 2 == 0:
        assert (per_record == n_models // 2).all()
    else:
        assert set(per_record) <= {n_models // 2, n_models // 2 + 1}
    for k in range(n_models):
        np.testing.assert_array_equal(pool.training_indices(k), np.sort(candidates[inc[k]]))
        assert inc[k].sum() in (16, 17)
        held_out = pool.eval_indices(k)
        assert not np.isin(held_out, pool.training_indices(k)).any()
        assert np.isin(held_out, candidates).all()
    for j in range(0, n_models - 1, 2):
        np.testing.assert_array_equal(inc[j + 1], ~inc[j])  # pairs of complements


def test_inclusion_is_a_function_of_seed_and_candidate_set():
    data = _tabular(n=50)
    cand = np.arange(10, 50)
    a = ReferencePool(_mlp(), data, cand, n_models=4, seed=0)
    shuffled = np.random.default_rng(0).permutation(cand)
    b = ReferencePool(_mlp(), data, shuffled, n_models=4, seed=0)
    for k in range(4):  # order of the candidates does not matter
        np.testing.assert_array_equal(a.training_indices(k), b.training_indices(k))
        assert a.model_key(k) == b.model_key(k)
    order = np.argsort(shuffled)
    np.testing.assert_array_equal(b.inclusion[:, order], a.inclusion)
    c = ReferencePool(_mlp(), data, cand, n_models=4, seed=1)
    assert not np.array_equal(a.inclusion, c.inclusion)
    assert a.model_seed(0) != c.model_seed(0) and a.model_seed(0) != a.model_seed(1)


def test_other_train_fraction_draws_independent_subsets():
    data = _tabular(n=50)
    pool = ReferencePool(_mlp(), data, np.arange(50), n_models=3, train_fraction=0.2)
    assert (pool.inclusion.sum(axis=1) == 10).all()
    assert pool.partner(0) is None and pool.references_for(0).tolist() == [1, 2]


def test_bad_arguments_are_listed_together():
    data = _tabular()
    with pytest.raises(InvalidAuditInput) as err:
        ReferencePool(_mlp(), data, np.arange(10), n_models=0, seed=-1, ensemble="yes")
    assert all(s in str(err.value) for s in ("n_models", "seed", "ensemble"))
    with pytest.raises(InvalidAuditInput, match="appear more than once"):
        ReferencePool(_mlp(), data, np.array([1, 1, 2]), n_models=2)
    conv = TorchRecipe(architecture="resnet18", training=FAST)
    with pytest.raises(InvalidAuditInput, match="not one of"):
        ReferencePool(conv, _images(), np.arange(10), n_models=2, ensemble="on")
    with pytest.raises(NotFittedError):
        ReferencePool(_mlp(), data, np.arange(10), n_models=2).observe(
            np.arange(3), queries=QuerySet.none()
        )


# ---------------------------------------------------------------------------- observe


def test_observe_equals_signals_of_plain_predictions():
    data = _tabular(n=60)
    pool = ReferencePool(_mlp(), data, np.arange(40), n_models=3, ensemble="off")
    models = pool.train()
    records = np.array([0, 5, 39, 40, 59])  # 40 and 59 are not candidates
    obs = pool.observe(records, queries=QuerySet.none())
    assert obs.scaled_logit.shape == (3, 5, 1) and obs.log_confidence.shape == (3, 5, 1)
    assert obs.scaled_logit.dtype == obs.log_confidence.dtype == np.float32
    np.testing.assert_array_equal(obs.record_ids, records)
    for k, trained in enumerate(models):
        sig = signals_from_logits(predict_logits(trained.model, data.x[records]), data.y[records])
        # Computed in float64, stored rounded to float32: equal to float32's precision.
        np.testing.assert_array_equal(obs.scaled_logit[k, :, 0], sig.scaled_logit.astype("f4"))
        np.testing.assert_array_equal(obs.log_confidence[k, :, 0], (-sig.loss).astype("f4"))
        in_train = np.isin(records, pool.training_indices(k))
        np.testing.assert_array_equal(obs.inclusion[k], in_train)
    assert not obs.inclusion[:, 3:].any()


def test_observe_target_kinds():
    data = _tabular(n=60)
    pool = ReferencePool(_mlp(), data, np.arange(60), n_models=2, ensemble="off")
    pool.train()
    model = _mlp().train(data, np.arange(30), seed=9).model
    records = np.arange(10, 20)
    q = QuerySet.none()
    direct = pool.observe_target(model, records, queries=q)
    assert direct.n_models == 1 and direct.inclusion is None
    via_adapter = pool.observe_target(TorchTarget(model, n_classes=3), records, queries=q)
    np.testing.assert_array_equal(direct.scaled_logit, via_adapter.scaled_logit)
    # Probability access: phi computed from probabilities, as signals_from_proba does.
    clf = LogisticRegression(max_iter=200).fit(data.x, data.y)
    probs = pool.observe_target(SklearnTarget(clf, n_classes=3), records, queries=q)
    sig = signals_from_proba(clf.predict_proba(data.x[records]), data.y[records])
    np.testing.assert_allclose(probs.scaled_logit[0, :, 0], sig.scaled_logit, rtol=F32)
    raw = pool.observe_target(clf, records, queries=q)
    np.testing.assert_array_equal(raw.scaled_logit, probs.scaled_logit)
    # Precomputed logits are queried by record id.
    logits = predict_logits(model, data.x)
    pre = pool.observe_target(PrecomputedTarget(logits, output="logits"), records, queries=q)
    np.testing.assert_allclose(pre.scaled_logit, direct.scaled_logit, atol=1e-12)
    with pytest.raises(AccessLevelError):
        pool.observe_target(LabelOnlyTarget(TorchTarget(model, n_classes=3)), records, queries=q)


def test_flip_query_really_flips_and_shift_really_shifts():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    views = QuerySet.flips().apply(x)
    assert views.shape == (2, 2, 3, 5, 5)
    assert torch.equal(views[0], x) and torch.equal(views[1], x.flip(-1))
    qs = QuerySet.flips_and_shifts(pad=1)
    assert len(qs) == 18 and qs.queries[0].is_identity and qs.queries[1].flip
    out = qs.apply(x)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    padded_flip = F.pad(x.flip(-1), (1, 1, 1, 1), mode="reflect")
    for i, q in enumerate(qs.queries):
        source = padded_flip if q.flip else padded
        expect = source[:, :, 1 + q.dy : 1 + q.dy + 5, 1 + q.dx : 1 + q.dx + 5]
        assert torch.equal(out[i], expect), q
    # A shift by (+1, 0): the view's row i is the image's row i + 1 (inside the image).
    i = qs.queries.index(next(q for q in qs.queries if (q.flip, q.dy, q.dx) == (False, 1, 0)))
    assert torch.equal(out[i][:, :, :4], x[:, :, 1:])
    assert len(QuerySet.flips_and_shifts(pad=2)) == 50


def test_observe_with_flips_answers_on_flipped_images():
    data = _images()
    recipe = TorchRecipe(architecture="small_cnn", arch_params={"widths": (4, 8)}, training=FAST)
    pool = ReferencePool(recipe, data, np.arange(24), n_models=2)
    models = pool.train()
    records = np.array([1, 3, 4, 20])
    obs = pool.observe(records, queries=QuerySet.flips())
    assert obs.scaled_logit.shape == (2, 4, 2)
    flipped = np.ascontiguousarray(data.x[records][..., ::-1])
    sig = signals_from_logits(predict_logits(models[1].model, flipped), data.y[records])
    # Answers are stored in float32 (OBSERVATION_DTYPE): equal to its rounding.
    np.testing.assert_allclose(obs.scaled_logit[1, :, 1], sig.scaled_logit, rtol=1e-6, atol=1e-6)
    many = pool.observe(records, queries=QuerySet.flips_and_shifts())
    # The same views in another batch: equal to a float32 rounding step.
    np.testing.assert_allclose(many.scaled_logit[:, :, :2], obs.scaled_logit, rtol=1e-6, atol=1e-6)


def test_tabular_records_get_the_identity_with_a_warning():
    data = _tabular()
    pool = ReferencePool(_mlp(), data, np.arange(60), n_models=2)
    pool.train()
    with pytest.warns(UserWarning, match="images only"):
        obs = pool.observe(np.arange(5), queries=QuerySet.flips())
    assert obs.n_queries == 1


# ------------------------------------------------------------------------- self-audit


def test_leave_one_out_drops_the_target_and_its_partner():
    data = _tabular(n=40)
    n_models = self_audit_size(4)
    assert n_models == 6 and self_audit_size(4, n_targets=9) == 9
    pool = ReferencePool(_mlp(), data, np.arange(40), n_models=n_models)
    pool.train()
    obs = pool.observe(np.arange(40), queries=QuerySet.none())
    split = pool.leave_one_out(2, obs)
    assert split.reference_indices.tolist() == [0, 1, 4, 5]
    np.testing.assert_array_equal(split.is_member, pool.inclusion[2])
    assert split.target.n_models == 1 and split.target.inclusion is None
    np.testing.assert_array_equal(split.target.scaled_logit[0], obs.scaled_logit[2])
    assert split.references.n_models == 4
    # Every record is IN for exactly half of the references, member of the target or not.
    assert (split.references.inclusion.sum(axis=0) == 2).all()
    assert split.target_model is pool.models_[2]
    odd = ReferencePool(_mlp(), data, np.arange(40), n_models=5)
    assert odd.references_for(4).tolist() == [0, 1, 2, 3]  # the unpaired model
    assert odd.references_for(1).tolist() == [2, 3, 4]


# --------------------------------------------------------------------------- ensemble


def test_ensemble_trains_the_same_models_as_one_by_one(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((80, 20)) < 0.3).astype(np.float32)
    data = Dataset(name="loc", x=x, y=rng.integers(0, 4, 80).astype(np.int64), n_classes=4)
    recipe = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (16,), "activation": "tanh"},
        training=TrainingConfig(epochs=3, batch_size=16, device="cpu", schedule="onecycle"),
    )
    sets = [np.sort(rng.permutation(80)[:40]) for _ in range(3)]
    seeds = [5, 6, 7]
    batched = train_ensemble(recipe, data, sets, seeds, eval_index_sets=[np.arange(5)] * 3)
    for trained, idx, seed in zip(batched, sets, seeds, strict=True):
        alone = recipe.train(data, idx, seed=seed, eval_indices=np.arange(5))
        for a, b in zip(trained.model.parameters(), alone.model.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        assert trained.train_accuracy == pytest.approx(alone.train_accuracy, abs=1 / 40)
        assert trained.seed == seed and trained.n_train == 40
    # The pool uses it for eligible recipes, and caches the members under the usual keys.
    pool = ReferencePool(recipe, data, np.arange(80), n_models=4, cache=ModelCache(tmp_path))
    models = pool.train()
    assert len(models) == 4 and len(ModelCache(tmp_path).keys()) == 4
    with pytest.raises(InvalidAuditInput, match="equal training-set sizes"):
        train_ensemble(recipe, data, [np.arange(10), np.arange(11)], [0, 1])


def test_lenet_ensemble_trains_the_same_models_and_auto_keeps_cpu_sequential(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((48, 3, 32, 32), dtype=np.float32)
    data = Dataset(name="img", x=x, y=rng.integers(0, 3, 48).astype(np.int64), n_classes=3)
    recipe = TorchRecipe(
        architecture="lenet5",
        training=TrainingConfig(epochs=2, batch_size=8, device="cpu", lr=0.02, momentum=0.9),
    )
    sets = [np.sort(rng.permutation(48)[:24]) for _ in range(2)]
    batched = train_ensemble(recipe, data, sets, [3, 4])
    for trained, idx, seed in zip(batched, sets, [3, 4], strict=True):
        alone = recipe.train(data, idx, seed=seed)
        for a, b in zip(trained.model.parameters(), alone.model.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    from miaudit.compute.ensemble import ensemble_pays

    assert not ensemble_pays(recipe)  # measured slower on a CPU: auto trains one by one
    pool = ReferencePool(recipe, data, np.arange(48), n_models=2, ensemble="on")
    assert pool._use_ensemble()
    assert not ReferencePool(recipe, data, np.arange(48), n_models=2)._use_ensemble()
    resnet = TorchRecipe(architecture="resnet18", training=recipe.training)
    with pytest.raises(InvalidAuditInput, match="not one of"):
        ReferencePool(resnet, data, np.arange(48), n_models=2, ensemble="on")


def test_small_cnn_ensemble_keeps_each_members_batchnorm_statistics():
    """BatchNorm's running statistics are per member: each ensemble member ends with the
    weights and the running mean / variance / batch count of its sequential twin, and so
    answers like it in eval mode."""
    rng = np.random.default_rng(2)
    x = rng.random((40, 3, 16, 16), dtype=np.float32)
    data = Dataset(name="img", x=x, y=rng.integers(0, 3, 40).astype(np.int64), n_classes=3)
    recipe = TorchRecipe(
        architecture="small_cnn",
        arch_params={"widths": (8, 16)},
        training=TrainingConfig(epochs=2, batch_size=8, device="cpu", lr=0.02),
    )
    sets = [np.sort(rng.permutation(40)[:20]) for _ in range(3)]
    batched = train_ensemble(recipe, data, sets, [1, 2, 3])
    probe = torch.from_numpy(x[:10])
    for trained, idx, seed in zip(batched, sets, [1, 2, 3], strict=True):
        alone = recipe.train(data, idx, seed=seed)
        mine, theirs = dict(trained.model.named_buffers()), dict(alone.model.named_buffers())
        assert mine.keys() == theirs.keys() and any("running_var" in k for k in mine)
        for name, value in theirs.items():
            torch.testing.assert_close(mine[name], value, atol=1e-5, rtol=1e-4)
        for a, b in zip(trained.model.parameters(), alone.model.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        with torch.no_grad():
            torch.testing.assert_close(
                trained.model.eval()(probe), alone.model.eval()(probe), atol=1e-4, rtol=1e-4
            )
    # Members differ from each other (their statistics were not shared).
    first, second = (dict(m.model.named_buffers()) for m in batched[:2])
    assert not torch.equal(first["1.running_mean"], second["1.running_mean"])


def test_bfloat16_ensemble_trains_like_bfloat16_one_by_one():
    """Under mixed precision the ensemble's members follow their sequential twins too, to
    bfloat16's rounding (weights within 5e-3 after 5 epochs; measured 7e-4)."""
    from synthetic import synthetic_dataset

    data = synthetic_dataset(n_samples=200)
    recipe = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (32,)},
        training=TrainingConfig(
            epochs=5, batch_size=16, lr=0.05, device="cpu", precision="bfloat16"
        ),
    )
    sets, seeds = [np.arange(48), np.arange(48, 96)], [1, 2]
    batched = train_ensemble(recipe, data, sets, seeds)
    for trained, idx, seed in zip(batched, sets, seeds, strict=True):
        alone = recipe.train(data, idx, seed=seed)
        for a, b in zip(trained.model.parameters(), alone.model.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=5e-3, rtol=0)
        assert trained.train_accuracy == pytest.approx(alone.train_accuracy, abs=1 / 24)
