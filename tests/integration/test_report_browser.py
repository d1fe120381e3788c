"""The HTML report in a real headless browser: its tables are there, every embedded figure decodes, and the
problem browser filters (by flips against the baseline too), opens a problem with every condition side by side,
and goes back to the filtered list."""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from spark_eval.config import ReportConfig
from spark_eval.report import write_report
from spark_eval.stats import load_runs
from tests.fakes.runs import synthetic_experiment, synthetic_prompts

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium here (apt-get install chromium)")
# no background networking: a closed network refuses Chromium's own connections, many at a time
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update"]

# Added to a copy of the report: after load, write what the browser decoded.
PROBE = """<script>window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({alt: i.alt, width: i.naturalWidth, done: i.complete}));
  document.body.setAttribute("data-probe", JSON.stringify({images, tables: document.querySelectorAll("table").length,
    details: document.querySelectorAll("details").length, title: document.title,
    listed: document.querySelectorAll("#browser-list tbody tr").length}));
});</script>"""


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (file descriptors 3 and 4 of the child),
    so that a test can wait for what a page does after its load event: `open` a page, `evaluate` a script."""

    def __init__(self, binary: str, profile: Path) -> None:
        commands, replies = os.pipe(), os.pipe()
        # the child's ends above 9, so that dup2 always moves them to 3 and 4 (and so makes them inheritable;
        # Python's own descriptors are not, PEP 446)
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands[0], replies[1])]
        for fd in (commands[0], replies[1]):
            os.close(fd)

        def wire() -> None:
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                         "about:blank"], preexec_fn=wire, close_fds=False,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in ends:
            os.close(fd)
        self._out, self._in = commands[1], replies[0]
        self._buffer, self._id, self._events = b"", 0, []
        page = next(t for t in self._send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self._session = self._send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self._send("Page.enable", self._session)

    def open(self, url: str) -> None:
        """Navigate and wait for the page's load event."""
        self._send("Page.navigate", self._session, url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            self._events.append(self._read())
        self._events.clear()

    def evaluate(self, script: str) -> Any:
        """The value of `script` in the page (a promise is awaited); a script error raises RuntimeError."""
        reply = self._send("Runtime.evaluate", self._session, expression=script, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(json.dumps(reply["exceptionDetails"])[:2000])
        return reply["result"].get("value")

    def close(self) -> None:
        try:
            self._send("Browser.close")
        except (OSError, RuntimeError):
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._out)
        os.close(self._in)

    def _send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self._events.append(reply)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)


# Run in the page: set filters as a user would (change events), open a problem by its link, go back.
FILTER = """(filters) => { const form = document.getElementById("browser-filters");
  for (const [name, value] of Object.entries(filters)) { const input = form.elements[name];
    if (input.type === "checkbox") input.checked = value === "1"; else input.value = value; }
  form.dispatchEvent(new Event("change")); const count = document.getElementById("browser-count");
  return {problems: Number(count.dataset.problems), records: Number(count.dataset.records), hash: location.hash,
          rows: [...document.querySelectorAll("#browser-list tbody tr")].map(r => Number(r.dataset.pid))}; }"""
HASHCHANGE = "new Promise(done => window.addEventListener('hashchange', () => setTimeout(done, 0), {once: true}))"
OPEN = f"""(row) => {{ const changed = {HASHCHANGE};
  document.querySelectorAll("#browser-list tbody tr a")[row].click(); return changed.then(() => {{
  const side = document.querySelector("#browser-detail table.side");
  return {{hash: location.hash, listHidden: document.getElementById("browser-list-view").hidden,
    title: document.querySelector("#browser-detail h3").textContent,
    heads: [...side.querySelectorAll("thead th")].slice(1).map(th => th.textContent),
    aspects: [...side.querySelectorAll(":scope > tbody > tr > th")].map(th => th.textContent),
    cited: [...side.querySelectorAll("tr.cited")].length, scripts: document.querySelectorAll("script").length,
    prompt: document.querySelector("#browser-detail details pre").textContent,
    text: document.getElementById("browser-detail").textContent}}; }}); }}"""
