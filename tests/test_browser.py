"""report.html in a real browser: headless Chromium renders a real audit's report.

The report is loaded in an iframe of a probe page (``--allow-file-access-from-files`` lets
the probe read it); the probe measures, after layout, every section and figure, whether any
table sticks out of the page, and whether hostile class names stayed text. Chromium runs
with a proxy on 127.0.0.1 that records every request: the report must make none.

``make test`` installs Debian's ``chromium`` when it is missing and the user is root; the
test skips, saying why, only where no Chromium can be found.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import socketserver
import subprocess
import threading

import pytest
from synthetic import memorising_recipe, synthetic_dataset

from miaudit.audit import run_audit
from miaudit.data import make_split
from miaudit.references import ReferenceSetup
from miaudit.report import write_report
from miaudit.targets import TorchTarget

HOSTILE = (
    "<script>document.title='pwned'</script>",
    "\"quoted' & <b>bold</b>",
    "<img src=x onerror=\"document.title='pwned'\">",
    "a-very-long-class-name-without-any-break-" * 4,
)
SECTIONS = [
    "Warnings",
    "Target and data",
    "Reference models",
    "Attacks",
    "ROC curves",
    "Score distributions",
    "Per class",
    "Records that leak most",
    "Settings",
]
#: Hosts Chromium itself calls in the background (network time, account and connectivity
#: checks), whatever the page; a report that loaded a font, a script or a style from
#: anywhere would show another host.
CHROMIUM_SERVICES = {"www.google.com", "clients2.google.com", "accounts.google.com"}


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


class _RecordingProxy(socketserver.ThreadingTCPServer):
    """Accepts proxy connections, records the first request line, answers 403."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(2048).decode("latin-1").strip()
                if line:
                    proxy.seen.append(line)
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

        super().__init__(("127.0.0.1", 0), Handler)


PROBE = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="r" src="report.html" style="width:900px;height:800px;border:0"></iframe>
<pre id="probe">pending</pre>
<script>
document.getElementById('r').addEventListener('load', () => {
  const w = document.getElementById('r').contentWindow, d = w.document;
  const page = d.documentElement.clientWidth;
  const tables = [...d.querySelectorAll('table')].map(t => {
    const box = (t.closest('.scroll') || t).getBoundingClientRect();
    return {right: box.right, caption: (t.textContent || '').trim().slice(0, 40)};
  });
  const widest = [...d.body.querySelectorAll('*')]
    .filter(e => e.getBoundingClientRect().right > page + 1 && !e.closest('.scroll'))
    .slice(0, 5).map(e => e.tagName + ' ' + (e.textContent || '').trim().slice(0, 40));
  const cells = [...d.querySelectorAll('td, th, p, li, span')].map(e => e.textContent);
  document.getElementById('probe').textContent = JSON.stringify({
    page: page,
    scrollWidth: d.documentElement.scrollWidth,
    widest: widest,
    title: d.title,
    sections: [...d.querySelectorAll('h2')].map(h => h.textContent.trim()),
    svgs: d.querySelectorAll('figure svg').length,
    tables: tables,
    scripts: d.querySelectorAll('script').length,
    images: d.querySelectorAll('img').length,
    bold: d.querySelectorAll('td b, th b').length,
    resources: w.performance.getEntriesByType('resource').map(e => e.name),
    text: cells.join('\\n'),
  });
});
</script></body></html>"""


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A real audit (metric and reference attacks, per class) of an overfit MLP on data
    whose class names are hostile, written as a report."""
    data = synthetic_dataset(seed=1, n_samples=900)
    data = dataclasses.replace(data, class_names=HOSTILE)
    split = make_split(
        data.n_records, n_members=200, n_nonmembers=200, n_population=500, seed=0, labels=data.y
    )
    recipe = memorising_recipe(epochs=30)
    model = recipe.train(data, split.members, seed=0).model
    folder = tmp_path_factory.mktemp("browser")
    target = TorchTarget(model, n_classes=4, access="logits", description="x" * 300)
    result = run_audit(
        target,
        data,
        split,
        attacks=["loss", "gap", {"name": "rmia", "num_references": 2, "online": False}],
        references=ReferenceSetup(recipe=recipe, cache_dir=folder / "cache"),
    )
    out = folder / "report"
    write_report(result, out)
    (out / "probe.html").write_text(PROBE)
    return out


def _render(folder, proxy_port: int) -> dict:
    browser = _chromium()
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-sync",
        "--allow-file-access-from-files",
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        "--proxy-bypass-list=<-loopback>",
        "--window-size=1000,900",
        "--virtual-time-budget=5000",
        "--dump-dom",
        (folder / "probe.html").as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"Chromium produced no probe result: {done.stderr[-2000:]}"
    import html

    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no Chromium (apt-get install chromium)")
def test_report_renders_in_chromium_within_the_page_and_offline(hostile_report):
    proxy = _RecordingProxy()
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        probe = _render(hostile_report, proxy.server_address[1])
    finally:
        proxy.shutdown()
        proxy.server_close()
    # Every section, and the ROC, score and per-class figures.
    assert probe["sections"] == SECTIONS
    assert probe["svgs"] >= 3
    # Nothing sticks out of the page: no table, and no horizontal scroll of the page.
    assert probe["scrollWidth"] <= probe["page"], probe["widest"]
    wide = [t for t in probe["tables"] if t["right"] > probe["page"] + 1]
    assert not wide, wide
    # Hostile names stayed text: no script ran or was created, no markup got through.
    assert probe["title"] != "pwned"
    assert probe["scripts"] == 0 and probe["images"] == 0 and probe["bold"] == 0
    assert "<script>document.title='pwned'</script>" in probe["text"]
    assert "\"quoted' & <b>bold</b>" in probe["text"]
    # And the page asked the network for nothing: no resource in its own timeline, and
    # nothing through the proxy but Chromium's own service calls (clock, sign-in checks),
    # which it makes for an empty page too.
    assert probe["resources"] == []
    hosts = {
        re.split(r"[ /:]", line.split(" ", 1)[1].removeprefix("http://"))[0] for line in proxy.seen
    }
    assert hosts <= CHROMIUM_SERVICES, proxy.seen
