"""Hostile servers, hostile labels: a prediction API that redirects, drips, floods or cuts
its answer off; secrets in its URL; attack labels that are spreadsheet formulas or
terminal escape sequences. Each must end the audit cleanly (exit 2, a message naming the
setting) or stay inert."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import yaml

from miaudit.cli import main
from miaudit.errors import InvalidAuditInput
from miaudit.report.inert import csv_cell, terminal_text
from miaudit.targets.http import HttpPredictor, redact_url


class _Server:
    """A server on 127.0.0.1 whose POST handler is ``behaviour(handler)``; it records the
    headers of every request it receives (on every path)."""

    def __init__(self, behaviour) -> None:
        self.seen: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                server.seen.append({"path": self.path, **dict(self.headers)})

            def do_POST(self):
                self._record()
                length = int(self.headers.get("Content-Length") or 0)
                self.body = self.rfile.read(length)
                behaviour(self)

            def do_GET(self):
                self._record()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b'{"predictions": []}')

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _answer(handler, payload: bytes, length: int | None = None) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(payload) if length is None else length))
    handler.end_headers()
    handler.wfile.write(payload)


X = np.zeros((2, 3), np.float32)
GOOD = json.dumps({"predictions": [[0.5, 0.5], [0.1, 0.9]]}).encode()


def test_a_redirect_is_not_followed_and_the_token_stays_home():
    with _Server(lambda h: _answer(h, GOOD)) as elsewhere:

        def redirect(handler):
            handler.send_response(302)
            handler.send_header("Location", elsewhere.base + "/steal?x=1")
            handler.end_headers()

        with _Server(redirect) as api:
            predictor = HttpPredictor(
                api.base + "/predict", headers={"Authorization": "Bearer s3cret"}, retries=2
            )
            with pytest.raises(InvalidAuditInput, match="redirect") as caught:
                predictor(X)
    assert elsewhere.seen == []  # nothing, and no token, reached the other host
    assert len(api.seen) == 1  # and a redirect is not retried
    assert "s3cret" not in str(caught.value)
    assert elsewhere.base in str(caught.value) and "steal" not in str(caught.value)


def test_a_dripping_server_meets_the_deadline():
    def drip(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(GOOD)))
        handler.end_headers()
        try:
            for byte in GOOD:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    with _Server(drip) as api:
        predictor = HttpPredictor(api.base, timeout_s=5, deadline_s=1.0, retries=0)
        started = time.monotonic()
        with pytest.raises(InvalidAuditInput, match="deadline_s") as caught:
            predictor(X)
    assert time.monotonic() - started < 3
    assert "1 s" in str(caught.value)


def test_a_flood_is_cut_at_the_byte_cap_declared_or_not():
    big = b'{"predictions": [' + b"0.1, " * 100_000 + b"0.1]}"

    def flood_declared(handler):
        _answer(handler, big)

    def flood_chunked(handler):  # no Content-Length: read until the cap passes
        handler.send_response(200)
        handler.end_headers()
        try:
            handler.wfile.write(big)
        except OSError:
            pass
        handler.close_connection = True

    for behaviour in (flood_declared, flood_chunked):
        with _Server(behaviour) as api:
            predictor = HttpPredictor(api.base, max_response_bytes=10_000, retries=0)
            with pytest.raises(InvalidAuditInput, match="max_response_bytes"):
                predictor(X)


def test_a_truncated_answer_is_retried_then_reported_without_a_traceback():
    def truncated(handler):
        _answer(handler, GOOD[:10], length=len(GOOD))  # promises more than it sends
        handler.close_connection = True

    with _Server(truncated) as api:
        predictor = HttpPredictor(api.base, retries=1, backoff_s=0)
        with pytest.raises(InvalidAuditInput, match="after 2 attempts: IncompleteRead"):
            predictor(X)
    assert len(api.seen) == 2


def test_secrets_in_the_url_never_reach_a_report(tmp_path, digits_split_file):
    assert redact_url("https://bob:pw@api.example/v1?api_key=K&mode=fast") == (
        "https://***@api.example/v1?api_key=***&mode=***"
    )
    assert redact_url("http://h/p") == "http://h/p"

    def serve(handler):
        n = len(json.loads(handler.body)["instances"])
        _answer(handler, json.dumps({"predictions": [[0.1] * 10] * n}).encode())

    with _Server(serve) as api:
        url = api.base + "/p?api_key=TOPSECRET"
        config = {
            "dataset": "digits",
            "split": {"indices_file": str(digits_split_file)},
            "target": {"http": {"url": url, "batch_size": 300}},
            "attacks": ["loss"],
        }
        path = tmp_path / "audit.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["--quiet", "audit", str(path), "--out", str(tmp_path / "out")]) == 0
    for name in ("report.json", "report.html"):
        text = (tmp_path / "out" / name).read_text()
        assert "TOPSECRET" not in text
        assert "api_key=***" in text


@pytest.fixture
def digits_split_file(tmp_path):
    from miaudit.data import load_dataset, make_split

    data = load_dataset("digits")
    split = make_split(data.n_records, n_members=150, n_nonmembers=150, seed=0, labels=data.y)
    path = tmp_path / "split.npz"
    np.savez(path, members=split.members, nonmembers=split.nonmembers)
    return path


# -- labels that are formulas or escape sequences -------------------------------------


def test_csv_cells_that_look_like_formulas_are_neutralised():
    for text in ('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("loss") == "loss"


def test_terminal_text_shows_control_characters_instead_of_sending_them():
    shown = terminal_text("a\x1b[31mred\x1b]0;title\x07\x9b2Jz\n\tok")
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert shown.startswith("a\\x1b[31mred") and shown.endswith("\n\tok")


def test_hostile_attack_labels_stay_inert_in_the_csv_and_the_terminal(tmp_path, capsys):
    label_formula = '=HYPERLINK("http://evil","x")'
    label_escape = "loss\x1b[31m\x1b]0;owned\x07"
    config = {
        "dataset": "digits",
        "split": {"members": 150, "nonmembers": 150, "seed": 0},
        "target": {"sklearn": {"estimator": "LogisticRegression", "params": {"max_iter": 200}}},
        "attacks": [
            {"name": "loss", "label": label_formula},
            {"name": "confidence", "label": label_escape},
        ],
        "references": {"cache_dir": str(tmp_path / "cache")},
    }
    path = tmp_path / "audit.yaml"
    path.write_text(yaml.safe_dump(config))
    csv_path = tmp_path / "records.csv"
    code = main(
        ["audit", str(path), "--out", str(tmp_path / "out"), "--per-record-csv", str(csv_path)]
    )
    assert code == 0
    header = next(csv.reader(io.StringIO(csv_path.read_text())))
    assert "'" + label_formula in header
    assert not any(cell.startswith("=") for cell in header)
    out = capsys.readouterr().out
    assert "\x1b]0;" not in out and "\x07" not in out
    assert "\\x1b]0;owned" in out
