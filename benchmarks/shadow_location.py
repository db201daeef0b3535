"""Shokri et al. (S&P 2017) on Location: classifier attacks and shadow-model attacks trained
on real, noisy and synthetic attacker data.

Setting (their §VI on Location): a 446-128-30 tanh MLP target trained to overfit on 1,200
records; 1,200 other records are its audited non-members; the attacker owns the remaining
2,610 records (never audited). Rows:

* ``clf-*``: MindArmour's classifier attacks (features loss + logits of the target, with
  logits access) cross-fitted on the audited records, 2 folds: an attacker that knows the
  membership of half of the audited records. Not Shokri's threat model; a reference.
* ``shadow-*``: 10 shadow models trained like the target, 1,200 records each (and 1,200
  held out), drawn from the attacker's data: (a) real, (b) with 10% / 20% of the binary
  features flipped, (c) synthesised by hill climbing on the target's answers (Algorithm 1),
  as many records as the attacker owns, spread evenly over the 30 classes. Per-class
  attack models (random forest, or the torch MLP), plus one pooled row.

Precision and recall at threshold 0.5 (Shokri's), AUC and TPR at 1% FPR
(miaudit.evaluation.evaluate_attack), over all 2,400 audited records; mean ± std over
``--repeats`` splits/targets. The CIFAR-10 part of the issue is not run here.

    python benchmarks/shadow_location.py --quick    # 3 shadows, 1 repeat: ~1 min
    python benchmarks/shadow_location.py            # 10 shadows, 3 repeats

Shadow models go to a fresh temporary cache unless --cache-dir is given.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch

import miaudit
from miaudit.attacks.classifier import ClassifierAttack, attack_features
from miaudit.attacks.shadow import ShadowCoverageWarning, ShadowModelAttack, per_class_metrics
from miaudit.compute.cache import ModelCache
from miaudit.data import load_dataset, make_split
from miaudit.data.synthesis import synthesize_model_based, synthesize_noisy
from miaudit.evaluation import evaluate_attack
from miaudit.models import TorchRecipe, TrainingConfig
from miaudit.targets import TorchTarget

RECIPE = TorchRecipe(
    architecture="mlp",
    arch_params={"hidden": (128,), "activation": "tanh"},
    # Plain SGD, 100 epochs on 1,200 records: train accuracy 1.0, test about 0.65.
    training=TrainingConfig(
        epochs=100,
        batch_size=128,
        optimizer="sgd",
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
        schedule="constant",
        device="cpu",
    ),
)

# Small MindArmour-style search spaces for the classifier attacks (3-fold CV inside).
CLASSIFIER_GRIDS = {
    "lr": {"C": [0.1, 1.0, 10.0], "max_iter": [1000]},
    "rf": {"n_estimators": [100], "max_depth": [4, 8, None], "min_samples_leaf": [5]},
    "mlp": {"hidden_layer_sizes": [(64,)], "max_iter": [2000]},
}

# Model-based synthesis (Algorithm 1). Random binary records start half full, far from
# Location's ~12% density; a moderate conf_min with k_max = 10% of the features keeps the
# queries per record in the hundreds.
SYNTHESIS = {"k_max": 44, "k_min": 1, "conf_min": 0.2, "rej_max": 10, "iter_max": 500}


def row_metrics(name, scores, is_member, labels, seconds):
    ev = evaluate_attack(name, "shadow", scores, is_member, seconds=seconds)
    pc = per_class_metrics(scores, is_member, labels, 0.5)
    valid = pc.precision[pc.precision >= 0]
    return {
        "precision": pc.overall_precision,
        "recall": pc.overall_recall,
        "class_precision": float(valid.mean()) if valid.size else float("nan"),
        "auc": ev.auc,
        "tpr1": ev.tpr_at_fpr[0.01].tpr,
        "seconds": seconds,
    }


def run_once(seed: int, args, cache: ModelCache, log) -> tuple[dict, dict]:
    data = load_dataset("location")
    split = make_split(data.n_records, n_members=1200, n_nonmembers=1200, seed=seed, labels=data.y)
    audited, is_member, pool = split.audited, split.is_member, split.population
    x_aud, y_aud = data.x[audited], data.y[audited]
    facts: dict = {"pool": pool.size}

    t0 = time.perf_counter()
    trained = RECIPE.train(data, split.members, seed=seed, eval_indices=split.nonmembers)
    facts["target_seconds"] = time.perf_counter() - t0
    facts["train_acc"], facts["test_acc"] = trained.train_accuracy, trained.test_accuracy
    black_box = TorchTarget(trained.model, n_classes=30, access="probabilities")
    with_logits = TorchTarget(trained.model, n_classes=30, access="logits")
    log(
        f"[seed {seed}] target: train acc {trained.train_accuracy:.3f}, test acc "
        f"{trained.test_accuracy:.3f} ({facts['target_seconds']:.1f} s)"
    )
    rows: dict[str, dict] = {}

    # -- MindArmour's classifier attacks, cross-fitted on the audited records
    features = attack_features(with_logits, x_aud, y_aud)
    for method in ("lr", "rf", "mlp"):
        t0 = time.perf_counter()
        attack = ClassifierAttack(method=method, params=CLASSIFIER_GRIDS[method], seed=seed)
        scores = attack.cross_fit_scores(features, is_member, n_folds=2)
        rows[f"clf-{method} (x-fit)"] = row_metrics(
            method, scores, is_member, y_aud, time.perf_counter() - t0
        )
        log(f"[seed {seed}] clf-{method}: {time.perf_counter() - t0:.1f} s")

    # -- the attacker's data sets
    datasets = {"real": (data, pool, 0.0)}
    for fraction in args.noise:
        t0 = time.perf_counter()
        noisy = synthesize_noisy(data.x[pool], fraction, labels=data.y[pool], seed=seed)
        name = f"noisy {fraction:.0%}"
        datasets[name] = (
            noisy.as_dataset(30, name),
            np.arange(pool.size),
            time.perf_counter() - t0,
        )
    if args.synthetic:
        t0 = time.perf_counter()
        per_class = args.synthetic_per_class or int(np.ceil(pool.size / 30))
        synthetic = synthesize_model_based(
            black_box, 446, list(range(30)), per_class, seed=seed, batch_size=1024, **SYNTHESIS
        )
        seconds = time.perf_counter() - t0
        rep = synthetic.report
        facts["synthesis"] = {
            "records": rep.n_records,
            "queries": rep.n_queries,
            "calls": rep.n_query_calls,
            "gave_up": sum(rep.chains_gave_up.values()),
            "started": sum(rep.chains_started.values()),
            "seconds": seconds,
            "density": float(synthetic.x.mean()),
        }
        log(
            f"[seed {seed}] synthesis: {rep.n_records} records, {rep.n_queries} queries in "
            f"{rep.n_query_calls} calls, {facts['synthesis']['gave_up']} of "
            f"{facts['synthesis']['started']} chains gave up, {seconds:.1f} s"
        )
        synth_set = synthetic.as_dataset(30, "synthetic")
        datasets["synthetic"] = (synth_set, np.arange(synth_set.n_records), seconds)

    # -- shadow attacks
    configs = [("real", "rf", True)]
    if not args.quick:
        configs += [("real", "torch_mlp", True), ("real", "rf", False)]
    configs += [(name, "rf", True) for name in datasets if name != "real"]
    for source, model, per_class in configs:
        dataset, indices, prep_seconds = datasets[source]
        size = min(1200, indices.size // 2)
        attack = ShadowModelAttack(
            n_shadow=args.n_shadow,
            shadow_size=size,
            attack_model=model,
            per_class=per_class,
            seed=seed,
        )
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ShadowCoverageWarning)
            attack.fit(dataset, indices, recipe=RECIPE, cache=cache)
        fit_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = attack.score_target(black_box, x_aud, y_aud)
        score_seconds = time.perf_counter() - t0
        name = f"shadow-{model}{'' if per_class else ' pooled'} {source}"
        row = row_metrics(
            name, scores, is_member, y_aud, prep_seconds + fit_seconds + score_seconds
        )
        row.update(
            shadow_train=attack.shadow_train_accuracy_,
            shadow_test=attack.shadow_test_accuracy_,
            no_model=len(attack.classes_without_model_),
            fit_seconds=fit_seconds,
            cached=attack.n_cached_,
        )
        rows[name] = row
        log(
            f"[seed {seed}] {name}: fit {fit_seconds:.1f} s ({attack.n_cached_} shadows "
            f"cached), score {score_seconds:.2f} s, shadows train/test acc "
            f"{attack.shadow_train_accuracy_:.3f}/{attack.shadow_test_accuracy_:.3f}"
            + (f", {len(caught)} coverage warnings" if caught else "")
        )
    return facts, rows


def fmt(values, digits=3):
    values = np.asarray(values, dtype=np.float64)
    if values.size == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f}±{values.std(ddof=1):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 shadows, 1 repeat, fewer rows")
    parser.add_argument("--repeats", type=int, default=None, help="splits/targets (default 3)")
    parser.add_argument("--n-shadow", type=int, default=None, help="default 10 (quick: 3)")
    parser.add_argument("--no-synthetic", dest="synthetic", action="store_false")
    parser.add_argument("--synthetic-per-class", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--verbose", action="store_true", help="log every step")
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.n_shadow = args.n_shadow or (3 if args.quick else 10)
    args.noise = (0.1,) if args.quick else (0.1, 0.2)
    if args.quick and args.synthetic_per_class is None:
        args.synthetic_per_class = 40

    def log(message: str) -> None:
        if args.verbose:
            print("  " + message, flush=True)

    print(
        f"miaudit {miaudit.__version__}, torch {torch.__version__}, numpy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, python {platform.python_version()}, "
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    )
    print(
        f"Location, target {RECIPE.architecture} {RECIPE.arch_params} "
        f"{RECIPE.training.to_dict()}; {args.n_shadow} shadows; {args.repeats} repeats"
    )
    started = time.perf_counter()
    all_rows: dict[str, list[dict]] = {}
    all_facts = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = ModelCache(args.cache_dir or Path(tmp))
        for rep in range(args.repeats):
            facts, rows = run_once(rep, args, cache, log)
            all_facts.append(facts)
            for name, row in rows.items():
                all_rows.setdefault(name, []).append(row)
            print(
                f"  repeat {rep + 1}/{args.repeats} done at {time.perf_counter() - started:.0f} s"
            )

    train = [f["train_acc"] for f in all_facts]
    test = [f["test_acc"] for f in all_facts]
    print(
        f"\ntarget: train acc {fmt(train)}, test acc {fmt(test)}, "
        f"{fmt([f['target_seconds'] for f in all_facts], 1)} s to train; attacker pool "
        f"{all_facts[0]['pool']} records"
    )
    if "synthesis" in all_facts[0]:
        syn = [f["synthesis"] for f in all_facts]
        print(
            f"synthesis: {syn[0]['records']} records ({syn[0]['records'] // 30} per class), "
            f"{fmt([s['queries'] for s in syn], 0)} queries in "
            f"{fmt([s['calls'] for s in syn], 0)} calls, "
            f"{fmt([s['gave_up'] for s in syn], 0)} of {fmt([s['started'] for s in syn], 0)} "
            f"chains gave up, density {fmt([s['density'] for s in syn])} (real data 0.120), "
            f"{fmt([s['seconds'] for s in syn], 1)} s; settings {SYNTHESIS}"
        )
    header = (
        f"{'attack':<28} {'precision':>12} {'recall':>12} {'class prec':>12} {'auc':>12} "
        f"{'tpr@1%fpr':>12} {'shadow acc tr/te':>17} {'seconds':>8}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for name, rows in all_rows.items():
        shadow = "-"
        if "shadow_train" in rows[0]:
            shadow = (
                f"{np.mean([r['shadow_train'] for r in rows]):.3f}/"
                f"{np.mean([r['shadow_test'] for r in rows]):.3f}"
            )
        print(
            f"{name:<28} {fmt([r['precision'] for r in rows]):>12} "
            f"{fmt([r['recall'] for r in rows]):>12} "
            f"{fmt([r['class_precision'] for r in rows]):>12} "
            f"{fmt([r['auc'] for r in rows]):>12} {fmt([r['tpr1'] for r in rows]):>12} "
            f"{shadow:>17} {np.mean([r['seconds'] for r in rows]):>8.1f}"
        )
    print(
        "\nprecision/recall: threshold 0.5 on the attack's membership probability; class "
        "prec: mean over classes with a predicted member; seconds: mean wall time of "
        "synthesis + fit + score (shadow rows, shadow training included) or cross-fitting "
        f"(clf rows). Total {time.perf_counter() - started:.0f} s."
    )


if __name__ == "__main__":
    main()
