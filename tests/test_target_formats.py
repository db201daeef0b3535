"""Targets from anywhere: ONNX, TorchScript, torch.export, a prediction API over HTTP, and
precomputed predictions, each from a YAML audit through the command line."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from miaudit.cli import main
from miaudit.data import load_dataset, make_split
from miaudit.errors import InvalidAuditInput
from miaudit.models import TorchRecipe, TrainingConfig
from miaudit.targets import AccessLevel, TorchTarget

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

ATTACKS = ["loss", "confidence", "gap"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An overfit MLP on digits, its split file, and the loss scores of an in-process
    audit of it (the answers every file format must reproduce)."""
    from miaudit.audit import run_audit

    folder = tmp_path_factory.mktemp("formats")
    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=300, n_nonmembers=300, seed=3, labels=data.y)
    np.savez(folder / "split.npz", members=split.members, nonmembers=split.nonmembers)
    recipe = TorchRecipe(
        architecture="mlp",
        arch_params={"hidden": (64,)},
        training=TrainingConfig(epochs=40, optimizer="adam", lr=1e-3, device="cpu"),
    )
    model = recipe.train(data, split.members, seed=0).model.eval()
    reference = run_audit(
        TorchTarget(model, n_classes=10, access="logits"), data, split, attacks=ATTACKS
    )
    return {"folder": folder, "data": data, "split": split, "model": model, "ref": reference}