NEXT = f"""() => {{ const changed = {HASHCHANGE};
  [...document.querySelectorAll("#browser-detail .nav a")].find(a => a.textContent.startsWith("next")).click();
  return changed.then(() => location.hash); }}"""
BACK = f"""() => {{ const changed = {HASHCHANGE}; history.back(); return changed.then(() => {{
  const form = document.getElementById("browser-filters"), count = document.getElementById("browser-count");
  return {{hash: location.hash, detailHidden: document.getElementById("browser-detail").hidden,
    library: form.elements.library.value, status: form.elements.status.value, q: form.elements.q.value,
    problems: Number(count.dataset.problems),
    rows: document.querySelectorAll("#browser-list tbody tr").length}}; }}); }}"""


def test_report_renders_with_tables_and_decoded_figures(tmp_path):
    synthetic_experiment(tmp_path / "runs", ["qwen3-coder-30b", "claude-haiku-4.5"], n=14)
    written = write_report(load_runs(str(tmp_path / "runs" / "*")), ReportConfig(bootstrap=200), tmp_path / "out", {})
    pngs = sorted(p.stem for p in written if p.suffix == ".png")
    page = tmp_path / "probe.html"
    page.write_text((tmp_path / "out" / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={tmp_path / 'p'}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    assert found, dom[:500]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert sorted(i["alt"] for i in probe["images"]) == pngs
    assert all(i["done"] and i["width"] > 100 for i in probe["images"]), probe["images"]
    assert probe["tables"] >= 5 and probe["details"] >= 1
    assert probe["title"] == "spark_eval report: synthetic"
    assert probe["listed"] == 14  # the browser drew its list of every problem at load


def _expected(runs, prompts, library, status, needle):
    """The problems the browser should list, by its rule: one record matches every filter (text in the
    prompt or the record's advice, code, output, verdicts or error)."""
    def text(record):
        advice = record.recommendation
        parts = [record.code, record.exec.stderr_tail if record.exec else None, advice.text if advice else None,
                 *(j.rationale for j in record.judgments)]
        return "\n".join(p for p in parts if p).lower()
    return sorted({r.problem_id for run in runs for r in run.records if r.library == library and r.status == status
                   and (needle in prompts[r.problem_id].lower() or needle in text(r))})


def test_problem_browser_filters_opens_side_by_side_and_goes_back(tmp_path):
    models = ["qwen3-coder-30b", "claude-haiku-4.5"]
    synthetic_experiment(tmp_path / "runs", models, n=60, texts=True)
    prompts = synthetic_prompts(60)
    runs = load_runs(str(tmp_path / "runs" / "*"))
    write_report(runs, ReportConfig(bootstrap=50), tmp_path / "out", prompts)
    browser = Chromium(BROWSER, tmp_path / "profile")
    try:
        browser.open((tmp_path / "out" / "report.html").as_uri())
        everything = browser.evaluate(f"({FILTER})({{}})")
        assert everything["problems"] == 60 and everything["records"] == 5 * 60 and everything["hash"] == ""
        filters = {"library": "Numpy", "status": "failed", "q": "merge"}
        listed = browser.evaluate(f"({FILTER})({json.dumps(filters)})")
        expected = _expected(runs, prompts, "Numpy", "failed", "merge")
        assert 0 < len(expected) < 60
        assert listed["rows"] == expected and listed["problems"] == len(expected)
        assert listed["hash"] == "#list?library=Numpy&status=failed&q=merge"
        opened = browser.evaluate(f"({OPEN})(0)")
        pid = expected[0]
        assert opened["hash"] == f"#problem={pid}" and opened["listHidden"]
        assert opened["title"].startswith(f"#{pid} Numpy")
        assert opened["heads"] == sorted(run.label for run in runs)  # every condition, side by side
        for aspect in ("Execution", "Quality", "Helpfulness", "Advice", "Items shown", "Code", "Verdicts"):
            assert aspect in opened["aspects"]
        assert opened["prompt"] == prompts[pid] and opened["scripts"] == 2  # no record text became a script
        spark = [r for run in runs if run.memory == "spark" for r in run.records if r.problem_id == pid]
        assert opened["cited"] == sum(bool(i.cited) for r in spark for i in r.recommendation.items) > 0
        assert all(r.recommendation.text in opened["text"] and r.code in opened["text"] for r in spark)
        back = browser.evaluate(f"({BACK})()")
        assert back == {"hash": listed["hash"], "detailHidden": True, "library": "Numpy", "status": "failed",
                        "q": "merge", "problems": len(expected), "rows": len(expected)}
        # next and previous replace the problem in the history, so back still lands on the filtered list
        browser.evaluate(f"({OPEN})(0)")
        stepped = browser.evaluate(f"({NEXT})()")
        assert stepped == f"#problem={expected[1]}"
        assert browser.evaluate(f"({BACK})()")["hash"] == listed["hash"]
        # the list's address alone brings the filtered list back, and a problem's address opens the problem
        browser.open("about:blank")
        browser.open((tmp_path / "out" / "report.html").as_uri() + listed["hash"])
        assert browser.evaluate(f"({FILTER})({{}})")["rows"] == expected
        browser.open("about:blank")
        browser.open((tmp_path / "out" / "report.html").as_uri() + f"#problem={pid}")
        assert browser.evaluate("document.querySelector('#browser-detail h3').textContent").startswith(f"#{pid} ")
    finally:
        browser.close()


def test_problem_browser_lists_flips_and_opens_the_pair_side_by_side(tmp_path):
    models = ["qwen3-coder-30b", "claude-haiku-4.5"]
    synthetic_experiment(tmp_path / "runs", models, n=40, texts=True)
    runs = load_runs(str(tmp_path / "runs" / "*"))
    write_report(runs, ReportConfig(bootstrap=50), tmp_path / "out", synthetic_prompts(40))
    passed = {(run.model, run.memory, r.problem_id): r.passed for run in runs for r in run.records}
    model = sorted(models)[0]  # the first pair: pairs go by model, then condition
    lost = sorted(p for (m, memory, p), ok in passed.items() if (m, memory) == (model, "none") and ok
                  and not passed[(model, "spark", p)])
    gained = sorted(p for (m, memory, p), ok in passed.items() if (m, memory) == (model, "none") and not ok
                    and passed[(model, "spark", p)])
    assert lost and gained
    browser = Chromium(BROWSER, tmp_path / "profile")
    try:
        browser.open((tmp_path / "out" / "report.html").as_uri())
        options = browser.evaluate("[...document.getElementById('browser-filters').elements.flip.options]"
                                   ".map(o => o.textContent)")
        assert options[1:3] == [f"{model}/spark vs none: pass\u2192fail ({len(lost)})",
                                f"{model}/spark vs none: fail\u2192pass ({len(gained)})"]
        listed = browser.evaluate(f"({FILTER})({json.dumps({'flip': 'pf0'})})")
        assert listed["rows"] == lost and listed["hash"] == "#list?flip=pf0"
        assert listed["records"] == 2 * len(lost)  # the baseline's and the condition's records; others dimmed
        opened = browser.evaluate(f"({OPEN})(0)")
        assert opened["hash"] == f"#problem={lost[0]}"
        assert opened["heads"][:2] == [f"{model}/none/s0", f"{model}/spark/s0"]  # the pair's arms first
        assert {"Flip", "Advice", "Code"} <= set(opened["aspects"])
        assert "pass\u2192fail against none" in opened["text"]
        assert browser.evaluate(f"({BACK})()")["hash"] == listed["hash"]
        assert browser.evaluate(f"({FILTER})({json.dumps({'flip': 'fp0'})})")["rows"] == gained
        assert browser.evaluate(f"({FILTER})({json.dumps({'flip': ''})})")["problems"] == 40
    finally:
        browser.close()