def _audit(folder: Path, target: dict, name: str, *extra: str, attacks=ATTACKS) -> int:
    config = {
        "dataset": "digits",
        "split": {"indices_file": "split.npz"},
        "target": target,
        "attacks": attacks,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(["--quiet", "audit", str(path), "--out", str(folder / name), *extra])


def _report(folder: Path, name: str) -> tuple[dict, dict]:
    report = json.loads((folder / name / "report.json").read_text())
    with np.load(folder / name / "scores.npz") as scores:
        return report, {k: scores[k] for k in scores.files}


def _export_onnx(model, path: Path, *, softmax: bool = False) -> None:
    net = torch.nn.Sequential(model, torch.nn.Softmax(dim=1)) if softmax else model
    torch.onnx.export(
        net,
        (torch.zeros(2, 64),),
        str(path),
        dynamo=False,
        input_names=["records"],
        output_names=["probabilities" if softmax else "logits"],
        dynamic_axes={"records": {0: "n"}},
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_logits_model_matches_the_pytorch_audit(trained):
    folder = trained["folder"]
    _export_onnx(trained["model"], folder / "model.onnx")
    assert _audit(folder, {"model_file": "model.onnx"}, "onnx") == 0
    report, scores = _report(folder, "onnx")
    assert report["target"]["access"] == "logits"  # detected on a probe batch
    ref = trained["ref"]
    for name in ATTACKS:
        np.testing.assert_allclose(scores[name], ref.scores[name], rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_probabilities_output_is_detected_and_caps_access(trained, capsys):
    folder = trained["folder"]
    _export_onnx(trained["model"], folder / "proba.onnx", softmax=True)
    assert _audit(folder, {"model_file": "proba.onnx"}, "proba") == 0
    report, _ = _report(folder, "proba")
    assert report["target"]["access"] == "probabilities"
    # Logits cannot be declared for a graph that outputs probabilities: exit 2, no report.
    code = _audit(folder, {"model_file": "proba.onnx", "access": "logits"}, "bad")
    assert code == 2
    assert "probabilities" in capsys.readouterr().err
    assert not (folder / "bad").exists()


def test_onnx_nhwc_graph_gets_transposed_records(tmp_path):
    """A Keras-style graph takes (n, h, w, c); miaudit's images are (n, c, h, w)."""
    from onnx import TensorProto, helper, numpy_helper

    from miaudit.targets.onnx import OnnxTarget

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(12, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["x"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["logits"]),
        ],
        "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 2, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "nhwc.onnx")
    target = OnnxTarget(tmp_path / "nhwc.onnx", n_classes=3)
    x = rng.random((5, 3, 2, 2)).astype(np.float32)  # NCHW
    expected = x.transpose(0, 2, 3, 1).reshape(5, -1) @ weights
    np.testing.assert_allclose(target.predict_logits(x), expected, rtol=1e-5)
    assert target.access == AccessLevel.LOGITS
    with pytest.raises(InvalidAuditInput, match=r"shape \(2, 2, 3\).*\(5,\)"):
        target.predict_logits(np.zeros((2, 5), np.float32))
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(InvalidAuditInput, match="cannot be loaded"):
        OnnxTarget(tmp_path / "junk.onnx", n_classes=3)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_model_gives_logits_and_matches(trained, capsys):
    folder = trained["folder"]
    torch.jit.script(trained["model"]).save(str(folder / "scripted.pt"))  # named like weights
    # A TorchScript archive is a program: refused without the trust flag, before loading.
    assert _audit(folder, {"model_file": "scripted.pt"}, "ts") == 2
    err = capsys.readouterr().err
    assert "TorchScript" in err and "--trust-model-code" in err and "ONNX" in err
    assert not (folder / "ts").exists()
    assert _audit(folder, {"model_file": "scripted.pt"}, "ts", "--trust-model-code") == 0
    report, scores = _report(folder, "ts")
    assert "TorchScript" in report["target"]["description"]
    assert report["target"]["access"] == "logits"
    np.testing.assert_allclose(scores["loss"], trained["ref"].scores["loss"], rtol=1e-6)
    # No per-record gradients from TorchScript: a white-box attack is refused up front.
    attacks = [{"name": "gradient_norm"}]
    code = _audit(
        folder, {"model_file": "scripted.pt"}, "ts_wb", "--trust-model-code", attacks=attacks
    )
    assert code == 2
    assert "white_box" in capsys.readouterr().err
    assert not (folder / "ts_wb").exists()


class _WritesAFile(torch.nn.Module):
    """A TorchScript model whose forward writes a file (torch.from_file with shared=True
    maps the file and fill_ writes through), as a hostile archive would."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x):
        written = torch.from_file(self.path, True, 8, dtype=torch.uint8).fill_(65)
        return x[:, :10] + 0 * written.sum()


def test_hostile_torchscript_runs_nothing_without_trust(trained, capsys):
    folder = trained["folder"]
    victim = folder / "written-by-model"
    victim.write_bytes(bytes(8))
    torch.jit.script(_WritesAFile(str(victim))).save(str(folder / "hostile.ts"))
    assert _audit(folder, {"model_file": "hostile.ts"}, "hostile") == 2
    assert "is a TorchScript archive, which is a program" in capsys.readouterr().err
    assert victim.read_bytes() == bytes(8) and not (folder / "hostile").exists()
    # The Python API refuses it too; trusted, the archive does what its code says.
    from miaudit.errors import UntrustedFileError
    from miaudit.models import load_torchscript_model

    with pytest.raises(UntrustedFileError, match="trust"):
        load_torchscript_model(folder / "hostile.ts")
    assert victim.read_bytes() == bytes(8)
    load_torchscript_model(folder / "hostile.ts", trust_pickle=True)(torch.zeros(1, 64))
    assert victim.read_bytes() == b"A" * 8


def test_torch_export_program_needs_trust_and_serves_white_box(trained, capsys):
    folder = trained["folder"]
    example = (torch.zeros(2, 64),)
    fixed = torch.export.export(trained["model"], example)
    torch.export.save(fixed, str(folder / "fixed.pt2"))
    assert _audit(folder, {"model_file": "fixed.pt2"}, "fixed", "--trust-pickle") == 2
    assert "exactly 2 records" in capsys.readouterr().err
    batch = {"input": {0: torch.export.Dim("batch", min=1)}}  # Sequential's argument
    program = torch.export.export(trained["model"], example, dynamic_shapes=batch)
    torch.export.save(program, str(folder / "model.pt2"))
    assert _audit(folder, {"model_file": "model.pt2"}, "pt2") == 2
    assert "--trust-model-code" in capsys.readouterr().err
    assert not (folder / "pt2").exists()
    attacks = [*ATTACKS, "gradient_norm"]
    code = _audit(folder, {"model_file": "model.pt2"}, "pt2", "--trust-pickle", attacks=attacks)
    assert code == 0
    report, scores = _report(folder, "pt2")
    assert report["target"]["access"] == "white_box"
    np.testing.assert_allclose(scores["loss"], trained["ref"].scores["loss"], rtol=1e-5)
    assert np.isfinite(scores["gradient_norm"]).all()


def test_precomputed_predictions_file(trained, capsys):
    folder, data = trained["folder"], trained["data"]
    with torch.no_grad():
        logits = trained["model"](torch.from_numpy(data.x)).numpy()
    proba = np.exp(logits - logits.max(1, keepdims=True))
    proba /= proba.sum(1, keepdims=True)
    np.savez(folder / "preds.npz", probabilities=proba)
    assert _audit(folder, {"predictions_file": "preds.npz"}, "pre") == 0
    report, scores = _report(folder, "pre")
    assert report["target"]["access"] == "probabilities"
    np.testing.assert_allclose(scores["loss"], trained["ref"].scores["loss"], rtol=1e-5)
    # Rows for some records only, named by record_ids (shuffled).
    split = trained["split"]
    ids = np.concatenate([split.members, split.nonmembers])[::-1]
    np.savez(folder / "some.npz", logits=logits[ids], record_ids=ids)
    assert _audit(folder, {"predictions_file": "some.npz"}, "some") == 0
    report, scores = _report(folder, "some")
    assert report["target"]["access"] == "logits"
    np.testing.assert_allclose(scores["loss"], trained["ref"].scores["loss"], rtol=1e-5)
    # A file with too few rows and no record ids; an attack that must query new records.
    np.savez(folder / "short.npz", probabilities=proba[:10])
    assert _audit(folder, {"predictions_file": "short.npz"}, "short") == 2
    assert "record_ids" in capsys.readouterr().err
    attacks = [{"name": "augmentation"}]
    assert _audit(folder, {"predictions_file": "preds.npz"}, "aug", attacks=attacks) == 2
    capsys.readouterr()
    for name in ("short", "aug"):
        assert not (folder / name).exists()


# -- a prediction API on 127.0.0.1 -------------------------------------------------------


class _Api:
    """The overfit model served as JSON; ``fail_first`` requests answer 503 first."""

    def __init__(self, model, fail_first: int = 0, status: int = 503) -> None:
        self.model, self.fail_first, self.status = model, fail_first, status
        self.requests: list[int] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                records = np.asarray(body["instances"], dtype=np.float32)
                api.requests.append(len(records))
                if len(api.requests) <= api.fail_first:
                    self.send_response(api.status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                with torch.no_grad():
                    logits = api.model(torch.from_numpy(records))
                proba = torch.softmax(logits, 1).tolist()
                payload = json.dumps({"predictions": proba}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/predict"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_http_api_audit_batches_retries_and_reports_queries(trained):
    folder = trained["folder"]
    with _Api(trained["model"], fail_first=2) as api:
        http = {"url": api.url, "batch_size": 128, "retries": 3}
        assert _audit(folder, {"http": http}, "http") == 0
    report, scores = _report(folder, "http")
    used = report["target"]["api"]
    assert used["queries_used"] == sum(api.requests[2:])  # failed requests answered nothing
    assert used["retries"] == 2
    assert max(api.requests) <= 128
    assert report["target"]["access"] == "probabilities"
    np.testing.assert_allclose(scores["loss"], trained["ref"].scores["loss"], rtol=1e-5)


def test_http_query_budget_stops_the_audit_before_it_is_passed(trained, capsys):
    folder = trained["folder"]
    with _Api(trained["model"]) as api:
        http = {"url": api.url, "batch_size": 100, "query_budget": 250}
        assert _audit(folder, {"http": http}, "budget") == 2
    err = capsys.readouterr().err
    assert "query budget of 250" in err
    assert sum(api.requests) <= 250
    assert not (folder / "budget").exists()


def test_http_client_errors_are_not_retried_and_rate_is_kept(trained):
    from miaudit.targets.http import HttpPredictor

    with _Api(trained["model"], fail_first=1, status=400) as api:
        predictor = HttpPredictor(api.url, retries=5, backoff_s=0)
        with pytest.raises(InvalidAuditInput, match="400"):
            predictor(np.zeros((3, 64), np.float32))
        assert len(api.requests) == 1
    # Rate limit with a fake clock: requests start at least 1/rate apart.
    now, sleeps = [0.0], []

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    with _Api(trained["model"]) as api:
        predictor = HttpPredictor(
            api.url, batch_size=10, max_requests_per_second=4, sleep=sleep, clock=lambda: now[0]
        )
        out = predictor(np.arange(35 * 64, dtype=np.float32).reshape(35, 64) / 2240)
    assert out.shape == (35, 10)
    assert api.requests == [10, 10, 10, 5]
    assert sleeps == pytest.approx([0.25, 0.25, 0.25])
    with pytest.raises(InvalidAuditInput, match="url"):
        HttpPredictor("file:///etc/passwd")
    with pytest.raises(InvalidAuditInput, match="cannot be reached"):
        HttpPredictor("http://127.0.0.1:9/", retries=1, backoff_s=0, timeout_s=2)(
            np.zeros((1, 64), np.float32)
        )


def test_scikit_learn_model_exported_with_skl2onnx(tmp_path):
    """The documented path for scikit-learn: skl2onnx with zipmap off gives outputs
    'label' and 'probabilities'; the adapter picks the probabilities."""
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.linear_model import LogisticRegression

    from miaudit.targets.onnx import OnnxTarget

    data = load_dataset("digits")
    x = data.x[:300]
    model = LogisticRegression(max_iter=500).fit(x, data.y[:300])
    exported = skl2onnx.to_onnx(model, x[:1], options={"zipmap": False})
    (tmp_path / "lr.onnx").write_bytes(exported.SerializeToString())
    target = OnnxTarget(tmp_path / "lr.onnx", n_classes=10)
    assert target.access == AccessLevel.PROBABILITIES
    np.testing.assert_allclose(target.predict_proba(data.x), model.predict_proba(data.x), atol=1e-5)


def test_http_answers_a_record_asked_again_from_memory(trained):
    """The same record costs the budget once; its answer comes back unchanged, in the
    order asked; without memoize every record is sent again."""
    from miaudit.targets.http import HttpPredictor

    x = trained["data"].x[:40].astype(np.float32)
    with _Api(trained["model"]) as api:
        predictor = HttpPredictor(api.url, batch_size=16, query_budget=60)
        first = predictor(x[:30])
        again = predictor(np.concatenate([x[20:40], x[:5], x[20:25]]))  # 10 new, 20 known
        assert sum(api.requests) == 40 == predictor.queries_used
        assert predictor.answered_from_memory == 20
        np.testing.assert_array_equal(again[:10], first[20:30])
        np.testing.assert_array_equal(again[20:25], first[:5])
        np.testing.assert_array_equal(again[25:], first[20:25])
        assert predictor.describe()["answered_from_memory"] == 20
        plain = HttpPredictor(api.url, batch_size=16, memoize=False)
        plain(x[:10])
        plain(x[:10])
        assert plain.queries_used == 20 and plain.answered_from_memory == 0
    with pytest.raises(InvalidAuditInput, match="memoize"):
        HttpPredictor(api.url, memoize="yes")


@pytest.mark.parametrize(
    ("make_ids", "message"),
    [
        (lambda n: np.arange(1, n + 1), "look 1-based"),
        (lambda n: np.concatenate([[-1], np.arange(1, 40)]), "outside [0, 1797)"),
        (lambda n: np.arange(n - 20, n + 20), "outside [0, 1797)"),
        (lambda n: np.concatenate([np.arange(30), [5, 6]]), "2 ids appear more than once"),
    ],
)
def test_predictions_record_ids_are_checked(trained, capsys, make_ids, message):
    folder, data = trained["folder"], trained["data"]
    ids = make_ids(data.n_records)
    np.savez(folder / "ids.npz", probabilities=np.full((ids.size, 10), 0.1), record_ids=ids)
    assert _audit(folder, {"predictions_file": "ids.npz"}, "ids") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (folder / "ids").exists()


def test_predictions_held_as_objects_are_refused_without_unpickling(trained, capsys):
    folder = trained["folder"]
    rows = np.empty(trained["data"].n_records, dtype=object)
    rows[:] = [[0.1] * 10 for _ in range(rows.size)]
    np.savez(folder / "objects.npz", probabilities=rows)
    assert _audit(folder, {"predictions_file": "objects.npz"}, "objects") == 2
    err = capsys.readouterr().err
    assert "without unpickling" in err or "pickle" in err
    assert not (folder / "objects").exists()


def test_onnx_graph_with_several_candidate_outputs_asks_which(trained, tmp_path):
    from miaudit.targets.onnx import OnnxTarget

    class TwoHeads(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            logits = self.model(x)
            return logits, 2 * logits

    torch.onnx.export(
        TwoHeads(trained["model"]),
        (torch.zeros(2, 64),),
        str(tmp_path / "two.onnx"),
        dynamo=False,
        input_names=["records"],
        output_names=["head_a", "head_b"],
        dynamic_axes={"records": {0: "n"}},
    )
    with pytest.raises(InvalidAuditInput, match=r"2 outputs .*'head_a', 'head_b'.*output_name"):
        OnnxTarget(tmp_path / "two.onnx", n_classes=10)
    chosen = OnnxTarget(tmp_path / "two.onnx", n_classes=10, output_name="head_b")
    assert chosen.predict_logits(trained["data"].x[:3]).shape == (3, 10)
